"""Value conventions: what a sensor's pixel values mean, and how they map to the release's value spaces.

SMARTIES' released statistics live in four *reference value spaces*, one per pretraining product:

* ``'sentinel2_l2a'`` / ``'sentinel2_l1c'``: reflectance × 10000 (Sentinel-2 L2A BOA / L1C TOA);
* ``'maxar_rgb'``: 8-bit digital numbers 0–255 (the fMoW RGB product);
* ``'sentinel1'``: backscatter σ0 in dB.

A :class:`ValueConvention` says how a band's stored values relate to physical units (for reflectance:
``ρ = scale·x + offset``) and which reference space they belong to; :meth:`ValueConvention.to_reference`
gives the affine map ``x_ref = a·x + b`` into that space. Built-in sensors have conventions here, keyed by
sensor id (with per-band overrides, e.g. thermal bands); user sensors get one with
``register_sensor(..., convention=...)`` or :func:`set_convention`.

This module is pure Python (no torch, no numpy): the normalisation code in
:mod:`torchgeo_smarties.transforms` reads it.

.. versionadded:: 0.2
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from threading import RLock
from typing import Literal, get_args

from ..errors import InputError

__all__ = (
    'REFERENCE_SPACES',
    'ValueConvention',
    'ValueKind',
    'check_convention',
    'get_convention',
    'interpolate_stat',
    'list_conventions',
    'remove_convention',
    'set_convention',
)

#: ``'reflectance'``: ``ρ = scale·x + offset``; ``'dn8'``: 8-bit digital numbers; ``'sar_db'`` / ``'sar_linear'``:
#: SAR backscatter in dB / linear power; ``'thermal'``: temperatures (no reference space); ``'unsupported'``: a
#: band with no product SMARTIES statistics can describe (e.g. Landsat panchromatic, which has no Level-2 SR).
ValueKind = Literal['reflectance', 'dn8', 'sar_db', 'sar_linear', 'thermal', 'unsupported']
_KINDS = get_args(ValueKind)

#: Reference value space → (kind, scale, offset) of the values the release's statistics were computed on.
REFERENCE_SPACES: dict[str, tuple[str, float, float]] = {
    'sentinel2_l2a': ('reflectance', 1e-4, 0.0),
    'sentinel2_l1c': ('reflectance', 1e-4, 0.0),
    'maxar_rgb': ('dn8', 1.0, 0.0),
    'sentinel1': ('sar_db', 1.0, 0.0),
}

@dataclass(frozen=True)
class ValueConvention:
    """How a band's stored values relate to physical units and to a reference value space.

    Attributes:
        kind: see :data:`ValueKind`.
        scale: multiplicative factor to physical units (``ρ = scale·x + offset`` for reflectance).
        offset: additive offset to physical units.
        reference: the reference value space (a key of :data:`REFERENCE_SPACES`) whose statistics apply;
            ``None`` for kinds without one (thermal, unsupported).
        description: a short human-readable description (printed and stored in the output tags).

    Raises:
        InputError: for an unknown kind or reference, a non-finite or non-positive scale, or a reference whose
            kind does not match.

    Example:
        >>> ValueConvention.reflectance(0.0000275, -0.2).to_reference()
        (0.275, -2000.0)
    """

    kind: ValueKind
    scale: float = 1.0
    offset: float = 0.0
    reference: str | None = None
    description: str = ''

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise InputError(f'unknown value kind {self.kind!r}; valid: {", ".join(_KINDS)}')
        if not (math.isfinite(self.scale) and math.isfinite(self.offset)) or self.scale <= 0:
            raise InputError(f'a value convention needs a finite positive scale and finite offset, got '
                             f'scale={self.scale!r}, offset={self.offset!r}')
        if self.reference is not None:
            if self.reference not in REFERENCE_SPACES:
                raise InputError(f'unknown reference value space {self.reference!r}; valid: '
                                 f'{", ".join(REFERENCE_SPACES)}')
            ref_kind = REFERENCE_SPACES[self.reference][0]
            compatible = ref_kind == self.kind or (self.kind == 'sar_linear' and ref_kind == 'sar_db')
            if not compatible:
                raise InputError(f'a {self.kind!r} band cannot use the {self.reference!r} statistics '
                                 f'(value kind {ref_kind!r})')

    # ------------------------------------------------------------------ constructors
    @classmethod
    def reflectance(cls, scale: float, offset: float = 0.0, *, reference: str = 'sentinel2_l2a',
                    description: str = '') -> ValueConvention:
        """Scaled reflectance ``ρ = scale·x + offset`` (e.g. ×0.0001 for Sentinel-2/HLS/PlanetScope SR)."""
        desc = description or f'reflectance = {scale:g}·x{offset:+g}'
        return cls('reflectance', scale, offset, reference, desc)

    @classmethod
    def dn8(cls, description: str = '8-bit digital numbers 0–255') -> ValueConvention:
        """8-bit digital numbers (VHR RGB products), normalised with the release's RGB statistics."""
        return cls('dn8', 1.0, 0.0, 'maxar_rgb', description)

    @classmethod
    def sar_db(cls, description: str = 'SAR backscatter σ0 in dB') -> ValueConvention:
        """SAR backscatter in dB (the release's Sentinel-1 value space)."""
        return cls('sar_db', 1.0, 0.0, 'sentinel1', description)

    @classmethod
    def sar_linear(cls, description: str = 'SAR backscatter σ0 in linear power (converted to dB)') -> ValueConvention:
        """SAR backscatter in linear power: converted to dB (``10·log10``) before normalising."""
        return cls('sar_linear', 1.0, 0.0, 'sentinel1', description)

    @classmethod
    def thermal(cls, scale: float = 1.0, offset: float = 0.0, description: str = '') -> ValueConvention:
        """Temperatures (``T = scale·x + offset``): not reflectance, no release statistics apply."""
        return cls('thermal', scale, offset, None, description or f'temperature = {scale:g}·x{offset:+g}')

    @classmethod
    def unsupported(cls, description: str) -> ValueConvention:
        """A band no release statistics can describe; *description* says why (shown in the error)."""
        return cls('unsupported', 1.0, 0.0, None, description)

    # ------------------------------------------------------------------ mapping
    @property
    def has_reference(self) -> bool:
        """Whether the release's statistics can be used for this band."""
        return self.reference is not None

    def to_reference(self) -> tuple[float, float]:
        """``(a, b)`` with ``x_ref = a·x + b`` in the reference value space (``(1, 0)`` for SAR: dB → dB).

        For linear SAR power the map to dB is not affine: the normaliser converts with ``10·log10`` first.

        Raises:
            InputError: if the convention has no reference space.
        """
        if self.reference is None:
            raise InputError(f'{self.kind} values ({self.description}) have no reference value space')
        _, ref_scale, ref_offset = REFERENCE_SPACES[self.reference]
        if self.kind in ('sar_db', 'sar_linear'):
            return 1.0, 0.0
        return self.scale / ref_scale, (self.offset - ref_offset) / ref_scale

    def with_reference(self, reference: str) -> ValueConvention:
        """The same convention with another reference value space (e.g. ``'sentinel2_l1c'`` for TOA products)."""
        return ValueConvention(self.kind, self.scale, self.offset, reference, self.description)

    def label(self) -> str:
        """A one-line label, e.g. ``'reflectance = 2.75e-05·x-0.2 (reference sentinel2_l2a)'``."""
        ref = f' (reference {self.reference})' if self.reference else ''
        return f'{self.description}{ref}'


def interpolate_stat(weights: tuple[float, ...], values: tuple[float, ...]) -> float:
    """``Σ_k A[c, k]·stat_k``: one band's statistic from a row of the plan's mixing matrix.

    Args:
        weights: a row of :meth:`~torchgeo_smarties.spectrum.ProjectionPlan.matrix` (one weight per learned
            range, summing to 1 for a projected band).
        values: the statistic of each learned range in the reference value space (same length).

    Raises:
        InputError: if the lengths differ or the row has no weight (an ignored band).
    """
    if len(weights) != len(values):
        raise InputError(f'{len(weights)} weights for {len(values)} values')
    total = sum(weights)
    if total <= 0:
        raise InputError('the band has no projection weight (an ignored band has no interpolated statistic)')
    return sum(w * v for w, v in zip(weights, values, strict=True) if w) / total


# ---------------------------------------------------------------------------- the conventions table
_LANDSAT_SR = ValueConvention.reflectance(
    0.0000275, -0.2, description='Landsat Collection 2 Level-2 surface reflectance = 0.0000275·x − 0.2')
_LANDSAT_ST = ValueConvention.thermal(
    0.00341802, 149.0, 'Landsat Collection 2 Level-2 surface temperature (K) = 0.00341802·x + 149.0; not reflectance')
_NO_L2 = ValueConvention.unsupported(
    'Landsat panchromatic/cirrus bands have no Collection 2 Level-2 surface-reflectance product')

_BUILTIN_SENSORS: dict[str, ValueConvention] = {
    'sentinel2': ValueConvention.reflectance(1e-4, description='Sentinel-2 reflectance ×10000 (L2A BOA / L1C TOA)'),
    'sentinel1': ValueConvention.sar_db(),
    'maxar': ValueConvention.dn8('Maxar VHR RGB 8-bit DN 0–255'),
    'worldview2': ValueConvention.dn8('WorldView-2 8-bit DN 0–255 (rescale 11-bit products, or use --norm scene)'),
    'worldview3': ValueConvention.dn8('WorldView-3 8-bit DN 0–255 (rescale 11-bit products, or use --norm scene)'),
    'landsat4': _LANDSAT_SR,
    'landsat5': _LANDSAT_SR,
    'landsat7': _LANDSAT_SR,
    'landsat8': _LANDSAT_SR,
    'landsat9': _LANDSAT_SR,
    'planetscope': ValueConvention.reflectance(1e-4, description='PlanetScope surface reflectance ×10000'),
    'superdove': ValueConvention.reflectance(1e-4, description='SuperDove surface reflectance ×10000'),
    'hls_s30': ValueConvention.reflectance(1e-4, description='HLS S30 surface reflectance ×10000'),
    'hls_l30': ValueConvention.reflectance(1e-4, description='HLS L30 surface reflectance ×10000'),
    # hyperspectral sensors (registered by the spectrum tables; harmless where not registered)
    'enmap': ValueConvention.reflectance(1e-4, description='EnMAP L2A surface reflectance ×10000'),
    'emit': ValueConvention.reflectance(1.0, description='EMIT L2A surface reflectance 0–1 (float)'),
    'prisma': ValueConvention.unsupported(
        'PRISMA L2D reflectance scaled per product (L2ScaleVnirMin/Max, L2ScaleSwirMin/Max), not a fixed '
        'convention (rescale it to reflectance first)'),
}
_BUILTIN_BANDS: dict[str, ValueConvention] = {
    'landsat4:B6': _LANDSAT_ST, 'landsat5:B6': _LANDSAT_ST, 'landsat7:B6': _LANDSAT_ST,
    'landsat8:B10': _LANDSAT_ST, 'landsat8:B11': _LANDSAT_ST, 'landsat9:B10': _LANDSAT_ST,
    'landsat9:B11': _LANDSAT_ST,
    'landsat7:B8': _NO_L2, 'landsat8:B8': _NO_L2, 'landsat8:B9': _NO_L2, 'landsat9:B8': _NO_L2, 'landsat9:B9': _NO_L2,
    'hls_l30:B10': ValueConvention.thermal(0.01, 0.0, 'HLS L30 brightness temperature (°C) = 0.01·x; not reflectance'),
    'hls_l30:B11': ValueConvention.thermal(0.01, 0.0, 'HLS L30 brightness temperature (°C) = 0.01·x; not reflectance'),
}

_lock = RLock()
_sensors: dict[str, ValueConvention] = dict(_BUILTIN_SENSORS)
_bands: dict[str, ValueConvention] = dict(_BUILTIN_BANDS)


def set_convention(
    sensor_id: str, convention: ValueConvention, bands: dict[str, ValueConvention] | None = None
) -> None:
    """Declare the value convention of a (user-registered) sensor, with optional per-band overrides.

    ``register_sensor(..., convention=...)`` calls this. Band overrides are keyed by band name.

    Raises:
        InputError: if *convention* is not a :class:`ValueConvention`.
    """
    for conv in (convention, *(bands or {}).values()):
        check_convention(conv)
    with _lock:
        _sensors[sensor_id] = convention
        for name, conv in (bands or {}).items():
            _bands[f'{sensor_id}:{name}'] = conv


def check_convention(convention: object) -> ValueConvention:
    """*convention* if it is a :class:`ValueConvention`.

    Raises:
        InputError: otherwise, naming the constructors.
    """
    if not isinstance(convention, ValueConvention):
        raise InputError(
            f'convention must be a ValueConvention, got {type(convention).__name__}; build one with '
            'ValueConvention.reflectance(scale, offset), .dn8(), .sar_db(), .sar_linear() or .thermal()'
        )
    return convention


def remove_convention(sensor_id: str) -> None:
    """Forget the convention of a sensor and of its bands (``unregister_sensor`` calls this)."""
    with _lock:
        _sensors.pop(sensor_id, None)
        for key in [k for k in _bands if k.split(':', 1)[0] == sensor_id]:
            del _bands[key]


def get_convention(band_id: str) -> ValueConvention | None:
    """The convention of a canonical band id ``'<sensor>:<band>'`` (per-band override first), or ``None``."""
    with _lock:
        if band_id in _bands:
            return _bands[band_id]
        return _sensors.get(band_id.split(':', 1)[0])


def list_conventions() -> dict[str, ValueConvention]:
    """A copy of the per-sensor conventions, sensor id → convention (for docs and the CLI)."""
    with _lock:
        return dict(_sensors)
