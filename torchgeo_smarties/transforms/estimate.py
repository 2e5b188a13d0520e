"""Streaming estimation of :class:`~torchgeo_smarties.transforms.BandStats` from datasets and rasters.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict, Unpack

import numpy as np
from torch import Tensor

from ..errors import BandCountError, InputError
from ..spectrum import resolve_bands
from .band_stats import BandStats

__all__ = ('StatisticsOptions', 'compute_raster_statistics', 'compute_statistics')


class StatisticsOptions(TypedDict, total=False):
    """The estimation options of :func:`compute_statistics` and :func:`compute_raster_statistics`.

    All optional: ``sar_to_db`` (default ``False``): convert SAR bands (all channels when *bands* is ``None``)
    from linear power to dB (``10·log10``, values ≤ 0 clamped to 1e-10) before computing; ``bins`` (4096):
    histogram bins per band; ``percentiles`` (``(1.0, 99.0)``, the release's): the lower/upper percentiles;
    ``path``: a ``.json``/``.yaml`` file to write the statistics to; ``progress`` (``True``): a tqdm bar.

    .. versionadded:: 0.3
    """

    sar_to_db: bool
    bins: int
    percentiles: tuple[float, float]
    path: str | Path | None
    progress: bool


def _to_db(x: np.ndarray, eps: float = 1e-10) -> np.ndarray:
    out: np.ndarray = 10.0 * np.log10(np.maximum(x, eps))
    return out


class _Accumulator:
    """Three-pass streaming estimator over (C, N) chunks of valid-pixel values (NaN = invalid)."""

    def __init__(self, channels: int, bins: int, q: tuple[float, float]) -> None:
        self.c = channels
        self.bins = bins
        self.q = q
        self.lo = np.full(channels, np.inf)
        self.hi = np.full(channels, -np.inf)
        self.count = np.zeros(channels, dtype=np.int64)
        self.raw_sum = np.zeros(channels)
        self.raw_sq = np.zeros(channels)
        self.edges_list: list[np.ndarray] = []
        self.hist_list: list[np.ndarray] = []
        self.p_lo = np.zeros(channels)
        self.p_hi = np.zeros(channels)
        self.sum = np.zeros(channels)
        self.sq = np.zeros(channels)
        self.integer = True

    def pass1(self, chunk: np.ndarray) -> None:
        for c in range(self.c):
            v = chunk[c]
            v = v[np.isfinite(v)]
            if v.size == 0:
                continue
            self.lo[c] = min(self.lo[c], float(v.min()))
            self.hi[c] = max(self.hi[c], float(v.max()))
            self.count[c] += v.size
            self.raw_sum[c] += float(v.sum())
            self.raw_sq[c] += float((v * v).sum())
            if self.integer and not np.all(v == np.round(v)):
                self.integer = False

    def start_pass2(self) -> None:
        empty = [c for c in range(self.c) if self.count[c] == 0]
        if empty:
            raise InputError(f'channel(s) {empty} have no valid pixel; check nodata= and the data')
        edges = []
        for c in range(self.c):
            lo, hi = self.lo[c], self.hi[c]
            if self.integer and hi - lo + 1 <= self.bins:
                # one bin per integer value: exact percentiles up to the within-bin interpolation
                e = np.arange(lo - 0.5, hi + 1.0, 1.0)
            else:
                e = np.linspace(lo, hi if hi > lo else lo + 1.0, self.bins + 1)
            edges.append(e)
        self.edges_list = edges
        self.hist_list = [np.zeros(len(e) - 1, dtype=np.int64) for e in edges]

    def pass2(self, chunk: np.ndarray) -> None:
        for c in range(self.c):
            v = chunk[c]
            v = v[np.isfinite(v)]
            if v.size:
                h, _ = np.histogram(v, bins=self.edges_list[c])
                self.hist_list[c] += h

    def _percentile(self, c: int, q: float) -> float:
        h = self.hist_list[c]
        e = self.edges_list[c]
        cdf = np.cumsum(h)
        target = q / 100.0 * cdf[-1]
        i = int(np.searchsorted(cdf, target, side='left'))
        i = min(i, len(h) - 1)
        before = cdf[i - 1] if i > 0 else 0
        frac = (target - before) / h[i] if h[i] else 0.5
        return float(e[i] + frac * (e[i + 1] - e[i]))

    def start_pass3(self) -> None:
        for c in range(self.c):
            self.p_lo[c] = self._percentile(c, self.q[0])
            self.p_hi[c] = self._percentile(c, self.q[1])
            if not self.p_hi[c] > self.p_lo[c]:
                # degenerate (near-constant) band: fall back to the full range so that p99 > p1
                self.p_lo[c], self.p_hi[c] = self.lo[c], max(self.hi[c], self.lo[c] + 1.0)

    def pass3(self, chunk: np.ndarray) -> None:
        for c in range(self.c):
            v = chunk[c]
            v = v[np.isfinite(v)].astype(np.float64)
            if v.size:
                y = np.clip((v - self.p_lo[c]) / (self.p_hi[c] - self.p_lo[c]), 0.0, 1.0)
                self.sum[c] += float(y.sum())
                self.sq[c] += float((y * y).sum())

    def result(self, bands: tuple[str, ...] | None, sar_to_db: bool, source: str) -> BandStats:
        n = self.count.astype(np.float64)
        mean = self.sum / n
        std = np.sqrt(np.maximum(self.sq / n - mean**2, 0.0))
        raw_mean = self.raw_sum / n
        raw_std = np.sqrt(np.maximum(self.raw_sq / n - raw_mean**2, 0.0))
        std = np.where(std > 0, std, 1.0)
        raw_std = np.where(raw_std > 0, raw_std, 1.0)
        return BandStats(
            bands=bands,
            p1=tuple(self.p_lo.tolist()),
            p99=tuple(self.p_hi.tolist()),
            mean=tuple(mean.tolist()),
            std=tuple(std.tolist()),
            raw_mean=tuple(raw_mean.tolist()),
            raw_std=tuple(raw_std.tolist()),
            sar_to_db=sar_to_db,
            source=source,
            extra={'count': self.count.tolist(), 'percentiles': list(self.q), 'method': 'histogram'},
        )


def _chunk_from_item(item: Any, key: str) -> np.ndarray:
    if isinstance(item, Mapping):
        if key not in item:
            raise InputError(f'dataset samples are mappings without the key {key!r}; pass image_key=')
        item = item[key]
    if isinstance(item, (tuple, list)):
        item = item[0]
    if isinstance(item, Tensor):
        arr = item.detach().cpu().double().numpy()
    else:
        arr = np.asarray(item, dtype=np.float64)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise InputError(f'expected (C, H, W) or (B, C, H, W) images, got shape {arr.shape}')
    return np.moveaxis(arr, 1, 0).reshape(arr.shape[1], -1)


def _prepare(chunk: np.ndarray, nodata: float | None, db_rows: Sequence[int]) -> np.ndarray:
    chunk = chunk.astype(np.float64, copy=True)
    if nodata is not None:
        chunk[chunk == nodata] = np.nan
    for r in db_rows:
        chunk[r] = _to_db(chunk[r])
    return chunk


def _db_rows(band_ids: tuple[str, ...] | None, channels: int, sar_to_db: bool) -> list[int]:
    if not sar_to_db:
        return []
    if band_ids is None:
        return list(range(channels))
    rows = [i for i, b in enumerate(resolve_bands(list(band_ids))) if b.polarization is not None]
    return rows or list(range(channels))


def _check_options(options: StatisticsOptions, func: str) -> None:
    unknown = sorted(options.keys() - StatisticsOptions.__optional_keys__)
    if unknown:
        valid = ', '.join(sorted(StatisticsOptions.__optional_keys__))
        raise TypeError(f'{func}() got unexpected keyword argument(s) {unknown}; the options are {valid}')


def _estimate(
    read: Callable[[], Iterable[np.ndarray]],
    channels: int,
    band_ids: tuple[str, ...] | None,
    nodata: float | None,
    options: StatisticsOptions,
    *,
    total: int | None,
    desc: str,
    source: str,
) -> BandStats:
    """The three passes over the raw (C, N) chunks that *read* yields; the statistics, also written to a file."""
    from tqdm.auto import tqdm

    sar = options.get('sar_to_db', False)
    rows = _db_rows(band_ids, channels, sar)
    acc = _Accumulator(channels, options.get('bins', 4096), options.get('percentiles', (1.0, 99.0)))
    for step, fn in (('min/max', acc.pass1), ('percentiles', acc.pass2), ('mean/std', acc.pass3)):
        chunks = tqdm(read(), total=total, desc=f'{desc} [{step}]', disable=not options.get('progress', True),
                      leave=False)
        for chunk in chunks:
            if chunk.shape[0] != channels:
                raise BandCountError(
                    f'an image has {chunk.shape[0]} channels but {channels} bands were given; give one band id per '
                    'channel, in channel order'
                )
            fn(_prepare(chunk, nodata, rows))
        if step == 'min/max':
            acc.start_pass2()
        elif step == 'percentiles':
            acc.start_pass3()
    stats = acc.result(band_ids, sar, source)
    path = options.get('path')
    if path is not None:
        stats.save(path)
    return stats


def compute_statistics(
    source: Iterable[Any] | Callable[[], Iterable[Any]],
    bands: str | Sequence[str] | None = None,
    *,
    image_key: str = 'image',
    nodata: float | None = None,
    **options: Unpack[StatisticsOptions],
) -> BandStats:
    """Estimate SMARTIES statistics (p1, p99, post-min-max mean/std, raw mean/std) per band.

    The source is read three times (min/max, histogram, moments of the clipped values), one item at a
    time, so memory is bounded by one item plus ``bins`` counters per band. Percentiles are pooled over
    all valid pixels and read from a fixed-bin histogram with linear interpolation inside the bin: exact
    to within one bin width, i.e. ``(max − min)/bins`` (integer data whose range fits in *bins* gets one
    bin per value, i.e. within ±0.5). The release computed its statistics per dataset, so small
    differences from its published values are expected.

    Args:
        source: a re-iterable of images: a map-style dataset (``len`` + indexing, e.g. a torchgeo
            ``NonGeoDataset``), a list, a ``DataLoader``, or a zero-argument callable returning a fresh
            iterable. Items are (C, H, W) / (B, C, H, W) tensors or arrays, tuples (image first) or
            mappings with *image_key*. A one-shot generator is rejected (it cannot be read three times).
        bands: band ids of the channels (preset / list; recommended: written to the file so that
            :meth:`SmartiesNormalize.from_file` can select bands by id). ``None`` = anonymous channels.
        image_key: key of the image in mapping samples.
        nodata: value marking invalid pixels (NaN is always invalid).
        **options: ``sar_to_db`` (convert SAR bands from linear power to dB first), ``bins`` (histogram bins
            per band, default 4096), ``percentiles`` (default the release's ``(1.0, 99.0)``), ``path``
            (a ``.json``/``.yaml`` file to write), ``progress`` (tqdm bar, default on); see
            :class:`StatisticsOptions`.

    Returns:
        The statistics (also written to *path* if given).

    Raises:
        TypeError: for an unknown option.
        InputError: for a one-shot iterator, bad shapes, or a channel without valid pixels.
        BandCountError: if the number of channels and of *bands* differ.

    .. versionadded:: 0.1
    """
    _check_options(options, 'compute_statistics')
    band_ids = tuple(b.id for b in resolve_bands(bands)) if bands is not None else None
    if callable(source) and not hasattr(source, '__getitem__') and not hasattr(source, '__iter__'):
        factory: Callable[[], Iterable[Any]] = source
    elif isinstance(source, Iterator):
        raise InputError(
            'compute_statistics reads the source three times; pass a dataset, a list, a DataLoader or a callable '
            'returning a fresh iterator, not a one-shot generator/iterator'
        )
    elif hasattr(source, '__len__') and hasattr(source, '__getitem__') and not hasattr(source, '__iter__'):
        ds: Any = source
        factory = lambda: (ds[i] for i in range(len(ds)))
    else:
        it: Iterable[Any] = source  # type: ignore[assignment]
        factory = lambda: iter(it)
    try:
        total: int | None = len(source)  # type: ignore[arg-type]
    except TypeError:
        total = None

    first = next(iter(factory()), None)
    if first is None:
        raise InputError('the statistics source is empty')
    channels = _chunk_from_item(first, image_key).shape[0]
    if band_ids is not None and len(band_ids) != channels:
        raise BandCountError(
            f'the images have {channels} channels but {len(band_ids)} bands were given ({list(band_ids)}); give one '
            'band id per channel, in channel order'
        )
    read = lambda: (_chunk_from_item(item, image_key) for item in factory())
    return _estimate(read, channels, band_ids, nodata, options, total=total, desc='statistics',
                     source='compute_statistics')


def compute_raster_statistics(
    raster: str | Path,
    bands: str | Sequence[str] | None = None,
    *,
    window_size: int = 1024,
    nodata: float | None = None,
    **options: Unpack[StatisticsOptions],
) -> BandStats:
    """Like :func:`compute_statistics` for one raster file, read by windows with rasterio.

    Memory is bounded by one ``window_size × window_size`` window of all bands. The file's own nodata
    value is used when *nodata* is ``None``. *options* as for :func:`compute_statistics`
    (:class:`StatisticsOptions`).

    Raises:
        TypeError: for an unknown option.
        InputError: if the file cannot be opened.
        BandCountError: if the raster's band count differs from *bands*.

    .. versionadded:: 0.1
    """
    import rasterio
    from rasterio.windows import Window

    _check_options(options, 'compute_raster_statistics')
    try:
        src = rasterio.open(raster)
    except Exception as err:  # rasterio raises RasterioIOError and friends
        raise InputError(f'cannot open raster {raster}: {err}') from err
    with src:
        channels = src.count
        band_ids = tuple(b.id for b in resolve_bands(bands)) if bands is not None else None
        if band_ids is not None and len(band_ids) != channels:
            raise BandCountError(
                f'{raster} has {channels} bands but {len(band_ids)} band ids were given ({list(band_ids)}); give one '
                'band id per raster band, in band order'
            )
        nd = nodata if nodata is not None else src.nodata
        windows = [
            Window(col, row, min(window_size, src.width - col), min(window_size, src.height - row))
            for row in range(0, src.height, window_size)
            for col in range(0, src.width, window_size)
        ]
        read = lambda: (src.read(window=win).reshape(channels, -1) for win in windows)
        return _estimate(read, channels, band_ids, nd, options, total=len(windows), desc=Path(raster).name,
                         source=f'compute_raster_statistics({Path(raster).name})')
