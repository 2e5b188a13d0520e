"""A full EnMAP-like product (224 bands) embeds with --sensor enmap alone: unusable bands are skipped."""

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from torchgeo_smarties.errors import BandCountError
from torchgeo_smarties.inference import embed_raster
from torchgeo_smarties.spectrum import get_sensor


def _enmap_like(path: Path, bands: int = 224) -> Path:
    rng = np.random.default_rng(0)
    # EnMAP L2A: surface reflectance × 10000
    data = (rng.uniform(0.02, 0.5, size=(bands, 32, 32)) * 10000).astype(np.uint16)
    with rasterio.open(path, 'w', driver='GTiff', width=32, height=32, count=bands, dtype='uint16',
                       crs='EPSG:32633', transform=from_origin(400000, 5800000, 30, 30)) as ds:
        ds.write(data)
    return path


def test_224_band_enmap_like_raster_embeds(tmp_path: Path) -> None:
    src = _enmap_like(tmp_path / 'enmap.tif')
    sen = get_sensor('enmap')
    assert len(sen.bands) == 224 and len(sen.default_bands) < 224
    messages: list[str] = []
    res = embed_raster(src, tmp_path / 'emb.tif', weights='demo', sensor='enmap', tile=32, overlap=0,
                       num_workers=0, progress=False, log=messages.append)
    assert len(res.bands) == len(sen.default_bands)
    assert not any(b.absorption for b in sen.bands if f'enmap:{b.name}' in res.bands)
    with rasterio.open(res.output) as ds:
        emb = ds.read()
        assert ds.crs.to_epsg() == 32633 and ds.transform.a == 30 * 16
        assert 'SMARTIES_NORM' in ds.tags()
    assert emb.shape[1:] == (2, 2) and np.isfinite(emb).all()


def test_other_band_count_is_refused(tmp_path: Path) -> None:
    src = _enmap_like(tmp_path / 'enmap_200.tif', bands=200)
    with pytest.raises(BandCountError):
        embed_raster(src, tmp_path / 'emb.tif', weights='demo', sensor='enmap', tile=32, overlap=0,
                     num_workers=0, progress=False, log=lambda _: None)
    assert not (tmp_path / 'emb.tif').exists()
