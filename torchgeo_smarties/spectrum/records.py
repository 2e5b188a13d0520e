"""Machine-readable records of the band registry: each band and how it resolves under each policy.

:func:`band_records` / :func:`bands_json` describe the registry (wavelengths in nm)
with each band's resolution under every interpolation policy; ``smarties bands --json``
prints :func:`bands_json`, and the documentation's tables are built from the same
records (``docs/_ext/smarties_bands.py``).
"""

from collections.abc import Iterable, Sequence
from typing import Any, Final, cast

from ..errors import OutOfSpectrumError, UnresolvableBandError
from .plan import POLICIES, InterpolationPolicy, OutOfRange, resolve_band
from .ranges import AGGREGATED_RANGES, LEARNED_RANGES, NO_PROJECTION_RANGES, SpectralRange, range_by_index
from .registry import get_sensor, list_sensors
from .sensors import Band, Sensor

__all__ = (
    'ALL_POLICIES',
    'DISPLAY_POLICIES',
    'band_records',
    'bands_json',
    'resolution_record',
    'select_sensors',
)

#: Policies shown side by side by ``--all-policies`` and in the docs.
DISPLAY_POLICIES: Final[tuple[InterpolationPolicy, ...]] = ('linear', 'nearest', 'official')

#: Every policy, typed (``plan.POLICIES`` is a plain ``tuple[str, ...]``).
ALL_POLICIES: Final = cast(tuple[InterpolationPolicy, ...], POLICIES)

_DASH: Final = '—'


def select_sensors(names: Iterable[str] | None = None) -> tuple[Sensor, ...]:
    """The sensors named (ids or aliases, case-insensitive), or all registered ones.

    Args:
        names: sensor ids or aliases; ``None`` or empty for every registered sensor.

    Returns:
        The sensors, in the order given (duplicates removed).

    Raises:
        UnknownSensorError: if a name is not registered.
    """
    if not names:
        return list_sensors()
    out: dict[str, Sensor] = {}
    for name in names:
        sensor = get_sensor(name)
        out.setdefault(sensor.id, sensor)
    return tuple(out.values())


def resolution_record(band: Band, policy: InterpolationPolicy, out_of_range: OutOfRange = 'error') -> dict[str, Any]:
    """How *band* resolves under *policy*, as a JSON-ready dict.

    Args:
        band: the band.
        policy: an interpolation policy (see :mod:`~torchgeo_smarties.spectrum.plan`).
        out_of_range: what to do with bands outside the pretraining spectrum.

    Returns:
        ``{'indices', 'weights', 'ranges', 'how', 'text', 'error'}``. A band the
        policy cannot project has empty *indices*, ``how='unresolvable'`` (or
        ``'out_of_spectrum'``) and the reason in *error*; a band the release gives
        no projection (Sentinel-2 B10) has ``how='ignored'`` and no error.
    """
    try:
        proj = resolve_band(band, policy, out_of_range)
    except OutOfSpectrumError as err:
        return {
            'indices': [],
            'weights': [],
            'ranges': [],
            'how': 'out_of_spectrum',
            'text': f'{_DASH} outside the pretraining spectrum',
            'error': str(err),
        }
    except UnresolvableBandError as err:
        reason = 'not in the release table' if policy == 'official' else 'no learned projection'
        return {
            'indices': [],
            'weights': [],
            'ranges': [],
            'how': 'unresolvable',
            'text': f'{_DASH} {reason}',
            'error': str(err),
        }
    return {
        'indices': list(proj.indices),
        'weights': list(proj.weights),
        'ranges': [range_by_index(i).key for i in proj.indices],
        'how': proj.how,
        'text': 'ignored (no projection in the release)' if proj.ignored else proj.describe(),
        'error': None,
    }


def _band_record(band: Band, policies: Sequence[InterpolationPolicy], out_of_range: OutOfRange) -> dict[str, Any]:
    return {
        'id': band.id,
        'name': band.name,
        'aliases': list(band.aliases),
        'description': band.description,
        'center_nm': band.center_nm,
        'min_nm': band.min_nm,
        'max_nm': band.max_nm,
        'fwhm_nm': band.fwhm_nm,
        'gsd_m': band.gsd_m,
        'units': band.units,
        'polarization': band.polarization,
        'absorption': band.absorption,
        'learned_index': band.learned_index,
        'release_index': band.release_index,
        'no_projection': band.release_index == -1,
        'resolution': {p: resolution_record(band, p, out_of_range) for p in policies},
    }


def band_records(
    sensors: Iterable[str] | None = None,
    policies: Sequence[InterpolationPolicy] = ALL_POLICIES,
    out_of_range: OutOfRange = 'error',
) -> list[dict[str, Any]]:
    """One record per sensor, with its bands and their resolution under each policy.

    Args:
        sensors: sensor ids/aliases; ``None`` for all registered sensors.
        policies: the policies to resolve every band under.
        out_of_range: what to do with bands outside the pretraining spectrum.

    Returns:
        A list of ``{'id', 'name', 'aliases', 'description', 'bands': [...]}``;
        wavelengths are in nm, GSD in m.

    Raises:
        UnknownSensorError: if a sensor name is not registered.
    """
    return [
        {
            'id': s.id,
            'name': s.name,
            'aliases': list(s.aliases),
            'description': s.description,
            'bands': [_band_record(b, policies, out_of_range) for b in s.bands],
        }
        for s in select_sensors(sensors)
    ]


def _range_record(r: SpectralRange) -> dict[str, Any]:
    """The fields every spectral range record has: index, key, name and its wavelengths (nm)."""
    return {
        'index': r.index,
        'key': r.key,
        'name': r.name,
        'min_nm': r.min_nm,
        'max_nm': r.max_nm,
        'center_nm': r.center_nm,
    }


def _version() -> str:
    from .. import __version__  # the package is light: this imports no torch

    return __version__


def bands_json(
    sensors: Iterable[str] | None = None,
    policies: Sequence[InterpolationPolicy] = ALL_POLICIES,
    out_of_range: OutOfRange = 'error',
) -> dict[str, Any]:
    """The full machine-readable document ``smarties bands --json`` prints.

    Returns:
        ``{'version', 'units', 'policies', 'learned_ranges', 'release_entries', 'sensors'}``.
    """
    return {
        'version': _version(),
        'units': {'wavelength': 'nm', 'gsd': 'm'},
        'policies': list(policies),
        'learned_ranges': [_range_record(r) for r in LEARNED_RANGES],
        'release_entries': [
            {
                **_range_record(r),
                'kind': r.kind,
                'sources': list(r.sources),
                'official_weights': list(r.official_weights()),
            }
            for r in (*AGGREGATED_RANGES, *NO_PROJECTION_RANGES)
        ],
        'sensors': band_records(sensors, policies, out_of_range),
    }
