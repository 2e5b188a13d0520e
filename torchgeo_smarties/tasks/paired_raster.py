"""Paired rasters of two sensors: same-footprint crops read with rasterio, normalised per sensor.

See :mod:`torchgeo_smarties.tasks.paired_data` for the sample format.

.. versionadded:: 0.1
"""

import math
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import rasterio
import torch
from rasterio.enums import Resampling
from rasterio.transform import array_bounds
from rasterio.vrt import WarpedVRT
from rasterio.windows import from_bounds
from torch import Tensor
from torch.utils.data import Dataset

from ..errors import BandCountError, ImageSizeError, InputError
from ..spectrum import ProjectionPlan, plan_bands

if TYPE_CHECKING:
    from .paired_torchgeo import TorchGeoPairedDataset

__all__ = ('Bounds', 'Normalizer', 'PairedRasterDataset', 'Source', 'pair_normalizer')

Source = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
Normalizer = Callable[[Tensor], Tensor]
Bounds = tuple[float, float, float, float]


def pair_normalizer(spec: str | Normalizer | None, plan: ProjectionPlan) -> Normalizer | None:
    """The normalisation of one sensor of a pair: a statistics preset name, a callable, or None.

    A preset name gives :meth:`SmartiesNormalize.normalize <torchgeo_smarties.transforms.SmartiesNormalize.normalize>`
    with the preset's statistics selected to the plan's bands (works on (C, H, W) and (B, C, H, W)).

    Raises:
        UnknownPresetError: for an unknown preset.
        UnknownBandError: if the preset has no statistic for a band of the plan.
    """
    if spec is None or callable(spec):
        return spec
    from ..transforms import SmartiesNormalize

    norm: Normalizer = SmartiesNormalize.from_preset(spec, list(plan.bands)).normalize
    return norm


class _Raster:
    """One sensor of a pair: :class:`~torchgeo_smarties.inference.source.RasterSource` (s) plus band indexes.

    A multi-band raster is one source (channels picked by *indexes*); per-band rasters are one source per file,
    which must cover the same footprint in the same CRS (their resolutions may differ: each is read by bounds).
    """

    def __init__(self, source: Source, indexes: Sequence[int] | None, name: str) -> None:
        from ..inference.source import open_source  # local: inference imports the task classes (predict)

        paths = [source] if isinstance(source, (str, os.PathLike)) else list(source)
        if not paths:
            raise InputError(f'sensor {name}: no raster given')
        self.name = name
        for p in paths:
            if not os.path.isfile(p):
                raise InputError(
                    f'sensor {name}: raster {os.fspath(p)!r} does not exist; every pair needs both sensors'
                )
        self.sources = [open_source(p) for p in paths]
        first = self.sources[0]
        self.crs = first.crs
        self.transform = first.transform
        self.shape = (first.height, first.width)
        self.bounds: Bounds = array_bounds(first.height, first.width, first.transform)
        self.res = (abs(first.transform.a), abs(first.transform.e))
        if len(self.sources) > 1:
            for p, src in zip(paths[1:], self.sources[1:], strict=True):
                bounds = tuple(array_bounds(src.height, src.width, src.transform))
                if src.crs != self.crs or bounds != self.bounds:
                    raise InputError(
                        f'sensor {name}: per-band rasters must cover the same footprint in the same CRS; '
                        f'{os.fspath(p)!r} differs from {os.fspath(paths[0])!r} (resample them onto one grid first)'
                    )
            self.indexes = [1] * len(self.sources)
        else:
            count = first.count
            self.indexes = list(indexes) if indexes is not None else list(range(1, count + 1))
            if any(i < 1 or i > count for i in self.indexes):
                raise BandCountError(f'sensor {name}: band indexes {self.indexes} out of range 1..{count}')

    @property
    def count(self) -> int:
        """Number of channels read."""
        return len(self.indexes)

    def read(
        self, bounds: Bounds, out_shape: tuple[int, int], crs: Any, resampling: Resampling
    ) -> np.ndarray:
        """Read *bounds* (in *crs*) resampled to *out_shape* → (C, H, W) float32."""
        out = np.empty((self.count, *out_shape), dtype=np.float32)
        if len(self.sources) == 1:
            groups = [(self.sources[0], [self.sources[0].layers[i - 1] for i in self.indexes], slice(None))]
        else:
            groups = [(src, [src.layers[0]], slice(c, c + 1)) for c, src in enumerate(self.sources)]
        for src, layers, rows in groups:
            (fi,) = {f for f, _ in layers}
            with rasterio.open(src.paths[fi]) as ds0:
                ds = WarpedVRT(ds0, crs=crs) if crs != self.crs else ds0
                win = from_bounds(*bounds, transform=ds.transform)
                out[rows] = ds.read([b for _, b in layers], window=win, out_shape=(len(layers), *out_shape),
                                    resampling=resampling).astype(np.float32)
                if ds is not ds0:
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
        self.bands_a, self.bands_b = self.plan_a.bands, self.plan_b.bands
        self.size = size
        self.length = length
        self.random_crop = random_crop
        self.seed = seed
        self.epoch = 0
        self.resampling = Resampling[resampling]
        self.normalize_a = pair_normalizer(normalize_a, self.plan_a)
        self.normalize_b = pair_normalizer(normalize_b, self.plan_b)
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
        return {'image_a': ta.float(), 'image_b': tb.float(), 'bands_a': self.plan_a, 'bands_b': self.plan_b,
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
        from .paired_torchgeo import TorchGeoPairedDataset

        return TorchGeoPairedDataset(ds_a, ds_b, bands_a, bands_b, size=size, length=length, res=res,
                                     normalize_a=normalize_a, normalize_b=normalize_b)
