"""Hyperspectral sensors from band tables: EnMAP, EMIT, PRISMA and register_sensor_from_table (issue 12.2)."""

import io
import json
import warnings
from pathlib import Path

import pytest

from torchgeo_smarties import cli as top
from torchgeo_smarties.errors import AbsorptionBandWarning
from torchgeo_smarties.spectrum import (
    get_band,
    get_sensor,
    plan_bands,
    register_sensor_from_table,
    resolve_bands,
    unregister_sensor,
)
from torchgeo_smarties.spectrum.tables import in_absorption_window


@pytest.mark.parametrize(
    ('sid', 'n', 'first', 'last', 'gsd'),
    [
        ('enmap', 224, 418.416, 2445.30, 30.0),
        ('emit', 285, 381.0055927, 2492.9238809, 60.0),  # EMIT L2A V001: 381.00558 ... 2492.9238 nm
        ('prisma', 66 + 171, 400.0, 2505.0, 30.0),
    ],
)
def test_band_tables(sid: str, n: int, first: float, last: float, gsd: float) -> None:
    sensor = get_sensor(sid)
    assert len(sensor.bands) == n
    centres = [b.center_nm for b in sensor.bands]
    assert centres[0] == pytest.approx(first, abs=1e-3)
    assert centres[-1] == pytest.approx(last, abs=1e-3)
    assert all(b.gsd_m == gsd and b.fwhm_nm > 0 for b in sensor.bands)
    flagged = [b for b in sensor.bands if b.absorption]
    assert flagged and all(in_absorption_window(b.center_nm) for b in flagged)
    assert not any(in_absorption_window(b.center_nm) for b in sensor.bands if not b.absorption)


def test_emit_fwhm_and_enmap_flags() -> None:
    # EMIT's first band: 8.415 nm FWHM (the calibration file gives µm)
    assert get_band('emit:B001').fwhm_nm == pytest.approx(8.415, abs=1e-6)
    assert get_band('emit:B285').fwhm_nm == pytest.approx(8.809, abs=1e-6)
    enmap = get_sensor('enmap')
    assert [b.name for b in enmap.bands if b.absorption] == ['B132', 'B133', 'B134', 'B135', 'B164', 'B165']


def test_default_band_set_drops_absorption_and_out_of_spectrum() -> None:
    bands = resolve_bands('enmap')
    names = {b.name for b in bands}
    # 224 - 6 absorption bands - B1 (418.4 nm, below the aerosol range's 422 nm)
    assert len(bands) == 217 and 'B132' not in names and 'B1' not in names and 'B2' in names
    plan = plan_bands('enmap')
    assert plan.num_bands == 217 and plan.num_active == 217
    emit = plan_bands('emit')
    assert emit.num_bands == len(get_sensor('emit').default_bands)
    assert min(get_band(b).center_nm for b in emit.bands) >= 422


def test_explicit_absorption_band_warns() -> None:
    with pytest.warns(AbsorptionBandWarning, match='enmap:B132'):
        plan = plan_bands(['enmap:B131', 'enmap:B132'])
    assert plan.num_bands == 2
    with warnings.catch_warnings():
        warnings.simplefilter('error', AbsorptionBandWarning)
        plan_bands('enmap')  # the default set has none


def test_cli_lists_224_enmap_bands(capsys: pytest.CaptureFixture[str]) -> None:
    assert top.main(['bands', '--sensor', 'enmap']) == 0
    out = capsys.readouterr().out
    rows = [line.split()[0] for line in out.splitlines() if line.startswith('  B')]
    assert len(rows) == 224
    assert sum('[abs]' in line for line in out.splitlines() if line.startswith('  B')) == 6
    assert '[abs]: a water-vapour absorption band' in out
    assert top.main(['bands', '--json', '--sensor', 'emit']) == 0
    doc = json.loads(capsys.readouterr().out)
    bands = doc['sensors'][0]['bands']
    assert len(bands) == 285 and sum(b['absorption'] for b in bands) == 33


TABLE = """# a test instrument; source: made up for the test
name,center,fwhm,unit,gsd
blue,490,20,nm,10
nir,0.865,0.02,um,10
wv,1380,10,nm,10
swir,2200,50,nm,
"""


def test_register_sensor_from_table(tmp_path: Path) -> None:
    path = tmp_path / 'inst.csv'
    path.write_text(TABLE, encoding='utf-8')
    try:
        sensor = register_sensor_from_table(path, 'tabsat', units='reflectance 0-1')
        assert [b.name for b in sensor.bands] == ['blue', 'nir', 'wv', 'swir']
        nir = get_band('tabsat:nir')
        assert (nir.center_nm, nir.min_nm, nir.max_nm) == pytest.approx((865.0, 855.0, 875.0))
        assert get_band('tabsat:swir').gsd_m is None and get_band('tabsat:blue').gsd_m == 10.0
        assert [b.absorption for b in sensor.bands] == [False, False, True, False]
        assert [b.name for b in resolve_bands('tabsat')] == ['blue', 'nir', 'swir']
        assert nir.units == 'reflectance 0-1'
    finally:
        unregister_sensor('tabsat')
    # a file object works as well, and the flagging can be turned off
    try:
        sensor = register_sensor_from_table(io.StringIO(TABLE), 'tabsat', flag_absorption=False)
        assert not any(b.absorption for b in sensor.bands)
    finally:
        unregister_sensor('tabsat')


def test_table_absorption_column_wins() -> None:
    text = 'name,center,unit,absorption\na,665,nm,true\nb,1380,nm,false\n'
    try:
        sensor = register_sensor_from_table(io.StringIO(text), 'colsat')
        assert [b.absorption for b in sensor.bands] == [True, False]
        assert sensor.bands[0].fwhm_nm == 0.0  # no fwhm column: a line-like band
    finally:
        unregister_sensor('colsat')
