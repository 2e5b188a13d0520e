"""Paired samples from two torchgeo ``RasterDataset``s through their geospatial intersection.

.. versionadded:: 0.1
"""

from typing import Any

from torch.utils.data import Dataset

from ..errors import BandCountError, ImageSizeError, InputError
from ..spectrum import plan_bands
from .paired_raster import Normalizer, pair_normalizer

__all__ = ('TorchGeoPairedDataset',)


class TorchGeoPairedDataset(Dataset[dict[str, Any]]):
    """Paired samples from two torchgeo RasterDatasets through ``IntersectionDataset`` (see ``from_torchgeo``).

    .. versionadded:: 0.1
    """

    def __init__(
        self, ds_a: Any, ds_b: Any, bands_a: Any, bands_b: Any, *, size: int = 224, length: int = 1000,
        res: float | None = None, normalize_a: str | Normalizer | None = None,
        normalize_b: str | Normalizer | None = None,
    ) -> None:
        """Initialize a new TorchGeoPairedDataset (arguments as :meth:`PairedRasterDataset.from_torchgeo`)."""
        from torchgeo.samplers import RandomGeoSampler

        if size % 16:
            raise ImageSizeError(f'size must be a multiple of the patch size 16, got {size}')
        self.plan_a, self.plan_b = plan_bands(bands_a), plan_bands(bands_b)
        if res is not None:
            ds_a.res = (res, res)
        self.dataset = ds_a & ds_b
        if len(self.dataset) == 0:
            raise InputError('the two torchgeo datasets do not overlap in space/time; nothing to pair')
        self.ca = self.plan_a.num_bands
        self.slices = list(RandomGeoSampler(self.dataset, size=size, length=length))
        self.size = size
        self.normalize_a = pair_normalizer(normalize_a, self.plan_a)
        self.normalize_b = pair_normalizer(normalize_b, self.plan_b)
        self.bands_a, self.bands_b = self.plan_a.bands, self.plan_b.bands

    def __len__(self) -> int:
        return len(self.slices)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """A paired sample (the intersection's stacked image split by the band counts)."""
        img = self.dataset[self.slices[index]]['image'].float()
        if img.ndim == 4:  # (T, C, H, W) in some torchgeo versions
            img = img[0]
        if img.shape[0] != self.ca + self.plan_b.num_bands:
            raise BandCountError(
                f'the intersection gave {img.shape[0]} channels, expected {self.ca} + {self.plan_b.num_bands} '
                '(bands_a + bands_b); check the datasets\' bands'
            )
        a, b = img[: self.ca], img[self.ca:]
        a, b = a[..., : self.size, : self.size], b[..., : self.size, : self.size]
        if self.normalize_a is not None:
            a = self.normalize_a(a)
        if self.normalize_b is not None:
            b = self.normalize_b(b)
        return {'image_a': a, 'image_b': b, 'bands_a': self.plan_a, 'bands_b': self.plan_b, 'index': index}
