"""Bad input to the spectrum API (band registry, units, plans) and to ``smarties bands`` (issue 10).

Each test asserts the typed error (or warning) class and a phrase of its message that names the fix.
"""

import io
import math
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from torchgeo_smarties import errors
from torchgeo_smarties.spectrum import (
    Band,
    get_sensor,
    plan_bands,
    register_preset,
    register_sensor,
    register_sensor_from_table,
    resolve_bands,
    unregister_sensor,
)
from torchgeo_smarties.spectrum.registry import PRESETS

ROOT = Path(__file__).resolve().parents[2]
RED = {'center': 665, 'fwhm': 30, 'unit': 'nm'}


@pytest.fixture
def sensor_ids() -> Iterator[list[str]]:
    """Sensor ids to unregister after the test (a test that registers by mistake leaves nothing behind)."""
    ids: list[str] = ['badsat']
    yield ids
    for sid in ids:
        try:
            unregister_sensor(sid)
        except ValueError:
            pass


# class: optical band registered with a SAR polarisation (would route to the VV projection)
def test_polarization_on_optical_band(sensor_ids: list[str]) -> None:
    with pytest.raises(errors.PolarizationError, match='only for microwave'):
        register_sensor('badsat', {'red': {**RED, 'polarization': 'VV'}})
    with pytest.raises(errors.PolarizationError, match='only for microwave'):
        Band('badsat', 'red', 665.0, 650.0, 680.0, 10.0, '', polarization='VV')
    # a microwave band may carry it
    sensor = register_sensor('badsat', {'vv': {'center': 5.405, 'unit': 'GHz', 'polarization': 'vv'}})
    assert plan_bands(['badsat:vv']).entries[0].indices == (15,)
    assert sensor.bands[0].is_sar


# class: unknown polarisation value
def test_unknown_polarization(sensor_ids: list[str]) -> None:
    with pytest.raises(errors.PolarizationError, match='valid: VV, VH, HH, HV'):
        register_sensor('badsat', {'x': {'center': 5.405, 'unit': 'GHz', 'polarization': 'XY'}})


# class: unit slip, 865 um typed for 865 nm (inside the spectrum's bounds, far from every learned range)
@pytest.mark.parametrize(
    ('spec', 'hint'),
    [
        ({'center': 865, 'fwhm': 20, 'unit': 'um'}, 'did you mean 865 nm'),
        ({'min': 845, 'max': 885, 'unit': 'um'}, 'did you mean 865 nm'),
        ({'center': 0.865, 'unit': 'nm'}, 'did you mean 0.865 µm'),
        ({'center': 5.405, 'unit': 'MHz', 'polarization': 'VV'}, 'did you mean 5.405 GHz'),
    ],
)
def test_unit_slip_warns(sensor_ids: list[str], spec: dict[str, object], hint: str) -> None:
    with pytest.warns(errors.UnitSlipWarning, match=hint) as record:
        register_sensor('badsat', {'nir': spec})  # a warning, not an error: the sensor is registered
    assert get_sensor('badsat').bands[0].name == 'nir'
    assert 'lies in no learned range' in str(record[0].message)


def test_plausible_bands_do_not_warn(sensor_ids: list[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter('error', errors.UnitSlipWarning)
        register_sensor('badsat', {
            'nir': {'center': 0.865, 'fwhm': 0.02, 'unit': 'um'},
            'tir': {'min': 10.6, 'max': 11.2, 'unit': 'um'},
            'l_band': {'center': 1.27, 'unit': 'GHz', 'polarization': 'HH'},
        })  # fmt: skip


# class: sensor id with ':', ',', '.', whitespace or empty
@pytest.mark.parametrize('sid', ['my:sat', 'my,sat', 'my sat', ' mysat', 'my.sat', '', '1sat'])
def test_bad_sensor_id(sid: str) -> None:
    with pytest.raises(errors.SensorIdError, match='not a valid name'):
        register_sensor(sid, {'red': RED})


# class: sensor id or alias equal to a preset name (the preset would win in band lists)
@pytest.mark.parametrize(('sid', 'aliases'), [('eurosat', ()), ('badsat', ('sentinel2_l2a',))])
def test_sensor_id_is_a_preset(sensor_ids: list[str], sid: str, aliases: tuple[str, ...]) -> None:
    with pytest.raises(errors.SensorIdError, match='is a band preset name'):
        register_sensor(sid, {'red': RED}, aliases=aliases)


# class: preset name equal to a sensor id/alias, or with bad characters
@pytest.mark.parametrize(('name', 'phrase'), [('s1', 'would hide it'), ('my:rgb', 'not a valid name')])
def test_bad_preset_name(name: str, phrase: str) -> None:
    with pytest.raises(errors.SensorIdError, match=phrase):
        register_preset(name, ['s2:B04'])
    assert name not in PRESETS


# class: band name with ',' / ':' / surrounding whitespace
@pytest.mark.parametrize('name', ['red,nir', 'a:b', ' red', ''])
def test_bad_band_name(name: str) -> None:
    with pytest.raises(errors.SensorIdError, match='band name'):
        register_sensor('badsat', {name: RED})


# class: out_of_range value that is not valid ('clip' acted as 'nearest')
def test_bad_out_of_range() -> None:
    with pytest.raises(errors.SpectrumOptionError, match="valid: error, nearest"):
        plan_bands('sentinel2_l2a', out_of_range='clip')  # type: ignore[arg-type]


# class: unknown interpolation policy
def test_bad_policy() -> None:
    with pytest.raises(errors.SpectrumOptionError, match='valid: linear, nearest, official, learned'):
        plan_bands('landsat8', policy='cubic')  # type: ignore[arg-type]


# class: unknown default unit of register_sensor (checked even when every band has its own unit)
def test_bad_default_unit() -> None:
    with pytest.raises(errors.UnitError, match='valid units: nm'):
        register_sensor('badsat', {'red': RED}, unit='furlong')


# class: unknown unit on one band
def test_bad_band_unit() -> None:
    with pytest.raises(errors.UnitError, match="unknown wavelength unit 'nanometre'"):
        register_sensor('badsat', {'red': {'center': 665, 'unit': 'nanometre'}})


# class: empty band list (list, string, only commas)
@pytest.mark.parametrize('bands', [[], '', ' , ', ()])
def test_empty_band_list(bands: list[str] | str) -> None:
    with pytest.raises(errors.EmptyBandListError, match='at least one band'):
        plan_bands(bands)


# class: a sensor registered without bands
def test_sensor_without_bands() -> None:
    with pytest.raises(errors.EmptyBandListError, match='at least one band'):
        register_sensor('badsat', {})


# class: the same band twice in a preset (directly or through an alias)
@pytest.mark.parametrize('bands', [['s2:B04', 's2:B04'], ['sentinel2:B04', 's2:red', 's2:B03']])
def test_duplicate_band_in_preset(bands: list[str]) -> None:
    with pytest.raises(errors.DuplicateBandError, match='listed twice'):
        register_preset('dup_preset', bands)
    assert 'dup_preset' not in PRESETS
    # a plan may hold a band twice: the release averages over every entry (conformance case duplicated_b02)
    assert plan_bands(bands).num_active == len(bands)


# class: zero or negative wavelength
@pytest.mark.parametrize('spec', [{'center': 0, 'unit': 'nm'}, {'center': -665, 'unit': 'nm'},
                                  {'min': -10, 'max': 900, 'unit': 'nm'}])  # fmt: skip
def test_non_positive_wavelength(spec: dict[str, object]) -> None:
    with pytest.raises(errors.UnitError, match='positive'):
        register_sensor('badsat', {'x': spec})


# class: non-finite wavelength (inf / nan)
@pytest.mark.parametrize('value', [math.inf, math.nan, 'inf'])
def test_non_finite_wavelength(value: object) -> None:
    with pytest.raises(errors.BandDefinitionError, match='must be finite'):
        register_sensor('badsat', {'x': {'center': value, 'unit': 'nm'}})


# class: min > max
def test_min_greater_than_max() -> None:
    with pytest.raises(errors.BandDefinitionError, match='min 900 > max 780'):
        register_sensor('badsat', {'nir': {'min': 900, 'max': 780, 'unit': 'nm'}})
    with pytest.raises(errors.BandDefinitionError, match='give the lower edge first'):
        Band('badsat', 'nir', 840.0, 900.0, 780.0, None, '')


# class: negative FWHM, or one wider than twice the centre (lower edge <= 0)
@pytest.mark.parametrize(('fwhm', 'phrase'), [(-30, 'fwhm must be >= 0'), (2000, 'wider than twice the centre')])
def test_bad_fwhm(fwhm: float, phrase: str) -> None:
    with pytest.raises(errors.BandDefinitionError, match=phrase):
        register_sensor('badsat', {'red': {'center': 665, 'fwhm': fwhm, 'unit': 'nm'}})


# class: both a centre and edges (which one wins was silent)
def test_centre_and_edges() -> None:
    with pytest.raises(errors.BandDefinitionError, match='not both'):
        register_sensor('badsat', {'red': {'center': 665, 'min': 600, 'max': 700, 'unit': 'nm'}})


# class: a band without centre or edges (only one edge)
def test_missing_wavelength() -> None:
    with pytest.raises(errors.UnitError, match='needs "center"'):
        register_sensor('badsat', {'red': {'min': 600, 'unit': 'nm'}})


# class: unknown band field (a typo was silently ignored: 'fwmh' gave a zero bandwidth)
def test_unknown_band_field() -> None:
    with pytest.raises(errors.BandDefinitionError, match="'fwmh' \\(did you mean 'fwhm'\\?\\)"):
        register_sensor('badsat', {'red': {'center': 665, 'fwmh': 30, 'unit': 'nm'}})


# class: a band given as a bare number instead of a mapping of fields
def test_band_spec_not_a_mapping() -> None:
    with pytest.raises(errors.BandDefinitionError, match='must be a mapping of fields'):
        register_sensor('badsat', {'red': 665})  # type: ignore[dict-item]


# class: non-numeric wavelength / gsd
@pytest.mark.parametrize('spec', [{'center': 'red', 'unit': 'nm'}, {'center': True, 'unit': 'nm'},
                                  {'center': 665, 'unit': 'nm', 'gsd': 'ten'}])  # fmt: skip
def test_non_numeric_value(spec: dict[str, object]) -> None:
    with pytest.raises(errors.BandDefinitionError, match='must be a number'):
        register_sensor('badsat', {'x': spec})


# class: non-positive GSD
@pytest.mark.parametrize('gsd', [0, -10])
def test_bad_gsd(gsd: float) -> None:
    with pytest.raises(errors.BandDefinitionError, match='gsd_m must be a positive number'):
        register_sensor('badsat', {'red': {**RED, 'gsd': gsd}})


# class: aliases given as one string (was split into single letters)
def test_aliases_as_string() -> None:
    with pytest.raises(errors.BandDefinitionError, match='aliases must be a list of strings'):
        register_sensor('badsat', {'red': {**RED, 'aliases': 'r'}})
    with pytest.raises(errors.BandDefinitionError, match='aliases must be a list of strings'):
        register_sensor('badsat', {'red': RED}, aliases='bs')  # type: ignore[arg-type]


# class: bands given as plain strings or another wrong container instead of Band objects / a mapping
@pytest.mark.parametrize('bands', [['s2:B04'], 'red', 42])
def test_bands_wrong_type(bands: object) -> None:
    with pytest.raises(errors.BandDefinitionError, match='Band objects'):
        register_sensor('badsat', bands)  # type: ignore[arg-type]


# class: a Band whose centre lies outside its own edges
def test_band_centre_outside_edges() -> None:
    with pytest.raises(errors.BandDefinitionError, match='lies outside its edges'):
        Band('badsat', 'red', 700.0, 650.0, 680.0, None, '')


# class: a band list that is not a list (e.g. a number)
def test_band_list_wrong_type() -> None:
    with pytest.raises(errors.UnknownBandError, match='preset name, a sensor id, or a list'):
        resolve_bands(42)  # type: ignore[arg-type]


# class: `smarties bands` with an unknown sensor: one line on stderr, exit 2, no traceback
def test_cli_unknown_sensor() -> None:
    code = 'import sys; from torchgeo_smarties.cli import main; sys.exit(main(["bands", "--sensor", "sentinel3"]))'
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          check=False)  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in proc.stderr
    assert 'unknown sensor' in lines[0] and 'register_sensor' in lines[0]


def test_failed_registrations_leave_nothing() -> None:
    # every refusal above happened before the sensor was added
    with pytest.raises(errors.UnknownSensorError, match='unknown sensor'):
        get_sensor('badsat')


# class: a sensor table that does not exist
def test_table_missing_file(tmp_path: Path) -> None:
    with pytest.raises(errors.SensorTableError, match='does not exist'):
        register_sensor_from_table(tmp_path / 'nope.csv', 'badsat')


# class: a sensor table with a bad header (missing or unknown columns)
@pytest.mark.parametrize('header', ['name,centre,unit', 'name,center,unit,colour', 'center,unit'])
def test_table_bad_header(header: str) -> None:
    with pytest.raises(errors.SensorTableError, match='required columns: name, center, unit'):
        register_sensor_from_table(io.StringIO(f'{header}\nx,665,nm\n'), 'badsat')


# class: a sensor table with no rows, or only comments
@pytest.mark.parametrize('text', ['', '# only a comment\n', 'name,center,unit\n'])
def test_table_empty(text: str) -> None:
    with pytest.raises(errors.SensorTableError, match='no header and no rows|no band rows'):
        register_sensor_from_table(io.StringIO(text), 'badsat')


# class: a sensor table row with the wrong number of cells
def test_table_ragged_row() -> None:
    with pytest.raises(errors.SensorTableError, match=':3: 2 cells, but the header has 3 columns'):
        register_sensor_from_table(io.StringIO('name,center,unit\na,665,nm\nb,700\n'), 'badsat')


# class: a sensor table row with a bad value (number, unit, absorption flag)
@pytest.mark.parametrize(
    ('row', 'error', 'phrase'),
    [('a,red,nm', errors.BandDefinitionError, 'must be a number'),
     ('a,665,parsec', errors.UnitError, 'unknown wavelength unit'),
     ('a,665,nm,maybe', errors.SensorTableError, 'absorption must be true or false')],
)  # fmt: skip
def test_table_bad_value(row: str, error: type[Exception], phrase: str) -> None:
    header = 'name,center,unit' + (',absorption' if row.count(',') == 3 else '')
    with pytest.raises(error, match=phrase):
        register_sensor_from_table(io.StringIO(f'{header}\n{row}\n'), 'badsat')


# class: a sensor table that lists a band twice
def test_table_duplicate_band() -> None:
    with pytest.raises(errors.DuplicateRegistrationError, match="lists band 'A' more than once"):
        register_sensor_from_table(io.StringIO('name,center,unit\na,665,nm\nA,700,nm\n'), 'badsat')


# class: a water-vapour absorption band named explicitly (warning: mostly noise over land)
def test_absorption_band_warns() -> None:
    with pytest.warns(errors.AbsorptionBandWarning, match='water-vapour absorption window'):
        plan_bands('emit:B140,emit:B050')
