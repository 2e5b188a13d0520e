"""``smarties similarity`` and querying with an image chip embedded on the fly."""

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from torchgeo_smarties.models import SMARTIESViT
from torchgeo_smarties.retrieval import build_index, cosine_similarity_map, search_index, similarity_map

from .synthetic import cell_centre

SAMPLE = Path(__file__).resolve().parents[2] / 'torchgeo_smarties' / 'data' / 'samples' / 'sentinel2_l1c_crop.tif'


def test_similarity_map_matches_numpy(emb_s2: Path, tmp_path: Path) -> None:
    x, y = cell_centre(2, 3)
    res = similarity_map(emb_s2, f'{x},{y}', tmp_path / 'sim.tif', preview=tmp_path / 'sim.png', log=lambda _: None)
    with rasterio.open(emb_s2) as src, rasterio.open(res.output) as sim:
        emb = src.read()
        assert (sim.crs, sim.transform, sim.shape, sim.count) == (src.crs, src.transform, src.shape, 1)
        s = sim.read(1)
        assert sim.tags()['SMARTIES_SIMILARITY_CELL'] == '2,3'
    v = emb[:, 2, 3]
    expected = np.einsum('dhw,d->hw', emb, v) / (np.linalg.norm(emb, axis=0) * np.linalg.norm(v))
    np.testing.assert_array_equal(np.isnan(s), np.isnan(emb).any(0))  # NaN exactly where nodata
    # float32 map against a float64-accumulated reference: ≤ 1e-5 for unit-scale cosines
    np.testing.assert_allclose(s, expected, atol=1e-5)
    assert s[2, 3] == pytest.approx(1.0, abs=1e-5) and res.valid == 27
    assert res.preview is not None and res.preview.stat().st_size > 1000
    assert cosine_similarity_map(emb, v)[2, 3] == pytest.approx(1.0, abs=1e-5)


def test_query_by_image_chip_finds_that_chip(tmp_path: Path) -> None:
    from torchgeo_smarties.inference import embed_raster

    torch.manual_seed(0)
    model = SMARTIESViT(bands='sentinel2_l1c', embed_dim=32, depth=2, num_heads=2, img_size=64).eval()
    chips = []
    with rasterio.open(SAMPLE) as src:
        prof = src.profile | {'width': 64, 'height': 64}
        for i, (r, c) in enumerate([(0, 0), (160, 160), (320, 0)]):
            win = rasterio.windows.Window(c, r, 64, 64)
            p = tmp_path / f'chip{i}.tif'
            with rasterio.open(p, 'w', **(prof | {'transform': src.window_transform(win)})) as dst:
                dst.write(src.read(window=win))
                dst.descriptions = src.descriptions
            chips.append(p)
    embs = []
    for p in chips:
        out = tmp_path / f'{p.stem}_emb.tif'
        embed_raster(p, out, model=model, tile=64, overlap=0, num_workers=0, progress=False, log=lambda _: None)
        embs.append(out)
    build_index(embs, tmp_path / 'idx', log=lambda _: None)
    hits = search_index(tmp_path / 'idx', image=chips[1], model=model, k=3, log=lambda _: None)
    # the mean-pooled query lies among chip 1's own 16 patch vectors: its best matches are patches of chip 1
    assert Path(hits.iloc[0]['source']).name == 'chip1_emb.tif'
