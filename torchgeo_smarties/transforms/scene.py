"""Statistics of one scene from a bounded-memory sampled pass, and a check for SAR in linear power.

Both read the input through the ``read(window) -> (values, valid)`` API of
:class:`torchgeo_smarties.inference.source.RasterSource` (any object with ``height``, ``width``, ``count``
and that method works), never the whole scene.

.. versionadded:: 0.2
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from ..errors import BandCountError, NormalizationError, SarUnitsError
from ..spectrum import resolve_bands
from .band_stats import BandStats

__all__ = ('WindowSource', 'check_sar_units', 'sample_pixels', 'scene_statistics')


class WindowSource(Protocol):
    """What the sampled pass needs from a raster source."""

    height: int
    width: int

    @property
    def count(self) -> int:  # noqa: D102
        ...

    def read(self, window: Any) -> tuple[np.ndarray, np.ndarray]:  # noqa: D102
        ...


def sample_pixels(
    source: WindowSource, *, window: int = 256, max_windows: int = 64, max_pixels: int = 1 << 20
) -> list[np.ndarray]:
    """Valid values of each channel from up to *max_windows* windows spread evenly over the raster.

    Memory is bounded by one ``window × window`` read of all channels plus *max_pixels* float32 values per
    channel (each window contributes at most ``max_pixels / windows`` values per channel, strided).
    Deterministic: the same raster gives the same sample.

    Returns:
        One float64 1-D array per channel (nodata and non-finite values excluded).
    """
    from rasterio.windows import Window

    h, w = int(source.height), int(source.width)
    rows = list(range(0, h, window))
    cols = list(range(0, w, window))
    origins = [(r, c) for r in rows for c in cols]
    if len(origins) > max_windows:
        pick = np.unique(np.linspace(0, len(origins) - 1, max_windows).round().astype(int))
        origins = [origins[i] for i in pick]
    per_window = max(1, max_pixels // len(origins))
    parts: list[list[np.ndarray]] = [[] for _ in range(source.count)]
    for r, c in origins:
        vals, valid = source.read(Window(c, r, min(window, w - c), min(window, h - r)))
        for ch in range(source.count):
            v = vals[ch][valid[ch] & np.isfinite(vals[ch])]
            if v.size > per_window:
                v = v[:: -(-v.size // per_window)]
            parts[ch].append(v.astype(np.float64))
    return [np.concatenate(p) if p else np.zeros(0) for p in parts]


def scene_statistics(
    source: WindowSource, band_ids: Sequence[str] | None = None, *, percentiles: tuple[float, float] = (1.0, 99.0),
    window: int = 256, max_windows: int = 64, max_pixels: int = 1 << 20,
) -> BandStats:
    """Per-band SMARTIES statistics of the input itself (``--norm scene``), from :func:`sample_pixels`.

    p1/p99 are the sample's percentiles, *mean*/*std* those of the clipped min-max values (the release's
    definition), plus raw-unit mean/std.

    Raises:
        BandCountError: if *band_ids* and the raster's channel count differ.
        NormalizationError: for a channel with no valid pixel, or constant over the sample.
    """
    ids = tuple(b.id for b in resolve_bands(list(band_ids))) if band_ids is not None else None
    if ids is not None and len(ids) != source.count:
        raise BandCountError(f'{len(ids)} band ids for a raster of {source.count} channels')
    samples = sample_pixels(source, window=window, max_windows=max_windows, max_pixels=max_pixels)
    label = (lambda c: ids[c]) if ids is not None else (lambda c: f'channel {c}')
    empty = [label(c) for c, v in enumerate(samples) if v.size == 0]
    if empty:
        raise NormalizationError(f'no valid pixel in {empty} of the sampled windows; check the nodata value, or '
                                 'pass --stats FILE / --norm PRESET')
    cols: dict[str, list[float]] = {k: [] for k in ('p1', 'p99', 'mean', 'std', 'raw_mean', 'raw_std')}
    for c, v in enumerate(samples):
        lo, hi = np.percentile(v, percentiles)
        if not hi > lo:
            lo, hi = float(v.min()), float(v.max())
        if not hi > lo:
            raise NormalizationError(f'{label(c)} is constant ({lo:g}) over the scene, so scene statistics cannot '
                                     'normalise it; pass --stats FILE or --norm PRESET, or drop the band')
        y = np.clip((v - lo) / (hi - lo), 0.0, 1.0)
        cols['p1'].append(float(lo))
        cols['p99'].append(float(hi))
        cols['mean'].append(float(y.mean()))
        cols['std'].append(float(y.std()) or 1.0)
        cols['raw_mean'].append(float(v.mean()))
        cols['raw_std'].append(float(v.std()) or 1.0)
    return BandStats(
        bands=ids, p1=tuple(cols['p1']), p99=tuple(cols['p99']), mean=tuple(cols['mean']), std=tuple(cols['std']),
        raw_mean=tuple(cols['raw_mean']), raw_std=tuple(cols['raw_std']), source='scene statistics (sampled)',
        extra={'method': 'scene', 'percentiles': list(percentiles), 'count': [int(v.size) for v in samples],
               'window': window, 'max_windows': max_windows},
    )


def check_sar_units(source: WindowSource, band_ids: Sequence[str], *, sar_linear: bool = False) -> None:
    """Refuse SAR channels whose values do not match the expected unit.

    Linear power is detected when a channel's sampled values are all ≥ 0 with a median < 1 (σ0 in dB is
    mostly negative); with *sar_linear* the reverse (negative values) is refused.

    Raises:
        SarUnitsError: naming the channels, their median, and the fix.
    """
    bands = resolve_bands(list(band_ids))
    sar = [c for c, b in enumerate(bands) if b.polarization is not None]
    if not sar:
        return
    samples = sample_pixels(source, window=256, max_windows=16, max_pixels=1 << 16)
    for c in sar:
        v = samples[c]
        if v.size == 0:
            continue
        med = float(np.median(v))
        if not sar_linear and float(v.min()) >= 0 and med < 1:
            raise SarUnitsError(
                f'{bands[c].id} looks like linear power (all values ≥ 0, median {med:.3g}), but SMARTIES normalises '
                'SAR backscatter in dB; convert with 10·log10(x), or pass --norm sar_linear to convert on the fly'
            )
        if sar_linear and float(v.min()) < 0:
            raise SarUnitsError(
                f'{bands[c].id} has negative values (median {med:.3g}): it looks like dB, not linear power; drop '
                '--norm sar_linear'
            )
