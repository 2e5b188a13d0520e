"""Inputs of smarties embed: remote COGs over HTTP, STAC items, folders, VRTs, band names from the data."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window

from torchgeo_smarties.errors import AmbiguousBandError, BandCountError, BandMismatchError
from torchgeo_smarties.inference import embed_raster, open_source, resolve_source_bands
from torchgeo_smarties.models import SMARTIESViT

KW = {'progress': False, 'num_workers': 0, 'log': lambda s: None}
CRS = 'EPSG:32632'
T10 = Affine(10, 0, 500000, 0, -10, 5000000)


def _write(path: Path, data: np.ndarray, transform: Affine = T10, desc: tuple[str, ...] | None = None,
           **kw: object) -> Path:
    prof = {'driver': 'GTiff', 'width': data.shape[2], 'height': data.shape[1], 'count': data.shape[0],
            'dtype': data.dtype.name, 'crs': CRS, 'transform': transform, 'tiled': True, 'blockxsize': 32,
            'blockysize': 32, **kw}
    with rasterio.open(path, 'w', **prof) as dst:
        dst.write(data)
        if desc:
            dst.descriptions = desc
    return path


def _crop(sample: Path, path: Path, size: int = 64, **kw: object) -> Path:
    with rasterio.open(sample) as src:
        prof = src.profile
        prof.update(width=size, height=size, tiled=True, blockxsize=32, blockysize=32, **kw)
        with rasterio.open(path, 'w', **prof) as dst:
            dst.write(src.read(window=Window(0, 0, size, size)))
            dst.descriptions = src.descriptions
    return path


# -------------------------------------------------------------------------------------------- remote COGs
def test_remote_cog_over_loopback_http(tiny_model: SMARTIESViT, sample: Path, http_root: tuple[Path, str],
                                       tmp_path: Path) -> None:
    root, url = http_root
    local = _crop(sample, root / 'scene.tif')
    src = open_source(f'{url}/scene.tif')
    assert src.paths == (f'/vsicurl/{url}/scene.tif',)
    assert src.count == 13 and (src.height, src.width) == (64, 64)
    vals, valid = src.read(Window(8, 8, 32, 32))
    with rasterio.open(local) as ds:
        np.testing.assert_array_equal(vals, ds.read(window=Window(8, 8, 32, 32)).astype(np.float32))
    assert valid.all()
    a, b = tmp_path / 'remote.tif', tmp_path / 'local.tif'
    embed_raster(f'{url}/scene.tif', a, model=tiny_model, tile=64, overlap=0, **KW)
    embed_raster(local, b, model=tiny_model, tile=64, overlap=0, **KW)
    with rasterio.open(a) as da, rasterio.open(b) as db:
        # the same bytes through the same code path: equal (tolerance only for float summation order)
        np.testing.assert_allclose(da.read(), db.read(), atol=1e-6, rtol=0)
        assert da.crs == db.crs and da.transform == db.transform


# -------------------------------------------------------------------------------------------- STAC items
def _s2_item(folder: Path, href_prefix: str = '') -> Path:
    """A Sentinel-2 L2A-like item: B02/B03/B04 at 10 m, B05 at 20 m (offset −0.1), plus SCL, visual, jp2 twins."""
    rng = np.random.default_rng(0)
    for name in ('B02', 'B03', 'B04'):
        _write(folder / f'{name}.tif', rng.integers(1000, 3000, (1, 64, 64), dtype=np.uint16), nodata=0)
    _write(folder / 'B05.tif', rng.integers(1000, 3000, (1, 32, 32), dtype=np.uint16),
           transform=Affine(20, 0, 500000, 0, -20, 5000000), nodata=0)
    _write(folder / 'SCL.tif', np.full((1, 32, 32), 4, np.uint8), transform=Affine(20, 0, 500000, 0, -20, 5000000))
    common = {'blue': 'B02', 'green': 'B03', 'red': 'B04', 'rededge1': 'B05'}
    raster = [{'scale': 0.0001, 'offset': -0.1, 'nodata': 0, 'data_type': 'uint16'}]
    cog = 'image/tiff; application=geotiff; profile=cloud-optimized'
    assets: dict[str, object] = {}
    for cn, b in common.items():
        assets[cn] = {'href': f'{href_prefix}{b}.tif', 'type': cog, 'roles': ['data'],
                      'eo:bands': [{'name': cn, 'common_name': cn}], 'raster:bands': raster}
        assets[f'{cn}-jp2'] = {'href': f'{href_prefix}missing_{b}.jp2', 'type': 'image/jp2', 'roles': ['data'],
                               'eo:bands': [{'name': b, 'common_name': cn}]}
    assets['scl'] = {'href': f'{href_prefix}SCL.tif', 'type': cog, 'roles': ['data'],
                     'raster:bands': [{'data_type': 'uint8'}]}
    assets['visual'] = {'href': f'{href_prefix}missing_TCI.tif', 'type': cog, 'roles': ['visual'],
                        'eo:bands': [{'name': n, 'common_name': n} for n in ('red', 'green', 'blue')]}
    assets['thumbnail'] = {'href': 'thumb.jpg', 'type': 'image/jpeg', 'roles': ['thumbnail']}
    item = {
        'type': 'Feature', 'stac_version': '1.0.0', 'id': 'S2B_32TQM_20230601_0_L2A',
        'stac_extensions': ['https://stac-extensions.github.io/eo/v1.1.0/schema.json',
                            'https://stac-extensions.github.io/raster/v1.1.0/schema.json'],
        'geometry': None, 'properties': {'datetime': '2023-06-01T10:00:00Z', 'platform': 'sentinel-2b',
                                         'constellation': 'sentinel-2'},
        'links': [], 'assets': assets,
    }
    path = folder / 'item.json'
    path.write_text(json.dumps(item))
    return path


def test_stac_item_assets_sensor_scale_and_resolution(tmp_path: Path) -> None:
    pytest.importorskip('pystac')
    item = _s2_item(tmp_path)
    src = open_source(item)
    assert src.sensor == 'sentinel2'
    # jp2 twins, SCL (no eo:bands), visual and thumbnail skipped; canonical band order
    assert src.descriptions == ('sentinel2:B02', 'sentinel2:B03', 'sentinel2:B04', 'sentinel2:B05')
    assert all(p.endswith('.tif') for p in src.paths)
    assert resolve_source_bands(src) == src.descriptions
    assert (src.height, src.width, src.transform) == (64, 64, T10)  # the finest grid
    vals, valid = src.read(Window(0, 0, 64, 64))
    with rasterio.open(tmp_path / 'B03.tif') as ds:
        raw = ds.read(1).astype(np.float32)
    # scale 1e-4, offset -0.1 into the native convention (reflectance × 1e4): stored − 1000, exactly in float32
    np.testing.assert_array_equal(vals[1], raw - 1000)
    with rasterio.open(tmp_path / 'B05.tif') as ds:
        b05 = ds.read(1).astype(np.float32) - 1000
    # B05 resampled 20 m → 10 m (bilinear): each 20-m pixel's block averages back close to it; tolerance: half the
    # value range of a 3×3 neighbourhood can bleed in at most, so compare the block means loosely and the shape
    assert vals.shape == (4, 64, 64) and valid.all()
    blocks = vals[3].reshape(32, 2, 32, 2).mean((1, 3))
    assert np.corrcoef(blocks[4:-4, 4:-4].ravel(), b05[4:-4, 4:-4].ravel())[0, 1] > 0.5
    assert abs(float(blocks.mean() - b05.mean())) < 20


def test_stac_item_over_http_embeds(tiny_model: SMARTIESViT, http_root: tuple[Path, str], tmp_path: Path) -> None:
    pytest.importorskip('pystac')
    root, url = http_root
    _s2_item(root)  # relative hrefs, resolved against the item's URL
    src = open_source(f'{url}/item.json')
    assert src.paths[0] == f'/vsicurl/{url}/B02.tif'
    out = tmp_path / 'emb.tif'
    res = embed_raster(f'{url}/item.json', out, model=tiny_model, tile=64, overlap=0, **KW)
    assert res.bands == ('sentinel2:B02', 'sentinel2:B03', 'sentinel2:B04', 'sentinel2:B05')
    with rasterio.open(out) as ds:
        assert ds.crs.to_string() == CRS and ds.transform == T10 @ Affine.scale(16)
        assert np.isfinite(ds.read()).all()


# --------------------------------------------------------------------------------- folders, VRTs, names
def _bands_folder(folder: Path, names: list[str]) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(1)
    for n in names:
        _write(folder / f'{n}.tif', rng.integers(1, 3000, (1, 32, 32), dtype=np.uint16))
    return folder


def test_folder_band_names_from_file_names(tmp_path: Path) -> None:
    folder = _bands_folder(tmp_path / 'f', ['T32TQM_20230601_B04_10m', 'T32TQM_20230601_B03_10m',
                                            'T32TQM_20230601_B8A_20m'])
    src = open_source(folder)
    # short names need a sensor: B03/B04 are also HLS and Landsat names
    with pytest.raises(AmbiguousBandError, match='fit several sensors.*--sensor'):
        resolve_source_bands(src)
    # sorted by file name; a bare sensor reads the names
    assert resolve_source_bands(src, sensor='sentinel2') == ('sentinel2:B03', 'sentinel2:B04', 'sentinel2:B8A')
    assert resolve_source_bands(src, bands='sentinel2:B03,sentinel2:B04,sentinel2:B8A')
    with pytest.raises(BandMismatchError, match='sentinel2:B03,B04,B8A but --bands says sentinel2:B04,B03,B8A'):
        resolve_source_bands(src, bands='sentinel2:B04,sentinel2:B03,sentinel2:B8A')
    # a same-wavelength band of another sensor is not a contradiction (HLS S30 is Sentinel-2 resampled)
    assert resolve_source_bands(src, bands='hls_s30:B03,hls_s30:B04,hls_s30:B8A')[0] == 'hls_s30:B03'


def test_qualified_file_names_need_no_bands(tmp_path: Path) -> None:
    folder = _bands_folder(tmp_path / 'f', ['landsat8_B2', 'landsat8_B3'])
    assert resolve_source_bands(open_source(folder)) == ('landsat8:B2', 'landsat8:B3')
    folder = _bands_folder(tmp_path / 'g', ['S2B_T32TQM_20230601_B04_10m', 'S2B_T32TQM_20230601_B8A_20m'])
    assert resolve_source_bands(open_source(folder)) == ('sentinel2:B04', 'sentinel2:B8A')


def test_vrt_band_names_from_its_sources(tmp_path: Path) -> None:
    folder = _bands_folder(tmp_path / 'f', ['B04', 'B03', 'B02'])
    bands = ''.join(
        f'<VRTRasterBand dataType="UInt16" band="{i}"><SimpleSource><SourceFilename relativeToVRT="1">f/{n}.tif'
        '</SourceFilename><SourceBand>1</SourceBand></SimpleSource></VRTRasterBand>'
        for i, n in enumerate(['B04', 'B03', 'B02'], start=1)
    )
    vrt = tmp_path / 'stack.vrt'
    vrt.write_text(f'<VRTDataset rasterXSize="32" rasterYSize="32"><SRS>{CRS}</SRS><GeoTransform>500000, 10, 0, '
                   f'5000000, 0, -10</GeoTransform>{bands}</VRTDataset>')
    src = open_source(vrt)
    assert src.count == 3
    assert resolve_source_bands(src, sensor='sentinel2') == ('sentinel2:B04', 'sentinel2:B03', 'sentinel2:B02')
    vals, _ = src.read(Window(0, 0, 32, 32))
    with rasterio.open(folder / 'B02.tif') as ds:
        np.testing.assert_array_equal(vals[2], ds.read(1))


def test_descriptions_contradict_preset(sample: Path, tmp_path: Path) -> None:
    src = open_source(_crop(sample, tmp_path / 'in.tif'))  # descriptions sentinel2:B01..B12 incl. B10
    with pytest.raises(BandMismatchError, match=r'raster\'s band names say sentinel2:B01,B02.*eurosat'):
        resolve_source_bands(src, sensor='eurosat')  # same 13 bands, B8A last
    with pytest.raises(BandCountError, match='its band names say'):
        resolve_source_bands(src, sensor='sentinel2_l2a')


def test_mixed_resolution_folder_resampled_to_finest(tmp_path: Path) -> None:
    folder = tmp_path / 'f'
    folder.mkdir()
    _write(folder / 'B02.tif', np.ones((1, 64, 64), np.uint16))
    _write(folder / 'B11.tif', np.full((1, 32, 32), 7, np.uint16), transform=Affine(20, 0, 500000, 0, -20, 5000000))
    src = open_source(folder)
    assert (src.height, src.width) == (64, 64)
    vals, _ = src.read(Window(0, 0, 64, 64))
    np.testing.assert_array_equal(vals[1], 7)  # a constant resamples to itself exactly


def test_source_pickles_for_workers(sample: Path, http_root: tuple[Path, str]) -> None:
    import pickle

    root, url = http_root
    _crop(sample, root / 'scene.tif', size=32)
    src = open_source(f'{url}/scene.tif')
    src.read(Window(0, 0, 16, 16))
    clone = pickle.loads(pickle.dumps(src))
    assert clone._handles == {} and clone._gdal_env == src._gdal_env
    assert os.environ.get('GDAL_DISABLE_READDIR_ON_OPEN') is None  # applied per read, not process-wide
    np.testing.assert_array_equal(clone.read(Window(0, 0, 16, 16))[0], src.read(Window(0, 0, 16, 16))[0])


def test_cli_embeds_a_url_into_a_folder(sample: Path, http_root: tuple[Path, str], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from torchgeo_smarties.inference.cli import embed_main

    from .conftest import TINY_WEIGHTS

    root, url = http_root
    _crop(sample, root / 'scene.tif', size=32)
    code = embed_main([f'{url}/scene.tif', '-o', f'{tmp_path}/out/', '--weights', str(TINY_WEIGHTS), '--num-heads',
                       '4', '--tile', '32', '--overlap', '0', '--workers', '0', '--no-progress'])
    assert code == 0, capsys.readouterr().err
    with rasterio.open(tmp_path / 'out' / 'scene_embeddings.tif') as ds:
        assert ds.shape == (2, 2) and ds.crs.to_epsg() == 32618
    assert embed_main([f'{url}/missing.tif', '-o', f'{tmp_path}/o.tif', '--weights', str(TINY_WEIGHTS)]) == 1
    err = capsys.readouterr().err.strip()
    assert 'HTTP 404' in err and len(err.splitlines()) == 1 and 'Traceback' not in err


def test_geotiff_descriptions_make_bands_optional(tmp_path: Path) -> None:
    path = _write(tmp_path / 'rgb.tif', np.ones((3, 16, 16), np.uint16), desc=('B04', 'B03', 'B02'))
    src = open_source(path)
    rgb = ('sentinel2:B04', 'sentinel2:B03', 'sentinel2:B02')
    assert resolve_source_bands(src, sensor='sentinel2') == rgb  # a bare sensor reads the short names
    assert resolve_source_bands(src, sensor='sentinel2_rgb') == rgb  # a preset that agrees
    assert resolve_source_bands(src, sensor='hls_s30')[0] == 'hls_s30:B04'  # HLS statistics, same bands
    with pytest.raises(BandMismatchError, match='drop --bands'):
        resolve_source_bands(src, bands='sentinel2:B02,sentinel2:B03,sentinel2:B04')
    # unknown descriptions are no contradiction: --bands decides
    other = open_source(_write(tmp_path / 'o.tif', np.ones((2, 16, 16), np.uint16), desc=('Band 1', 'Band 2')))
    assert resolve_source_bands(other, bands='sentinel1:VV,sentinel1:VH') == ('sentinel1:VV', 'sentinel1:VH')
    with pytest.raises(BandCountError, match='do not name known bands'):
        resolve_source_bands(other)


def test_stac_sar_item_without_band_metadata(tmp_path: Path) -> None:
    pytest.importorskip('pystac')
    for pol in ('vv', 'vh'):
        _write(tmp_path / f'{pol}.tif', np.full((1, 16, 16), 0.05, np.float32))
    assets = {pol: {'href': f'{pol}.tif', 'type': 'image/tiff', 'roles': ['data'], 'sar:polarizations': [pol.upper()]}
              for pol in ('vh', 'vv')}
    item = {'type': 'Feature', 'stac_version': '1.0.0', 'id': 's1', 'geometry': None, 'links': [], 'assets': assets,
            'properties': {'datetime': '2023-01-01T00:00:00Z', 'platform': 'SENTINEL-1A',
                           'constellation': 'Sentinel-1'}}
    path = tmp_path / 's1.json'
    path.write_text(json.dumps(item))
    src = open_source(path)
    assert src.sensor == 'sentinel1' and src.descriptions == ('sentinel1:VV', 'sentinel1:VH')


def test_gdal_paths_of_urls() -> None:
    from torchgeo_smarties.inference.source import gdal_path, is_remote, is_stac

    assert gdal_path('s3://bucket/a/b.tif') == '/vsis3/bucket/a/b.tif'
    assert gdal_path('gs://bucket/b.tif') == '/vsigs/bucket/b.tif'
    assert gdal_path('https://h/x.tif?sig=1') == '/vsicurl/https://h/x.tif?sig=1'
    assert gdal_path('/data/x.tif') == '/data/x.tif' and not is_remote('/data/x.tif')
    assert is_stac('https://h/items/x.json?token=1') and is_stac('c.json#item') and not is_stac('https://h/x.tif')
    assert is_stac('https://earth-search.aws.element84.com/v1/collections/sentinel-2-l2a/items/S2B_32TQM_20230601')


def test_select_bands_of_a_stac_item(tmp_path: Path) -> None:
    pytest.importorskip('pystac')
    from torchgeo_smarties.inference.source import select_source_bands

    src = open_source(_s2_item(tmp_path))
    rgb = select_source_bands(src, 'sentinel2:B04,sentinel2:B03,sentinel2:B02')
    assert rgb.descriptions == ('sentinel2:B04', 'sentinel2:B03', 'sentinel2:B02') and rgb.count == 3
    assert [Path(p).name for p in rgb.paths] == ['B02.tif', 'B03.tif', 'B04.tif'] and rgb._warp == ()
    np.testing.assert_array_equal(rgb.read(Window(0, 0, 8, 8))[0][2], src.read(Window(0, 0, 8, 8))[0][0])
    assert resolve_source_bands(rgb) == rgb.descriptions
    with pytest.raises(BandMismatchError, match='sentinel2:B08 is not a band of .* it has sentinel2:B02,B03,B04,B05'):
        select_source_bands(src, 'sentinel2:B08')
