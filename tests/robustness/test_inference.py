"""Bad inputs to the inference entry points' keyword layer, the DDP path and batch jobs (the inference room).

One bad-input class per test (``# class:`` above each). API tests assert the exception class and a phrase of its
message; CLI tests assert the exit status and a single stderr line without a traceback.
"""

from pathlib import Path
from typing import Any

import pytest

from torchgeo_smarties.errors import CheckpointError, OptionError
from torchgeo_smarties.inference.batch import embed_many
from torchgeo_smarties.inference.cli import embed_main

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / 'torchgeo_smarties' / 'data' / 'samples' / 'sentinel2_l1c_crop.tif'
TINY_WEIGHTS = ROOT / 'tests' / 'data' / 'tiny_encoder.safetensors'
KW: dict[str, Any] = {'progress': False, 'num_workers': 0, 'log': lambda s: None}


# class: batch job with an invalid option (refused once, before any scene runs or the output folder is made)
def test_batch_invalid_option(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match='overlap 64 must be a multiple of 16 in'):
        embed_many([str(SAMPLE), str(SAMPLE.parent)], tmp_path / 'out', tile=64, overlap=64, **KW)
    assert not (tmp_path / 'out').exists()


# class: batch job with weights that do not load (one error up front, not one failed scene per scene)
def test_batch_bad_weights(tmp_path: Path) -> None:
    bad = tmp_path / 'bad.safetensors'
    bad.write_bytes(b'not a checkpoint')
    scenes = tmp_path / 'scenes'
    scenes.mkdir()
    for k in range(2):
        (scenes / f's{k}.tif').write_bytes(SAMPLE.read_bytes())
    with pytest.raises(CheckpointError, match='cannot read safetensors file'):
        embed_many([str(scenes / 's*.tif')], tmp_path / 'out', weights=str(bad), **KW)
    assert not (tmp_path / 'out').exists()


# class: --device together with --devices (Lightning places the ranks; --device used to be ignored silently)
def test_device_with_devices(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = embed_main([str(SAMPLE), '-o', str(tmp_path / 'c.tif'), '--device', 'cuda:1', '--devices', '2'])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and 'Traceback' not in err[0] and 'drop --device' in err[0]
    assert list(tmp_path.iterdir()) == []
