"""torchgeo data modules that normalise the SMARTIES way.

torchgeo's data modules normalise with their own statistics (``K.Normalize`` with the dataset's
mean/std or min/max). The release normalised every band with ``clip((x - p1) / (p99 - p1), 0, 1)``
then ``(· - mean) / std`` using its own statistics. The subclasses here keep everything torchgeo
does (datasets, splits, loaders, any other batch augmentation) and replace only the ``K.Normalize``
step of ``aug`` (and of ``train_aug``/``val_aug``/``test_aug``/``predict_aug`` where set) by
:class:`~torchgeo_smarties.transforms.SmartiesNormalize` with the right preset, in the data module's
channel order. They are LightningCLI ``class_path`` targets and construct without the dataset on disk.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import kornia.augmentation as K
import torch
from kornia.augmentation import IntensityAugmentationBase2D
from torch import Tensor, nn
from torchgeo.datamodules import BigEarthNetDataModule, EuroSATDataModule, SEN12MSDataModule
from torchgeo.datasets import EuroSAT

from ..errors import InputError
from ..spectrum import resolve_bands
from ..transforms import SmartiesNormalize
from ..transforms.band_subset import attach_band_mask
from ..transforms.stats import preset_stats

__all__ = (
    'SMARTIESBigEarthNetDataModule',
    'SMARTIESEuroSATDataModule',
    'SMARTIESSEN12MSDataModule',
    'smarties_normalize_for',
)


class _ReorderChannels(IntensityAugmentationBase2D):
    """Deterministic channel permutation ``x[:, order]`` as a kornia augmentation (only ``'image'`` changes)."""

    order: Tensor

    def __init__(self, order: Sequence[int]) -> None:
        super().__init__(p=1.0, same_on_batch=True, keepdim=True)
        self.register_buffer('order', torch.as_tensor(list(order), dtype=torch.long), persistent=False)

    def apply_transform(
        self, input: Tensor, params: dict[str, Tensor], flags: dict[str, Any], transform: Tensor | None = None
    ) -> Tensor:
        """Kornia hook: permute the channels."""
        return input.index_select(-3, self.order.to(input.device))

    def extra_repr(self) -> str:
        """The permutation."""
        return f'order={self.order.tolist()}'


def smarties_normalize_for(bands: Sequence[str], s2_preset: str, s1_preset: str = 'sentinel1') -> SmartiesNormalize:
    """A :class:`SmartiesNormalize` for a channel list mixing Sentinel-1 and Sentinel-2 bands.

    Each channel takes its statistics from *s1_preset* (SAR polarisation bands) or *s2_preset*
    (everything else), in the given order. The statistics are in dB for SAR, so the input's SAR bands
    must be in dB (``sar_to_db`` stays off).

    Args:
        bands: band ids in channel order (``'sentinel1:VV'``, ``'sentinel2:B04'``, ...).
        s2_preset: statistics preset of the optical bands (e.g. ``'bigearthnet_s2'``).
        s1_preset: statistics preset of the SAR bands (e.g. ``'bigearthnet_s1'``).

    Raises:
        UnknownBandError: if a band has no statistic in its preset.

    .. versionadded:: 0.1
    """
    ids = [b.id for b in resolve_bands(list(bands))]
    cols: dict[str, list[float]] = {'p1': [], 'p99': [], 'mean': [], 'std': []}
    for band in resolve_bands(ids):
        stats = preset_stats(s1_preset if band.polarization is not None else s2_preset, [band.id])
        cols['p1'].append(stats.p1[0])
        cols['p99'].append(stats.p99[0])
        cols['mean'].append(stats.mean[0])
        cols['std'].append(stats.std[0])
    return SmartiesNormalize(cols['p1'], cols['p99'], cols['mean'], cols['std'], bands=ids)


def _swap_normalize(aug: Any, steps: Sequence[nn.Module]) -> Any:
    """*aug* (torchgeo's ``AugmentationSequential``) with its ``K.Normalize`` replaced by *steps*."""
    if not isinstance(aug, K.AugmentationSequential):
        raise InputError(
            f'expected a kornia AugmentationSequential as the data module augmentation, got {type(aug).__name__}; '
            'build the SmartiesNormalize step yourself (SmartiesNormalize.from_preset)'
        )
    children = list(aug.children())
    if not any(isinstance(m, K.Normalize) for m in children):
        raise InputError('the data module augmentation has no K.Normalize step to replace')
    new: list[nn.Module] = []
    for module in children:
        new.extend(steps if isinstance(module, K.Normalize) else [module])
    return K.AugmentationSequential(*new, data_keys=aug.data_keys, keepdim=aug.keepdim)  # type: ignore[arg-type]


class _SmartiesNormalizeMixin:
    """Replaces the ``K.Normalize`` of every torchgeo batch augmentation by SMARTIES steps.

    After the augmentation, the masks of its :class:`~torchgeo_smarties.transforms.RandomBandSubset` steps
    go into ``batch['band_mask']`` (what the SMARTIES tasks pass to the model).
    """

    aug: Any
    train_aug: Any
    val_aug: Any
    test_aug: Any
    predict_aug: Any
    normalize: SmartiesNormalize
    #: what ``root`` must hold (named by the CLI's error for a wrong root).
    expected_layout: ClassVar[str]
    #: statistics presets of the SAR and the optical bands (data modules mixing Sentinel-1 and Sentinel-2).
    s1_preset: ClassVar[str]
    s2_preset: ClassVar[str]

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        """torchgeo's batch augmentation, then ``batch['band_mask']`` from its band-subset steps."""
        batch = super().on_after_batch_transfer(batch, dataloader_idx)  # type: ignore[misc]
        for name in ('aug', 'train_aug', 'val_aug', 'test_aug', 'predict_aug'):
            attach_band_mask(batch, getattr(self, name, None))
        return batch

    def _use_smarties(self, norm: SmartiesNormalize, order: Sequence[int] | None = None) -> None:
        self.normalize = norm
        steps: list[nn.Module] = [norm] if order is None else [_ReorderChannels(order), norm]
        for name in ('aug', 'train_aug', 'val_aug', 'test_aug', 'predict_aug'):
            aug = getattr(self, name, None)
            if aug is not None:
                setattr(self, name, _swap_normalize(aug, steps))


class SMARTIESEuroSATDataModule(_SmartiesNormalizeMixin, EuroSATDataModule):
    """torchgeo's EuroSAT data module with the SMARTIES normalisation (preset ``'eurosat'``).

    The channel order follows the ``bands`` keyword of :class:`torchgeo.datasets.EuroSAT`
    (default: its 13 bands with B8A last, the release's EuroSAT order); torchgeo's band names
    (``'B8A'``) map to ``sentinel2:<name>``. The EuroSAT images are L1C digital numbers.

    Example (LightningCLI)::

        data:
          class_path: torchgeo_smarties.tasks.SMARTIESEuroSATDataModule
          init_args: {batch_size: 64}
          dict_kwargs: {root: data/eurosat}

    .. versionadded:: 0.1
    """

    #: statistics preset used.
    preset: ClassVar[str] = 'eurosat'
    expected_layout = (
        'ROOT/ds/images/remote_sensing/otherDatasets/sentinel_2/tif/<Class>/<Class>_<n>.tif (the unzipped '
        'EuroSATallBands.zip) and the split files ROOT/eurosat-{train,val,test}.txt'
    )

    def __init__(self, batch_size: int = 64, num_workers: int = 0, **kwargs: Any) -> None:
        """Initialise; *kwargs* go to :class:`torchgeo.datasets.EuroSAT` (``root``, ``bands``, ...)."""
        super().__init__(batch_size, num_workers, **kwargs)
        names = tuple(kwargs.get('bands', EuroSAT.all_band_names))
        #: band ids of the channels (``sentinel2:B01``, ...).
        self.band_ids = tuple(f'sentinel2:{b}' for b in names)
        self._use_smarties(SmartiesNormalize.from_preset(self.preset, bands=list(self.band_ids)))


class SMARTIESBigEarthNetDataModule(_SmartiesNormalizeMixin, BigEarthNetDataModule):
    """torchgeo's BigEarthNet (v1) data module with the SMARTIES normalisation.

    * ``bands='s2'``: 12 bands B01–B08, B8A, B09, B11, B12 (torchgeo sorts the band files in this
      order), preset ``'bigearthnet_s2'``.
    * ``bands='s1'``: preset ``'bigearthnet_s1'``. BigEarthNet-S1 ships σ0 backscatter **already in
      dB** and torchgeo reads it as is (cast to ``int32``, i.e. truncated to whole dB, then to float),
      so ``sar_to_db`` is off. torchgeo 0.10 loads the S1 files in sorted file-name order, which is
      ``*_VH.tif`` then ``*_VV.tif`` (its docstring says VV, VH); this data module swaps them so the
      normalised batch is **(VV, VH)**, the order of the ``'bigearthnet_s1'`` / ``'sentinel1'`` band
      presets.
    * ``bands='all'`` (default): 14 channels, (VV, VH) then the 12 S2 bands, each normalised with the
      statistics of its own preset.

    The S1 file order can be changed with the :attr:`s1_file_order` class attribute.

    .. versionadded:: 0.1
    """

    expected_layout = (
        'ROOT/BigEarthNet-v1.0/<patch>/ (S2) and/or ROOT/BigEarthNet-S1-v1.0/<patch>/ (S1), the unpacked '
        'archives, and ROOT/bigearthnet-{train,val,test}.csv'
    )
    s1_preset = 'bigearthnet_s1'
    s2_preset = 'bigearthnet_s2'
    #: polarisation order in which torchgeo's ``BigEarthNet`` returns S1 (sorted file names).
    s1_file_order: ClassVar[tuple[str, ...]] = ('VH', 'VV')
    #: polarisation order of the normalised batch.
    s1_output_order: ClassVar[tuple[str, ...]] = ('VV', 'VH')

    def __init__(self, batch_size: int = 64, num_workers: int = 0, **kwargs: Any) -> None:
        """Initialise; *kwargs* go to :class:`torchgeo.datasets.BigEarthNet` (``root``, ``bands``, ...)."""
        super().__init__(batch_size, num_workers, **kwargs)
        bands = kwargs.get('bands', 'all')
        s1_perm = [self.s1_file_order.index(p) for p in self.s1_output_order]
        s1_ids = [f'sentinel1:{p}' for p in self.s1_output_order]
        s2_ids = list(preset_stats(self.s2_preset).bands or ())
        order: list[int] | None
        if bands == 's1':
            ids, order = s1_ids, s1_perm
        elif bands == 's2':
            ids, order = s2_ids, None
        elif bands == 'all':
            ids, order = s1_ids + s2_ids, s1_perm + list(range(2, 2 + len(s2_ids)))
        else:
            raise InputError(f"BigEarthNet bands must be 's1', 's2' or 'all', got {bands!r}")
        if order is not None and order == sorted(order):
            order = None
        #: band ids of the normalised channels.
        self.band_ids = tuple(ids)
        self._use_smarties(smarties_normalize_for(ids, self.s2_preset, self.s1_preset), order)


class SMARTIESSEN12MSDataModule(_SmartiesNormalizeMixin, SEN12MSDataModule):
    """torchgeo's SEN12MS data module with the SMARTIES normalisation.

    SEN12MS S2 patches are Level-1C digital numbers (13 bands, B8A after B08) → preset
    ``'sentinel2_l1c'``; its S1 patches are σ0 in dB (VV, VH) → preset ``'sentinel1'`` with
    ``sar_to_db`` off. The channel order is ``SEN12MS.BAND_SETS[band_set]``. The DFC2020 label
    mapping of torchgeo's data module is kept.

    .. versionadded:: 0.1
    """

    expected_layout = (
        'ROOT/ROIs<id>_<season>/{s1,s2,lc}_<scene>/*.tif (the unpacked ROIs*_{s1,s2,lc}.tar.gz archives) and '
        'ROOT/{train,test}_list.txt'
    )
    s1_preset = 'sentinel1'
    s2_preset = 'sentinel2_l1c'

    def __init__(self, batch_size: int = 64, num_workers: int = 0, band_set: str = 'all', **kwargs: Any) -> None:
        """Initialise; ``band_set`` is ``'all'``, ``'s1'``, ``'s2-all'`` or ``'s2-reduced'`` (torchgeo's)."""
        super().__init__(batch_size, num_workers, band_set, **kwargs)
        names = tuple(self.kwargs['bands'])
        #: band ids of the channels.
        self.band_ids = tuple(f'sentinel1:{b}' if b in ('VV', 'VH') else f'sentinel2:{b}' for b in names)
        self._use_smarties(smarties_normalize_for(self.band_ids, self.s2_preset, self.s1_preset))
