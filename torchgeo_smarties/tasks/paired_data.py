"""Paired multi-sensor data for SMARTIES pretraining: co-registered rasters of two sensors, same footprint.

A *pair* is one raster (or one file per band on a common grid) of sensor a and one of
sensor b covering an overlapping area. :class:`PairedRasterDataset` reads random crops of
the same ground footprint from both with rasterio (windows taken inside the footprint
intersection), resamples both to ``size × size`` pixels at the output resolution (by
default the coarser of the two, so the finer image is resampled), normalises each
sensor with its own statistics and returns::

    {'image_a': (Ca, size, size) float32, 'image_b': (Cb, size, size) float32,
     'bands_a': ProjectionPlan, 'bands_b': ProjectionPlan, 'index': int}

:meth:`PairedRasterDataset.from_torchgeo` builds the same samples from two torchgeo
``RasterDataset``s through torchgeo's geospatial intersection (``ds_a & ds_b``).
:class:`PairedDataModule` wraps either in a LightningDataModule.

.. versionadded:: 0.1
"""

from .paired_datamodule import PairedDataModule, collate_pairs
from .paired_raster import PairedRasterDataset, pair_normalizer
from .paired_torchgeo import TorchGeoPairedDataset

__all__ = (
    'PairedDataModule',
    'PairedRasterDataset',
    'TorchGeoPairedDataset',
    'collate_pairs',
    'pair_normalizer',
)
