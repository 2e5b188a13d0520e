"""Bad inputs of the sources room: each refused with a typed error naming the fix (issue 10)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window

from torchgeo_smarties.errors import (
    AmbiguousBandError,
    BandCountError,
    BandMismatchError,
    InputError,
    MissingExtraError,
    RasterReadError,
    StacError,
    UnsupportedRasterError,
)
from torchgeo_smarties.inference import embed_array, open_source, resolve_source_bands

T10 = Affine(10, 0, 500000, 0, -10, 5000000)


def _tif(path: Path, data: np.ndarray, transform: Affine = T10, crs: str = 'EPSG:32632',
         desc: tuple[str, ...] | None = None, **kw: object) -> Path:
    with rasterio.open(path, 'w', driver=kw.pop('driver', 'GTiff'), width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype=data.dtype.name, crs=crs, transform=transform, **kw) as dst:
        dst.write(data)
        if desc:
            dst.descriptions = desc
    return path


# class: complex-valued raster (SAR SLC) would lose its imaginary part
def test_complex_raster_refused(tmp_path: Path) -> None:
    z = (np.ones((1, 16, 16)) + 1j * np.ones((1, 16, 16))).astype(np.complex64)
    path = _tif(tmp_path / 'slc.tif', z)
    with pytest.raises(UnsupportedRasterError, match=r'complex samples \(complex64.*10·log10'):
        open_source(path)


# class: truncated COG with an intact header (read error mid-run)
def test_truncated_cog_read_is_typed(tmp_path: Path) -> None:
    data = np.random.default_rng(0).integers(0, 3000, (2, 256, 256)).astype('uint16')
    path = _tif(tmp_path / 'cut.tif', data, driver='COG', blocksize=64, compress='deflate')
    size = path.stat().st_size
    with path.open('r+b') as f:
        f.truncate(size // 2)
    src = open_source(path)  # the header is intact
    with pytest.raises(RasterReadError, match=r"window \(col 0, row 0, 256×256 px\) of '.*cut.tif'.*truncated"):
        src.read(Window(0, 0, 256, 256))


# class: truncated COG on the CLI: exit 1, one line, no traceback
def test_truncated_cog_cli_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], sample: Path,
                                    tiny_weights: Path) -> None:
    from torchgeo_smarties.inference.cli import embed_main

    with rasterio.open(sample) as src:
        prof = src.profile
        prof.update(driver='COG', blocksize=64, compress='deflate', width=128, height=128)
        prof.pop('tiled', None), prof.pop('blockxsize', None), prof.pop('blockysize', None)
        path = tmp_path / 'cut.tif'
        with rasterio.open(path, 'w', **prof) as dst:
            dst.write(src.read(window=Window(0, 0, 128, 128)))
            dst.descriptions = src.descriptions
    with path.open('r+b') as f:
        f.truncate(path.stat().st_size // 2)
    code = embed_main([str(path), '-o', str(tmp_path / 'o.tif'), '--weights', str(tiny_weights), '--num-heads', '4',
                       '--tile', '64', '--overlap', '0', '--workers', '0', '--no-progress'])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and 'Traceback' not in err[0] and 'cannot read window' in err[0]


# class: a file that is not a raster
def test_not_a_raster(tmp_path: Path) -> None:
    bad = tmp_path / 'notes.tif'
    bad.write_text('hello')
    with pytest.raises(RasterReadError, match='cannot read .* as a raster'):
        open_source(bad)


# class: folder whose files are on different CRSs
def test_folder_mixed_crs(tmp_path: Path) -> None:
    (tmp_path / 'f').mkdir()
    _tif(tmp_path / 'f' / 'B02.tif', np.ones((1, 16, 16), np.uint16))
    _tif(tmp_path / 'f' / 'B03.tif', np.ones((1, 16, 16), np.uint16), crs='EPSG:32633')
    with pytest.raises(UnsupportedRasterError, match='different CRSs.*gdalwarp'):
        open_source(tmp_path / 'f')


# class: folder whose files cover different extents
def test_folder_mixed_extent(tmp_path: Path) -> None:
    (tmp_path / 'f').mkdir()
    _tif(tmp_path / 'f' / 'B02.tif', np.ones((1, 16, 16), np.uint16))
    _tif(tmp_path / 'f' / 'B03.tif', np.ones((1, 16, 16), np.uint16), transform=T10 @ Affine.translation(4, 0))
    with pytest.raises(UnsupportedRasterError, match='not on the grid of B02.tif.*gdalbuildvrt'):
        open_source(tmp_path / 'f')


# class: folder without raster files
def test_folder_without_rasters(tmp_path: Path) -> None:
    (tmp_path / 'f').mkdir()
    (tmp_path / 'f' / 'readme.txt').write_text('x')
    with pytest.raises(UnsupportedRasterError, match='holds no raster files'):
        open_source(tmp_path / 'f')


# class: URL that answers 404
def test_url_404(http_root: tuple[Path, str]) -> None:
    _, url = http_root
    with pytest.raises(RasterReadError, match=r'HTTP 404 \(not found: check the URL\)'):
        open_source(f'{url}/missing.tif')


# class: URL whose host refuses the connection
def test_url_unreachable() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    with pytest.raises(RasterReadError, match='cannot open remote raster.*network'):
        open_source(f'http://127.0.0.1:{port}/x.tif')


def _item(tmp_path: Path, assets: dict[str, object], props: dict[str, object] | None = None,
          kind: str = 'Feature') -> Path:
    doc: dict[str, object] = {'type': 'Feature', 'stac_version': '1.0.0', 'id': 'x', 'geometry': None, 'links': [],
                              'properties': props or {'datetime': '2023-01-01T00:00:00Z',
                                                      'constellation': 'sentinel-2'}, 'assets': assets}
    if kind == 'FeatureCollection':
        doc = {'type': 'FeatureCollection', 'features': [doc, {**doc, 'id': 'y'}]}
    path = tmp_path / 'item.json'
    path.write_text(json.dumps(doc))
    return path


# class: STAC item without usable band assets
def test_stac_item_without_band_assets(tmp_path: Path) -> None:
    pytest.importorskip('pystac')
    item = _item(tmp_path, {'thumbnail': {'href': 't.jpg', 'type': 'image/jpeg', 'roles': ['thumbnail']},
                            'scl': {'href': 'SCL.tif', 'type': 'image/tiff', 'roles': ['data']}})
    with pytest.raises(StacError, match=r"no usable band assets: none of \['thumbnail', 'scl'\]"):
        open_source(item)


# class: STAC item collection where one item is expected
def test_stac_item_collection_to_open_source(tmp_path: Path) -> None:
    pytest.importorskip('pystac')
    item = _item(tmp_path, {}, kind='FeatureCollection')
    with pytest.raises(StacError, match='item collection of 2 items.*open_sources'):
        open_source(item)


# class: a .json input that is not valid JSON / not a STAC item
def test_stac_invalid_json(tmp_path: Path) -> None:
    pytest.importorskip('pystac')
    bad = tmp_path / 'item.json'
    bad.write_text('{"type": "Feature", ')
    with pytest.raises(StacError, match='not valid JSON'):
        open_source(bad)
    bad.write_text('{"type": "Catalog", "id": "c"}')
    with pytest.raises(StacError, match='is a Catalog, not a STAC item'):
        open_source(bad)


# class: STAC item whose asset file is missing
def test_stac_asset_missing(tmp_path: Path) -> None:
    pytest.importorskip('pystac')
    item = _item(tmp_path, {'blue': {'href': 'B02.tif', 'type': 'image/tiff', 'roles': ['data'],
                                     'eo:bands': [{'name': 'B02', 'common_name': 'blue'}]}})
    with pytest.raises(RasterReadError, match='B02.tif'):
        open_source(item)


# class: optional dependency missing (pystac, xarray): the error names the extra
@pytest.mark.parametrize('module', ['pystac', 'xarray'])
def test_missing_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    if module == 'pystac':
        with pytest.raises(MissingExtraError, match=r"pip install 'torchgeo-smarties\[stac\]'"):
            open_source(_item(tmp_path, {}))
    else:
        with pytest.raises(MissingExtraError, match=r"pip install 'torchgeo-smarties\[xarray\]'"):
            embed_array(np.zeros((1, 16, 16)), 'sentinel2:B02')


# class: band count of the raster differs from --bands
def test_band_count_mismatch(tmp_path: Path) -> None:
    src = open_source(_tif(tmp_path / 'x.tif', np.ones((3, 16, 16), np.uint16)))
    with pytest.raises(BandCountError, match=r'--bands \(2 bands\) but the raster has 3 bands'):
        resolve_source_bands(src, bands='sentinel2:B02,sentinel2:B03')


# class: the raster's band descriptions contradict --bands
def test_descriptions_contradict_bands(tmp_path: Path) -> None:
    src = open_source(_tif(tmp_path / 'x.tif', np.ones((3, 16, 16), np.uint16), desc=('B04', 'B03', 'B02')))
    with pytest.raises(BandMismatchError, match=r'say sentinel2:B04,B03,B02 but --bands says sentinel2:B02,B03,B04'):
        resolve_source_bands(src, bands='sentinel2:B02,sentinel2:B03,sentinel2:B04')


# class: short band names that fit several sensors, no sensor given
def test_ambiguous_short_band_names(tmp_path: Path) -> None:
    src = open_source(_tif(tmp_path / 'x.tif', np.ones((3, 16, 16), np.uint16), desc=('red', 'green', 'blue')))
    with pytest.raises(AmbiguousBandError, match='fit several sensors.*--sensor'):
        resolve_source_bands(src)


# class: embed_array given a 2-D array or conflicting georeferencing
def test_embed_array_bad_shapes_and_metadata() -> None:
    xr = pytest.importorskip('xarray')
    pytest.importorskip('rioxarray')
    with pytest.raises(InputError, match=r'\(C, H, W\) array, got shape \(16, 16\)'):
        embed_array(np.zeros((16, 16)), 'sentinel2:B02')
    da = xr.DataArray(np.zeros((1, 16, 16)), dims=('band', 'y', 'x'))
    with pytest.raises(InputError, match='carries its own transform and CRS'):
        embed_array(da, 'sentinel2:B02', transform=T10)



# class: multi-scene input that expands to nothing (empty list file, glob without match, empty folder)
def test_scene_list_empty(tmp_path: Path) -> None:
    from torchgeo_smarties.errors import SceneListError
    from torchgeo_smarties.inference import open_sources

    lst = tmp_path / 'scenes.txt'
    lst.write_text('# nothing yet\n\n')
    with pytest.raises(SceneListError, match='names no scene'):
        open_sources(lst)
    with pytest.raises(SceneListError, match='matches no file'):
        open_sources(str(tmp_path / 'nope*.tif'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(SceneListError, match='holds no scene'):
        open_sources(tmp_path / 'empty')


# class: STAC item id that the item collection does not hold
def test_stac_collection_unknown_item(tmp_path: Path) -> None:
    pytest.importorskip('pystac')
    coll = _item(tmp_path, {}, kind='FeatureCollection')
    with pytest.raises(StacError, match="has no item 'z'; its items: x, y"):
        open_source(f'{coll}#z')
