"""embed_array: numpy and xarray in, xarray on the 16-px grid out."""

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from torchgeo_smarties.errors import InputError
from torchgeo_smarties.inference import embed_array, embed_raster
from torchgeo_smarties.models import SMARTIESViT

KW = {'progress': False, 'num_workers': 0, 'log': lambda s: None, 'tile': 64, 'overlap': 0}


def test_xarray_round_trip(tiny_model: SMARTIESViT, sample: Path, tmp_path: Path) -> None:
    rxr = pytest.importorskip('rioxarray')
    da = rxr.open_rasterio(sample).isel(x=slice(0, 64), y=slice(0, 48))  # long_name = sentinel2:B01, ...
    out = embed_array(da, model=tiny_model, **KW)
    assert out.dims == ('band', 'y', 'x') and out.shape == (32, 3, 4)
    assert out.rio.crs == da.rio.crs and out.rio.crs.to_epsg() == 32618
    t = da.rio.transform()
    assert out.rio.transform() == t @ Affine.scale(16)
    # cell centres of the 16-px grid: origin + (i + 0.5) · 16 · pixel size
    np.testing.assert_allclose(out.x.values, t.c + (np.arange(4) + 0.5) * 16 * t.a)
    np.testing.assert_allclose(out.y.values, t.f + (np.arange(3) + 0.5) * 16 * t.e)
    assert out.attrs['SMARTIES_BANDS'].split(',')[0] == 'sentinel2:B01'
    assert list(out.band.values[:2]) == ['emb_0000', 'emb_0001']
    # the same numbers as the file path (same code path after the temporary GeoTIFF)
    crop = tmp_path / 'crop.tif'
    da.rio.to_raster(crop)
    with rasterio.open(crop, 'r+') as ds:
        ds.descriptions = tuple(da.attrs['long_name'])
    embed_raster(crop, tmp_path / 'e.tif', model=tiny_model, **KW)
    with rasterio.open(tmp_path / 'e.tif') as ds:
        np.testing.assert_allclose(out.values, ds.read(), atol=1e-6, rtol=0)


def test_numpy_with_transform_and_bands(tiny_model: SMARTIESViT) -> None:
    pytest.importorskip('rioxarray')
    rng = np.random.default_rng(0)
    data = rng.uniform(0, 3000, (3, 40, 40))  # float64: written as float32; 40 px → 3 cells (edge padded)
    t = Affine(10, 0, 300000, 0, -10, 4000000)
    out = embed_array(data, ['sentinel2:B04', 'sentinel2:B03', 'sentinel2:B02'], transform=t, crs='EPSG:32633',
                      model=tiny_model, **KW)
    assert out.shape == (32, 3, 3) and out.rio.crs.to_epsg() == 32633
    assert float(out.x[0]) == 300080.0 and float(out.y[0]) == 3999920.0
    assert np.isfinite(out.values).all()
    with pytest.raises(InputError, match=r'\(C, H, W\) array'):
        embed_array(data[0], 'sentinel2:B04', model=tiny_model, **KW)


def test_dataarray_nodata_and_band_coordinate(tiny_model: SMARTIESViT) -> None:
    xr = pytest.importorskip('xarray')
    pytest.importorskip('rioxarray')
    data = np.random.default_rng(1).uniform(1, 3000, (3, 32, 32)).astype(np.float32)
    data[:, :16, :16] = 0  # one patch of nodata
    da = xr.DataArray(data, dims=('band', 'y', 'x'),
                      coords={'band': ['B04', 'B03', 'B02'], 'y': 4000000 - 5 - 10 * np.arange(32),
                              'x': 300005 + 10 * np.arange(32)})
    da = da.rio.write_crs('EPSG:32633').rio.write_nodata(0)
    out = embed_array(da, sensor='sentinel2', model=tiny_model, **KW)  # band names from the coordinate
    assert out.attrs['SMARTIES_BANDS'] == 'sentinel2:B04,sentinel2:B03,sentinel2:B02'
    assert np.isnan(out.values[:, 0, 0]).all() and np.isfinite(out.values[:, 1, 1]).all()
    assert float(out.x[0]) == 300080.0  # the coordinates' geotransform (pixel centres → 10-m grid) × 16
