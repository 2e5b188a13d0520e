"""The sensor band registry: look up bands by ``'<sensor>:<band>'`` and presets by name.

Lookups are case-insensitive and accept aliases (``'s2:b8a'``, ``'landsat8:swir16'``).
Users register their own sensors at run time with :func:`register_sensor`; a
registered sensor is usable everywhere a built-in one is (encoder, transforms, CLI).
The registry is pure Python: it never touches tensors.
"""

import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from difflib import get_close_matches
from pathlib import Path
from threading import RLock
from typing import Final, TextIO

from ..errors import (
    AbsorptionBandWarning,
    AmbiguousBandError,
    BandDefinitionError,
    DuplicateBandError,
    DuplicateRegistrationError,
    EmptyBandListError,
    PolarizationError,
    SensorIdError,
    UnitError,
    UnknownBandError,
    UnknownPresetError,
    UnknownSensorError,
)
from .conventions import ValueConvention, check_convention, remove_convention, set_convention
from .sensors import POLARIZATIONS, Band, Sensor, builtin_sensors
from .units import check_unit, check_unit_slip, to_nm

__all__ = (
    'BAND_FIELDS',
    'PRESETS',
    'BandSpec',
    'check_distinct_bands',
    'get_band',
    'get_sensor',
    'list_presets',
    'list_sensors',
    'register_preset',
    'register_sensor',
    'register_sensor_from_table',
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

#: The fields a band may have in :func:`register_sensor`'s mapping form.
BAND_FIELDS: Final = (
    'center', 'fwhm', 'min', 'max', 'unit', 'gsd', 'units', 'description', 'polarization', 'aliases', 'absorption',
)  # fmt: skip

#: A sensor id, alias or preset name: a letter, then letters, digits, '_' or '-' (no ':', ',', '.', whitespace).
_ID_RE: Final = re.compile(r'[A-Za-z][A-Za-z0-9_-]*')

_lock = RLock()
_sensors: dict[str, Sensor] = {}
#: Built-in sensors read from band tables on first use (id -> aliases): keeps `import` fast.
_pending: dict[str, tuple[str, ...]] = {}
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


#: Hyperspectral sensors shipped as band tables in ``data/sensors/``: id -> (name, aliases, value units, description).
_TABLE_SENSORS: Final = {
    'enmap': ('EnMAP HSI', ('enmap_hsi',), 'surface reflectance ×10000 (L2A)',
              'EnMAP hyperspectral imager (DLR): 224 bands, VNIR 418–993 nm and SWIR 902–2445 nm, 30 m; '
              'centres from DLR\'s band table, FWHM nominal (centre spacing).'),
    'emit': ('EMIT', ('emit_l2a',), 'surface reflectance 0–1 (L2A, float32)',
             'EMIT imaging spectrometer on the ISS (NASA JPL): 285 bands, 381–2493 nm, 60 m; '
             'centres and FWHM from the EMIT SDS wavelength calibration.'),
    'prisma': ('PRISMA HYC', ('prisma_hyc',), 'surface reflectance, scaled integer (L2D)',
               'PRISMA hyperspectral camera (ASI): VNIR 66 + SWIR 171 bands, 400–2505 nm, 30 m; '
               'NOMINAL table from the published specification (real centres vary per scene).'),
}  # fmt: skip


def _table_sensor(sid: str) -> Sensor:
    from .tables import builtin_table

    name, aliases, units, description = _TABLE_SENSORS[sid]
    bands = tuple(_band_from_spec(sid, bname, {**spec, 'units': units}, None) for bname, spec in builtin_table(sid))
    return Sensor(sid, name, bands, aliases, description)


def _init() -> None:
    for s in builtin_sensors():
        _add(s)
        _builtin_ids.add(s.id)
    for sid, (_, aliases, _, _) in _TABLE_SENSORS.items():
        for key in (sid, *aliases):
            _sensor_alias[_norm(key)] = sid
        _pending[sid] = aliases
        _builtin_ids.add(sid)


def _sensor(sid: str) -> Sensor:
    """The registered sensor *sid* (an id, not an alias), reading a pending band table on first use."""
    with _lock:
        if sid in _pending:
            _sensors[sid] = _table_sensor(sid)
            del _pending[sid]
        return _sensors[sid]


def _ids() -> list[str]:
    """Every registered sensor id, in registration order (built-in multispectral, hyperspectral, user)."""
    builtin = [k for k in _sensors if k in _builtin_ids and k not in _TABLE_SENSORS]
    return builtin + list(_TABLE_SENSORS) + [k for k in _sensors if k not in _builtin_ids]


def _check_id(text: object, what: str) -> str:
    """Validate a sensor id / alias / preset name; returns its normalised key."""
    if not isinstance(text, str) or not _ID_RE.fullmatch(text):
        raise SensorIdError(
            f'{what} {text!r} is not a valid name: use a letter, then letters, digits, "_" or "-" '
            '(no ":", ",", ".", or whitespace: band ids are written "<sensor>:<band>" and lists are comma-separated)'
        )
    return _norm(text)


def _check_band_name(name: object, sensor_id: str) -> str:
    if not isinstance(name, str) or not name.strip() or name != name.strip() or any(c in name for c in ',:'):
        raise SensorIdError(
            f'band name {name!r} of sensor {sensor_id!r} is not valid: give a non-empty name without ",", ":" or '
            'leading/trailing whitespace'
        )
    return name


def list_sensors() -> tuple[Sensor, ...]:
    """All registered sensors (built-in first, then user-registered)."""
    with _lock:
        return tuple(_sensor(sid) for sid in _ids())


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
                + f'; registered sensors: {", ".join(_ids())}. Register your own with '
                'torchgeo_smarties.spectrum.register_sensor().'
            )
        return _sensor(sid)


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
            f'(sensors: {", ".join(_ids())}), or use a preset name ({", ".join(PRESETS)})'
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
        SensorIdError: if *name* has invalid characters or is a sensor id/alias (a preset would hide the sensor).
        DuplicateBandError: if a band is listed twice.
    """
    key = _check_id(name, 'preset name')
    if isinstance(bands, str):
        raise BandDefinitionError(f'register_preset({name!r}, ...) takes a list of band ids, not the string {bands!r}')
    resolved = resolve_bands(list(bands))
    check_distinct_bands(resolved)
    with _lock:
        if key in _sensor_alias and key not in PRESETS:
            raise SensorIdError(
                f'preset name {name!r} is the sensor {_sensor_alias[key]!r} (id or alias): a preset would hide it; '
                'pick another name'
            )
        if key in PRESETS and not overwrite:
            raise DuplicateRegistrationError(f'preset {name!r} already exists; pass overwrite=True to replace it')
        PRESETS[key] = tuple(b.id for b in resolved)


def check_distinct_bands(bands: Sequence[Band]) -> None:
    """Refuse a band list that names the same band twice (e.g. ``'s2:red'`` and ``'sentinel2:B04'``).

    Raises:
        DuplicateBandError: naming the band and both channel positions.
    """
    seen: dict[str, int] = {}
    for i, b in enumerate(bands):
        if b.id in seen:
            raise DuplicateBandError(
                f'band {b.id} is listed twice (channels {seen[b.id]} and {i}); each image channel must be a '
                'different band: check the band order, or embed repeated acquisitions separately'
            )
        seen[b.id] = i


def resolve_bands(bands: str | Iterable[BandSpec]) -> tuple[Band, ...]:
    """Resolve a preset name, a sensor id, or a list of band ids into :class:`Band` objects.

    Args:
        bands: a preset name (``'sentinel2_l2a'``), a sensor id (its default band
            set: every band not flagged ``absorption``, in canonical order), a
            comma-separated string of band ids, or a sequence of band ids /
            :class:`Band` objects. The order is kept: it must be the
            order of the image channels.

    Warns:
        AbsorptionBandWarning: if a band flagged ``absorption`` is named explicitly.

    Raises:
        EmptyBandListError: if no band is given.
        UnknownPresetError: if a single name is neither a preset nor a sensor.
    """
    explicit = True  # named band by band (not a preset or a sensor's default set)
    if isinstance(bands, str):
        text = bands.strip()
        if not text.strip(' ,'):
            items: list[BandSpec] = []
        elif ',' in text:
            items = [t.strip() for t in text.split(',') if t.strip()]
        elif ':' in text:
            items = [text]
        else:
            key = _norm(text)
            explicit = False
            if key in PRESETS:
                items = list(PRESETS[key])
            elif key in _sensor_alias:
                sid = _sensor_alias[key]  # an alias of a sensor that is also a preset means the preset
                items = list(PRESETS[sid]) if sid in PRESETS else [b.id for b in _sensor(sid).default_bands]
            else:
                hint = get_close_matches(key, list(PRESETS) + list(_sensor_alias), n=3)
                raise UnknownPresetError(
                    f'{bands!r} is not a band preset or a sensor'
                    + (f' (did you mean {", ".join(hint)}?)' if hint else '')
                    + f'; presets: {", ".join(PRESETS)}; or give a list of "<sensor>:<band>" ids'
                )
    elif isinstance(bands, Iterable):
        items = list(bands)
    else:
        raise UnknownBandError(
            f'bands must be a preset name, a sensor id, or a list of "<sensor>:<band>" ids, got {type(bands).__name__}'
        )
    if not items:
        raise EmptyBandListError('the band list is empty; give at least one band, e.g. ["sentinel2:B04"]')
    resolved = tuple(get_band(b) for b in items)
    flagged = [b.id for b in resolved if b.absorption] if explicit else []
    if flagged:
        warnings.warn(
            f'{", ".join(flagged)} lie(s) in a water-vapour absorption window (≈1.35–1.45 µm / ≈1.8–1.95 µm): '
            'these bands are mostly noise over land and are left out of the sensor\'s default band set; '
            'drop them unless you need them',
            AbsorptionBandWarning,
            stacklevel=2,
        )
    return resolved


def _number(spec: Mapping[str, object], key: str, where: str) -> float:
    value = spec[key]
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BandDefinitionError(f'{where}: {key!r} must be a number, got {value!r}')
    try:
        number = float(value)
    except ValueError as err:
        raise BandDefinitionError(f'{where}: {key!r} must be a number, got {value!r}') from err
    if not math.isfinite(number):
        raise BandDefinitionError(f'{where}: {key!r} must be finite, got {value!r}')
    return number


def _names(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not all(isinstance(a, str) for a in value):
        raise BandDefinitionError(f'{where}: aliases must be a list of strings, got {value!r}')
    return tuple(value)


def _band_from_spec(sid: str, bname: object, spec: object, unit: str | None) -> Band:
    """One band of :func:`register_sensor`'s mapping form."""
    name = _check_band_name(bname, sid)
    where = f'band {sid}:{name}'
    if not isinstance(spec, Mapping):
        raise BandDefinitionError(
            f'{where}: the band must be a mapping of fields, e.g. {{"center": 665, "fwhm": 30, "unit": "nm"}}, '
            f'got {spec!r}'
        )
    unknown = sorted(str(k) for k in spec if k not in BAND_FIELDS)
    if unknown:
        hints = {k: get_close_matches(k, BAND_FIELDS, n=1) for k in unknown}
        said = ', '.join(f'{k!r}' + (f' (did you mean {h[0]!r}?)' if h else '') for k, h in hints.items())
        raise BandDefinitionError(f'{where}: unknown field(s) {said}; valid fields: {", ".join(BAND_FIELDS)}')
    u = spec.get('unit', unit)
    u = None if u is None else str(u)
    check_unit(u)
    has_centre, has_edges = 'center' in spec, ('min' in spec or 'max' in spec)
    if has_centre and has_edges:
        raise BandDefinitionError(f'{where}: give either "center" (and optional "fwhm") or "min" and "max", not both')
    if has_centre:
        if u is None:
            to_nm(_number(spec, 'center', where), None)  # raises the "no unit" UnitError
        centre_value = _number(spec, 'center', where)
        c = to_nm(centre_value, u)
        slip_value, slip_unit = centre_value, u
        frequency = u is not None and u.strip().lower() in ('ghz', 'mhz', 'hz')
        w = 0.0
        if 'fwhm' in spec and not frequency:
            fwhm = _number(spec, 'fwhm', where)
            if fwhm < 0:
                raise BandDefinitionError(f'{where}: fwhm must be >= 0, got {fwhm:g}')
            w = to_nm(fwhm, u) if fwhm > 0 else 0.0
        lo, hi = c - w / 2, c + w / 2
        if lo <= 0:
            raise BandDefinitionError(f'{where}: fwhm {w:g} nm is wider than twice the centre {c:g} nm')
    elif 'min' in spec and 'max' in spec:
        a, b = _number(spec, 'min', where), _number(spec, 'max', where)
        if a > b:
            raise BandDefinitionError(f'{where}: min {a:g} > max {b:g}; give the lower edge as "min"')
        lo, hi = to_nm(a, u), to_nm(b, u)
        lo, hi = min(lo, hi), max(lo, hi)  # frequencies: the lower frequency is the longer wavelength
        c = 0.5 * (lo + hi)
        slip_value, slip_unit = 0.5 * (a + b), u
    else:
        raise UnitError(f'{where} needs "center" (and optional "fwhm") or "min" and "max"')
    if slip_unit is not None:
        check_unit_slip(slip_value, slip_unit, where=f'{where}: ')
    pol = spec.get('polarization')
    if pol is not None and (not isinstance(pol, str) or pol.strip().upper() not in POLARIZATIONS):
        raise PolarizationError(f'{where}: unknown polarization {pol!r}; valid: {", ".join(POLARIZATIONS)}')
    absorption = spec.get('absorption', False)
    if not isinstance(absorption, bool):
        raise BandDefinitionError(f'{where}: absorption must be true or false, got {absorption!r}')
    return Band(
        sensor=sid, name=name, center_nm=c, min_nm=lo, max_nm=hi,
        gsd_m=_number(spec, 'gsd', where) if spec.get('gsd') is not None else None,
        units=str(spec.get('units', '')), description=str(spec.get('description', '')),
        polarization=None if pol is None else pol.strip().upper(),
        aliases=_names(spec.get('aliases', ()) or (), where),
        absorption=absorption,
    )  # fmt: skip


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
    ``band name -> fields``. Fields (:data:`BAND_FIELDS`): ``center`` (or ``min`` and
    ``max``), optional ``fwhm`` (bandwidth), ``unit`` (per band, else the *unit*
    argument — required: no bare numbers), ``gsd`` (m), ``units`` (value units, free
    text), ``polarization`` (SAR only: VV, VH, HH, HV), ``aliases``, ``description``,
    ``absorption`` (a water-vapour absorption band, left out of the default band
    set ``resolve_bands('<sensor id>')``). Example::

        register_sensor('mysat', {'blue': {'center': 0.49, 'fwhm': 0.06, 'unit': 'um'},
                                  'nir': {'min': 780, 'max': 900, 'unit': 'nm'}})

    *convention* (a :class:`~torchgeo_smarties.spectrum.conventions.ValueConvention`) says what the pixel
    values are (e.g. ``ValueConvention.reflectance(0.0001)``), so that the default normalisation can map
    them onto the release's statistics; without it, give statistics explicitly (``--stats``/``--norm``).

    Args:
        sensor_id: the new id: a letter, then letters, digits, ``_`` or ``-``; not a
            preset name.
        bands: the bands, in canonical (channel) order.
        name: display name (default: *sensor_id*).
        aliases: other names of the sensor (same rules as *sensor_id*).
        unit: the default wavelength unit of the mapping form (one of :data:`~.units.UNITS`).
        description: free text.
        convention: what the pixel values are (see above); default: none, give statistics explicitly.

    Returns:
        The registered :class:`Sensor`.

    Warns:
        UnitSlipWarning: if a wavelength lies far from every learned range and any
            real band (e.g. ``865 um`` typed for ``865 nm``).

    Raises:
        DuplicateRegistrationError: if the id/alias or a band name is taken.
        SensorIdError: if the id, an alias or a band name has invalid characters, or
            the id/alias is a preset name.
        UnitError: if a wavelength has no unit or an unknown one, or is not positive.
        BandDefinitionError: for unknown fields, non-numbers, ``min > max``, a negative FWHM, …
        PolarizationError: for a polarisation on an optical band, or an unknown one.
        EmptyBandListError: if no band is given.
    """
    sid = _check_id(sensor_id, 'sensor id')
    keys = [sid, *(_check_id(a, 'sensor alias') for a in _names(aliases, f'sensor {sensor_id!r}'))]
    taken = sorted(k for k in keys if k in PRESETS)
    if taken:
        raise SensorIdError(
            f'cannot register sensor {sensor_id!r}: {taken} is a band preset name, and a preset wins over a sensor '
            'in band lists; pick another id/alias'
        )
    check_unit(unit)
    if isinstance(bands, str | bytes) or not isinstance(bands, Mapping | Sequence):
        raise BandDefinitionError(
            f'sensor {sensor_id!r}: bands must be a mapping "band name -> fields" or a list of Band objects, '
            f'got {type(bands).__name__}'
        )
    if convention is not None:
        check_convention(convention)
    if not bands:
        raise EmptyBandListError(f'sensor {sensor_id!r} needs at least one band')
    out: list[Band] = []
    if isinstance(bands, Mapping):
        out = [_band_from_spec(sid, bname, spec, unit) for bname, spec in bands.items()]
    else:
        for b in bands:
            if not isinstance(b, Band):
                raise BandDefinitionError(
                    f'sensor {sensor_id!r}: a band list must hold Band objects, got {type(b).__name__} {b!r}; '
                    'use the mapping form {"name": {"center": ..., "unit": ...}} for plain values'
                )
            _check_band_name(b.name, sid)
            check_unit_slip(b.center_nm, 'nm', where=f'band {sid}:{b.name}: ')
            out.append(replace(b, sensor=sid, learned_index=None, release_index=None))
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


def register_sensor_from_table(
    path_or_file: str | Path | TextIO,
    sensor_id: str,
    *,
    name: str | None = None,
    aliases: Sequence[str] = (),
    description: str = '',
    units: str = '',
    flag_absorption: bool = True,
) -> Sensor:
    """Register a sensor from a CSV band table (columns ``name, center, fwhm, unit[, gsd][, absorption]``).

    Lines starting with ``#`` are comments (cite the table's source there). Every row
    goes through the same checks as :func:`register_sensor`. Bands centred in a
    water-vapour absorption window (≈1.35–1.45 µm, ≈1.8–1.95 µm) are flagged
    ``absorption`` and left out of the sensor's default band set (an explicit band id
    still works, with an :class:`~torchgeo_smarties.errors.AbsorptionBandWarning`). Example::

        register_sensor_from_table('hyspex.csv', 'hyspex')
        plan_bands('hyspex')  # every band but the absorption ones

    Args:
        path_or_file: a path or an open text file.
        sensor_id: the new sensor id (rules of :func:`register_sensor`).
        name: display name (default: *sensor_id*).
        aliases: other names of the sensor.
        description: free text (e.g. the table's source).
        units: what the product's pixel values are (free text, for every band).
        flag_absorption: flag the absorption-window bands (an ``absorption`` column wins).

    Returns:
        The registered :class:`Sensor`.

    Raises:
        SensorTableError: if the file is missing or unreadable, or its header or a row is malformed.
        SmartiesError: any error of :func:`register_sensor` for the rows' values.
    """
    from .tables import read_band_table

    rows = read_band_table(path_or_file, flag_absorption=flag_absorption)
    return register_sensor(
        sensor_id,
        {bname: {**spec, 'units': units} for bname, spec in _unique_rows(rows, sensor_id)},
        name=name,
        aliases=aliases,
        description=description,
    )


def _unique_rows(rows: list[tuple[str, dict[str, object]]], sensor_id: str) -> list[tuple[str, dict[str, object]]]:
    seen = set()
    for bname, _ in rows:
        key = _norm(bname)
        if key in seen:
            raise DuplicateRegistrationError(f'sensor table of {sensor_id!r} lists band {bname!r} more than once')
        seen.add(key)
    return rows


_init()
