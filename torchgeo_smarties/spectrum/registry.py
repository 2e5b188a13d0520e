"""The sensor band registry: look up bands by ``'<sensor>:<band>'`` and presets by name.

Lookups are case-insensitive and accept aliases (``'s2:b8a'``, ``'landsat8:swir16'``).
Users register their own sensors at run time with :func:`register_sensor`; a
registered sensor is usable everywhere a built-in one is (encoder, transforms, CLI).
The registry is pure Python: it never touches tensors.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from difflib import get_close_matches
from threading import RLock

from ..errors import (
    AmbiguousBandError,
    DuplicateRegistrationError,
    EmptyBandListError,
    UnknownBandError,
    UnknownPresetError,
    UnknownSensorError,
)
from .conventions import ValueConvention, check_convention, remove_convention, set_convention
from .sensors import Band, Sensor, builtin_sensors
from .units import to_nm

__all__ = (
    'PRESETS',
    'BandSpec',
    'get_band',
    'get_sensor',
    'list_presets',
    'list_sensors',
    'register_preset',
    'register_sensor',
    'resolve_bands',
    'unregister_sensor',
)

#: A band given by the user: an id string or a :class:`Band`.
BandSpec = str | Band

#: Built-in presets: whole band sets in canonical order.
PRESETS: dict[str, tuple[str, ...]] = {
    'sentinel2_l2a': tuple(f'sentinel2:{b}' for b in
                           ('B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B08', 'B8A', 'B09', 'B11', 'B12')),
    'sentinel2_l1c': tuple(f'sentinel2:{b}' for b in
                           ('B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B08', 'B8A', 'B09', 'B10', 'B11',
                            'B12')),
    'sentinel2_rgb': ('sentinel2:B04', 'sentinel2:B03', 'sentinel2:B02'),
    'sentinel2_10m': ('sentinel2:B02', 'sentinel2:B03', 'sentinel2:B04', 'sentinel2:B08'),
    'sentinel2_20m': tuple(f'sentinel2:{b}' for b in ('B05', 'B06', 'B07', 'B8A', 'B11', 'B12')),
    # EuroSAT-MS tif order (torchgeo EuroSAT.all_band_names): B8A last.
    'eurosat': tuple(f'sentinel2:{b}' for b in
                     ('B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B08', 'B09', 'B10', 'B11', 'B12', 'B8A')),
    'bigearthnet_s2': tuple(f'sentinel2:{b}' for b in
                            ('B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B08', 'B8A', 'B09', 'B11', 'B12')),
    'sentinel1': ('sentinel1:VV', 'sentinel1:VH'),
    'bigearthnet_s1': ('sentinel1:VV', 'sentinel1:VH'),
    'maxar_rgb': ('maxar:red', 'maxar:green', 'maxar:blue'),
    'landsat8': tuple(f'landsat8:B{i}' for i in range(1, 12)),
    'landsat9': tuple(f'landsat9:B{i}' for i in range(1, 12)),
    'landsat8_sr': tuple(f'landsat8:B{i}' for i in range(1, 8)),
    'landsat7': tuple(f'landsat7:B{i}' for i in range(1, 9)),
    'landsat5': tuple(f'landsat5:B{i}' for i in range(1, 8)),
    'landsat4': tuple(f'landsat4:B{i}' for i in range(1, 8)),
    'planetscope': ('planetscope:blue', 'planetscope:green', 'planetscope:red', 'planetscope:nir'),
    'superdove': tuple(f'superdove:{b}' for b in
                       ('coastal_blue', 'blue', 'green_i', 'green', 'yellow', 'red', 'rededge', 'nir')),
    'worldview2': tuple(f'worldview2:{b}' for b in
                        ('coastal', 'blue', 'green', 'yellow', 'red', 'rededge', 'nir1', 'nir2')),
    'worldview3': tuple(f'worldview3:{b}' for b in
                        ('coastal', 'blue', 'green', 'yellow', 'red', 'rededge', 'nir1', 'nir2')),
    'hls_s30': tuple(f'hls_s30:{b}' for b in
                     ('B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B08', 'B8A', 'B09', 'B10', 'B11', 'B12')),
    'hls_l30': tuple(f'hls_l30:{b}' for b in
                     ('B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B09', 'B10', 'B11')),
}

_lock = RLock()
_sensors: dict[str, Sensor] = {}
_sensor_alias: dict[str, str] = {}
_builtin_ids: set[str] = set()


def _norm(text: str) -> str:
    return text.strip().lower().replace('-', '_').replace(' ', '_')


def _add(sensor: Sensor) -> None:
    keys = {_norm(sensor.id), *(_norm(a) for a in sensor.aliases)}
    taken = sorted(k for k in keys if k in _sensor_alias)
    if taken:
        raise DuplicateRegistrationError(
            f'cannot register sensor {sensor.id!r}: name(s) {taken} already used by '
            f'{sorted({_sensor_alias[k] for k in taken})}; pick another id/alias or call '
            'unregister_sensor() first'
        )
    names = [_norm(b.name) for b in sensor.bands]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DuplicateRegistrationError(f'sensor {sensor.id!r} lists band(s) {dup} more than once')
    _sensors[sensor.id] = sensor
    for k in keys:
        _sensor_alias[k] = sensor.id


def _init() -> None:
    for s in builtin_sensors():
        _add(s)
        _builtin_ids.add(s.id)


_init()


def list_sensors() -> tuple[Sensor, ...]:
    """All registered sensors (built-in first, then user-registered)."""
    with _lock:
        return tuple(_sensors.values())


def get_sensor(name: str) -> Sensor:
    """Look up a sensor by id or alias (case-insensitive).

    Raises:
        UnknownSensorError: naming the registered sensors.
    """
    with _lock:
        sid = _sensor_alias.get(_norm(name))
        if sid is None:
            hint = get_close_matches(_norm(name), list(_sensor_alias), n=3)
            raise UnknownSensorError(
                f'unknown sensor {name!r}'
                + (f' (did you mean {", ".join(hint)}?)' if hint else '')
                + f'; registered sensors: {", ".join(_sensors)}. Register your own with '
                'torchgeo_smarties.spectrum.register_sensor().'
            )
        return _sensors[sid]


def get_band(band: BandSpec) -> Band:
    """Resolve one band identifier ``'<sensor>:<band>'`` (or a :class:`Band`).

    Band names match the canonical name first, then aliases; an alias shared by
    several bands of the sensor is ambiguous.

    Raises:
        UnknownSensorError: if the sensor part is unknown.
        UnknownBandError: if the band is not a band of that sensor (or the id has no ``:``).
        AmbiguousBandError: if an alias matches several bands.
    """
    if isinstance(band, Band):
        return band
    if not isinstance(band, str):
        raise UnknownBandError(f'a band must be a string "<sensor>:<band>" or a Band, got {type(band).__name__}')
    if ':' not in band:
        raise UnknownBandError(
            f'band {band!r} has no sensor part; write "<sensor>:<band>", e.g. "sentinel2:B08" '
            f'(sensors: {", ".join(_sensors)}), or use a preset name ({", ".join(PRESETS)})'
        )
    sensor_part, band_part = band.split(':', 1)
    sensor = get_sensor(sensor_part)
    key = _norm(band_part)
    exact = [b for b in sensor.bands if _norm(b.name) == key]
    if exact:
        return exact[0]
    hits = [b for b in sensor.bands if key in (_norm(a) for a in b.aliases)]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise AmbiguousBandError(
            f'{band!r} is ambiguous for {sensor.id}: it matches {", ".join(b.id for b in hits)}; '
            'give the band name explicitly'
        )
    raise UnknownBandError(
        f'{sensor.id} has no band {band_part!r}; valid bands: {", ".join(b.name for b in sensor.bands)}'
    )


def list_presets() -> dict[str, tuple[str, ...]]:
    """A copy of all presets, name → band ids."""
    with _lock:
        return dict(PRESETS)


def register_preset(name: str, bands: Sequence[BandSpec], *, overwrite: bool = False) -> None:
    """Register a named band set usable wherever a preset is accepted.

    Raises:
        DuplicateRegistrationError: if *name* exists and *overwrite* is false.
        EmptyBandListError: if *bands* is empty.
    """
    key = _norm(name)
    resolved = resolve_bands(list(bands))
    with _lock:
        if key in PRESETS and not overwrite:
            raise DuplicateRegistrationError(f'preset {name!r} already exists; pass overwrite=True to replace it')
        PRESETS[key] = tuple(b.id for b in resolved)


def resolve_bands(bands: str | Iterable[BandSpec]) -> tuple[Band, ...]:
    """Resolve a preset name, a sensor id, or a list of band ids into :class:`Band` objects.

    Args:
        bands: a preset name (``'sentinel2_l2a'``), a sensor id (all its bands in
            canonical order), a comma-separated string of band ids, or a sequence of
            band ids / :class:`Band` objects. The order is kept: it must be the
            order of the image channels.

    Raises:
        EmptyBandListError: if no band is given.
        UnknownPresetError: if a single name is neither a preset nor a sensor.
    """
    if isinstance(bands, str):
        text = bands.strip()
        if ',' in text:
            items: list[BandSpec] = [t.strip() for t in text.split(',') if t.strip()]
        elif ':' in text:
            items = [text]
        else:
            key = _norm(text)
            if key in PRESETS:
                items = list(PRESETS[key])
            elif key in _sensor_alias:
                sid = _sensor_alias[key]  # an alias of a sensor that is also a preset means the preset
                items = list(PRESETS[sid]) if sid in PRESETS else [b.id for b in _sensors[sid].bands]
            else:
                hint = get_close_matches(key, list(PRESETS) + list(_sensor_alias), n=3)
                raise UnknownPresetError(
                    f'{bands!r} is not a band preset or a sensor'
                    + (f' (did you mean {", ".join(hint)}?)' if hint else '')
                    + f'; presets: {", ".join(PRESETS)}; or give a list of "<sensor>:<band>" ids'
                )
    else:
        items = list(bands)
    if not items:
        raise EmptyBandListError('the band list is empty; give at least one band, e.g. ["sentinel2:B04"]')
    return tuple(get_band(b) for b in items)


def register_sensor(
    sensor_id: str,
    bands: Mapping[str, Mapping[str, object]] | Sequence[Band],
    *,
    name: str | None = None,
    aliases: Sequence[str] = (),
    unit: str | None = None,
    description: str = '',
    convention: ValueConvention | None = None,
) -> Sensor:
    """Register a new sensor at run time.

    Bands are given either as :class:`Band` objects or as a mapping
    ``band name -> fields``. Fields: ``center`` (or ``min`` and ``max``), optional
    ``fwhm`` (bandwidth), ``unit`` (per band, else the *unit* argument — required:
    no bare numbers), ``gsd`` (m), ``units`` (value units, free text),
    ``polarization`` (SAR), ``aliases``. Example::

        register_sensor('mysat', {'blue': {'center': 0.49, 'fwhm': 0.06, 'unit': 'um'},
                                  'nir': {'min': 780, 'max': 900, 'unit': 'nm'}})

    *convention* (a :class:`~torchgeo_smarties.spectrum.conventions.ValueConvention`) says what the pixel
    values are (e.g. ``ValueConvention.reflectance(0.0001)``), so that the default normalisation can map
    them onto the release's statistics; without it, give statistics explicitly (``--stats``/``--norm``).

    Returns:
        The registered :class:`Sensor`.

    Raises:
        DuplicateRegistrationError: if the id/alias or a band name is taken.
        UnitError: if a wavelength has no unit or an unknown one.
        EmptyBandListError: if no band is given.
    """
    sid = _norm(sensor_id)
    if convention is not None:
        check_convention(convention)
    if not bands:
        raise EmptyBandListError(f'sensor {sensor_id!r} needs at least one band')
    out: list[Band] = []
    if isinstance(bands, Mapping):
        for bname, spec in bands.items():
            u = spec.get('unit', unit)
            u = None if u is None else str(u)
            if 'center' in spec:
                c = to_nm(float(spec['center']), u)  # type: ignore[arg-type]
                w = to_nm(float(spec['fwhm']), u) if 'fwhm' in spec else 0.0  # type: ignore[arg-type]
                if u is not None and u.lower() in ('ghz', 'mhz', 'hz'):
                    w = 0.0
                lo, hi = c - w / 2, c + w / 2
            elif 'min' in spec and 'max' in spec:
                a = to_nm(float(spec['min']), u)  # type: ignore[arg-type]
                b = to_nm(float(spec['max']), u)  # type: ignore[arg-type]
                lo, hi = min(a, b), max(a, b)
                c = 0.5 * (lo + hi)
            else:
                from ..errors import UnitError

                raise UnitError(f'band {bname!r} of {sensor_id!r} needs "center" (and optional "fwhm") or "min"/"max"')
            pol = spec.get('polarization')
            out.append(
                Band(
                    sensor=sid, name=str(bname), center_nm=c, min_nm=lo, max_nm=hi,
                    gsd_m=float(spec['gsd']) if 'gsd' in spec else None,  # type: ignore[arg-type]
                    units=str(spec.get('units', '')), description=str(spec.get('description', '')),
                    polarization=None if pol is None else str(pol).upper(),
                    aliases=tuple(str(a) for a in spec.get('aliases', ()) or ()),  # type: ignore[attr-defined]
                )
            )
    else:
        out = [replace(b, sensor=sid, learned_index=None, release_index=None) for b in bands]
    sensor = Sensor(sid, name or sensor_id, tuple(out), tuple(aliases), description)
    with _lock:
        _add(sensor)
        if convention is not None:
            set_convention(sensor.id, convention)
    return sensor


def unregister_sensor(sensor_id: str) -> None:
    """Remove a user-registered sensor (built-in sensors cannot be removed).

    Raises:
        UnknownSensorError: if the sensor is not registered.
        DuplicateRegistrationError: if it is a built-in sensor.
    """
    with _lock:
        sensor = get_sensor(sensor_id)
        if sensor.id in _builtin_ids:
            raise DuplicateRegistrationError(f'{sensor.id!r} is built in and cannot be unregistered')
        del _sensors[sensor.id]
        remove_convention(sensor.id)
        for k in [k for k, v in _sensor_alias.items() if v == sensor.id]:
            del _sensor_alias[k]
