"""Per-band normalisation statistics: the release's presets, files, and a streaming estimator.

SMARTIES normalises each band as ``(x − p1)/(p99 − p1)``, clipped to [0, 1], then ``(x − mean)/std``
where *mean* and *std* were computed **after** the percentile min-max step (official release,
``utils/data_utils.ImageNormalizeStandardize``). :class:`BandStats` holds these four numbers per band,
keyed by band id (``'sentinel2:B08'``), so that a band list selects and reorders them to any image's
channel order.

The preset numbers are read at run time from the release's own configuration files shipped in
``torchgeo_smarties/data/release`` (github.com/gsumbul/SMARTIES ``config/``, Apache-2.0).

.. versionadded:: 0.1
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor

from ..errors import BandCountError, InputError, UnknownBandError, UnknownPresetError
from ..spectrum import resolve_bands

__all__ = (
    'STATS_FORMAT',
    'STATS_PRESETS',
    'BandStats',
    'compute_raster_statistics',
    'compute_statistics',
    'list_stats_presets',
    'preset_stats',
)

#: Format tag written into statistics files.
STATS_FORMAT = 'torchgeo_smarties/band-stats/1'

#: Statistics presets: name → (release YAML file, entry, band preset giving the band ids in the entry's order).
#: The RGB scene-classification datasets (RESISC-45, WHU-RS19, UC-Merced) are keyed by the RGB bands of the
#: ``maxar`` sensor (alias ``rgb``): the release treats them as its ``RGB`` sensor.
STATS_PRESETS: dict[str, tuple[str, str, str]] = {
    'sentinel2_l2a': ('pretraining_sensors.yaml', 'SENTINEL2-L2A', 'sentinel2_l2a'),
    'sentinel2_l1c': ('pretraining_sensors.yaml', 'SENTINEL2-L1C', 'sentinel2_l1c'),
    'sentinel1': ('pretraining_sensors.yaml', 'SENTINEL1-GRD', 'sentinel1'),
    'maxar_rgb': ('pretraining_sensors.yaml', 'RGB', 'maxar_rgb'),
    'eurosat': ('eval_datasets.yaml', 'EuroSAT', 'eurosat'),
    'bigearthnet_s2': ('eval_datasets.yaml', 'BigEarthNetS2', 'bigearthnet_s2'),
    'bigearthnet_s1': ('eval_datasets.yaml', 'BigEarthNetS1', 'bigearthnet_s1'),
    'resisc45': ('eval_datasets.yaml', 'RESISC45', 'maxar_rgb'),
    'whu_rs19': ('eval_datasets.yaml', 'WHU-RS19', 'maxar_rgb'),
    'ucmerced': ('eval_datasets.yaml', 'UC-Merced', 'maxar_rgb'),
}

_PRESET_ALIASES = {
    'sentinel2': 'sentinel2_l2a',
    's2_l2a': 'sentinel2_l2a',
    's2_l1c': 'sentinel2_l1c',
    's1': 'sentinel1',
    'sentinel1_grd': 'sentinel1',
    'rgb': 'maxar_rgb',
    'fmow_rgb': 'maxar_rgb',
    'eurosat_ms': 'eurosat',
    'bigearthnet': 'bigearthnet_s2',
    'ben_s2': 'bigearthnet_s2',
    'ben_s1': 'bigearthnet_s1',
    'nwpu_resisc45': 'resisc45',
    'whurs19': 'whu_rs19',
    'uc_merced': 'ucmerced',
}


def _norm(name: str) -> str:
    return name.strip().lower().replace('-', '_').replace(' ', '_')


@cache
def _release_yaml(filename: str) -> dict[str, Any]:
    text = resources.files('torchgeo_smarties').joinpath(f'data/release/{filename}').read_text(encoding='utf-8')
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def _floats(values: Iterable[Any]) -> tuple[float, ...]:
    # PyYAML (YAML 1.1) may read numbers such as '5.5e7' as strings: convert explicitly.
    return tuple(float(v) for v in values)


def list_stats_presets() -> tuple[str, ...]:
    """Names accepted by :func:`preset_stats` and :meth:`SmartiesNormalize.from_preset`."""
    return tuple(STATS_PRESETS)


def _as_tuple(values: Sequence[float] | Tensor | np.ndarray | None, name: str) -> tuple[float, ...] | None:
    if values is None:
        return None
    if isinstance(values, Tensor):
        values = values.detach().cpu().double().reshape(-1).tolist()
    elif isinstance(values, np.ndarray):
        values = values.astype(np.float64).reshape(-1).tolist()
    elif isinstance(values, (int, float)):
        raise InputError(f'{name} must be a per-band sequence or 1-D tensor, got the scalar {values!r}')
    try:
        return tuple(float(v) for v in values)
    except (TypeError, ValueError) as err:
        raise InputError(f'{name} must be a sequence of numbers, got {values!r}') from err


@dataclass(frozen=True)
class BandStats:
    """Per-band SMARTIES normalisation statistics, keyed by band id.

    Args:
        bands: band ids in the order of the statistics (``'sentinel2:B04'``); ``None`` for anonymous
            channels (then the statistics are used positionally).
        p1: 1st percentile per band (raw units; dB for SAR).
        p99: 99th percentile per band.
        mean: mean per band after the percentile min-max step (in [0, 1]).
        std: standard deviation per band after that step.
        raw_mean: optional mean per band in raw units (for plain z-score from computed statistics).
        raw_std: optional standard deviation per band in raw units.
        sar_to_db: whether the statistics were computed on SAR bands converted to dB.
        source: free-text provenance.

    Raises:
        BandCountError: if the per-band sequences differ in length.
        InputError: if p99 ≤ p1 or std ≤ 0 for some band, or a value is not finite.

    .. versionadded:: 0.1
    """

    bands: tuple[str, ...] | None
    p1: tuple[float, ...]
    p99: tuple[float, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    raw_mean: tuple[float, ...] | None = None
    raw_std: tuple[float, ...] | None = None
    sar_to_db: bool = False
    source: str = ''
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        lengths = {'p1': len(self.p1), 'p99': len(self.p99), 'mean': len(self.mean), 'std': len(self.std)}
        if self.bands is not None:
            lengths = {'bands': len(self.bands), **lengths}
        for opt in ('raw_mean', 'raw_std'):
            val = getattr(self, opt)
            if val is not None:
                lengths[opt] = len(val)
        if len(set(lengths.values())) != 1:
            raise BandCountError(
                f'normalisation statistics must have one value per band, got lengths {lengths}; give p1, p99, mean, '
                'std (and bands) with the same number of entries, in the order of the image channels'
            )
        if lengths['p1'] == 0:
            raise BandCountError('normalisation statistics are empty; give at least one band')
        for name in ('p1', 'p99', 'mean', 'std'):
            vals = getattr(self, name)
            if not all(math.isfinite(v) for v in vals):
                raise InputError(f'{name} has non-finite values {vals}; recompute the statistics')
        bad = [self._label(i) for i, (lo, hi) in enumerate(zip(self.p1, self.p99, strict=True)) if not hi > lo]
        if bad:
            raise InputError(
                f'p99 must be greater than p1 for every band; not so for {bad} (p1={self.p1}, p99={self.p99}); '
                'check the order of the arguments or recompute the percentiles (a constant band has no range)'
            )
        bad = [self._label(i) for i, s in enumerate(self.std) if not s > 0]
        if self.raw_std is not None:
            bad += [f'raw {self._label(i)}' for i, s in enumerate(self.raw_std) if not s > 0]
        if bad:
            raise InputError(f'std must be > 0 for every band; not so for {bad}; recompute the statistics')

    def _label(self, i: int) -> str:
        return self.bands[i] if self.bands is not None else f'channel {i}'

    def __len__(self) -> int:
        return len(self.p1)

    # ------------------------------------------------------------------ selection
    def select(self, bands: str | Sequence[str] | None) -> BandStats:
        """The statistics of *bands*, in that order (the image's channel order).

        Args:
            bands: a preset name, a sensor id, or a list of band ids (resolved with
                :func:`~torchgeo_smarties.spectrum.resolve_bands`). Bare band names (``'B04'``) are
                taken from the sensor of these statistics when it has only one. ``None`` keeps all.

        Raises:
            UnknownBandError: if a band has no statistic here.
            InputError: if these statistics carry no band ids.
        """
        if bands is None:
            return self
        if self.bands is None:
            raise InputError(
                'these statistics carry no band ids, so bands= cannot select from them; give the statistics in the '
                "image's channel order, or build them with band ids (BandStats(bands=[...], ...))"
            )
        if not isinstance(bands, str):
            sensors = {b.split(':', 1)[0] for b in self.bands}
            if len(sensors) == 1:
                (sensor,) = sensors
                bands = [f'{sensor}:{b}' if isinstance(b, str) and ':' not in b else b for b in bands]
        ids = [b.id for b in resolve_bands(bands)]
        index = {b: i for i, b in enumerate(self.bands)}
        missing = [b for b in ids if b not in index]
        if missing:
            raise UnknownBandError(
                f'no normalisation statistics for band(s) {missing} in {self.source or "these statistics"}; '
                f'available: {list(self.bands)}. Pick bands from that list, use another preset, or compute the '
                'statistics of your data with torchgeo_smarties.transforms.compute_statistics'
            )
        idx = [index[b] for b in ids]

        def pick(vals: tuple[float, ...] | None) -> tuple[float, ...] | None:
            return None if vals is None else tuple(vals[i] for i in idx)

        return BandStats(
            bands=tuple(ids),
            p1=tuple(self.p1[i] for i in idx),
            p99=tuple(self.p99[i] for i in idx),
            mean=tuple(self.mean[i] for i in idx),
            std=tuple(self.std[i] for i in idx),
            raw_mean=pick(self.raw_mean),
            raw_std=pick(self.raw_std),
            sar_to_db=self.sar_to_db,
            source=self.source,
            extra=self.extra,
        )

    # ------------------------------------------------------------------ tensors
    def as_tensors(
        self, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
    ) -> dict[str, Tensor]:
        """The statistics as 1-D tensors: ``{'p1', 'p99', 'mean', 'std'}`` (+ ``raw_mean``/``raw_std`` if known)."""
        out = {k: torch.tensor(getattr(self, k), dtype=dtype, device=device) for k in ('p1', 'p99', 'mean', 'std')}
        for k in ('raw_mean', 'raw_std'):
            if getattr(self, k) is not None:
                out[k] = torch.tensor(getattr(self, k), dtype=dtype, device=device)
        return out

    def affine_mean_std(self, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
        """Raw-unit ``(mean, std)`` whose plain z-score equals SMARTIES normalisation without the clip.

        ``((x − p1)/(p99 − p1) − mean)/std = (x − m′)/s′`` with ``m′ = p1 + mean·(p99 − p1)`` and
        ``s′ = std·(p99 − p1)``. Give these to a torchgeo datamodule (``self.mean``/``self.std``, used by
        its default ``K.Normalize``) to get the release's normalisation up to the [0, 1] clip.
        """
        t = {k: torch.tensor(getattr(self, k), dtype=dtype) for k in ('p1', 'p99', 'mean', 'std')}
        span = t['p99'] - t['p1']
        return t['p1'] + t['mean'] * span, t['std'] * span

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-serialisable mapping (format :data:`STATS_FORMAT`), one entry per band id."""
        names = self.bands if self.bands is not None else tuple(f'channel_{i}' for i in range(len(self)))
        per_band: dict[str, dict[str, float]] = {}
        for i, name in enumerate(names):
            entry = {'p1': self.p1[i], 'p99': self.p99[i], 'mean': self.mean[i], 'std': self.std[i]}
            if self.raw_mean is not None and self.raw_std is not None:
                entry.update(raw_mean=self.raw_mean[i], raw_std=self.raw_std[i])
            per_band[name] = entry
        out: dict[str, Any] = {
            'format': STATS_FORMAT,
            'source': self.source,
            'sar_to_db': self.sar_to_db,
            'has_band_ids': self.bands is not None,
            'bands': per_band,
        }
        if self.extra:
            out['extra'] = dict(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = '') -> BandStats:
        """Inverse of :meth:`to_dict`.

        Raises:
            InputError: if the mapping is not in the expected format.
        """
        if not isinstance(data, Mapping) or not isinstance(data.get('bands'), Mapping):
            raise InputError(
                f'{source or "statistics"} is not a statistics file of format {STATS_FORMAT!r} (a mapping with a '
                "'bands' mapping of band id -> {p1, p99, mean, std}); write it with BandStats.save or "
                'compute_statistics(..., path=...)'
            )
        entries = data['bands']
        try:
            names = tuple(str(k) for k in entries)
            cols = {k: tuple(float(entries[n][k]) for n in names) for k in ('p1', 'p99', 'mean', 'std')}
            has_raw = all('raw_mean' in entries[n] and 'raw_std' in entries[n] for n in names)
            raw_mean = tuple(float(entries[n]['raw_mean']) for n in names) if has_raw else None
            raw_std = tuple(float(entries[n]['raw_std']) for n in names) if has_raw else None
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(
                f'{source or "statistics"}: every band entry needs numeric p1, p99, mean and std ({err})'
            ) from err
        bands = names if data.get('has_band_ids', True) else None
        if bands is not None:
            bands = tuple(b.id for b in resolve_bands(list(bands)))
        return cls(
            bands=bands,
            p1=cols['p1'],
            p99=cols['p99'],
            mean=cols['mean'],
            std=cols['std'],
            raw_mean=raw_mean,
            raw_std=raw_std,
            sar_to_db=bool(data.get('sar_to_db', False)),
            source=str(data.get('source', '') or source),
            extra=dict(data.get('extra', {}) or {}),
        )

    def save(self, path: str | Path) -> Path:
        """Write the statistics as JSON (``.json``) or YAML (``.yaml``/``.yml``)."""
        path = Path(path)
        data = self.to_dict()
        if path.suffix.lower() == '.json':
            path.write_text(json.dumps(data, indent=2) + '\n', encoding='utf-8')
        elif path.suffix.lower() in ('.yaml', '.yml'):
            path.write_text(yaml.safe_dump(data, sort_keys=False), encoding='utf-8')
        else:
            raise InputError(f'cannot tell the format of {path}: use a .json, .yaml or .yml suffix')
        return path

    @classmethod
    def load(cls, path: str | Path) -> BandStats:
        """Read statistics written by :meth:`save` / :func:`compute_statistics`."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f'statistics file {path} does not exist; write it with compute_statistics(..., path=)')
        text = path.read_text(encoding='utf-8')
        data = json.loads(text) if path.suffix.lower() == '.json' else yaml.safe_load(text)
        return cls.from_dict(data, source=str(path))


def _resolve_preset_name(name: str) -> str:
    key = _norm(name)
    key = _PRESET_ALIASES.get(key, key)
    if key not in STATS_PRESETS:
        from difflib import get_close_matches

        hint = get_close_matches(key, list(STATS_PRESETS) + list(_PRESET_ALIASES), n=3)
        raise UnknownPresetError(
            f'no normalisation statistics preset {name!r}'
            + (f' (did you mean {", ".join(hint)}?)' if hint else '')
            + f'; presets: {", ".join(STATS_PRESETS)}. For other data, compute the statistics with '
            'torchgeo_smarties.transforms.compute_statistics and load them with SmartiesNormalize.from_file'
        )
    return key


def preset_stats(name: str, bands: str | Sequence[str] | None = None) -> BandStats:
    """The release's statistics for a sensor or dataset preset, optionally selected/reordered to *bands*.

    Args:
        name: one of :data:`STATS_PRESETS` (``'sentinel2_l2a'``, ``'sentinel2_l1c'``, ``'sentinel1'``,
            ``'maxar_rgb'``, ``'eurosat'``, ``'bigearthnet_s2'``, ``'bigearthnet_s1'``, ``'resisc45'``,
            ``'whu_rs19'``, ``'ucmerced'``).
        bands: the image's bands (see :meth:`BandStats.select`); ``None`` = the preset's own order.

    Raises:
        UnknownPresetError: if *name* is not a statistics preset.
        UnknownBandError: if a requested band has no statistic in the preset.
    """
    key = _resolve_preset_name(name)
    filename, entry, band_preset = STATS_PRESETS[key]
    spec = _release_yaml(filename)[entry]
    spec = spec.get('sensor_specs', spec)
    ids = tuple(b.id for b in resolve_bands(band_preset))
    stats = BandStats(
        bands=ids,
        p1=_floats(spec['percentiles']['1']),
        p99=_floats(spec['percentiles']['99']),
        mean=_floats(spec['mean']),
        std=_floats(spec['std']),
        sar_to_db=key in ('sentinel1', 'bigearthnet_s1'),
        source=f'SMARTIES release {filename}:{entry} (preset {key!r})',
        extra={'preset': key, 'release_bands': list(spec['bands'])},
    )
    return stats.select(bands)


# ---------------------------------------------------------------------------- statistics estimation
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


def _run_passes(
    chunks: Callable[[], Iterator[np.ndarray]],
    channels: int,
    *,
    bins: int,
    percentiles: tuple[float, float],
    progress: bool,
    total: int | None,
    desc: str,
) -> _Accumulator:
    from tqdm.auto import tqdm

    acc = _Accumulator(channels, bins, percentiles)
    for step, fn in (('min/max', acc.pass1), ('percentiles', acc.pass2), ('mean/std', acc.pass3)):
        for chunk in tqdm(chunks(), total=total, desc=f'{desc} [{step}]', disable=not progress, leave=False):
            if chunk.shape[0] != channels:
                raise BandCountError(
                    f'an image has {chunk.shape[0]} channels but {channels} bands were given; give one band id per '
                    'channel, in channel order'
                )
            fn(chunk)
        if step == 'min/max':
            acc.start_pass2()
        elif step == 'percentiles':
            acc.start_pass3()
    return acc


def _db_rows(band_ids: tuple[str, ...] | None, channels: int, sar_to_db: bool) -> list[int]:
    if not sar_to_db:
        return []
    if band_ids is None:
        return list(range(channels))
    rows = [i for i, b in enumerate(resolve_bands(list(band_ids))) if b.polarization is not None]
    return rows or list(range(channels))


def _finish(stats: BandStats, path: str | Path | None) -> BandStats:
    if path is not None:
        stats.save(path)
    return stats


def compute_statistics(
    source: Iterable[Any] | Callable[[], Iterable[Any]],
    bands: str | Sequence[str] | None = None,
    *,
    image_key: str = 'image',
    nodata: float | None = None,
    sar_to_db: bool = False,
    bins: int = 4096,
    percentiles: tuple[float, float] = (1.0, 99.0),
    path: str | Path | None = None,
    progress: bool = True,
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
        sar_to_db: convert SAR bands (all channels when *bands* is ``None``) from linear power to dB
            (``10·log10``, values ≤ 0 clamped to 1e-10) before computing.
        bins: histogram bins per band.
        percentiles: the lower/upper percentiles (default the release's 1 and 99).
        path: optional ``.json``/``.yaml`` file to write.
        progress: show a tqdm progress bar.

    Returns:
        The statistics (also written to *path* if given).

    Raises:
        InputError: for a one-shot iterator, bad shapes, or a channel without valid pixels.
        BandCountError: if the number of channels and of *bands* differ.

    .. versionadded:: 0.1
    """
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
    rows = _db_rows(band_ids, channels, sar_to_db)

    def chunks() -> Iterator[np.ndarray]:
        for item in factory():
            yield _prepare(_chunk_from_item(item, image_key), nodata, rows)

    acc = _run_passes(
        chunks, channels, bins=bins, percentiles=percentiles, progress=progress, total=total, desc='statistics'
    )
    return _finish(acc.result(band_ids, sar_to_db, 'compute_statistics'), path)


def compute_raster_statistics(
    raster: str | Path,
    bands: str | Sequence[str] | None = None,
    *,
    window_size: int = 1024,
    nodata: float | None = None,
    sar_to_db: bool = False,
    bins: int = 4096,
    percentiles: tuple[float, float] = (1.0, 99.0),
    path: str | Path | None = None,
    progress: bool = True,
) -> BandStats:
    """Like :func:`compute_statistics` for one raster file, read by windows with rasterio.

    Memory is bounded by one ``window_size × window_size`` window of all bands. The file's own nodata
    value is used when *nodata* is ``None``.

    Raises:
        InputError: if the file cannot be opened.
        BandCountError: if the raster's band count differs from *bands*.

    .. versionadded:: 0.1
    """
    import rasterio
    from rasterio.windows import Window

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
        rows = _db_rows(band_ids, channels, sar_to_db)

        def chunks() -> Iterator[np.ndarray]:
            for win in windows:
                arr = src.read(window=win).reshape(channels, -1)
                yield _prepare(arr, nd, rows)

        acc = _run_passes(
            chunks,
            channels,
            bins=bins,
            percentiles=percentiles,
            progress=progress,
            total=len(windows),
            desc=Path(raster).name,
        )
    return _finish(acc.result(band_ids, sar_to_db, f'compute_raster_statistics({Path(raster).name})'), path)
