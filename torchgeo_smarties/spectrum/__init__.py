"""Spectrum model and sensor band registry.

* :mod:`~torchgeo_smarties.spectrum.ranges`: the release's 17 learned spectral ranges.
* :mod:`~torchgeo_smarties.spectrum.sensors`: bands of real sensors with physical units.
* :mod:`~torchgeo_smarties.spectrum.registry`: look-up, presets and run-time registration.
* :mod:`~torchgeo_smarties.spectrum.plan`: band list → projection plan under a policy.
* :mod:`~torchgeo_smarties.spectrum.tables`: CSV band tables (the hyperspectral sensors, your own).
"""

from .plan import POLICIES, BandProjection, InterpolationPolicy, OutOfRange, ProjectionPlan, plan_bands, resolve_band
from .ranges import (
    AGGREGATED_RANGES,
    LEARNED_RANGES,
    NO_PROJECTION_RANGES,
    NUM_LEARNED_RANGES,
    PROJECTION_SCALER,
    SpectralRange,
    all_ranges,
    range_by_index,
    range_by_key,
)
from .registry import (
    PRESETS,
    BandSpec,
    get_band,
    get_sensor,
    list_presets,
    list_sensors,
    register_preset,
    register_sensor,
    register_sensor_from_table,
    resolve_bands,
    unregister_sensor,
)
from .sensors import Band, Sensor
from .units import UNITS, parse_quantity, to_nm

__all__ = (
    'AGGREGATED_RANGES',
    'LEARNED_RANGES',
    'NO_PROJECTION_RANGES',
    'NUM_LEARNED_RANGES',
    'POLICIES',
    'PRESETS',
    'PROJECTION_SCALER',
    'UNITS',
    'Band',
    'BandProjection',
    'BandSpec',
    'InterpolationPolicy',
    'OutOfRange',
    'ProjectionPlan',
    'Sensor',
    'SpectralRange',
    'all_ranges',
    'get_band',
    'get_sensor',
    'list_presets',
    'list_sensors',
    'parse_quantity',
    'plan_bands',
    'range_by_index',
    'range_by_key',
    'register_preset',
    'register_sensor',
    'register_sensor_from_table',
    'resolve_band',
    'resolve_bands',
    'to_nm',
    'unregister_sensor',
)
