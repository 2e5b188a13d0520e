import pytest

from torchgeo_smarties.errors import SmartiesError, UnitError
from torchgeo_smarties.spectrum import UNITS, parse_quantity, to_nm


@pytest.mark.parametrize(
    ('value', 'unit', 'expected'),
    [
        (665, 'nm', 665.0),
        (0.665, 'um', 665.0),
        (0.665, 'µm', 665.0),
        (0.665, 'μm', 665.0),  # Greek mu, not the micro sign
        (0.665, 'UM', 665.0),
        (6.65e-7, 'm', 665.0),
        (5.5, 'cm', 5.5e7),
        (55.0, 'mm', 5.5e7),
        (0.665, 'micron', 665.0),
    ],
)
def test_length_units(value: float, unit: str, expected: float) -> None:
    assert to_nm(value, unit) == pytest.approx(expected, rel=1e-12)


def test_c_band_frequency() -> None:
    # λ = c / f: 299792458 / 5.405e9 m = 5.5466 cm
    assert to_nm(5.405, 'GHz') == pytest.approx(5.5466e7, rel=1e-4)
    assert to_nm(5.405, 'ghz') == pytest.approx(55_465_764.66, rel=1e-9)
    assert to_nm(5405, 'MHz') == pytest.approx(to_nm(5.405, 'GHz'), rel=1e-12)


def test_l_band_frequency() -> None:
    # ALOS-2 PALSAR L-band, 1.2365 GHz -> 24.25 cm
    assert to_nm(1.2365, 'GHz') / 1e7 == pytest.approx(24.245, abs=1e-3)


@pytest.mark.parametrize(
    ('text', 'expected'),
    [('665 nm', 665.0), ('0.665um', 665.0), ('0.665 µm', 665.0), ('5.405 GHz', 55_465_764.66), (' 12 cm ', 1.2e8)],
)
def test_parse_quantity(text: str, expected: float) -> None:
    assert parse_quantity(text) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize('unit', [None, '', '   '])
def test_missing_unit(unit: str | None) -> None:
    with pytest.raises(UnitError, match='no unit') as info:
        to_nm(665, unit)
    # the message names the fix: the valid units
    assert 'nm' in str(info.value) and 'GHz' in str(info.value)


@pytest.mark.parametrize('unit', ['nanometre', 'kHz ', 'inch', 'A'])
def test_wrong_unit(unit: str) -> None:
    with pytest.raises(UnitError, match='unknown wavelength unit') as info:
        to_nm(665, unit)
    for u in ('nm', 'um', 'GHz'):
        assert u in str(info.value)


@pytest.mark.parametrize('value', [0, -1.0])
def test_non_positive(value: float) -> None:
    with pytest.raises(UnitError, match='positive'):
        to_nm(value, 'nm')


def test_parse_quantity_errors() -> None:
    with pytest.raises(UnitError, match='no unit'):
        parse_quantity('665')
    with pytest.raises(UnitError, match='cannot read'):
        parse_quantity('nm')
    with pytest.raises(UnitError, match='unknown'):
        parse_quantity('665 furlongs')


def test_unit_error_is_value_error() -> None:
    assert issubclass(UnitError, SmartiesError)
    assert issubclass(UnitError, ValueError)
    assert {'nm', 'um', 'm', 'GHz'} <= set(UNITS)
