"""The release's normalisation statistics presets (sensors and evaluation datasets).

The preset numbers are read at run time from the release's own configuration files shipped in
``torchgeo_smarties/data/release`` (github.com/gsumbul/SMARTIES ``config/``, Apache-2.0).

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Sequence

from ..spectrum.statistics import STATS_PRESETS, list_stats_presets, release_statistics, resolve_stats_preset
from .band_stats import BandStats

__all__ = ('STATS_PRESETS', 'list_stats_presets', 'preset_stats')

_resolve_preset_name = resolve_stats_preset


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
    rel = release_statistics(name)
    key = rel.preset
    stats = BandStats(
        bands=rel.bands,
        p1=rel.p1,
        p99=rel.p99,
        mean=rel.mean,
        std=rel.std,
        sar_to_db=key in ('sentinel1', 'bigearthnet_s1'),
        source=f'SMARTIES release {rel.source} (preset {key!r})',
        extra={'preset': key, 'release_bands': list(rel.release_bands)},
    )
    return stats.select(bands)
