import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from torchgeo_smarties import __version__
from torchgeo_smarties import cli as top
from torchgeo_smarties.spectrum import cli, list_sensors, plot

DOCS_EXT = Path(__file__).resolve().parents[2] / 'docs' / '_ext' / 'smarties_bands.py'

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


def _bands(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert top.main(['bands', *argv]) == 0
    return capsys.readouterr().out


def _row(text: str, band: str) -> str:
    rows = [line for line in text.splitlines() if line.split()[:1] == [band]]
    assert len(rows) == 1, text
    return rows[0]


def test_json_sentinel2(capsys: pytest.CaptureFixture[str]) -> None:
    doc = json.loads(_bands(capsys, '--json', '--sensor', 'sentinel2'))
    assert doc['units'] == {'wavelength': 'nm', 'gsd': 'm'}
    assert [s['id'] for s in doc['sensors']] == ['sentinel2']
    bands = {b['name']: b for b in doc['sensors'][0]['bands']}
    assert len(bands) == 13
    assert bands['B08']['learned_index'] == 9
    assert bands['B07']['learned_index'] == 10
    assert bands['B08']['center_nm'] == 832.8
    for policy in ('linear', 'nearest', 'official', 'learned'):
        assert bands['B08']['resolution'][policy]['indices'] == [9]
        assert bands['B07']['resolution'][policy]['indices'] == [10]
        b10 = bands['B10']['resolution'][policy]
        assert b10['indices'] == [] and b10['how'] == 'ignored' and b10['error'] is None
    assert bands['B10']['no_projection'] is True
    assert bands['B08']['no_projection'] is False
    assert len(doc['learned_ranges']) == 17
    assert doc['learned_ranges'][15]['min_nm'] == 5.5e7


def test_json_alias_and_landsat8(capsys: pytest.CaptureFixture[str]) -> None:
    doc = json.loads(_bands(capsys, '--json', '-s', 'L8', '-s', 's1'))
    assert [s['id'] for s in doc['sensors']] == ['landsat8', 'sentinel1']
    b = {x['name']: x for x in doc['sensors'][0]['bands']}
    official = b['B2']['resolution']['official']
    assert official['indices'] == [0, 1] and official['ranges'] == ['aerosol', 'blue_1']
    assert official['weights'] == pytest.approx([0.79, 0.21])
    assert b['B10']['resolution']['official']['indices'] == [14, 15]
    assert b['B10']['resolution']['official']['weights'][1] == pytest.approx(0.99984313, rel=1e-6)
    assert b['B10']['resolution']['linear']['weights'][0] > 0.9998
    assert b['B10']['resolution']['nearest']['indices'] == [14]
    unres = b['B4']['resolution']['official']
    assert unres['indices'] == [] and unres['how'] == 'unresolvable' and "release's spectral table" in unres['error']
    hh = {x['name']: x for x in doc['sensors'][1]['bands']}['HH']
    assert hh['center_nm'] == pytest.approx(5.5466e7, rel=1e-4)


def test_landsat8_all_policies(capsys: pytest.CaptureFixture[str]) -> None:
    out = _bands(capsys, '--sensor', 'landsat8', '--all-policies')
    header = _row(out, 'band')
    assert '-> linear' in header and '-> nearest' in header and '-> official' in header
    b2 = _row(out, 'B2')
    assert '0.79·aerosol[0] + 0.21·blue_1[1]' in b2
    assert '0.1111·aerosol[0] + 0.8889·blue_3[2]' in b2
    b10 = _row(out, 'B10')
    assert '0.0001569·short_wave_infrared_4[14] + 0.9998·microwave_1[15]' in b10  # official ≈ VV
    assert '0.9998·short_wave_infrared_4[14] + 0.0001569·microwave_1[15]' in b10  # linear ≈ SWIR-2
    assert '10895 nm (10.89 µm)' in b10 and '100 m' in b10
    # under 'official', bands the release does not list show an explanatory dash
    assert '— not in the release table' in _row(out, 'B4')


def test_default_policy_is_linear(capsys: pytest.CaptureFixture[str]) -> None:
    out = _bands(capsys, '--sensor', 'landsat8')
    assert '-> linear' in out and '-> official' not in out
    assert '0.9998·short_wave_infrared_4[14]' in _row(out, 'B10')


def test_learned_policy(capsys: pytest.CaptureFixture[str]) -> None:
    out = _bands(capsys, '--sensor', 'planetscope', '--policy', 'learned')
    assert '— no learned projection' in _row(out, 'red')


def test_sentinel_table(capsys: pytest.CaptureFixture[str]) -> None:
    out = _bands(capsys, '--sensor', 'sentinel2', '--sensor', 'sentinel1')
    assert 'near_infrared_1[9]' in _row(out, 'B08')
    assert 'near_infrared_2[10]' in _row(out, 'B07')
    assert 'ignored' in _row(out, 'B10')
    assert '442.7 nm (0.4427 µm)' in _row(out, 'B01')
    vv = _row(out, 'VV')
    assert '5.547 cm (5.405 GHz)' in vv and 'microwave_1[15]' in vv


def test_all_sensors_listed(capsys: pytest.CaptureFixture[str]) -> None:
    out = _bands(capsys)
    for sensor in list_sensors():
        assert f'{sensor.id}: ' in out


def test_presets(capsys: pytest.CaptureFixture[str]) -> None:
    doc = json.loads(_bands(capsys, '--presets', '--json'))
    assert len(doc['sentinel2_l2a']) == 12
    assert 'sentinel2_l1c' in _bands(capsys, '--presets')


def test_unknown_sensor(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(['--sensor', 'sentinel3']) == 2
    err = capsys.readouterr().err
    assert 'unknown sensor' in err and 'sentinel2' in err


def test_bad_policy(capsys: pytest.CaptureFixture[str]) -> None:
    assert top.main(['bands', '--policy', 'cubic']) == 2
    assert 'invalid choice' in capsys.readouterr().err


def test_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / 'sub' / 'bands.png'
    _bands(capsys, '--sensor', 'landsat8', '--plot', str(path))
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 20_000


def test_plot_function_all_sensors(tmp_path: Path) -> None:
    out = plot.plot_coverage(tmp_path / 'all.png', policy='official')
    assert out.read_bytes().startswith(PNG_MAGIC)


def test_pack_lanes() -> None:
    assert plot._pack_lanes([(1, 2), (2, 3), (1.5, 2.5), (0, 10)]) == [1, 1, 2, 0]


def _docs_extension() -> ModuleType:
    spec = importlib.util.spec_from_file_location('smarties_bands', DOCS_EXT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_write_docs_assets(tmp_path: Path) -> None:
    files = {p.name: p for p in _docs_extension().write_docs_assets(tmp_path)}
    assert set(files) == {'ranges_table.rst', 'bands_table.rst', 'presets_table.rst', 'bands.json',
                          'band_coverage.png'}  # fmt: skip
    table = files['bands_table.rst'].read_text(encoding='utf-8')
    for sensor in list_sensors():
        assert f'(``{sensor.id}``)' in table
    assert '``0.79·aerosol[0] + 0.21·blue_1[1]``' in table
    ranges = files['ranges_table.rst'].read_text(encoding='utf-8')
    assert '``near_infrared_1``' in ranges and '0.00015687·[14] + 0.99984·[15]' in ranges
    assert json.loads(files['bands.json'].read_text(encoding='utf-8'))['version'] == __version__


# ---------------------------------------------------------------- top-level `smarties`


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert top.main(['--help']) == 0
    out = capsys.readouterr().out
    for name in ('bands', 'embed', 'predict', 'pretrain', 'fit', 'validate', 'test', 'eval'):
        assert f'    {name} ' in out
    assert set(top.COMMANDS) == {'bands', 'embed', 'predict', 'pretrain', 'fit', 'validate', 'test', 'eval',
                                 'index', 'search', 'similarity', 'configs'}


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert top.main(['--version']) == 0
    assert capsys.readouterr().out.strip() == f'smarties {__version__}'


def test_no_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert top.main([]) == 2
    assert 'a command is required' in capsys.readouterr().err


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert top.main(['bandz']) == 2
    err = capsys.readouterr().err
    assert "unknown command 'bandz'" in err and 'bands' in err


def test_missing_module(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(top.COMMANDS, 'ghost', top.Command('torchgeo_smarties.no_such_module:main', 'x'))
    assert top.main(['ghost']) == 1
    err = capsys.readouterr().err
    assert 'not available' in err and 'torchgeo_smarties.no_such_module' in err


def test_missing_dependency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / 'smarties_fake_dep_cmd.py').write_text('import no_such_dependency_xyz\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(top.COMMANDS, 'dep', top.Command('smarties_fake_dep_cmd:main', 'x'))
    assert top.main(['dep']) == 1
    err = capsys.readouterr().err
    assert 'dependency is missing' in err and 'no_such_dependency_xyz' in err


def test_dispatch_passes_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / 'smarties_fake_cmd.py').write_text(
        'CALLS = []\n'
        'def main(argv):\n'
        '    CALLS.append(argv)\n'
        '    return 3\n'
        'def boom(argv):\n'
        '    from torchgeo_smarties.errors import InputError\n'
        '    raise InputError("bad input")\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(top.COMMANDS, 'fit', top.Command('smarties_fake_cmd:main', 'x', pass_name=True))
    monkeypatch.setitem(top.COMMANDS, 'plain', top.Command('smarties_fake_cmd:main', 'x'))
    monkeypatch.setitem(top.COMMANDS, 'boom', top.Command('smarties_fake_cmd:boom', 'x'))
    monkeypatch.setitem(top.COMMANDS, 'noattr', top.Command('smarties_fake_cmd:nothing', 'x'))
    import smarties_fake_cmd  # type: ignore[import-not-found]

    assert top.main(['fit', '--config', 'a.yaml']) == 3
    assert top.main(['plain', '-x']) == 3
    assert smarties_fake_cmd.CALLS == [['fit', '--config', 'a.yaml'], ['-x']]
    assert top.main(['boom']) == 1
    assert top.main(['noattr']) == 1


def test_dispatch_is_lazy() -> None:
    code = (
        'import sys\n'
        'from torchgeo_smarties.cli import main\n'
        'assert main(["bands", "--sensor", "s1"]) == 0\n'
        'heavy = [m for m in ("torchgeo_smarties.inference.cli", "torchgeo_smarties.tasks.cli", '
        '"torchgeo_smarties.tasks.pretrain_cli", "torchgeo_smarties.tasks.eval_cli") if m in sys.modules]\n'
        'assert not heavy, heavy\n'
    )
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert 'microwave_1[15]' in res.stdout
