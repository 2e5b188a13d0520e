"""Bundled configs by name, package:// paths, the wheel's contents and the CLI from outside the clone."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from torchgeo_smarties.configs import CONFIG_DIR, config_path, list_configs, main, resolve_config_args
from torchgeo_smarties.errors import ConfigNotFoundError

ROOT = Path(__file__).resolve().parents[2]
NAMES = {'eurosat_classification', 'bigearthnet_s2_multilabel', 'bigearthnet_s1_multilabel', 'bigearthnet_mm_fusion',
         'sen12ms_upernet_probe', 'pretrain_tiny_cpu', 'pretrain_vitb_paper'}


def test_configs_by_name_and_listing(capsys: pytest.CaptureFixture[str]) -> None:
    assert set(list_configs()) == NAMES
    assert config_path('eurosat_classification') == CONFIG_DIR / 'eurosat_classification.yaml'
    assert config_path('eurosat_classification.yaml') == CONFIG_DIR / 'eurosat_classification.yaml'
    # the clone's configs/ links to the package's files
    assert (ROOT / 'configs' / 'eurosat_classification.yaml').resolve() == CONFIG_DIR / 'eurosat_classification.yaml'
    with pytest.raises(ConfigNotFoundError, match='bundled configs: .*eurosat_classification'):
        config_path('eurosat')
    assert main([]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(NAMES) and out[2].startswith('bigearthnet_s2_multilabel ') and 'BigEarthNet-S2' in out[2]
    assert main(['eurosat_classification']) == 0
    assert yaml.safe_load(capsys.readouterr().out)['model']['init_args']['num_classes'] == 10


def test_package_paths_resolve_from_any_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = resolve_config_args(['fit', '--config', 'pretrain_tiny_cpu', '--trainer.max_steps', '1'])
    assert args[0] == 'fit' and args[3:] == ['--trainer.max_steps', '1']
    cfg = yaml.safe_load(Path(args[2]).read_text())
    for path in cfg['data']['pairs'][0]:
        assert Path(path).is_absolute() and Path(path).is_file()  # the bundled sample raster
    assert resolve_config_args(['--config=eurosat_classification'])[0].endswith('eurosat_classification.yaml')


def _build_wheel(dest: Path) -> Path:
    src = dest / 'src'
    src.mkdir()
    for name in ('pyproject.toml', 'README.md', 'LICENSE', 'setup.cfg'):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / 'torchgeo_smarties', src / 'torchgeo_smarties',
                    ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
    out = dest / 'dist'
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', str(out),
                    str(src)], check=True, capture_output=True, timeout=300)
    (wheel,) = out.glob('torchgeo_smarties-*.whl')
    return wheel


def test_wheel_ships_configs_and_sample_data(tmp_path: Path) -> None:
    names = zipfile.ZipFile(_build_wheel(tmp_path)).namelist()  # ~10 s
    for cfg in NAMES:
        assert f'torchgeo_smarties/configs/{cfg}.yaml' in names
    assert 'torchgeo_smarties/data/samples/sentinel2_l1c_crop.tif' in names
    assert not any(n.startswith(('tests/', 'configs/')) for n in names)


@pytest.mark.slow  # a cold interpreter importing torch/lightning from the unpacked wheel: 40+ s on a shared 2-core box
def test_wheel_runs_outside_the_clone(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    site = tmp_path / 'site'
    zipfile.ZipFile(wheel).extractall(site)
    run = tmp_path / 'cwd'
    run.mkdir()
    env = {**os.environ, 'PYTHONPATH': str(site)}
    code = 'import sys; from torchgeo_smarties.cli import main; sys.exit(main())'
    proc = subprocess.run([sys.executable, '-c', code, 'fit', '--config', 'eurosat_classification', '--print_config'],
                          cwd=run, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cfg = yaml.safe_load(proc.stdout)
    assert cfg['model']['class_path'] == 'torchgeo_smarties.tasks.SMARTIESClassification'
    assert str(ROOT) not in proc.stdout + proc.stderr  # nothing refers to the clone
    proc = subprocess.run([sys.executable, '-c', code, 'configs', 'pretrain_tiny_cpu', '--path'], cwd=run, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip().startswith(str(site)), proc.stdout + proc.stderr
