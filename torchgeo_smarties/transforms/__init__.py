"""Kornia augmentations for SMARTIES: normalisation, cross-sensor mixup, paired geometry, spectral dropout.

* :class:`SmartiesNormalize`: the release's per-band percentile min-max → clip → z-score, with
  sensor/dataset presets (:func:`preset_stats`), S1 linear → dB and nodata handling.
* :func:`compute_statistics` / :func:`compute_raster_statistics`: streaming estimation of the statistics,
  written to a file that :meth:`SmartiesNormalize.from_file` loads.
* :func:`make_normalizer`: the normaliser of an inference run (``--stats`` / ``--norm``), by default the
  release's statistics interpolated in wavelength for any sensor with a value convention
  (:func:`default_stats`, :func:`interpolated_stats`), or the scene's own (:func:`scene_statistics`).
* :class:`CrossSensorMixup`: paper Eq. 1–2 on a pair, in the encoder's input form.
* :class:`PairedGeometric` / :class:`PairedResize`: identical geometry on a pair of different resolutions;
  :class:`PairSequential` chains pair steps with kornia's call shape (``seq(a, b)`` or a dict batch).
* :class:`RandomBandSubset`: random band subsets as a (B, C) band mask.

.. versionadded:: 0.1
"""

from .band_stats import STATS_FORMAT, BandStats
from .band_subset import RandomBandSubset, random_band_mask
from .estimate import compute_raster_statistics, compute_statistics
from .factory import NORM_METHODS, make_normalizer, normalization_preset, normalization_tags
from .mixup import CrossSensorMixup, MixedPair, MixupMode
from .normalize import NormalizeMode, NormalizeOptions, SmartiesNormalize, sar_to_db
from .paired import PairedGeometric, PairedResize, PairSequential, pair_scale
from .presets import STATS_PRESETS, list_stats_presets, preset_stats
from .scene import check_sar_units, scene_statistics
from .sensor_stats import default_stats, interpolated_stats

__all__ = (
    'NORM_METHODS',
    'STATS_FORMAT',
    'STATS_PRESETS',
    'BandStats',
    'CrossSensorMixup',
    'MixedPair',
    'MixupMode',
    'NormalizeMode',
    'NormalizeOptions',
    'PairSequential',
    'PairedGeometric',
    'PairedResize',
    'RandomBandSubset',
    'SmartiesNormalize',
    'check_sar_units',
    'compute_raster_statistics',
    'compute_statistics',
    'default_stats',
    'interpolated_stats',
    'list_stats_presets',
    'make_normalizer',
    'normalization_preset',
    'normalization_tags',
    'pair_scale',
    'preset_stats',
    'random_band_mask',
    'sar_to_db',
    'scene_statistics',
)
