"""The engine's pipeline: resume checkpoints (``TilingOptions.checkpoint_seconds``), the reader → normaliser
fast path, the weights-hash cache, provenance of pooled outputs."""

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
from torch import Tensor

from torchgeo_smarties.errors import OptionError
from torchgeo_smarties.inference import TileGrid, make_normalizer, open_source
from torchgeo_smarties.inference.engine import OutputSpec, TileDataset, run_tiled
from torchgeo_smarties.inference.job import TilingOptions


class Interrupt(RuntimeError):
    """Raised by the model step to stop a run half-way."""


def pooled(stop_after: int | None = None):  # type: ignore[no-untyped-def]
    """A model step: per-patch channel means (K = C); raises :class:`Interrupt` on batch *stop_after*."""
    calls = [0]

    def fn(x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        calls[0] += 1
        if stop_after is not None and calls[0] > stop_after:
            raise Interrupt('stop')
        out = F.avg_pool2d(x, 16)
        return out, torch.ones(out.shape[0], *out.shape[2:], dtype=torch.bool)

    return fn


def run(sample: Path, out: Path, seconds: float, *, stop_after: int | None = None, resume: bool = False):  # type: ignore[no-untyped-def]
    src = open_source(sample)
    grid = TileGrid(src.height, src.width, 64, 16)
    spec = OutputSpec(out, src.count, 'float32', lambda rows: rows)
    tiling = TilingOptions(64, 16, batch_size=4, num_workers=0, checkpoint_seconds=seconds)
    norm = make_normalizer(tuple(src.descriptions))
    return run_tiled(src, grid, pooled(stop_after), src.count, [spec], normalize=norm, tiling=tiling, resume=resume,
                     progress=False, fingerprint={'input': sample.name})


def test_every_row_checkpoints_resume_where_stopped(sample: Path, tmp_path: Path) -> None:
    ref = tmp_path / 'ref.tif'
    run(sample, ref, 0.0)
    out = tmp_path / 'out.tif'
    with pytest.raises(Interrupt):
        run(sample, out, 0.0, stop_after=10)  # 384 px in 64 px tiles, 16 px overlap: 8 × 8 tiles, 16 batches of 4
    progress = json.loads((tmp_path / 'out.tif.partial' / 'progress.json').read_text())
    assert 0 < progress['next_tile'] <= 10 * 4  # the last tile row finished before the interruption
    res = run(sample, out, 0.0, resume=True)
    assert res.resumed_from == progress['next_tile']
    with rasterio.open(ref) as a, rasterio.open(out) as b:
        # same tiles in the same batches, blended in the same order: the resumed output is the uninterrupted one
        np.testing.assert_array_equal(a.read(), b.read())


def test_throttled_checkpoints_skip_durable_state(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / 'out.tif'
    with pytest.raises(Interrupt):
        run(sample, out, 1e9, stop_after=6)  # no checkpoint is due within the run: nothing worth resuming
    assert not (tmp_path / 'out.tif.partial').exists()
    res = run(sample, out, 1e9, resume=True)
    assert res.resumed_from == 0 and res.tiles_run == res.tiles_total == 64
    ref = tmp_path / 'ref.tif'
    run(sample, ref, 0.0)
    with rasterio.open(ref) as a, rasterio.open(out) as b:  # the checkpoint interval never changes the result
        np.testing.assert_array_equal(a.read(), b.read())


def test_reader_validity_fast_path_matches_generic_normaliser(sample: Path) -> None:
    src = open_source(sample)
    grid = TileGrid(src.height, src.width, 128, 32)
    norm = make_normalizer(tuple(src.descriptions))
    assert norm is not None
    vals, valid = src.read(_window(grid))
    valid[:, :10, :10] = False  # a nodata corner
    x, m = torch.from_numpy(vals)[None], torch.from_numpy(valid)[None]
    fast = norm.normalize(x.clone(), valid=m)
    generic = torch.where(m, norm(x.clone()), torch.zeros(()))
    # the same arithmetic on the valid pixels (one more comparison on the generic path): equal up to float32 rounding
    torch.testing.assert_close(fast, generic, atol=1e-6, rtol=0)
    assert bool((fast[~m] == 0).all())
    ds = TileDataset(src, grid, norm)
    xt, mt, i = ds[0]
    assert i == 0 and xt.dtype == torch.float32 and xt.is_contiguous() and mt.dtype == torch.bool


def _window(grid: TileGrid):  # type: ignore[no-untyped-def]
    from rasterio.windows import Window

    r0, c0 = grid.origin(0)
    h, w = grid.tile_hw
    return Window(c0, r0, w, h)


# class: a checkpoint interval that is not a number of seconds >= 0
@pytest.mark.parametrize('bad', [-1, float('nan'), float('inf'), True, '10'])
def test_checkpoint_interval_is_validated(bad: object) -> None:
    with pytest.raises(OptionError, match='checkpoint interval .* must be a number of seconds >= 0'):
        TilingOptions(checkpoint_seconds=bad)  # type: ignore[arg-type]


def test_weights_hash_is_remembered_until_a_tensor_changes() -> None:
    from torchgeo_smarties.inference.engine import state_fingerprint

    model = torch.nn.Linear(3, 4)
    first = state_fingerprint(model)
    assert state_fingerprint(model) == first
    with torch.no_grad():
        model.weight.add_(1.0)  # in place: the tensor's version counter moves
    changed = state_fingerprint(model)
    assert changed != first
    model.weight = torch.nn.Parameter(torch.zeros(4, 3))  # replaced
    assert state_fingerprint(model) not in (first, changed)
    twin = torch.nn.Linear(3, 4)
    twin.load_state_dict(model.state_dict())
    assert state_fingerprint(twin) == state_fingerprint(model)  # the hash is of the values, not the object


def test_pooled_geoparquet_carries_the_provenance_tags(sample: Path, tmp_path: Path) -> None:
    import geopandas as gpd
    import pyarrow.parquet as pq

    from torchgeo_smarties.inference import pool_raster
    from torchgeo_smarties.inference.embed import PARQUET_TAGS_KEY
    from torchgeo_smarties.inference.engine import state_fingerprint
    from torchgeo_smarties.models import SMARTIESViT

    torch.manual_seed(0)
    model = SMARTIESViT(bands='sentinel2_l1c', embed_dim=32, depth=2, num_heads=2, img_size=64).eval()
    out = tmp_path / 'tiles.parquet'
    pool_raster(sample, out, model=model, tile=128, progress=False, num_workers=0, log=lambda s: None)
    meta = pq.read_schema(out).metadata
    assert b'geo' in meta  # still GeoParquet
    tags = json.loads(meta[PARQUET_TAGS_KEY])
    assert tags['SMARTIES_WEIGHTS_SHA1'] == state_fingerprint(model)
    assert tags['SMARTIES_BANDS'].split(',')[0] == 'sentinel2:B01' and tags['SMARTIES_POOL'] == 'mean'
    assert tags['SMARTIES_SOURCE'] == str(sample) and 'SMARTIES_NORM' in tags
    assert len(gpd.read_parquet(out)) == 9  # 384 px in 128 px tiles


def test_default_workers_follow_the_device() -> None:
    from torchgeo_smarties.inference.embed import default_num_workers

    unset = TilingOptions()
    assert unset.on(torch.device('cpu')).num_workers == 0  # the model's threads own the cores
    assert unset.on(torch.device('cuda')).num_workers == default_num_workers()  # overlap with the accelerator
    assert TilingOptions(num_workers=2).on(torch.device('cpu')).num_workers == 2  # an explicit choice stays


def test_background_writer_and_inline_writer_give_the_same_file(sample: Path, tmp_path: Path) -> None:
    outs = []
    for workers in (0, 1):  # writer held before each model step / DataLoader worker + free-running writer thread
        src = open_source(sample)
        grid = TileGrid(src.height, src.width, 64, 16)
        out = tmp_path / f'w{workers}.tif'
        spec = OutputSpec(out, src.count, 'float32', lambda rows: rows)
        tiling = TilingOptions(64, 16, batch_size=4, num_workers=workers)
        run_tiled(src, grid, pooled(), src.count, [spec], normalize=make_normalizer(tuple(src.descriptions)),
                  tiling=tiling, progress=False)
        with rasterio.open(out) as ds:
            outs.append(ds.read())
    # the same tiles, normalised by the same code and blended in the same order in both: the same values
    np.testing.assert_allclose(outs[0], outs[1], rtol=0, atol=1e-6)


def test_checkpoint_interval_is_a_keyword_of_the_wrappers(sample: Path, tmp_path: Path) -> None:
    from torchgeo_smarties.inference import embed_raster

    with pytest.raises(OptionError, match='checkpoint interval'):  # validated before anything is read or written
        embed_raster(sample, tmp_path / 'o.tif', weights='demo', checkpoint_seconds=-1, progress=False,
                     log=lambda s: None)
    assert list(tmp_path.iterdir()) == []
