"""Multi-process ``smarties embed`` (Lightning predict + DDP) equals the single-process output."""

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from torchgeo_smarties.errors import ResumeError
from torchgeo_smarties.inference import TileGrid, embed_raster
from torchgeo_smarties.inference.distributed import (
    ContiguousDistributedSampler,
    embed_raster_distributed,
    rank_row_span,
    split_range,
)
from torchgeo_smarties.models import SMARTIESViT

KW = dict(progress=False, num_workers=0, log=lambda _msg: None)


def test_split_range_and_sampler_cover_every_tile_once() -> None:
    assert split_range(49, 2) == [(0, 24), (24, 49)]
    assert split_range(2, 3) == [(0, 0), (0, 1), (1, 2)]
    ds = list(range(49))
    got = [list(ContiguousDistributedSampler(ds, num_replicas=3, rank=r)) for r in range(3)]  # type: ignore[arg-type]
    assert [len(g) for g in got] == [16, 16, 17]
    assert [i for g in got for i in g] == ds
    grid = TileGrid(310, 318, 64, 16)  # padded 320 × 320: 7 × 7 tiles, stride 3 cells, tile 4 cells
    assert len(grid) == 49 and [o // 16 for o in grid.row_origins] == [0, 3, 6, 9, 12, 15, 16]
    assert rank_row_span(grid, 0, 24) == (0, 13)  # tiles 0..23 reach tile row 3 (origin 9 cells)
    assert rank_row_span(grid, 24, 49) == (9, 20)
    assert rank_row_span(grid, 5, 5) == (0, 0)


class FailingEncoder(SMARTIESViT):
    """Raises on rank 1's model step number ``fail_at`` (a crash half-way through that rank's tiles)."""

    fail_at = 3

    def forward_intermediates(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        import torch.distributed as dist

        self.calls = getattr(self, 'calls', 0) + 1
        if dist.is_initialized() and dist.get_rank() == 1 and self.calls == self.fail_at:
            raise RuntimeError(f'simulated crash at step {self.calls}')
        return super().forward_intermediates(*args, **kwargs)


def _crop(sample: Path, tmp_path: Path) -> Path:
    crop = tmp_path / 'crop.tif'  # 310 × 318 px: not a multiple of 16, 7 × 7 = 49 tiles (uneven split)
    with rasterio.open(sample) as src:
        prof = {**src.profile, 'height': 310, 'width': 318, 'tiled': False}
        prof.pop('blockxsize', None), prof.pop('blockysize', None)
        with rasterio.open(crop, 'w', **prof) as dst:
            dst.write(src.read(window=rasterio.windows.Window(0, 0, 318, 310)))
            dst.descriptions = src.descriptions
    return crop


def test_interrupted_ranks_resume_to_the_uninterrupted_result(tiny_model: SMARTIESViT, sample: Path,
                                                              tmp_path: Path) -> None:
    crop = _crop(sample, tmp_path)
    ref, out = tmp_path / 'ref.tif', tmp_path / 'ddp.tif'
    opts = dict(tile=64, overlap=16, batch_size=4, checkpoint_seconds=0, devices=2, accelerator='cpu',
                strategy='ddp_spawn', **KW)
    embed_raster(crop, ref, model=tiny_model, tile=64, overlap=16, batch_size=4, **KW)  # type: ignore[arg-type]
    failing = FailingEncoder(bands='sentinel2_l1c', embed_dim=32, depth=2, num_heads=2, img_size=64).eval()
    failing.load_state_dict(tiny_model.state_dict())
    with pytest.raises(Exception, match='simulated crash at step 3'):
        embed_raster_distributed(crop, out, model=failing, **opts)  # type: ignore[arg-type]
    work = tmp_path / 'ddp.tif.ddp-partial'
    progress = json.loads((work / 'rank-1-of-2.json').read_text())
    assert progress['next_tile'] == 32  # rank 1 (tiles 24..48) check-pointed after its second batch
    assert [p.name for p in work.glob('rank-1-of-2.carry-*.npy')] == [progress['carry']] == ['rank-1-of-2.carry-32.npy']
    assert not out.exists()
    with pytest.raises(ResumeError, match='batch_size 4 → 2'):  # refused before the ranks start
        embed_raster_distributed(crop, out, model=tiny_model, resume=True, **{**opts, 'batch_size': 2})  # type: ignore[arg-type]
    failing.fail_at = 6  # from tile 32, rank 1 has 17 tiles = 5 batches left; a restart from 24 would need 7
    res = embed_raster_distributed(crop, out, model=failing, resume=True, **opts)  # type: ignore[arg-type]
    assert res.run is not None and not work.exists()
    with rasterio.open(ref) as a, rasterio.open(out) as b:
        np.testing.assert_allclose(b.read(), a.read(), rtol=0, atol=1e-5)


def test_a_corrupt_rank_checkpoint_is_a_resume_error(tmp_path: Path) -> None:
    from torchgeo_smarties.inference.distributed import load_rank_progress

    grid = TileGrid(310, 318, 64, 16)
    assert load_rank_progress(tmp_path, grid, 0, 2, {}) is None  # nothing to resume: the rank starts over
    (tmp_path / 'rank-0-of-2.f32').write_bytes(b'')
    (tmp_path / 'rank-0-of-2.json').write_text('{not json')
    with pytest.raises(ResumeError, match='corrupt .*rm -r'):
        load_rank_progress(tmp_path, grid, 0, 2, {})


def test_two_ranks_equal_single_process(tiny_model: SMARTIESViT, sample: Path, tmp_path: Path) -> None:
    sample = _crop(sample, tmp_path)
    ref, out = tmp_path / 'ref.tif', tmp_path / 'ddp.tif'
    embed_raster(sample, ref, model=tiny_model, tile=64, overlap=16, batch_size=4, **KW)  # type: ignore[arg-type]
    res = embed_raster_distributed(
        sample, out, model=tiny_model, tile=64, overlap=16, batch_size=4, devices=2, accelerator='cpu',
        strategy='ddp_spawn', **KW,  # type: ignore[arg-type]
    )
    assert res.run is not None and res.run.tiles_total == 49  # odd: ranks get 24 and 25 tiles
    assert sorted(p.name for p in tmp_path.iterdir()) == ['crop.tif', 'ddp.tif', 'ref.tif']  # work folder removed
    with rasterio.open(ref) as a, rasterio.open(out) as b:
        assert b.crs == a.crs and b.transform == a.transform and b.shape == a.shape == (20, 20)
        assert b.count == a.count == 32 and b.dtypes == a.dtypes and np.isnan(b.nodata)
        assert b.tags() == a.tags() and b.descriptions == a.descriptions and b.block_shapes == a.block_shapes
        va, vb = a.read(), b.read()
    assert np.isfinite(va).all()
    np.testing.assert_allclose(vb, va, rtol=0, atol=1e-5)
    assert float(np.abs(va).max()) > 0.1  # not trivially equal
    assert float(np.abs(va[:, 9:13] - va[:, 5:9]).max()) > 1e-3  # the rows blended from both ranks carry signal


def test_cli_devices(sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from torchgeo_smarties.inference.cli import embed_main

    tiny = str(Path(__file__).resolve().parents[1] / 'data' / 'tiny_encoder.safetensors')
    base = [str(sample), '--weights', tiny, '--num-heads', '4', '--tile', '128', '--overlap', '32',
            '--workers', '0', '--no-progress']
    assert embed_main([*base, '-o', str(tmp_path / 'p.csv'), '--devices', '2', '--pool', 'mean']) == 2
    assert 'does not use --overlap' in capsys.readouterr().err  # --pool refuses the dense-raster options
    assert list(tmp_path.iterdir()) == []
    # one rank through Lightning (strategy ddp, world size 1) = the single-process command
    assert embed_main([*base, '-o', str(tmp_path / 'a.tif')]) == 0
    assert embed_main([*base, '-o', str(tmp_path / 'b.tif'), '--devices', '1', '--accelerator', 'cpu']) == 0
    assert '1 ranks (1 node(s) × 1 cpu device(s), ddp)' in capsys.readouterr().out
    with rasterio.open(tmp_path / 'a.tif') as a, rasterio.open(tmp_path / 'b.tif') as b:
        assert b.crs == a.crs and b.transform == a.transform and b.count == a.count == 64
        np.testing.assert_allclose(b.read(), a.read(), rtol=0, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.tif', 'b.tif']
