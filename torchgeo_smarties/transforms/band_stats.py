"""Per-band normalisation statistics: :class:`BandStats`, its files, and its tags in GeoTIFF outputs.

SMARTIES normalises each band as ``(x − p1)/(p99 − p1)``, clipped to [0, 1], then ``(x − mean)/std``
where *mean* and *std* were computed **after** the percentile min-max step (official release,
``utils/data_utils.ImageNormalizeStandardize``). :class:`BandStats` holds these four numbers per band,
keyed by band id (``'sentinel2:B08'``), so that a band list selects and reorders them to any image's
channel order.

.. versionadded:: 0.1
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor

from ..errors import BandCountError, InputError, SmartiesError, StatisticsFileError, UnknownBandError
from ..spectrum import resolve_bands

__all__ = ('NORM_TAG', 'STATS_FORMAT', 'BandStats', 'read_stats_document')

#: Format tag written into statistics files.
STATS_FORMAT = 'torchgeo_smarties/band-stats/1'
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
        where = source or 'statistics'
        try:
            names = tuple(str(k) for k in entries)
            cols = {k: tuple(float(entries[n][k]) for n in names) for k in ('p1', 'p99', 'mean', 'std')}
            has_raw = all('raw_mean' in entries[n] and 'raw_std' in entries[n] for n in names)
            raw_mean = tuple(float(entries[n]['raw_mean']) for n in names) if has_raw else None
            raw_std = tuple(float(entries[n]['raw_std']) for n in names) if has_raw else None
        except (KeyError, TypeError, ValueError) as err:
            raise StatisticsFileError(
                f'{where}: every band entry needs numeric p1, p99, mean and std ({type(err).__name__}: {err})'
            ) from err
        bands = names if data.get('has_band_ids', True) else None
        if bands is not None:
            try:
                bands = tuple(b.id for b in resolve_bands(list(bands)))
            except SmartiesError as err:
                raise type(err)(f'{where}: {err}') from None
            seen: dict[str, str] = {}
            for name, bid in zip(names, bands, strict=True):
                if bid in seen:
                    raise StatisticsFileError(
                        f'{where} lists band {bid} twice ({seen[bid]!r} and {name!r}); keep one entry per band'
                    )
                seen[bid] = name
        try:
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
        except SmartiesError as err:
            raise type(err)(f'{where}: {err}') from None

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
        """Read statistics written by :meth:`save` / :func:`compute_statistics`, or an embedding output's tags.

        A GeoTIFF written by ``smarties embed`` / :func:`~torchgeo_smarties.inference.embed_raster` carries
        the statistics it used in its ``SMARTIES_NORM`` tag (:meth:`SmartiesNormalize.tags`): loading it
        reproduces that run's normalisation.

        Raises:
            StatisticsFileError: if the file is missing, not valid JSON/YAML (naming line and column), lists a
                band twice, or a GeoTIFF without a ``SMARTIES_NORM`` tag.
        """
        return cls.from_dict(read_stats_document(path), source=str(path))


#: Tag of an embedding GeoTIFF holding the normalisation used (JSON: a statistics document plus the method).
NORM_TAG = 'SMARTIES_NORM'
_RASTER_SUFFIXES = ('.tif', '.tiff', '.gtiff', '.cog')


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


class _DuplicateKey(Exception):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a mapping key given twice (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:  # type: ignore[override]
        keys = [self.construct_object(k, deep=deep) for k, _ in node.value]
        dup = sorted({str(k) for k in keys if keys.count(k) > 1})
        if dup:
            mark = node.start_mark
            raise _DuplicateKey(f'{dup[0]} (mapping at line {mark.line + 1}, column {mark.column + 1})')
        return super().construct_mapping(node, deep=deep)


def read_stats_document(path: str | os.PathLike[str]) -> Any:
    """The parsed statistics document of a ``.json``/``.yaml`` file or an embedding GeoTIFF's tag.

    Raises:
        StatisticsFileError: see :meth:`BandStats.load`.
    """
    path = Path(path)
    if not path.is_file():
        raise StatisticsFileError(
            f'statistics file {str(path)!r} does not exist; write it with compute_statistics(..., path=), or pass '
            'an embedding GeoTIFF written by smarties embed'
        )
    if path.suffix.lower() in _RASTER_SUFFIXES:
        import rasterio

        try:
            with rasterio.open(path) as ds:
                text = ds.tags().get(NORM_TAG)
        except rasterio.errors.RasterioIOError as err:
            raise StatisticsFileError(f'cannot read {str(path)!r} as a GeoTIFF: {err}') from None
        if text is None:
            raise StatisticsFileError(
                f'{str(path)!r} has no {NORM_TAG} tag: it was not written by smarties embed (torchgeo_smarties ≥ 0.2); '
                'pass a statistics .json/.yaml file instead'
            )
    else:
        try:
            text = path.read_text(encoding='utf-8')
        except UnicodeDecodeError as err:
            raise StatisticsFileError(f'{str(path)!r} is not a text statistics file ({err})') from None
    try:
        if path.suffix.lower() == '.json' or path.suffix.lower() in _RASTER_SUFFIXES:
            return json.loads(text, object_pairs_hook=_unique_pairs)
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except json.JSONDecodeError as err:
        raise StatisticsFileError(
            f'{str(path)!r} is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno} (char {err.pos}); '
            'fix the file or rewrite it with BandStats.save'
        ) from None
    except yaml.YAMLError as err:
        mark = getattr(err, 'problem_mark', None)
        at = f' at line {mark.line + 1}, column {mark.column + 1}' if mark is not None else ''
        raise StatisticsFileError(f'{str(path)!r} is not valid YAML{at}: {getattr(err, "problem", err)}') from None
    except _DuplicateKey as err:
        raise StatisticsFileError(
            f'{str(path)!r} gives the key {err} twice (the later one would silently win); keep one entry per band'
        ) from None
