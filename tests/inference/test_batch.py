"""Many scenes as one job: failures reported and skipped, resume per scene, rank split, catalogue, torchgeo reader."""

import json
import os
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pystac
import pytest
import rasterio
from rasterio.windows import Window

from torchgeo_smarties.errors import InputError
from torchgeo_smarties.inference.batch import embed_many, is_batch_input
from torchgeo_smarties.models import SMARTIESViT

TINY_WEIGHTS = Path(__file__).resolve().parents[1] / 'data' / 'tiny_encoder.safetensors'


def _crop(sample: Path, dest: Path, row: int, col: int, size: int = 64) -> Path:
    with rasterio.open(sample) as src:
        win = Window(col, row, size, size)
        profile = src.profile | {'width': size, 'height': size, 'transform': src.window_transform(win)}
        profile.pop('blockxsize', None), profile.pop('blockysize', None), profile.pop('tiled', None)
        with rasterio.open(dest, 'w', **profile) as dst:
            dst.write(src.read(window=win))
            dst.descriptions = src.descriptions
    return dest


def _corrupt(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # header intact, strips cut off
    return path


@pytest.fixture
def scenes(sample: Path, tmp_path: Path) -> list[Path]:
    d = tmp_path / 'scenes'
    d.mkdir()
    return [_crop(sample, d / f'scene_{k}.tif', 64 * k, 32 * k) for k in range(3)]


def test_batch_input_detection(scenes: list[Path], tmp_path: Path) -> None:
    lst = scenes[0].parent / 'list.txt'
    lst.write_text('\n'.join(p.name for p in scenes[:2]))
    assert is_batch_input([str(lst)]) and is_batch_input([str(scenes[0].parent / 'scene_*.tif')])
    assert is_batch_input([str(scenes[0].parent)])  # a folder of multi-band files is a folder of scenes
    assert is_batch_input([str(scenes[0]), str(scenes[1])]) and not is_batch_input([str(scenes[0])])
    with pytest.raises(InputError, match='matches no file'):
        embed_many([str(tmp_path / 'nothing_*.tif')], tmp_path / 'o')


def test_corrupt_scene_is_reported_others_complete_resume_finishes(
    scenes: list[Path], sample: Path, tmp_path: Path, tiny_model: SMARTIESViT
) -> None:
    _corrupt(scenes[1])
    out = tmp_path / 'out'
    opts = dict(model=tiny_model, tile=64, overlap=0, num_workers=0, progress=False, log=lambda _: None)
    res = embed_many([str(scenes[0].parent / 'scene_*.tif')], out, **opts)
    assert [o.status for o in res.outcomes] == ['done', 'failed', 'done']
    assert res.failed[0].input == str(scenes[1]) and res.failed[0].error
    status = json.loads((out / 'job-rank0.json').read_text())
    assert status['finished'] and [s['status'] for s in status['scenes']] == ['done', 'failed', 'done']
    assert not (out / 'scene_1_embeddings.tif').exists()
    # the catalogue lists only the complete outputs
    assert res.catalogue is not None and res.catalogue.items == 2
    done_before = (out / 'scene_0_embeddings.tif').stat().st_mtime_ns
    # repair the scene and resume: the done scenes are skipped, the repaired one completes
    _crop(sample, scenes[1], 64, 32)
    res2 = embed_many([str(scenes[0].parent / 'scene_*.tif')], out, resume=True, **opts)
    assert [o.status for o in res2.outcomes] == ['skipped', 'done', 'skipped']
    assert (out / 'scene_0_embeddings.tif').stat().st_mtime_ns == done_before
    assert res2.catalogue.items == 3


def test_catalogue_validates_and_index_reads_back(scenes: list[Path], tmp_path: Path, tiny_model: SMARTIESViT) -> None:
    out = tmp_path / 'out'
    embed_many([str(p) for p in scenes[:2]], out, model=tiny_model, tile=64, overlap=0, num_workers=0,
               progress=False, log=lambda _: None)
    ic = pystac.ItemCollection.from_file(str(out / 'catalogue.json'))
    assert len(ic) == 2
    for item in ic:
        item.validate()  # core STAC Item schema (bundled with pystac: no network)
        assert item.properties['smarties:bands'].startswith('sentinel2:B01')
        assert item.assets['embeddings'].href == f'{item.id}.tif'
    gdf = gpd.read_parquet(out / 'patches.parquet')
    assert len(gdf) == 2 * 4 * 4 and gdf.crs.to_epsg() == 4326
    # each cell polygon (reprojected) contains the reprojected centre of that cell
    from pyproj import Transformer

    with rasterio.open(out / 'scene_0_embeddings.tif') as ds:
        tr = Transformer.from_crs(ds.crs, 'EPSG:4326', always_xy=True)
        row = gdf[(gdf['item'] == 'scene_0_embeddings') & (gdf['row'] == 2) & (gdf['col'] == 3)].iloc[0]
        x, y = ds.transform @ (3.5, 2.5)
    lon, lat = tr.transform(x, y)
    from shapely.geometry import Point

    assert row.geometry.contains(Point(lon, lat))


def test_torchgeo_reads_embeddings_back(scenes: list[Path], tmp_path: Path, tiny_model: SMARTIESViT) -> None:
    from torchgeo_smarties.datasets import SMARTIESEmbeddings

    out = tmp_path / 'out'
    embed_many([str(scenes[0])], out, model=tiny_model, tile=64, overlap=0, num_workers=0, progress=False,
               log=lambda _: None)
    ds = SMARTIESEmbeddings(out)
    assert len(ds.all_bands) == tiny_model.embed_dim
    with rasterio.open(out / 'scene_0_embeddings.tif') as r:
        ref = r.read()
        b = r.bounds
        res = r.res
    sample = ds[b.left:b.right:res[0], b.bottom:b.top:res[1]]  # torchgeo >= 0.10: (x, y) slices with step = res
    img = sample['image'].numpy()
    assert img.shape == ref.shape
    np.testing.assert_allclose(img, ref, rtol=0, atol=0)  # same file, same cells: a copy, not a computation
    with pytest.raises(InputError, match='no SMARTIES embedding rasters'):
        SMARTIESEmbeddings(tmp_path / 'scenes')


def test_two_processes_split_the_scenes(scenes: list[Path], tmp_path: Path) -> None:
    out = tmp_path / 'out'
    code = (
        'import sys; from torchgeo_smarties.inference.batch import embed_many; '
        f'r = embed_many({[str(p) for p in scenes]!r}, {str(out)!r}, weights={str(TINY_WEIGHTS)!r}, num_heads=4, '
        'tile=64, overlap=0, num_workers=0, progress=False, log=lambda _: None, wait_timeout=300); '
        'print(len(r.outcomes)); sys.exit(1 if r.failed else 0)'
    )
    procs = []
    for rank in (0, 1):
        env = os.environ | {'RANK': str(rank), 'WORLD_SIZE': '2', 'OMP_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1'}
        procs.append(subprocess.Popen([sys.executable, '-c', code], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [int(o[0].split()[-1]) for o in outs] == [2, 1]  # scenes 0, 2 on rank 0; scene 1 on rank 1
    assert sorted(p.name for p in out.glob('*_embeddings.tif')) == [f'scene_{k}_embeddings.tif' for k in range(3)]
    assert len(pystac.ItemCollection.from_file(str(out / 'catalogue.json'))) == 3


def test_bad_batch_options(scenes: list[Path], tmp_path: Path) -> None:
    f = tmp_path / 'afile'
    f.write_text('x')
    with pytest.raises(InputError, match='not a folder'):
        embed_many([str(scenes[0])], f)
    with pytest.raises(InputError, match='rank 2 of world size 2'):
        embed_many([str(scenes[0])], tmp_path / 'o', rank=2, world_size=2)
    with pytest.raises(InputError, match='per scene'):
        embed_many([str(scenes[0])], tmp_path / 'o', output='x.tif')
    assert not (tmp_path / 'o').exists()


def test_cli_batch_reports_failed_scene(scenes: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from torchgeo_smarties.cli import main

    _corrupt(scenes[2])
    out = tmp_path / 'cli_out'
    args = ['embed', str(scenes[0].parent / 'scene_*.tif'), '-o', f'{out}/', '--weights', str(TINY_WEIGHTS),
            '--num-heads', '4', '--tile', '64', '--overlap', '0', '--workers', '0', '--no-progress']
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and 'Traceback' not in err[0] and '1 of 3 scenes failed' in err[0] and 'scene_2' in err[0]
    assert sorted(p.name for p in out.glob('*_embeddings.tif')) == ['scene_0_embeddings.tif', 'scene_1_embeddings.tif']
    assert main([*args, '--preview', str(tmp_path / 'p.png')]) == 2  # a preview is per scene
    assert 'is for one scene' in capsys.readouterr().err


def test_rank_device(monkeypatch: pytest.MonkeyPatch) -> None:
    from torchgeo_smarties.inference.batch import rank_device

    for var in ('LOCAL_RANK', 'SLURM_LOCALID'):
        monkeypatch.delenv(var, raising=False)
    assert rank_device('cuda') == 'cuda'  # not under a launcher: unchanged
    monkeypatch.setenv('SLURM_LOCALID', '2')
    assert rank_device('cuda') == 'cuda:2'
    monkeypatch.setenv('LOCAL_RANK', '3')  # torchrun's variable wins
    assert rank_device('cuda') == 'cuda:3'
    assert rank_device('cuda:0') == 'cuda:0' and rank_device('cpu') == 'cpu'  # an explicit device is kept
