"""Wavelength units: everything is stored in nanometres.

Users may give wavelengths in nm, µm, mm, cm, m, or as a frequency in GHz/MHz
(for SAR), always with an explicit unit. A bare number is refused: unit
mix-ups (µm vs nm, SAR placeholder values) are the most common silent error
with spectral foundation models.
"""

from typing import Final

from ..errors import UnitError

__all__ = ('SPEED_OF_LIGHT', 'UNITS', 'parse_quantity', 'to_nm')

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
    if not number > 0:
        raise UnitError(f'wavelength must be positive, got {value!r} {unit}')
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
