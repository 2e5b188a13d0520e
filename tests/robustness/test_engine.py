"""Bad inputs to the inference engine (embed / pool / predict): each refused with a typed error, nothing lost.

One bad-input class per test (``# class:`` above each). API tests assert the exception class and a phrase of its
message; CLI tests assert the exit status and a single stderr line without a traceback.
"""

import errno
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch

from torchgeo_smarties.errors import (
    DeviceError,
    DiskFullError,
    InputError,
    OptionError,
    OutputError,
    OutputLockedError,
    ResumeError,
    SmartiesError,
)
from torchgeo_smarties.inference import embed_raster, pool_raster, predict_raster
from torchgeo_smarties.inference.cli import embed_main
from torchgeo_smarties.models import SMARTIESViT

ROOT = Path(__file__).resolve().parents[2]
KW: dict[str, Any] = {'progress': False, 'num_workers': 0, 'log': lambda s: None}
# 9 tiles on the 384 × 384 sample; a check-point after every tile row (the callbacks below observe each one)
FAST: dict[str, Any] = {'tile': 128, 'overlap': 0, 'checkpoint_seconds': 0, **KW}


def _model() -> SMARTIESViT:
    torch.manual_seed(0)
    return SMARTIESViT(bands='sentinel2_l1c', embed_dim=32, depth=2, num_heads=2, img_size=64).eval()


@pytest.fixture
def model() -> SMARTIESViT:
    return _model()


@pytest.fixture
def scene(tmp_path: Path, sample: Path) -> Path:
    """A private copy of the sample scene (tests modify it)."""
    p = tmp_path / 'in.tif'
    shutil.copy(sample, p)
    return p


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        rc = embed_main(argv)
    except SystemExit as e:  # argparse usage errors
        rc = int(e.code or 0)
    err = capsys.readouterr().err.strip()
    return rc, err


def _one_line(err: str) -> None:
    assert err and len(err.splitlines()) == 1 and 'Traceback' not in err, err


# ------------------------------------------------------------------------------------------- output safety
# class: output is the input (same path, hard link, symbolic link)
@pytest.mark.parametrize('how', ['same', 'hardlink', 'symlink'])
def test_output_is_the_input(model: SMARTIESViT, scene: Path, tmp_path: Path, how: str) -> None:
    before = scene.read_bytes()
    out = scene
    if how == 'hardlink':
        out = tmp_path / 'link.tif'
        os.link(scene, out)
    elif how == 'symlink':
        out = tmp_path / 'sym.tif'
        out.symlink_to(scene)
    with pytest.raises(OutputError, match='is the input file'):
        embed_raster(scene, out, model=model, **FAST)
    assert scene.read_bytes() == before
    assert not list(tmp_path.glob('*.partial')) and not list(tmp_path.glob('*.lock'))


# class: output is not a regular file (FIFO, device node)
@pytest.mark.parametrize('kind', ['fifo', 'device'])
def test_output_not_a_regular_file(model: SMARTIESViT, scene: Path, tmp_path: Path, kind: str) -> None:
    if kind == 'fifo':
        out = tmp_path / 'pipe.tif'
        os.mkfifo(out)
    else:
        out = Path('/dev/null')
    with pytest.raises(OutputError, match='not a regular file'):
        embed_raster(scene, out, model=model, **FAST)
    assert out.exists() and not out.is_file()  # untouched


# class: preview collides with the input or the embedding output
def test_preview_collides(model: SMARTIESViT, scene: Path, tmp_path: Path) -> None:
    out = tmp_path / 'emb.tif'
    with pytest.raises(OutputError, match='preview .* is the input file'):
        embed_raster(scene, out, model=model, preview=scene, **FAST)
    with pytest.raises(OutputError, match='is also the output'):
        embed_raster(scene, out, model=model, preview=out.with_suffix('.tif'), **FAST)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.tif']


# class: predict probabilities output would overwrite the input
def test_predict_probabilities_is_the_input(scene: Path, tmp_path: Path) -> None:
    probs_named_like_input = tmp_path / 'in_probs.tif'
    os.replace(scene, probs_named_like_input)
    net = torch.nn.Conv2d(13, 3, 1)
    with pytest.raises(OutputError, match='probabilities .* is the input file'):
        predict_raster(probs_named_like_input, tmp_path / 'in.tif', model=net, **FAST)


# class: two concurrent runs on one output (second fails fast naming the first, first completes)
def test_concurrent_runs_on_one_output(model: SMARTIESViT, scene: Path, tmp_path: Path) -> None:
    out = tmp_path / 'emb.tif'
    started, go = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold(done: int, total: int) -> None:
        started.set()
        go.wait(60)

    def first() -> None:
        try:
            embed_raster(scene, out, model=model, on_batch=hold, batch_size=2, **FAST)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=first)
    t.start()
    try:
        assert started.wait(60)
        with pytest.raises(OutputLockedError, match=rf'another run is writing .*emb\.tif.*process {os.getpid()}'):
            embed_raster(scene, out, model=_model(), **FAST)
    finally:
        go.set()
        t.join(120)
    assert not errors
    with rasterio.open(out) as ds:
        emb = ds.read()
    assert emb.shape == (32, 24, 24) and np.isfinite(emb).all()
    assert not list(tmp_path.glob('*.lock')) and not list(tmp_path.glob('*.partial'))


# class: disk full while writing (ENOSPC)
def test_disk_full(model: SMARTIESViT, scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*args: Any) -> int:
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(os, 'pwrite', full)
    out = tmp_path / 'emb.tif'
    with pytest.raises(DiskFullError, match=r"no space left on the device of .*emb\.tif.*needs about"):
        embed_raster(scene, out, model=model, **FAST)
    assert not out.exists() and not list(tmp_path.glob('*.lock'))


# ------------------------------------------------------------------------------------------------ resume
def _interrupt_after_first_batch(model: SMARTIESViT, scene: Path, out: Path, **kw: Any) -> None:
    class Stop(Exception):
        pass

    def stop(done: int, total: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        embed_raster(scene, out, model=model, on_batch=stop, batch_size=3, **{**FAST, **kw})
    assert (out.parent / (out.name + '.partial') / 'progress.json').is_file()


# class: resume after the input changed in place
def test_resume_after_input_changed(model: SMARTIESViT, scene: Path, tmp_path: Path) -> None:
    out = tmp_path / 'emb.tif'
    _interrupt_after_first_batch(model, scene, out)
    st = scene.stat()
    with open(scene, 'r+b') as f:  # same size, new content in the middle, mtime restored: the sampled hash sees it
        f.seek(st.st_size // 2)
        f.write(b'\xff' * 256)
    os.utime(scene, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(ResumeError, match=r'the input file .*in.tif.* changed since the partial run \(its content'):
        embed_raster(scene, out, model=model, resume=True, batch_size=3, **FAST)
    with open(scene, 'ab') as f:
        f.write(b'\0' * 10)
    with pytest.raises(ResumeError, match=r'changed since the partial run \(size \d+ → \d+ bytes\)'):
        embed_raster(scene, out, model=model, resume=True, batch_size=3, **FAST)


# class: resume with other normalisation statistics
def test_resume_after_normalisation_changed(model: SMARTIESViT, scene: Path, tmp_path: Path) -> None:
    out = tmp_path / 'emb.tif'
    _interrupt_after_first_batch(model, scene, out)
    with pytest.raises(ResumeError, match='the normalisation .* changed since the partial run'):
        embed_raster(scene, out, model=model, resume=True, batch_size=3, normalizer=lambda x: x / 10000, **FAST)


# class: resume with other weights
def test_resume_after_weights_changed(model: SMARTIESViT, scene: Path, tmp_path: Path) -> None:
    out = tmp_path / 'emb.tif'
    _interrupt_after_first_batch(model, scene, out)
    with torch.no_grad():
        model.cls_token.add_(1.0)
    with pytest.raises(ResumeError, match='the model weights changed since the partial run'):
        embed_raster(scene, out, model=model, resume=True, batch_size=3, **FAST)


# class: corrupt progress.json or carry file
@pytest.mark.parametrize('what', ['progress', 'carry'])
def test_resume_corrupt_partial(model: SMARTIESViT, scene: Path, tmp_path: Path, what: str) -> None:
    out = tmp_path / 'emb.tif'
    _interrupt_after_first_batch(model, scene, out)
    work = tmp_path / 'emb.tif.partial'
    target = work / 'progress.json' if what == 'progress' else next(work.glob('carry-*.npz'))
    target.write_bytes(b'{garbage')
    with pytest.raises(ResumeError, match=r'is corrupt .*remove it with rm -r'):
        embed_raster(scene, out, model=model, resume=True, batch_size=3, **FAST)


# class: SIGKILL during a run, then --resume (byte-identical to an uninterrupted run; the stale lock is reused)
def test_kill_9_and_resume_is_byte_identical(model: SMARTIESViT, scene: Path, tmp_path: Path) -> None:
    ref = tmp_path / 'ref.tif'
    kw = {'tile': 64, 'overlap': 16, 'batch_size': 3, **KW}
    embed_raster(scene, ref, model=model, **kw)
    weights = tmp_path / 'w.pt'
    torch.save(model.state_dict(), weights)
    out = tmp_path / 'out.tif'
    script = f'''
import os, signal, torch
from torchgeo_smarties.inference import embed_raster
from torchgeo_smarties.models import SMARTIESViT
m = SMARTIESViT(bands='sentinel2_l1c', embed_dim=32, depth=2, num_heads=2, img_size=64).eval()
m.load_state_dict(torch.load({str(weights)!r}, weights_only=True))
seen = []
def kill(done, total):
    seen.append(done)
    if len(seen) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
embed_raster({str(scene)!r}, {str(out)!r}, model=m, tile=64, overlap=16, batch_size=3, num_workers=0,
             checkpoint_seconds=0, progress=False, on_batch=kill, log=lambda s: None)
'''
    env = {**os.environ, 'PYTHONPATH': str(ROOT)}
    proc = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert not out.exists() and (tmp_path / 'out.tif.partial' / 'progress.json').is_file()
    res = embed_raster(scene, out, model=model, resume=True, **kw)
    assert res.run is not None and 0 < res.run.resumed_from < res.run.tiles_total
    assert out.read_bytes() == ref.read_bytes()
    assert not (tmp_path / 'out.tif.partial').exists() and not list(tmp_path.glob('*.lock'))


# ---------------------------------------------------------------------------------------------- options
# class: --layer outside the encoder's blocks (used to wrap around)
@pytest.mark.parametrize('layer', [100, 2, -3])
def test_layer_out_of_range(model: SMARTIESViT, scene: Path, tmp_path: Path, layer: int) -> None:
    with pytest.raises(OptionError, match=rf'layer {layer} does not exist: the encoder has 2 blocks.*\[-2, 1\]'):
        embed_raster(scene, tmp_path / 'o.tif', model=model, layer=layer, **FAST)


# class: unknown compression codec
def test_compress_unknown(model: SMARTIESViT, scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                          ) -> None:
    with pytest.raises(OptionError, match='compression must be one of deflate, zstd, lzw'):
        embed_raster(scene, tmp_path / 'o.tif', model=model, compress='bogus', **FAST)
    rc, err = _cli([str(scene), '-o', str(tmp_path / 'o.tif'), '--compress', 'bogus'], capsys)
    assert rc == 2 and "invalid choice: 'bogus'" in err
    _one_line(err)


# class: unknown precision or output dtype (enum-like options list their valid values)
@pytest.mark.parametrize(('kw', 'phrase'), [
    ({'precision': 'fp8'}, 'precision must be one of fp32, bf16, fp16'),
    ({'dtype': 'int8'}, 'output dtype must be one of float32, float16'),
])
def test_enum_options(model: SMARTIESViT, scene: Path, tmp_path: Path, kw: dict[str, Any], phrase: str) -> None:
    with pytest.raises(OptionError, match=phrase):
        embed_raster(scene, tmp_path / 'o.tif', model=model, **kw, **FAST)


# class: unknown pool mode
def test_pool_mode_unknown(model: SMARTIESViT, scene: Path, tmp_path: Path) -> None:
    with pytest.raises(OptionError, match='pool must be one of mean, cls'):
        pool_raster(scene, tmp_path / 'o.parquet', model=model, pool='max', **KW)  # type: ignore[arg-type]


# class: unknown predict mode
def test_predict_mode_unknown(scene: Path, tmp_path: Path) -> None:
    with pytest.raises(OptionError, match='mode must be one of segmentation, classification'):
        predict_raster(scene, tmp_path / 'o.tif', model=torch.nn.Conv2d(13, 2, 1), mode='detection', **KW)  # type: ignore[arg-type]


# class: --pool output that is not GeoParquet/CSV (used to write CSV into a .tif)
def test_pool_output_suffix(model: SMARTIESViT, scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                            tiny_weights: Path) -> None:
    with pytest.raises(OptionError, match=r'give an output ending in .parquet, .geoparquet, .csv, not .x\.tif'):
        pool_raster(scene, tmp_path / 'x.tif', model=model, **KW)
    rc, err = _cli([str(scene), '-o', str(tmp_path / 'x.tif'), '--pool', 'mean', '--weights', str(tiny_weights),
                    '--num-heads', '4'], capsys)
    assert rc == 1 and 'GeoParquet or CSV' in err
    _one_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.tif']


# class: --pool with options of the dense raster it would ignore
@pytest.mark.parametrize('extra', [['--layer', '0'], ['--dtype', 'float16'], ['--resume'], ['--overlap', '16'],
                                   ['--preview', 'p.png'], ['--final-norm']])
def test_pool_with_dense_options(scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 extra: list[str]) -> None:
    rc, err = _cli([str(scene), '-o', str(tmp_path / 'x.parquet'), '--pool', 'mean', *extra], capsys)
    assert rc == 2 and f'--pool writes one vector per tile and does not use {extra[0]}' in err
    _one_line(err)


# class: batch size < 1
@pytest.mark.parametrize('bs', [0, -1])
def test_batch_size(model: SMARTIESViT, scene: Path, tmp_path: Path, bs: int) -> None:
    with pytest.raises(OptionError, match=f'batch size must be an integer >= 1; got {bs}'):
        embed_raster(scene, tmp_path / 'o.tif', model=model, batch_size=bs, **KW)


# class: negative number of workers
def test_negative_workers(model: SMARTIESViT, scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                          tiny_weights: Path) -> None:
    with pytest.raises(OptionError, match='number of workers must be an integer >= 0; got -2'):
        embed_raster(scene, tmp_path / 'o.tif', model=model, **{**KW, 'num_workers': -2})
    rc, err = _cli([str(scene), '-o', str(tmp_path / 'o.tif'), '--workers', '-2', '--weights', str(tiny_weights),
                    '--num-heads', '4'], capsys)
    assert rc == 1 and 'number of workers' in err
    _one_line(err)


# class: tile size not a positive multiple of 16
@pytest.mark.parametrize('tile', [100, 0, -16])
def test_tile_size(model: SMARTIESViT, scene: Path, tmp_path: Path, tile: int) -> None:
    with pytest.raises(OptionError, match=f'tile size {tile} must be a positive multiple of the patch size 16'):
        embed_raster(scene, tmp_path / 'o.tif', model=model, tile=tile, overlap=0, **KW)


# class: overlap not smaller than the tile (or not a multiple of 16)
@pytest.mark.parametrize('overlap', [64, 96, 8, -16])
def test_overlap(model: SMARTIESViT, scene: Path, tmp_path: Path, overlap: int) -> None:
    with pytest.raises(OptionError, match=rf'overlap {overlap} must be a multiple of 16 in \[0, tile size 64\)'):
        embed_raster(scene, tmp_path / 'o.tif', model=model, tile=64, overlap=overlap, **KW)


# class: CUDA device requested without a GPU, or a device string that is not a device
@pytest.mark.parametrize('device', ['cuda', 'cuda:7', 'gpu0', 'xla'])
def test_device_unavailable(model: SMARTIESViT, scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                            device: str) -> None:
    if device == 'cuda' and torch.cuda.is_available():
        pytest.skip('this machine has a GPU')
    with pytest.raises(DeviceError, match='use (--device )?cpu'):
        embed_raster(scene, tmp_path / 'o.tif', model=model, device=device, **FAST)
    rc, err = _cli([str(scene), '-o', str(tmp_path / 'o.tif'), '--device', device], capsys)
    assert rc == 1 and 'device' in err
    _one_line(err)


# class: preview file name with a suffix matplotlib cannot write
def test_preview_suffix(model: SMARTIESViT, scene: Path, tmp_path: Path) -> None:
    with pytest.raises(OptionError, match='the file name must end in one of .png'):
        embed_raster(scene, tmp_path / 'o.tif', model=model, preview=tmp_path / 'p.bmpx', **FAST)


# class: distributed strategy / accelerator / nodes that are not valid
@pytest.mark.parametrize(('kw', 'phrase'), [
    ({'accelerator': 'quantum'}, 'accelerator must be one of auto, cpu, gpu'),
    ({'strategy': 'fsdp'}, 'strategy must be a Lightning DDP strategy'),
    ({'num_nodes': 0}, 'number of nodes must be an integer >= 1'),
])
def test_distributed_options(model: SMARTIESViT, scene: Path, tmp_path: Path, kw: dict[str, Any], phrase: str
                             ) -> None:
    from torchgeo_smarties.inference.distributed import embed_raster_distributed

    with pytest.raises(OptionError, match=phrase):
        embed_raster_distributed(scene, tmp_path / 'o.tif', model=model, **kw, **KW)


# class: command-line usage error (unknown choice) is one line with exit status 2
def test_cli_usage_error_one_line(scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, err = _cli([str(scene), '-o', str(tmp_path / 'o.tif'), '--precision', 'fp8'], capsys)
    assert rc == 2 and "invalid choice: 'fp8'" in err
    _one_line(err)


# ------------------------------------------------------------------------------------- fail before writing
# class: any validation error leaves the output folder exactly as it was (no .partial, no lock, no output)
@pytest.mark.parametrize('kw', [
    {'layer': 100}, {'compress': 'bogus'}, {'batch_size': 0}, {'tile': 100}, {'tile': 64, 'overlap': 64},
    {'dtype': 'int8'}, {'precision': 'fp8'}, {'num_workers': -1}, {'device': 'cuda:99'},
    {'preview': 'PREVIEW.bmpx'}, {'preview': 'SCENE'}, {'output': 'SCENE'}, {'bands': 'sentinel2:B02'},
    {'stats': 'missing.json'}, {'resume': True, 'output': 'FOLDER'},
])
def test_validation_errors_write_nothing(model: SMARTIESViT, scene: Path, tmp_path: Path, kw: dict[str, Any]
                                         ) -> None:
    (tmp_path / 'sub').mkdir()
    subst = {'SCENE': scene, 'FOLDER': tmp_path / 'sub', 'PREVIEW.bmpx': tmp_path / 'p.bmpx'}
    kw = {k: subst.get(v, v) if isinstance(v, str) else v for k, v in kw.items()}
    out = kw.pop('output', tmp_path / 'o.tif')
    before = sorted((p.name, p.stat().st_size) for p in tmp_path.rglob('*'))
    with pytest.raises(SmartiesError):
        embed_raster(scene, out, model=model, **{**FAST, **kw})
    assert sorted((p.name, p.stat().st_size) for p in tmp_path.rglob('*')) == before


# ------------------------------------------------------------------------------------------- bad rasters
def _truncated_cog(src: Path, dst: Path) -> Path:
    """A COG (header and IFDs first) cut to a third of its size: opens fine, later tiles cannot be read."""
    with rasterio.open(src) as s:
        prof, arr, desc = s.profile, s.read(), s.descriptions
    for k in ('tiled', 'blockxsize', 'blockysize', 'interleave'):
        prof.pop(k, None)
    prof.update(driver='COG', compress='none', blocksize=128)
    with rasterio.open(dst, 'w', **prof) as d:
        d.write(arr)
        d.descriptions = desc
    size = dst.stat().st_size
    with open(dst, 'r+b') as f:
        f.truncate(size // 3)
    return dst


# class: truncated GeoTIFF with an intact header, read in the main process or in DataLoader workers
@pytest.mark.parametrize('workers', [0, 1])
def test_truncated_raster(model: SMARTIESViT, tmp_path: Path, capsys: pytest.CaptureFixture[str], sample: Path,
                          tiny_weights: Path, workers: int) -> None:
    bad = _truncated_cog(sample, tmp_path / 'cut.tif')
    with pytest.raises(InputError) as info:
        embed_raster(bad, tmp_path / 'o.tif', model=model, **{**FAST, 'num_workers': workers})
    msg = str(info.value)
    assert 'Traceback' not in msg and len(msg.splitlines()) == 1, msg
    assert 'cut.tif' in msg
    rc, err = _cli([str(bad), '-o', str(tmp_path / 'o.tif'), '--weights', str(tiny_weights), '--num-heads', '4',
                    '--tile', '128', '--overlap', '0', '--workers', str(workers), '--no-progress'], capsys)
    assert rc == 1 and 'cut.tif' in err
    _one_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['cut.tif']


# class: the CLI on an output another run holds (one line naming the lock and its PID, exit 1, nothing written)
def test_cli_locked_output(scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_weights: Path) -> None:
    from torchgeo_smarties.inference import OutputLock

    out = tmp_path / 'emb.tif'
    with OutputLock([out]):
        rc, err = _cli([str(scene), '-o', str(out), '--weights', str(tiny_weights), '--num-heads', '4', '--tile',
                        '128', '--overlap', '0', '--workers', '0', '--no-progress'], capsys)
    assert rc == 1 and f"lock '{out}.lock' held by process {os.getpid()}" in err
    _one_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.tif']
