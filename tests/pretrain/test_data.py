"""Tests of the paired multi-sensor data (torchgeo_smarties.tasks.paired_data)."""

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from torchgeo_smarties.errors import BandCountError, ImageSizeError, InputError, UnknownBandError
from torchgeo_smarties.spectrum import ProjectionPlan
from torchgeo_smarties.tasks.paired_data import PairedRasterDataset, collate_pairs, pair_normalizer


def write(path: Path, data: np.ndarray, left: float, top: float, res: float, crs: str = 'EPSG:32618') -> str:
    c, h, w = data.shape
    with rasterio.open(path, 'w', driver='GTiff', width=w, height=h, count=c, dtype='float32', crs=crs,
                       transform=from_origin(left, top, res, res)) as dst:
        dst.write(data.astype(np.float32))
    return str(path)


def ramp(c: int, h: int, w: int, left: float, top: float, res: float) -> np.ndarray:
    """Each pixel = its ground easting (centre) + 1e5·band, so footprints can be compared."""
    x = left + (np.arange(w) + 0.5) * res
    return np.stack([np.broadcast_to(x, (h, w)) + 1e5 * i for i in range(c)])


@pytest.fixture
def pair(tmp_path: Path) -> tuple[str, str]:
    a = write(tmp_path / 'a.tif', ramp(4, 128, 128, 1000.0, 5000.0, 10.0), 1000.0, 5000.0, 10.0)
    # sensor b: 20 m, shifted footprint overlapping a's
    b = write(tmp_path / 'b.tif', ramp(2, 64, 64, 1320.0, 4680.0, 20.0), 1320.0, 4680.0, 20.0)
    return a, b


def test_same_footprint_crops(pair: tuple[str, str]) -> None:
    ds = PairedRasterDataset([pair], 'sentinel2_10m', ['sentinel2:B11', 'sentinel2:B12'], size=32, length=5)
    assert ds._pairs[0]['res'] == 20.0  # default: the coarser sensor (the finer one is resampled)
    assert ds._pairs[0]['bounds'] == (1320.0, 3720.0, 2280.0, 4680.0)  # intersection
    s = ds[3]
    assert s['image_a'].shape == (4, 32, 32) and s['image_b'].shape == (2, 32, 32)
    # same ground footprint: band 0 of both = easting; a (10 m averaged to 20 m) matches b
    assert torch.allclose(s['image_a'][0], s['image_b'][0], atol=5.0)
    assert s['image_a'][0, 0, 0] >= 1320.0 and s['image_a'][0, 0, -1] <= 2280.0
    assert isinstance(s['bands_b'], ProjectionPlan) and s['bands_b'].bands == ('sentinel2:B11', 'sentinel2:B12')
    assert torch.equal(ds[3]['image_a'], s['image_a'])  # seeded crops
    ds.set_epoch(1)
    assert not torch.equal(ds[3]['image_a'], s['image_a'])
    cached = PairedRasterDataset([pair], 'sentinel2_10m', ['sentinel2:B11', 'sentinel2:B12'], size=32, length=5,
                                 cache=True)
    assert torch.allclose(cached[3]['image_a'], s['image_a'], atol=1e-3)
    batch = collate_pairs([ds[i] for i in range(3)])
    assert batch['image_a'].shape == (3, 4, 32, 32) and batch['index'].tolist() == [0, 1, 2]


def test_roi_and_output_resolution(pair: tuple[str, str]) -> None:
    ds = PairedRasterDataset([pair], 'sentinel2_10m', ['sentinel2:B11', 'sentinel2:B12'], size=16, res=10.0,
                             roi=(1320.0, 4200.0, 2280.0, 4680.0), length=4)
    bottom = ds._pairs[0]['bounds'][1]
    assert bottom == 4200.0 and ds._pairs[0]['grid'] == (48, 96)
    for i in range(4):
        assert ds[i]['image_b'].shape == (2, 16, 16)


def test_errors(tmp_path: Path, pair: tuple[str, str]) -> None:
    a, _ = pair
    s1 = ['sentinel2:B11', 'sentinel2:B12']
    with pytest.raises(InputError, match='partner'):
        PairedRasterDataset([(a,)], 'sentinel2_10m', s1, size=16)  # type: ignore[list-item]
    with pytest.raises(InputError, match='does not exist'):
        PairedRasterDataset([(a, str(tmp_path / 'missing.tif'))], 'sentinel2_10m', s1, size=16)
    far = write(tmp_path / 'far.tif', ramp(2, 64, 64, 9e5, 9e5, 20.0), 9e5, 9e5, 20.0)
    with pytest.raises(InputError, match='do not overlap'):
        PairedRasterDataset([(a, far)], 'sentinel2_10m', s1, size=16)
    other = write(tmp_path / 'utm31.tif', ramp(2, 64, 64, 1320.0, 4680.0, 20.0), 1320.0, 4680.0, 20.0, 'EPSG:32631')
    with pytest.raises(InputError, match='reproject_to'):
        PairedRasterDataset([(a, other)], 'sentinel2_10m', s1, size=16)
    with pytest.raises(UnknownBandError):
        PairedRasterDataset([pair], 'sentinel2_10m', ['sentinel2:B99', 'sentinel2:B12'], size=16)
    with pytest.raises(BandCountError, match='3 channels|2 channels'):
        PairedRasterDataset([pair], 'sentinel2_10m', ['sentinel2:B11', 'sentinel2:B12', 'sentinel2:B8A'], size=16)
    with pytest.raises(ImageSizeError, match='multiple'):
        PairedRasterDataset([pair], 'sentinel2_10m', s1, size=20)
    with pytest.raises(InputError, match='no raster pairs'):
        PairedRasterDataset([], 'sentinel2_10m', s1)
    good = {'image_a': torch.zeros(4, 16, 16), 'image_b': torch.zeros(2, 16, 16), 'bands_a': 'x', 'bands_b': 'y'}
    with pytest.raises(ImageSizeError, match='mismatched'):
        collate_pairs([good, {**good, 'image_a': torch.zeros(4, 32, 32)}])
    with pytest.raises(ImageSizeError, match='same size'):
        collate_pairs([{**good, 'image_b': torch.zeros(2, 32, 32)}])
    with pytest.raises(InputError, match='mixes band sets'):
        collate_pairs([good, {**good, 'bands_a': 'z'}])


def test_reproject_to_a(tmp_path: Path, pair: tuple[str, str]) -> None:
    from rasterio.warp import transform_bounds

    a, _ = pair
    # sensor b in lon/lat covering a's footprint
    lb = transform_bounds('EPSG:32618', 'EPSG:4326', 900.0, 3600.0, 2400.0, 5100.0)
    lonlat = write(tmp_path / 'b4326.tif', np.ones((2, 64, 64)), lb[0], lb[3], (lb[2] - lb[0]) / 64, 'EPSG:4326')
    ds = PairedRasterDataset([(a, lonlat)], 'sentinel2_10m', ['sentinel2:B11', 'sentinel2:B12'], size=32,
                             reproject_to='a', res=10.0, length=2)
    s = ds[0]
    assert s['image_b'].shape == (2, 32, 32) and torch.allclose(s['image_b'], torch.ones(2, 32, 32))


def test_preset_normalize_matches_release_formula() -> None:
    from torchgeo_smarties.spectrum import plan_bands
    from torchgeo_smarties.transforms import preset_stats

    norm = pair_normalizer('sentinel2_l1c', plan_bands('sentinel2_10m'))
    assert norm is not None
    st = preset_stats('sentinel2_l1c', 'sentinel2_10m').to_dict()['bands']
    assert list(st) == ['sentinel2:B02', 'sentinel2:B03', 'sentinel2:B04', 'sentinel2:B08']
    x = torch.full((4, 2, 2), 1000.0)
    p1, p99, mean, std = (torch.tensor([st[b][k] for b in st]) for k in ('p1', 'p99', 'mean', 'std'))
    expected = (((1000.0 - p1) / (p99 - p1)).clamp(0, 1) - mean) / std
    assert torch.allclose(norm(x)[:, 0, 0], expected)
    assert st['sentinel2:B02']['p1'] == pytest.approx(29.1856, abs=1e-3)


def test_from_torchgeo_intersection(tmp_path: Path) -> None:
    from torchgeo.datasets import RasterDataset

    da, db = tmp_path / 'a', tmp_path / 'b'
    da.mkdir()
    db.mkdir()
    write(da / 'a.tif', ramp(4, 128, 128, 1000.0, 5000.0, 10.0), 1000.0, 5000.0, 10.0)
    write(db / 'b.tif', ramp(2, 64, 64, 1320.0, 4680.0, 20.0), 1320.0, 4680.0, 20.0)

    class A(RasterDataset):
        filename_glob = 'a.tif'

    class B(RasterDataset):
        filename_glob = 'b.tif'

    ds = PairedRasterDataset.from_torchgeo(A(paths=str(da)), B(paths=str(db)), 'sentinel2_10m',
                                           ['sentinel2:B11', 'sentinel2:B12'], size=32, length=3)
    assert len(ds) == 3
    s = ds[0]
    assert s['image_a'].shape == (4, 32, 32) and s['image_b'].shape == (2, 32, 32)
    # co-registered: the easting ramps of both sensors agree (b resampled onto a's 10 m grid by torchgeo)
    assert torch.allclose(s['image_a'][0], s['image_b'][0], atol=10.0)


def test_batches_carry_plans_and_the_task_plans_once(pair: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from torchgeo_smarties.models.vit import SMARTIESViT
    from torchgeo_smarties.tasks.pretraining import SMARTIESPretraining

    ds = PairedRasterDataset([pair], 'sentinel2_10m', ['sentinel2:B11', 'sentinel2:B12'], size=32, length=4)
    batch = collate_pairs([ds[i] for i in range(4)])
    assert batch['bands_a'] is ds.plan_a and batch['bands_b'] is ds.plan_b  # objects, not joined strings
    task = SMARTIESPretraining(bands_a='sentinel2_10m', bands_b='sentinel2_20m', img_size=32, embed_dim=32, depth=1,
                               num_heads=2, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2)
    calls = []
    orig = SMARTIESViT.plan_for
    monkeypatch.setattr(SMARTIESViT, 'plan_for', lambda self, b: calls.append(b) or orig(self, b))
    assert task._bands(batch, 'bands_a') is ds.plan_a  # the model's policy: the batch's plan is used as is
    strings = {'bands_b': 'sentinel2:B11,sentinel2:B12'}
    first = task._bands(strings, 'bands_b')
    for _ in range(3):
        assert task._bands(strings, 'bands_b') is first
    assert len(calls) == 1  # planned once, then cached
    assert first.bands == ds.plan_b.bands
    with pytest.raises(InputError, match='mixes band sets'):
        task._bands({'bands_a': [ds.plan_a, ds.plan_b]}, 'bands_a')
