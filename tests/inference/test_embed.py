"""smarties embed: georeferencing, exactness of tiles, blending, nodata, padding, resume, errors."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from torchgeo_smarties.errors import (
    BandCountError,
    InputError,
    OutputError,
    ResumeError,
    UnknownPresetError,
    UnknownSensorError,
)
from torchgeo_smarties.inference import TileGrid, embed_raster, make_normalizer, open_source, pool_raster, ramp
from torchgeo_smarties.inference.engine import state_fingerprint
from torchgeo_smarties.models import SMARTIESViT

KW = {'progress': False, 'num_workers': 0, 'log': lambda s: None}


def _direct(model: SMARTIESViT, path: Path, window: Window) -> np.ndarray:
    """The encoder run directly on one normalised window (no tiling)."""
    src = open_source(path)
    bands = tuple(src.descriptions)
    vals, valid = src.read(window)
    x = make_normalizer(bands)(torch.from_numpy(vals)[None])  # type: ignore[misc]
    m = torch.from_numpy(valid)[None]
    with torch.inference_mode():
        out = model.forward_dense(x, bands=list(bands), band_mask=None if bool(m.all()) else m)
    return out[0].numpy()


def test_georeferencing_and_shape(tiny_model: SMARTIESViT, sample: Path, tmp_path: Path) -> None:
    out = tmp_path / 'emb.tif'
    res = embed_raster(sample, out, model=tiny_model, tile=128, overlap=32, batch_size=4, **KW)
    with rasterio.open(sample) as src, rasterio.open(out) as dst:
        assert dst.crs == src.crs and dst.crs.to_epsg() == 32618
        assert dst.transform == src.transform @ Affine.scale(16)
        assert dst.transform.a == 160.0 and (dst.transform.c, dst.transform.f) == (src.transform.c, src.transform.f)
        assert (dst.count, dst.height, dst.width) == (32, math.ceil(src.height / 16), math.ceil(src.width / 16))
        assert dst.dtypes[0] == 'float32' and math.isnan(dst.nodata)
        assert dst.profile['tiled'] and dst.profile['compress'] == 'zstd'  # the default codec (DEFAULT_CODEC)
        emb = dst.read()
        assert dst.tags()['SMARTIES_BANDS'].split(',')[10] == 'sentinel2:B10'
    assert res.shape == (32, 24, 24)
    assert np.isfinite(emb).all()  # the crop has no nodata
    assert emb.std() > 0.1
    assert not list(tmp_path.glob('*.partial'))


def test_interior_equals_direct_encoder_and_blends(tiny_model: SMARTIESViT, sample: Path, tmp_path: Path) -> None:
    out = tmp_path / 'emb.tif'
    embed_raster(sample, out, model=tiny_model, tile=128, overlap=32, batch_size=3, **KW)
    grid = TileGrid(384, 384, 128, 32)
    assert grid.row_origins == [0, 96, 192, 256]
    with rasterio.open(out) as ds:
        emb = ds.read()
    # tile (0, 1): pixels rows 0-127, cols 96-223 = patch rows 0-7, cols 6-13; only this tile covers rows 0-5,
    # cols 8-11 (neighbours overlap 2 patches each side)
    t01 = _direct(tiny_model, sample, Window(96, 0, 128, 128))
    np.testing.assert_allclose(emb[:, 0:6, 8:12], t01[:, 0:6, 2:6], atol=1e-5, rtol=0)
    # an interior tile: (1, 1) rows 96-223 -> patch rows 6-13; single cover rows 8-11, cols 8-11
    t11 = _direct(tiny_model, sample, Window(96, 96, 128, 128))
    np.testing.assert_allclose(emb[:, 8:12, 8:12], t11[:, 2:6, 2:6], atol=1e-5, rtol=0)
    # the overlap column 6 (rows 0-5) is the ramp blend 2/3 · tile(0,0) + 1/3 · tile(0,1)
    t00 = _direct(tiny_model, sample, Window(0, 0, 128, 128))
    np.testing.assert_allclose(emb[:, 0:6, 6], 2 / 3 * t00[:, 0:6, 6] + 1 / 3 * t01[:, 0:6, 0], atol=1e-5)
    assert np.abs(t00[:, 0:6, 6] - t01[:, 0:6, 0]).max() > 1e-2  # the blend is not trivially equal


def test_ramp_weights_sum_to_one() -> None:
    a = ramp(8, 2, lead=False, trail=True)
    b = ramp(8, 2, lead=True, trail=False)
    np.testing.assert_allclose(a[-2:] + b[:2], [1.0, 1.0])
    np.testing.assert_allclose(a[:6], 1.0)
    g = TileGrid(100, 90, 64, 16)
    assert g.padded == (112, 96) and g.out_shape == (7, 6)
    assert g.row_origins == [0, 48] and g.col_origins == [0, 32]


def test_not_multiple_of_16_is_padded_and_cropped(tiny_model: SMARTIESViT, sample: Path, tmp_path: Path) -> None:
    crop = tmp_path / 'crop.tif'
    with rasterio.open(sample) as src:
        prof = src.profile
        win = Window(5, 7, 90, 100)
        prof.update(width=90, height=100, transform=src.window_transform(win))
        with rasterio.open(crop, 'w', **prof) as dst:
            dst.write(src.read(window=win))
            dst.descriptions = src.descriptions
    out = tmp_path / 'emb.tif'
    embed_raster(crop, out, model=tiny_model, tile=64, overlap=16, **KW)
    with rasterio.open(out) as ds, rasterio.open(crop) as c:
        assert (ds.height, ds.width) == (7, 6)  # ceil(100/16), ceil(90/16)
        assert ds.transform == c.transform @ Affine.scale(16)
        assert np.isfinite(ds.read()).all()  # the edge patches are real (edge-padded), not nodata


def test_nodata_is_masked_in_the_tokenizer(tiny_model: SMARTIESViT, sample: Path, tmp_path: Path) -> None:
    holey = tmp_path / 'holey.tif'
    with rasterio.open(sample) as src:
        arr = src.read()
        prof = src.profile
        desc = src.descriptions
    arr[:, 0:64, 0:64] = 0  # all bands missing: 4×4 patches of nodata
    arr[3, 64:128, 0:32] = 0  # B04 missing only: patches stay valid, B04 left out of the mean
    with rasterio.open(holey, 'w', **prof) as dst:
        dst.write(arr)
        dst.descriptions = desc
    out = tmp_path / 'emb.tif'
    embed_raster(holey, out, model=tiny_model, tile=128, overlap=0, **KW)
    with rasterio.open(out) as ds:
        emb = ds.read()
    assert np.isnan(emb[:, 0:4, 0:4]).all()
    assert np.isfinite(emb[:, 4:, :]).all() and np.isfinite(emb[:, :4, 4:]).all()
    # tile (0, 0) with B04 masked equals the encoder given the same per-pixel mask
    direct = _direct(tiny_model, holey, Window(0, 0, 128, 128))
    np.testing.assert_allclose(emb[:, 4:8, 0:2], direct[:, 4:8, 0:2], atol=1e-5)
    # ... and differs from filling the hole with zeros unmasked
    src = open_source(holey)
    vals, _ = src.read(Window(0, 0, 128, 128))
    x = make_normalizer(tuple(desc))(torch.from_numpy(vals)[None])  # type: ignore[misc]
    with torch.inference_mode():
        filled = tiny_model.forward_dense(x, bands=list(desc))[0].numpy()
    assert np.abs(filled[:, 4:8, 0:2] - emb[:, 4:8, 0:2]).max() > 1e-3


class _Interrupt(Exception):
    pass


def test_kill_and_resume_is_byte_identical(tiny_model: SMARTIESViT, sample: Path, tmp_path: Path) -> None:
    ref = tmp_path / 'ref.tif'
    embed_raster(sample, ref, model=tiny_model, tile=64, overlap=16, batch_size=3, **KW)
    out = tmp_path / 'out.tif'
    seen = []

    def kill(done: int, total: int) -> None:
        seen.append(done)
        if len(seen) == 3:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        embed_raster(sample, out, model=tiny_model, tile=64, overlap=16, batch_size=3, on_batch=kill,
                     checkpoint_seconds=0, **KW)
    assert not out.exists()  # no partial output at the final path
    assert (tmp_path / 'out.tif.partial' / 'progress.json').is_file()
    killed_at = seen[-1]
    assert 0 < killed_at < 64
    res = embed_raster(sample, out, model=tiny_model, tile=64, overlap=16, batch_size=3, resume=True, **KW)
    assert res.run is not None and res.run.resumed_from == killed_at  # the last checkpoint
    assert res.run.tiles_run == 64 - killed_at
    assert out.read_bytes() == ref.read_bytes()
    assert not (tmp_path / 'out.tif.partial').exists()


def test_resume_refuses_other_settings(tiny_model: SMARTIESViT, sample: Path, tmp_path: Path) -> None:
    out = tmp_path / 'out.tif'

    def kill(done: int, total: int) -> None:
        raise _Interrupt

    with pytest.raises(_Interrupt):
        embed_raster(sample, out, model=tiny_model, tile=64, overlap=16, on_batch=kill, checkpoint_seconds=0, **KW)
    with pytest.raises(ResumeError, match='options changed since the partial run: overlap 16 → 32'):
        embed_raster(sample, out, model=tiny_model, tile=64, overlap=32, resume=True, **KW)


def test_float16_and_layer(tiny_model: SMARTIESViT, sample: Path, tmp_path: Path) -> None:
    a, b = tmp_path / 'a.tif', tmp_path / 'b.tif'
    embed_raster(sample, a, model=tiny_model, tile=128, overlap=32, dtype='float16', **KW)
    embed_raster(sample, b, model=tiny_model, tile=128, overlap=32, layer=0, final_norm=True, **KW)
    with rasterio.open(a) as da, rasterio.open(b) as db:
        assert da.dtypes[0] == 'float16'
        # block 0 + norm differs from the last block
        assert np.abs(da.read().astype(np.float32) - db.read()).max() > 1e-2


def test_folder_of_single_band_files(tiny_model: SMARTIESViT, sample: Path, tmp_path: Path) -> None:
    folder = tmp_path / 'bands'
    folder.mkdir()
    with rasterio.open(sample) as src:
        prof = src.profile
        prof.update(count=1)
        for i, d in enumerate(src.descriptions, start=1):
            name = d.split(':')[1]
            with rasterio.open(folder / f'T18_{i:02d}_{name}.tif', 'w', **prof) as dst:
                dst.write(src.read(i), 1)
    bands = ','.join(f'sentinel2:{b}' for b in 'B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B10 B11 B12'.split())
    a, b = tmp_path / 'a.tif', tmp_path / 'b.tif'
    embed_raster(folder, a, model=tiny_model, bands=bands, tile=128, overlap=32, **KW)
    embed_raster(sample, b, model=tiny_model, tile=128, overlap=32, **KW)
    with rasterio.open(a) as da, rasterio.open(b) as db:
        np.testing.assert_array_equal(da.read(), db.read())
        assert da.crs == db.crs and da.transform == db.transform


def test_pool_geoparquet_and_csv(tiny_model: SMARTIESViT, sample: Path, tmp_path: Path) -> None:
    gpd = pytest.importorskip('geopandas')
    pq = tmp_path / 'tiles.parquet'
    res = pool_raster(sample, pq, model=tiny_model, tile=128, **KW)
    df = gpd.read_parquet(pq)
    assert len(df) == 9 and res.shape == (9, 32)
    assert df.crs.to_epsg() == 32618
    with rasterio.open(sample) as src:
        left, top = src.transform @ (128, 0)
    g = df.geometry.iloc[1]
    assert g.bounds == (left, top - 1280, left + 1280, top)
    assert len(df['embedding'].iloc[0]) == 32
    csv = tmp_path / 'tiles.csv'
    pool_raster(sample, csv, model=tiny_model, tile=128, pool='cls', **KW)
    lines = csv.read_text().splitlines()
    assert len(lines) == 10 and lines[0].startswith('tile,row_off,col_off,height,width,geometry,emb_0000')
    side = json.loads((tmp_path / 'tiles.csv.json').read_text())  # CSV's provenance and CRS, beside it
    assert side['SMARTIES_POOL'] == 'cls' and side['SMARTIES_SOURCE'] == str(sample)
    assert side['SMARTIES_WEIGHTS_SHA1'] == state_fingerprint(tiny_model) and 'SMARTIES_NORM' in side
    assert CRS.from_wkt(side['SMARTIES_CRS']).to_epsg() == 32618
    (tmp_path / 'busy.csv.json').mkdir()  # the sidecar's path is checked before the first tile
    with pytest.raises(OutputError, match='busy.csv.json'):
        pool_raster(sample, tmp_path / 'busy.csv', model=tiny_model, tile=128, **KW)
    assert not (tmp_path / 'busy.csv').exists()


# ------------------------------------------------------------------------------------------------- errors
def _no_output(tmp_path: Path) -> None:
    left = [p.name for p in tmp_path.iterdir() if p.suffix in ('.tif', '.partial') and p.name != 'in.tif']
    assert left == []


def test_raster_without_crs_warns_or_refuses(tiny_model: SMARTIESViT, sample: Path, tmp_path: Path) -> None:
    nocrs = tmp_path / 'in.tif'
    with rasterio.open(sample) as src:
        prof = src.profile
        prof.update(crs=None, width=64, height=64)
        with rasterio.open(nocrs, 'w', **prof) as dst:
            dst.write(src.read(window=Window(0, 0, 64, 64)))
            dst.descriptions = src.descriptions
    with pytest.raises(InputError, match='no CRS'):
        embed_raster(nocrs, tmp_path / 'o.tif', model=tiny_model, require_crs=True, **KW)
    _no_output(tmp_path)
    with pytest.warns(UserWarning, match='no CRS'):
        embed_raster(nocrs, tmp_path / 'o.tif', model=tiny_model, tile=64, overlap=0, **KW)
    with rasterio.open(tmp_path / 'o.tif') as ds:
        assert ds.crs is None and ds.shape == (4, 4)


def test_errors_leave_no_output(tiny_model: SMARTIESViT, sample: Path, tmp_path: Path) -> None:
    out = tmp_path / 'o.tif'
    with pytest.raises(BandCountError, match='raster has 13 bands'):
        embed_raster(sample, out, model=tiny_model, bands='sentinel2:B02,sentinel2:B03,sentinel2:B04', **KW)
    with pytest.raises(BandCountError, match='raster has 13 bands'):
        embed_raster(sample, out, model=tiny_model, sensor='sentinel2_l2a', **KW)
    with pytest.raises((UnknownPresetError, UnknownSensorError), match='not a band preset or a sensor'):
        embed_raster(sample, out, model=tiny_model, sensor='sentinel7_l9z', **KW)
    bad = tmp_path / 'bad.tif'
    bad.write_text('not a raster')
    with pytest.raises(InputError, match='cannot read'):
        embed_raster(bad, out, model=tiny_model, **KW)
    with pytest.raises(InputError, match='does not exist'):
        embed_raster(tmp_path / 'missing.tif', out, model=tiny_model, **KW)
    with pytest.raises(InputError, match='does not exist; create it'):
        embed_raster(sample, tmp_path / 'nope' / 'o.tif', model=tiny_model, **KW)
    with pytest.raises(InputError, match='is a folder'):
        embed_raster(sample, tmp_path, model=tiny_model, **KW)
    with pytest.raises(InputError, match='multiple of the patch'):
        embed_raster(sample, out, model=tiny_model, tile=100, **KW)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bad.tif']


def test_pool_footprints_on_a_rotated_grid(tiny_model: SMARTIESViT, sample: Path, tmp_path: Path) -> None:
    gpd = pytest.importorskip('geopandas')
    rot = tmp_path / 'rot.tif'
    with rasterio.open(sample) as src:
        t = src.transform @ Affine.rotation(30)  # a rotated pixel grid (10 m pixels, 30° from north)
        with rasterio.open(rot, 'w', **{**src.profile, 'transform': t}) as dst:
            dst.write(src.read())
            dst.descriptions = src.descriptions
    pool_raster(rot, tmp_path / 'tiles.parquet', model=tiny_model, tile=128, **KW)
    g = gpd.read_parquet(tmp_path / 'tiles.parquet').geometry.iloc[1]  # tile (0, 1): cols 128-255, rows 0-127
    corners = [t @ (128, 0), t @ (256, 0), t @ (256, 128), t @ (128, 128)]
    np.testing.assert_allclose(np.asarray(g.exterior.coords)[:4], np.asarray(corners), rtol=0, atol=1e-6)
    # the exact footprint has the tile's area (1280 m × 1280 m); the old two-corner box was ~1.87× larger
    assert g.area == pytest.approx(1280 * 1280, rel=1e-9)


def test_blend_accumulator_streams_and_merges() -> None:
    from torchgeo_smarties.inference.engine import BlendAccumulator

    acc = BlendAccumulator.zeros(0, 4, 2)
    acc.add(0, 0, np.ones((2, 3, 2), np.float32), np.full((2, 3), 0.5, np.float32))
    acc.add(1, 1, np.full((2, 3, 2), 3.0, np.float32), np.full((2, 3), 0.5, np.float32))  # grows to row 2
    assert (acc.y0, acc.rows) == (0, 3)
    rows = acc.pop(2)  # rows 0-1 finished
    assert rows.shape == (2, 4, 2) and acc.y0 == 2
    np.testing.assert_array_equal(rows[0, :, 0], [1, 1, 1, np.nan])  # col 3 of row 0 has no tile: NaN
    np.testing.assert_array_equal(rows[1, :, 0], [1, 2, 2, 3])  # (0.5·1 + 0.5·3) / 1 where both overlap
    other = BlendAccumulator.zeros(2, 4, 2, y0=2)
    other.merge(acc)
    np.testing.assert_array_equal(other.blended(2, 3), acc.blended(2, 3))


def test_parameter_objects_validate() -> None:
    from torchgeo_smarties.errors import OptionError
    from torchgeo_smarties.inference.job import DenseOptions, EncoderSpec, TilingOptions

    t = TilingOptions(tile=128, overlap=32, batch_size=2, num_workers=0, compress='ZSTD')
    assert t.compress == 'zstd' and t.workers == 0
    assert DenseOptions(layer=-1).block_index(4) == 3 and DenseOptions(layer=2).block_index(4) == 2
    with pytest.raises(OptionError, match=r'in \[-4, 3\]'):
        DenseOptions(layer=4).block_index(4)
    assert EncoderSpec(device='cpu').torch_device == torch.device('cpu')
    with pytest.raises(OptionError, match='number of heads'):
        EncoderSpec(num_heads=0)
