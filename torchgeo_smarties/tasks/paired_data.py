"""Paired multi-sensor data for SMARTIES pretraining: co-registered rasters of two sensors, same footprint.

A *pair* is one raster (or one file per band on a common grid) of sensor a and one of
sensor b covering an overlapping area. :class:`PairedRasterDataset` reads random crops of
the same ground footprint from both with rasterio (windows taken inside the footprint
intersection), resamples both to ``size × size`` pixels at the output resolution (by
default the coarser of the two, so the finer image is resampled), normalises each
sensor with its own statistics and returns::

    {'image_a': (Ca, size, size) float32, 'image_b': (Cb, size, size) float32,
     'bands_a': 'sentinel2:B02,...', 'bands_b': '...', 'index': int}

:meth:`PairedRasterDataset.from_torchgeo` builds the same samples from two torchgeo
``RasterDataset``s through torchgeo's geospatial intersection (``ds_a & ds_b``).
:class:`PairedDataModule` wraps either in a LightningDataModule.

.. versionadded:: 0.1
"""

import math
import os
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import rasterio
import torch
from lightning import LightningDataModule
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import from_bounds
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..errors import BandCountError, ImageSizeError, InputError
from ..spectrum import plan_bands
from ..transforms.paired import PairedGeometric

__all__ = (
    'PairedDataModule',
    'PairedRasterDataset',
    'PresetNormalize',
    'collate_pairs',
)

#: One sensor of a pair: a multi-band raster path, or a list of single-band rasters on one grid.
Source = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
Normalizer = Callable[[Tensor], Tensor]
Bounds = tuple[float, float, float, float]
_AUG_SALT = 0x5A17  # separates the augmentation draws from the crop/mask draws of the same (seed, epoch, index)


class PresetNormalize:
    """SMARTIES normalisation ``clip((x − p1)/(p99 − p1), 0, 1)``, then ``(x − mean)/std``, per band.

    Uses :class:`torchgeo_smarties.transforms.SmartiesNormalize` when available and the release's
    statistics (``transforms.stats.preset_stats``) otherwise; or explicit per-band numbers.

    .. versionadded:: 0.1
    """

    def __init__(
        self, p1: Sequence[float], p99: Sequence[float], mean: Sequence[float], std: Sequence[float],
        bands: Sequence[str] | None = None,
    ) -> None:
        """Initialize a new PresetNormalize instance (one value per band, in channel order)."""
        if not (len(p1) == len(p99) == len(mean) == len(std)):
            raise BandCountError('p1, p99, mean and std need one value per band each')
        self.bands = tuple(bands) if bands is not None else None
        self.p1 = torch.tensor(list(p1), dtype=torch.float32)[:, None, None]
        self.p99 = torch.tensor(list(p99), dtype=torch.float32)[:, None, None]
        self.mean = torch.tensor(list(mean), dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(list(std), dtype=torch.float32)[:, None, None]

    @classmethod
    def from_preset(cls, name: str, bands: Any) -> 'PresetNormalize':
        """The release's statistics of preset *name*, selected and ordered to *bands*."""
        from ..transforms.stats import preset_stats

        ids = plan_bands(bands).bands
        s = preset_stats(name, list(ids))
        return cls(s.p1, s.p99, s.mean, s.std, bands=ids)

    def stats(self) -> dict[str, dict[str, float]]:
        """Per-band statistics ``{band_id: {p1, p99, mean, std}}`` (for provenance files)."""
        names = self.bands or tuple(str(i) for i in range(self.p1.shape[0]))
        return {
            b: {k: float(getattr(self, k)[i, 0, 0]) for k in ('p1', 'p99', 'mean', 'std')} for i, b in enumerate(names)
        }

    def __call__(self, x: Tensor) -> Tensor:
        """Normalise a (C, H, W) or (B, C, H, W) tensor."""
        if x.shape[-3] != self.p1.shape[0]:
            raise BandCountError(f'normaliser has {self.p1.shape[0]} bands, image has {x.shape[-3]}')
        x = ((x.float() - self.p1) / (self.p99 - self.p1)).clamp(0.0, 1.0)
        return (x - self.mean) / self.std


def _make_normalizer(spec: str | Normalizer | None, bands: Any) -> Normalizer | None:
    if spec is None or callable(spec):
        return spec
    try:  # the transforms engineer's class, when present
        from ..transforms import SmartiesNormalize  # type: ignore[attr-defined]

        norm = SmartiesNormalize.from_preset(spec, bands=list(plan_bands(bands).bands))

        def apply(x: Tensor) -> Tensor:
            out: Tensor = norm(x[None] if x.ndim == 3 else x)
            return out[0] if x.ndim == 3 else out

        return apply
    except (ImportError, AttributeError):
        return PresetNormalize.from_preset(spec, bands)


class _Raster:
    """One sensor of a pair opened with rasterio: multi-band file or per-band files on one grid."""

    def __init__(self, source: Source, indexes: Sequence[int] | None, name: str) -> None:
        paths = [source] if isinstance(source, (str, os.PathLike)) else list(source)
        if not paths:
            raise InputError(f'sensor {name}: no raster given')
        self.paths = [os.fspath(p) for p in paths]
        self.name = name
        for p in self.paths:
            if not os.path.isfile(p):
                raise InputError(f'sensor {name}: raster {p!r} does not exist; every pair needs both sensors')
        with rasterio.open(self.paths[0]) as src:
            self.crs = src.crs
            self.transform = src.transform
            self.shape = (src.height, src.width)
            self.bounds: Bounds = tuple(src.bounds)  # type: ignore[assignment]
            self.res = (abs(src.transform.a), abs(src.transform.e))
            count = src.count
        if len(self.paths) > 1:
            for p in self.paths[1:]:
                with rasterio.open(p) as src:
                    if src.crs != self.crs or tuple(src.bounds) != self.bounds:
                        raise InputError(
                            f'sensor {name}: per-band rasters must cover the same footprint in the same CRS; '
                            f'{p!r} differs from {self.paths[0]!r} (resample them onto one grid first)'
                        )
            self.indexes = [1] * len(self.paths)
        else:
            self.indexes = list(indexes) if indexes is not None else list(range(1, count + 1))
            if any(i < 1 or i > count for i in self.indexes):
                raise BandCountError(f'sensor {name}: band indexes {self.indexes} out of range 1..{count}')

    @property
    def count(self) -> int:
        return len(self.indexes)

    def read(
        self, bounds: Bounds, out_shape: tuple[int, int], crs: Any, resampling: Resampling
    ) -> np.ndarray:
        """Read *bounds* (in *crs*) resampled to *out_shape* → (C, H, W) float32."""
        out = np.empty((self.count, *out_shape), dtype=np.float32)
        if len(self.paths) == 1:
            with rasterio.open(self.paths[0]) as src:
                ds = WarpedVRT(src, crs=crs) if crs != self.crs else src
                win = from_bounds(*bounds, transform=ds.transform)
                out[:] = ds.read(self.indexes, window=win, out_shape=(self.count, *out_shape),
                                 resampling=resampling).astype(np.float32)
                if ds is not src:
                    ds.close()
            return out
        for i, p in enumerate(self.paths):
            with rasterio.open(p) as src:
                ds = WarpedVRT(src, crs=crs) if crs != self.crs else src
                win = from_bounds(*bounds, transform=ds.transform)
                out[i] = ds.read(1, window=win, out_shape=out_shape, resampling=resampling).astype(np.float32)
                if ds is not src:
                    ds.close()
        return out


def _warped_bounds(r: _Raster, crs: Any) -> Bounds:
    if r.crs == crs:
        return r.bounds
    from rasterio.warp import transform_bounds

    return tuple(transform_bounds(r.crs, crs, *r.bounds))  # type: ignore[return-value]


class PairedRasterDataset(Dataset[dict[str, Any]]):
    """Random same-footprint crops of co-registered rasters from two sensors.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        pairs: Sequence[tuple[Source, Source]],
        bands_a: Any,
        bands_b: Any,
        *,
        size: int = 224,
        length: int = 1000,
        res: float | None = None,
        indexes_a: Sequence[int] | None = None,
        indexes_b: Sequence[int] | None = None,
        roi: Bounds | None = None,
        reproject_to: Literal['a', 'b'] | None = None,
        normalize_a: str | Normalizer | None = None,
        normalize_b: str | Normalizer | None = None,
        resampling: str = 'bilinear',
        random_crop: bool = True,
        cache: bool = False,
        seed: int = 0,
    ) -> None:
        """Initialize a new PairedRasterDataset instance.

        Args:
            pairs: (sensor a, sensor b) per pair; each a multi-band raster path or a list of
                single-band rasters on one grid (e.g. one file per Sentinel-2 band).
            bands_a: band set of sensor a (preset name or ``'<sensor>:<band>'`` ids, channel order).
            bands_b: band set of sensor b.
            size: output crop size in pixels (both sensors), a multiple of 16.
            length: samples per epoch.
            res: output ground resolution (CRS units per pixel); default: the coarser sensor's.
            indexes_a: 1-based band indexes to read from a multi-band raster of sensor a (default: all).
            indexes_b: same for sensor b.
            roi: optional (left, bottom, right, top) in the CRS of sensor a (or of *reproject_to*) that
                crops must stay inside (e.g. to hold out part of a scene).
            reproject_to: when the two sensors have different CRSs: ``'a'`` or ``'b'`` names the CRS both are
                read in (the other is warped on the fly); None raises an error for differing CRSs.
            normalize_a: preset name of the normalisation statistics (``'sentinel2_l1c'``...) or a callable
                on (C, H, W) tensors, or None.
            normalize_b: same for sensor b.
            resampling: rasterio resampling for reading (``'bilinear'``, ``'average'``, ``'nearest'``, ``'cubic'``).
            random_crop: random crops (seeded by *seed*, epoch and index); False tiles the footprint in order.
            cache: read each pair's whole footprint once at the output resolution and crop from memory.
            seed: seed of the crops.

        Raises:
            InputError: missing rasters, an empty pair list, differing CRSs without *reproject_to*,
                or rasters that do not overlap (by at least one crop).
            UnknownBandError: (and the other band errors) if a band list does not resolve.
            BandCountError: if a raster's channel count differs from its band list.
            ImageSizeError: if *size* is not a positive multiple of 16.
        """
        if not pairs:
            raise InputError('no raster pairs given; pass pairs=[(raster_a, raster_b), ...]')
        if size <= 0 or size % 16:
            raise ImageSizeError(f'size must be a positive multiple of the patch size 16, got {size}')
        self.plan_a = plan_bands(bands_a)
        self.plan_b = plan_bands(bands_b)
        self.bands_a = ','.join(self.plan_a.bands)
        self.bands_b = ','.join(self.plan_b.bands)
        self.size = size
        self.length = length
        self.random_crop = random_crop
        self.seed = seed
        self.epoch = 0
        self.resampling = Resampling[resampling]
        self.normalize_a = _make_normalizer(normalize_a, self.plan_a)
        self.normalize_b = _make_normalizer(normalize_b, self.plan_b)
        self._pairs: list[dict[str, Any]] = []
        for i, pair in enumerate(pairs):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise InputError(f'pair {i} is not a (sensor a, sensor b) pair: {pair!r}; every raster needs a partner')
            ra = _Raster(pair[0], indexes_a, 'a')
            rb = _Raster(pair[1], indexes_b, 'b')
            for r, plan in ((ra, self.plan_a), (rb, self.plan_b)):
                if r.count != plan.num_bands:
                    raise BandCountError(
                        f'pair {i}, sensor {r.name}: the raster has {r.count} channels but the band list has '
                        f'{plan.num_bands} ({", ".join(plan.bands)}); pass indexes_{r.name}=[...] or fix the band list'
                    )
            if ra.crs != rb.crs:
                if reproject_to is None:
                    raise InputError(
                        f'pair {i}: the sensors have different CRSs ({ra.crs} vs {rb.crs}); pass reproject_to="a" '
                        'or "b" to warp the other sensor on the fly, or reproject the rasters first'
                    )
                crs = ra.crs if reproject_to == 'a' else rb.crs
            else:
                crs = ra.crs
            ba, bb = _warped_bounds(ra, crs), _warped_bounds(rb, crs)
            inter = [max(ba[0], bb[0]), max(ba[1], bb[1]), min(ba[2], bb[2]), min(ba[3], bb[3])]
            if roi is not None:
                inter = [max(inter[0], roi[0]), max(inter[1], roi[1]), min(inter[2], roi[2]), min(inter[3], roi[3])]
            out_res = res if res is not None else max(ra.res[0], rb.res[0])
            extent = size * out_res
            if inter[2] - inter[0] < extent - 1e-6 or inter[3] - inter[1] < extent - 1e-6:
                raise InputError(
                    f'pair {i}: the rasters do not overlap by one {size}-px crop at {out_res:g} units/px '
                    f'(intersection {tuple(round(v, 3) for v in inter)}, a {ba}, b {bb}); check that the pair '
                    'covers the same area (and roi), or use a smaller size/res'
                )
            nx = int(math.floor((inter[2] - inter[0]) / out_res + 1e-6))
            ny = int(math.floor((inter[3] - inter[1]) / out_res + 1e-6))
            self._pairs.append({'a': ra, 'b': rb, 'crs': crs, 'bounds': tuple(inter), 'res': out_res,
                                'grid': (ny, nx), 'cache': None})
        self.cache = cache

    # -- sampling ---------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        """Change the random crops for a new epoch (called by the datamodule/task)."""
        self.epoch = int(epoch)

    def _offset(self, index: int, pair: dict[str, Any]) -> tuple[int, int]:
        ny, nx = pair['grid']
        my, mx = ny - self.size, nx - self.size
        if self.random_crop:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            return int(rng.integers(0, my + 1)), int(rng.integers(0, mx + 1))
        tiles_x = nx // self.size
        tiles = max(1, (ny // self.size) * tiles_x)
        t = (index // len(self._pairs)) % tiles
        return (t // tiles_x) * self.size, (t % tiles_x) * self.size

    def _load(self, pair: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        if pair['cache'] is None:
            ny, nx = pair['grid']
            left, _, _, top = pair['bounds']
            r = pair['res']
            bounds = (left, top - ny * r, left + nx * r, top)
            pair['cache'] = tuple(pair[s].read(bounds, (ny, nx), pair['crs'], self.resampling) for s in 'ab')
        return pair['cache']  # type: ignore[no-any-return]

    def __getitem__(self, index: int) -> dict[str, Any]:
        """A sample: both sensors' crops of one footprint, normalised."""
        pair = self._pairs[index % len(self._pairs)]
        oy, ox = self._offset(index, pair)
        s = self.size
        if self.cache:
            arr_a, arr_b = self._load(pair)
            a, b = arr_a[:, oy:oy + s, ox:ox + s], arr_b[:, oy:oy + s, ox:ox + s]
        else:
            left, _, _, top = pair['bounds']
            r = pair['res']
            bounds = (left + ox * r, top - (oy + s) * r, left + (ox + s) * r, top - oy * r)
            a = pair['a'].read(bounds, (s, s), pair['crs'], self.resampling)
            b = pair['b'].read(bounds, (s, s), pair['crs'], self.resampling)
        ta, tb = torch.from_numpy(np.ascontiguousarray(a)), torch.from_numpy(np.ascontiguousarray(b))
        if self.normalize_a is not None:
            ta = self.normalize_a(ta)
        if self.normalize_b is not None:
            tb = self.normalize_b(tb)
        return {'image_a': ta.float(), 'image_b': tb.float(), 'bands_a': self.bands_a, 'bands_b': self.bands_b,
                'index': index}

    # -- torchgeo ----------------------------------------------------------------------------------------------------
    @staticmethod
    def from_torchgeo(
        ds_a: Any, ds_b: Any, bands_a: Any, bands_b: Any, *, size: int = 224, length: int = 1000,
        res: float | None = None, normalize_a: str | Normalizer | None = None,
        normalize_b: str | Normalizer | None = None,
    ) -> 'TorchGeoPairedDataset':
        """Pairs from two torchgeo ``RasterDataset``s via their geospatial intersection (``ds_a & ds_b``).

        torchgeo reads sensor b in sensor a's CRS and resolution (or *res*); crops are drawn with
        torchgeo's ``RandomGeoSampler``.
        """
        return TorchGeoPairedDataset(ds_a, ds_b, bands_a, bands_b, size=size, length=length, res=res,
                                     normalize_a=normalize_a, normalize_b=normalize_b)


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
        self.normalize_a = _make_normalizer(normalize_a, self.plan_a)
        self.normalize_b = _make_normalizer(normalize_b, self.plan_b)
        self.bands_a, self.bands_b = ','.join(self.plan_a.bands), ','.join(self.plan_b.bands)

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
        return {'image_a': a, 'image_b': b, 'bands_a': self.bands_a, 'bands_b': self.bands_b, 'index': index}


def collate_pairs(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack paired samples; all must share band sets and sizes.

    Raises:
        ImageSizeError: if the images of the batch differ in shape.
        InputError: if the samples mix band sets.
    """
    if not samples:
        raise InputError('empty batch')
    out: dict[str, Any] = {}
    for key in ('image_a', 'image_b'):
        if key not in samples[0]:
            continue
        shapes = {tuple(s[key].shape) for s in samples}
        if len(shapes) != 1:
            raise ImageSizeError(
                f'batch with mismatched {key} shapes {sorted(shapes)}; crop/resize every sample to the same size'
            )
        out[key] = torch.stack([s[key] for s in samples])
    if 'image_a' in out and 'image_b' in out and out['image_a'].shape[-2:] != out['image_b'].shape[-2:]:
        raise ImageSizeError(
            f'sensor a is {tuple(out["image_a"].shape[-2:])} px and sensor b {tuple(out["image_b"].shape[-2:])} px; '
            'a pair must be resampled to the same size'
        )
    for key in ('bands_a', 'bands_b'):
        if key in samples[0]:
            vals = {s[key] for s in samples}
            if len(vals) != 1:
                raise InputError(f'batch mixes band sets for {key}: {sorted(vals)}; batch pairs of one band set')
            out[key] = samples[0][key]
    if 'index' in samples[0]:
        out['index'] = torch.tensor([int(s['index']) for s in samples])
    return out


class PairedDataModule(LightningDataModule):
    """LightningDataModule over :class:`PairedRasterDataset` (train, optional val pairs).

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        pairs: list[tuple[str | list[str], str | list[str]]],
        bands_a: str | list[str],
        bands_b: str | list[str],
        *,
        val_pairs: list[tuple[str | list[str], str | list[str]]] | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        size: int = 224,
        length: int = 1000,
        val_length: int = 64,
        res: float | None = None,
        indexes_a: list[int] | None = None,
        indexes_b: list[int] | None = None,
        roi: list[float] | None = None,
        val_roi: list[float] | None = None,
        reproject_to: Literal['a', 'b'] | None = None,
        normalize_a: str | None = None,
        normalize_b: str | None = None,
        cache: bool = False,
        seed: int = 0,
        augment: bool = True,
        crop_scale: tuple[float, float] = (0.25, 1.0),
    ) -> None:
        """Initialize a new PairedDataModule (arguments as :class:`PairedRasterDataset`; *batch_size* per process).

        With *augment* (default) training batches get the release's paired geometric augmentation on the
        device after transfer: the same random resized crop (area *crop_scale* as a fraction of the crop,
        aspect 1), flips and rot90 on both images of a pair
        (:class:`~torchgeo_smarties.transforms.PairedGeometric`), drawn per sample from (*seed*, epoch,
        ``index``). Validation and prediction batches are untouched.
        """
        super().__init__()
        if not (0.0 < crop_scale[0] <= crop_scale[1] <= 1.0):
            raise InputError(f'crop_scale must satisfy 0 < min <= max <= 1, got {tuple(crop_scale)}')
        self.save_hyperparameters()
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.train_dataset: PairedRasterDataset | None = None
        self.val_dataset: PairedRasterDataset | None = None
        self.augmentation: PairedGeometric | None = (
            PairedGeometric(size, scale=(float(crop_scale[0]), float(crop_scale[1])), ratio=(1.0, 1.0))
            if augment else None
        )
        self.epoch = 0

    def _dataset(self, pairs: Any, roi: Any, length: int, random_crop: bool) -> PairedRasterDataset:
        h = self.hparams
        return PairedRasterDataset(
            [tuple(p) for p in pairs], h['bands_a'], h['bands_b'], size=h['size'], length=length, res=h['res'],
            indexes_a=h['indexes_a'], indexes_b=h['indexes_b'], roi=tuple(roi) if roi is not None else None,
            reproject_to=h['reproject_to'], normalize_a=h['normalize_a'], normalize_b=h['normalize_b'],
            cache=h['cache'], seed=h['seed'], random_crop=random_crop,
        )

    def setup(self, stage: str | None = None) -> None:
        """Open the rasters (checks pairing, overlap, CRS and bands)."""
        h = self.hparams
        if self.train_dataset is None:
            self.train_dataset = self._dataset(h['pairs'], h['roi'], h['length'], True)
        if self.val_dataset is None and (h['val_pairs'] or h['val_roi']):
            self.val_dataset = self._dataset(h['val_pairs'] or h['pairs'], h['val_roi'], h['val_length'], False)

    def train_dataloader(self) -> DataLoader[dict[str, Any]]:
        """Training batches (random crops seeded by index and epoch; under DDP an unshuffled DistributedSampler)."""
        assert self.train_dataset is not None
        sampler: Any = None
        trainer = getattr(self, 'trainer', None)
        if trainer is not None and trainer.world_size > 1:
            # unshuffled (crops are already random per index and epoch): rank r takes r, r + W, ... so that
            # the global batch of step k is the same samples as with one process and W× the batch size
            from torch.utils.data import DistributedSampler

            sampler = DistributedSampler(self.train_dataset, num_replicas=trainer.world_size,
                                         rank=trainer.global_rank, shuffle=False, drop_last=True)
        return DataLoader(self.train_dataset, batch_size=self.batch_size, shuffle=False, drop_last=True,
                          num_workers=self.num_workers, collate_fn=collate_pairs, sampler=sampler,
                          persistent_workers=False)

    def val_dataloader(self) -> DataLoader[dict[str, Any]]:
        """Validation batches (fixed tiles)."""
        if self.val_dataset is None:
            return []  # type: ignore[return-value]
        return DataLoader(self.val_dataset, batch_size=self.batch_size, shuffle=False,
                          num_workers=self.num_workers, collate_fn=collate_pairs)

    def set_epoch(self, epoch: int) -> None:
        """New random crops (and augmentations) each epoch."""
        self.epoch = int(epoch)
        if self.train_dataset is not None:
            self.train_dataset.set_epoch(epoch)

    def augment_batch(self, batch: dict[str, Any], epoch: int | None = None) -> dict[str, Any]:
        """Apply the paired geometric augmentation to a collated batch (on its device).

        With ``index`` in the batch each sample's crop/flip/rot90 is drawn from a generator seeded by
        (seed, epoch, index), so augmentations are reproducible, survive resume and do not depend on the
        number of processes; without it one draw for the batch comes from torch's global RNG
        (``seed_everything``).

        Raises:
            InputError: if the batch holds other per-pixel tensors (e.g. masks), which would not be transformed.
        """
        aug = self.augmentation
        if aug is None:
            return batch
        extra = [k for k, v in batch.items()
                 if k not in aug.keys and isinstance(v, Tensor) and v.ndim >= 3]
        if extra:
            raise InputError(
                f'the paired augmentation transforms only {aug.keys}, but the batch also holds per-pixel tensors '
                f'{sorted(extra)}; pass augment=False or drop them'
            )
        ep = self.epoch if epoch is None else int(epoch)
        index = batch.get('index')
        out = dict(batch)
        a, b = batch[aug.keys[0]], batch[aug.keys[1]]
        if index is None:
            out[aug.keys[0]], out[aug.keys[1]] = aug(a, b)
            return out
        outs_a, outs_b = [], []
        for i, idx in enumerate(index.tolist()):
            ss = np.random.SeedSequence([int(self.hparams['seed']), _AUG_SALT, ep % 2**32, int(idx)])
            seed = int(ss.generate_state(1)[0])
            ra, rb = aug(a[i:i + 1], b[i:i + 1], generator=torch.Generator().manual_seed(seed))
            outs_a.append(ra)
            outs_b.append(rb)
        out[aug.keys[0]], out[aug.keys[1]] = torch.cat(outs_a), torch.cat(outs_b)
        return out

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augment training batches on the device; validation/prediction batches pass unchanged."""
        trainer = getattr(self, 'trainer', None)
        if self.augmentation is not None and trainer is not None and trainer.training and isinstance(batch, dict):
            return self.augment_batch(batch)
        return batch
