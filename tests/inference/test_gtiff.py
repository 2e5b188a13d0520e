"""The pixel-interleaved GeoTIFF writer (GDAL's ``RasterIO`` through ctypes) against rasterio's writes, and the
engine's block sizes."""

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from rasterio.crs import CRS
from rasterio.errors import RasterioIOError
from rasterio.transform import from_origin
from torch import Tensor

from torchgeo_smarties.inference import TileGrid, make_normalizer, open_source
from torchgeo_smarties.inference import engine as E
from torchgeo_smarties.inference.engine import BlockWriter, OutputSpec, block_rows, output_block, run_tiled
from torchgeo_smarties.inference.gtiff import PixelWriter, libgdal, pixel_writer_supported
from torchgeo_smarties.inference.job import TilingOptions


def _profile(count: int = 40, height: int = 37, width: int = 45, block: int = 16, **extra: Any) -> dict[str, Any]:
    return {'driver': 'GTiff', 'width': width, 'height': height, 'count': count, 'dtype': 'float32',
            'crs': CRS.from_epsg(32632), 'transform': from_origin(500000, 5000000, 160, 160), 'nodata': float('nan'),
            'tiled': True, 'blockxsize': block, 'blockysize': block, 'compress': 'zstd', 'interleave': 'pixel',
            'BIGTIFF': 'IF_SAFER', 'predictor': 3, 'zstd_level': 1, **extra}


def _rows(profile: dict[str, Any]) -> np.ndarray:
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((profile['height'], profile['width'], profile['count'])).astype(np.float32)
    rows[:3, :5] = np.nan  # nodata cells
    return rows


def _write(path: Path, profile: dict[str, Any], rows: np.ndarray, fast: bool, monkeypatch: pytest.MonkeyPatch,
           chunk: int = 7) -> None:
    """Write *rows* through the engine's BlockWriter, in chunks of *chunk* rows, on the fast or the rasterio path."""
    monkeypatch.setattr(E, 'pixel_writer_supported', pixel_writer_supported if fast else lambda *a: False)
    spec = OutputSpec(path, profile['count'], 'float32', lambda r: r, float('nan'),
                      [f'emb_{i:04d}' for i in range(profile['count'])], {'SMARTIES_X': 'ü 1', 'B': '2'})
    wr = BlockWriter(spec, path, profile)
    assert (wr.pixels is not None) == fast
    try:
        for y in range(0, len(rows), chunk):
            wr.add(rows[y:y + chunk])
    finally:
        wr.close()


def test_the_loaded_libgdal_is_found_on_linux() -> None:
    lib = libgdal()
    if sys.platform.startswith('linux'):  # CI: the fast path must not silently fall back
        assert lib is not None
    if lib is not None:
        assert lib.GDALVersionInfo(b'RELEASE_NAME').decode().startswith(rasterio.__gdal_version__.split('dev')[0])


def test_pixel_writer_writes_the_file_rasterio_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if libgdal() is None:
        pytest.skip('libgdal not locatable on this platform (the rasterio path is used)')
    profile = _profile()
    rows = _rows(profile)
    _write(tmp_path / 'fast.tif', profile, rows, True, monkeypatch)
    _write(tmp_path / 'rio.tif', profile, rows, False, monkeypatch)
    with rasterio.open(tmp_path / 'fast.tif') as a, rasterio.open(tmp_path / 'rio.tif') as b:
        for key in ('crs', 'transform', 'dtype', 'count', 'width', 'height', 'blockxsize', 'blockysize', 'tiled',
                    'compress', 'interleave'):
            assert a.profile[key] == b.profile[key], key
        assert np.isnan(a.nodata) and np.isnan(b.nodata)
        assert a.descriptions == b.descriptions == tuple(f'emb_{i:04d}' for i in range(40))
        assert a.tags() == b.tags() and a.tags()['SMARTIES_X'] == 'ü 1'
        assert a.tags(ns='IMAGE_STRUCTURE') == b.tags(ns='IMAGE_STRUCTURE')  # compression, predictor, interleave
        assert a.block_shapes == b.block_shapes == [(16, 16)] * 40
        # lossless storage of the same float32 values: the decoded arrays are identical, NaN included
        np.testing.assert_array_equal(a.read(), rows.transpose(2, 0, 1))
        np.testing.assert_array_equal(b.read(), rows.transpose(2, 0, 1))


def test_pixel_writer_takes_row_strided_views_and_checks_shapes(tmp_path: Path) -> None:
    if libgdal() is None:
        pytest.skip('libgdal not locatable on this platform')
    profile = _profile(count=3, height=20, width=10, block=16, compress='none', predictor=None, zstd_level=None)
    padded = np.arange(20 * 12 * 3, dtype=np.float32).reshape(20, 12, 3)
    w = PixelWriter(tmp_path / 'v.tif', profile, ['a', 'b', 'c'])
    try:
        w.write(0, padded[:16, :10])  # a view: row stride 12 × 3 values, no copy needed
        with pytest.raises(ValueError, match='rows of shape'):
            w.write(16, padded[16:, :11])
        with pytest.raises(ValueError, match='outside the raster'):
            w.write(16, padded[:16, :10])
        w.write(16, padded[16:, :10].astype(np.float64))  # converted to the file's type
    finally:
        w.close()
        w.close()  # idempotent
    with rasterio.open(tmp_path / 'v.tif') as ds:
        np.testing.assert_array_equal(ds.read(), padded[:, :10].transpose(2, 0, 1))
        assert ds.descriptions == ('a', 'b', 'c')


def test_gdal_errors_are_rasterio_io_errors(tmp_path: Path) -> None:
    if libgdal() is None:
        pytest.skip('libgdal not locatable on this platform')
    with pytest.raises(RasterioIOError, match=r"cannot create .*missing.*: "):
        PixelWriter(tmp_path / 'missing' / 'x.tif', _profile())
    with pytest.raises(RasterioIOError, match='BLOCKXSIZE|block'):
        PixelWriter(tmp_path / 'odd.tif', _profile(block=17))  # tiles must be multiples of 16


def test_only_multiband_pixel_interleaved_plain_types_take_the_fast_path() -> None:
    ok = _profile()
    assert pixel_writer_supported(ok) == (libgdal() is not None)
    assert not pixel_writer_supported({**ok, 'count': 1})
    assert not pixel_writer_supported({**ok, 'interleave': 'band'})
    assert not pixel_writer_supported({**ok, 'driver': 'COG'})
    assert not pixel_writer_supported({**ok, 'dtype': 'float16'})
    assert not pixel_writer_supported(ok, colormap={0: (0, 0, 0, 255)})


def test_block_side_keeps_a_block_under_a_mebibyte() -> None:
    grid = TileGrid(1947, 1933, 224, 32)  # 122 × 121 cells
    assert block_rows(grid, 64, 768 * 4) == 16  # 16 × 16 × 768 float32 = 768 KiB (64 × 64: 12 MiB)
    assert block_rows(grid, 64, 768 * 2) == 16
    assert block_rows(grid, 64, 64 * 4) == 64  # 1 MiB exactly
    assert block_rows(grid, 64, 1) == 64  # a class map keeps the asked size
    assert block_rows(grid, 256, 10 * 4) == 128  # 10-class probabilities
    assert block_rows(TileGrid(40, 40, 32, 0, out_scale=1), 64, 1) == 48  # a small output: one block
    spec = OutputSpec(Path('x.tif'), 768, 'float32', lambda r: r)
    assert output_block(spec, grid, 64) == 16


def _channel_means(x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    out = torch.nn.functional.avg_pool2d(x, 16)
    return out, torch.ones(out.shape[0], *out.shape[2:], dtype=torch.bool)


@pytest.mark.parametrize('fast', [True, False])
def test_engine_outputs_are_the_same_on_both_write_paths(sample: Path, tmp_path: Path, fast: bool,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A run whose blocks are 16 rows (a small block budget) writes the same GeoTIFF on both paths."""
    if fast and libgdal() is None:
        pytest.skip('libgdal not locatable on this platform')
    monkeypatch.setattr(E, 'BLOCK_BYTES', 16 * 16 * 13 * 4)
    src = open_source(sample)
    grid = TileGrid(src.height, src.width, 64, 16)
    outs = {}
    for name, use in (('ref', True), ('got', fast)):
        monkeypatch.setattr(E, 'pixel_writer_supported',
                            pixel_writer_supported if use and libgdal() is not None else lambda *a: False)
        out = tmp_path / f'{name}.tif'
        spec = OutputSpec(out, src.count, 'float32', lambda r: r, float('nan'), list(src.descriptions), {'K': 'v'})
        run_tiled(src, grid, _channel_means, src.count, [spec], normalize=make_normalizer(tuple(src.descriptions)),
                  tiling=TilingOptions(64, 16, batch_size=4, num_workers=0), progress=False)
        with rasterio.open(out) as ds:
            assert ds.block_shapes[0] == (16, 16) and ds.tags()['K'] == 'v'
            outs[name] = ds.read()
    assert np.isfinite(outs['got']).all()
    np.testing.assert_array_equal(outs['got'], outs['ref'])
