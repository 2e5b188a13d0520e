"""Wavelength units: everything is stored in nanometres.

Users may give wavelengths in nm, µm, mm, cm, m, or as a frequency in GHz/MHz
(for SAR), always with an explicit unit. A bare number is refused: unit
mix-ups (µm vs nm, SAR placeholder values) are the most common silent error
with spectral foundation models.
"""

import math
import warnings
from typing import Final

from ..errors import UnitError, UnitSlipWarning
from .ranges import LEARNED_RANGES

__all__ = ('SPEED_OF_LIGHT', 'UNITS', 'check_unit', 'check_unit_slip', 'parse_quantity', 'to_nm')

#: Speed of light in vacuum, m/s.
SPEED_OF_LIGHT: Final = 299_792_458.0

_LENGTH_FACTORS: Final[dict[str, float]] = {
    'nm': 1.0,
    'um': 1e3,
    'µm': 1e3,
    'μm': 1e3,
    'micron': 1e3,
    'mm': 1e6,
    'cm': 1e7,
    'm': 1e9,
}
_FREQUENCY_FACTORS: Final[dict[str, float]] = {'ghz': 1e9, 'mhz': 1e6, 'hz': 1.0}

#: Accepted unit spellings (case-insensitive).
UNITS: Final = tuple(_LENGTH_FACTORS) + ('GHz', 'MHz', 'Hz')


def to_nm(value: float, unit: str | None) -> float:
    """Convert a wavelength (or a SAR frequency) to nanometres.

    Args:
        value: the number, strictly positive.
        unit: one of :data:`UNITS` (case-insensitive). Frequencies are converted
            with λ = c / f.

    Returns:
        The wavelength in nm.

    Raises:
        UnitError: if *unit* is missing or unknown, or *value* is not positive.
    """
    if unit is None or not str(unit).strip():
        raise UnitError(
            f'wavelength {value!r} has no unit; give one of {", ".join(UNITS)} '
            "(e.g. to_nm(0.665, 'um') or '5.405 GHz' for C-band SAR)"
        )
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise UnitError(f'wavelength {value!r} is not a number') from err
    if not (number > 0 and math.isfinite(number)):
        raise UnitError(f'wavelength must be a positive finite number, got {value!r} {unit}')
    key = str(unit).strip()
    if key in _LENGTH_FACTORS:
        return number * _LENGTH_FACTORS[key]
    low = key.lower()
    if low in _LENGTH_FACTORS:
        return number * _LENGTH_FACTORS[low]
    if low in _FREQUENCY_FACTORS:
        return SPEED_OF_LIGHT / (number * _FREQUENCY_FACTORS[low]) * 1e9
    raise UnitError(f'unknown wavelength unit {unit!r}; valid units: {", ".join(UNITS)}')


def parse_quantity(text: str) -> float:
    """Parse a string such as ``'665 nm'``, ``'0.665um'`` or ``'5.405 GHz'`` to nm.

    Raises:
        UnitError: if the string has no unit or an unknown one.
    """
    stripped = text.strip()
    i = len(stripped)
    while i > 0 and not (stripped[i - 1].isdigit() or stripped[i - 1] == '.'):
        i -= 1
    number, unit = stripped[:i].strip(), stripped[i:].strip()
    if not number:
        raise UnitError(f'cannot read a wavelength from {text!r}; write e.g. "665 nm"')
    return to_nm(float(number), unit or None)


def check_unit(unit: str | None) -> None:
    """Validate a unit option (``None`` is allowed: no default unit).

    Raises:
        SpectrumOptionError: if *unit* is not one of :data:`UNITS`, listing them.
    """
    if unit is None:
        return
    key = str(unit).strip()
    if key not in _LENGTH_FACTORS and key.lower() not in _LENGTH_FACTORS and key.lower() not in _FREQUENCY_FACTORS:
        raise UnitError(f'unknown wavelength unit {unit!r}; valid units: {", ".join(UNITS)}')


#: Where real remote-sensing bands lie: optical to thermal infrared, and microwave (Ka- to P-band and beyond).
_PLAUSIBLE_NM: Final = ((300.0, 20_000.0), (1e6, 1e10))
_ALTERNATIVE_UNITS: Final = ('nm', 'µm', 'GHz')


def _in_learned_range(nm: float) -> bool:
    return any(r.min_nm <= nm <= r.max_nm for r in LEARNED_RANGES)


def _plausible(nm: float) -> bool:
    return any(lo <= nm <= hi for lo, hi in _PLAUSIBLE_NM)


def check_unit_slip(value: float, unit: str, *, where: str = '') -> None:
    """Warn when ``value unit`` lands far from every learned range and from any real band.

    ``865 um`` typed for ``865 nm`` is 865 000 nm: inside the pretraining spectrum's
    bounds (422 nm – 5.6 cm), so no error is raised later, yet no sensor has a band
    there. The warning names the unit that puts the number into a learned range.

    Args:
        value: the number as typed.
        unit: its unit as typed.
        where: a prefix naming the band, e.g. ``'band mysat:nir: '``.

    Warns:
        UnitSlipWarning: naming the likely intended unit.
    """
    nm = to_nm(value, unit)
    if _plausible(nm):
        return
    given = to_nm(1.0, unit)
    alternatives = [(alt, to_nm(value, alt)) for alt in _ALTERNATIVE_UNITS if to_nm(1.0, alt) != given]
    best = [a for a in alternatives if _in_learned_range(a[1])] or [a for a in alternatives if _plausible(a[1])]
    hint = f'; did you mean {value:g} {best[0][0]} (= {best[0][1]:.6g} nm)?' if best else ''
    warnings.warn(
        f'{where}{value:g} {unit} = {nm:.6g} nm lies in no learned range and far from any remote-sensing band '
        f'(optical/thermal {_PLAUSIBLE_NM[0][0]:g}–{_PLAUSIBLE_NM[0][1]:g} nm, microwave from 1 mm){hint}',
        UnitSlipWarning,
        stacklevel=3,
    )
