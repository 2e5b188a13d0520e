"""Per-band normalisation statistics (compatibility module).

The code lives in focused modules: :mod:`.band_stats` (:class:`BandStats` and its files),
:mod:`.presets` (the release's presets) and :mod:`.estimate` (streaming estimation).

.. versionadded:: 0.1
"""

from .band_stats import STATS_FORMAT, BandStats, _as_tuple
from .estimate import compute_raster_statistics, compute_statistics
from .presets import STATS_PRESETS, list_stats_presets, preset_stats

__all__ = (
    'STATS_FORMAT',
    'STATS_PRESETS',
    'BandStats',
    '_as_tuple',
    'compute_raster_statistics',
    'compute_statistics',
    'list_stats_presets',
    'preset_stats',
)
