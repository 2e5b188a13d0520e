"""SMARTIES* data modules: torchgeo's data modules with the SMARTIES normalisation (no dataset on disk)."""

from types import SimpleNamespace

import kornia.augmentation as K
import pytest
import torch

from torchgeo_smarties.errors import InputError
from torchgeo_smarties.tasks import (
    SMARTIESBigEarthNetDataModule,
    SMARTIESEuroSATDataModule,
    SMARTIESSEN12MSDataModule,
    smarties_normalize_for,
)
from torchgeo_smarties.transforms import SmartiesNormalize

S2_BEN = ('B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B08', 'B8A', 'B09', 'B11', 'B12')


def _batch(channels: int, seed: int = 0, low: float = 0.0, high: float = 4000.0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    image = low + (high - low) * torch.rand(2, channels, 3, 3, generator=g, dtype=torch.float64)
    return {'image': image, 'label': torch.tensor([1, 2])}


def _aug(dm: object, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return dm.aug({k: v.clone() for k, v in batch.items()})  # type: ignore[attr-defined]


def _no_torchgeo_normalize(dm: object) -> None:
    children = list(dm.aug.children())  # type: ignore[attr-defined]
    assert not any(isinstance(m, K.Normalize) for m in children)
    assert sum(isinstance(m, SmartiesNormalize) for m in children) == 1


def test_eurosat_default_bands_literal() -> None:
    dm = SMARTIESEuroSATDataModule(root='does/not/exist', batch_size=2)
    _no_torchgeo_normalize(dm)
    assert dm.band_ids[-1] == 'sentinel2:B8A' and len(dm.band_ids) == 13
    image = torch.full((1, 13, 1, 2), 1500.0, dtype=torch.float64)
    image[..., 1] = 0.0  # below p1 -> clipped to 0 before the z-score
    out = _aug(dm, {'image': image, 'label': torch.tensor([3])})
    # B01: p1 968, p99 2084, mean 0.343667..., std 0.210455... (release EuroSAT statistics)
    # (1500 - 968) / 1116 = 0.476703 -> (0.476703 - 0.343667) / 0.210455 = 0.632130; 0 -> -mean/std
    assert out['image'][0, 0, 0].tolist() == pytest.approx([0.6321295484063353, -1.6329711405553529], abs=1e-9)
    assert out['label'].tolist() == [3]
    batch = _batch(13)
    expected = SmartiesNormalize.from_preset('eurosat')(batch['image'])
    torch.testing.assert_close(_aug(dm, batch)['image'], expected)


def test_eurosat_band_subset_follows_bands_kwarg() -> None:
    dm = SMARTIESEuroSATDataModule(root='x', bands=['B8A', 'B04'])
    assert dm.band_ids == ('sentinel2:B8A', 'sentinel2:B04')
    batch = _batch(2, seed=1)
    out = _aug(dm, batch)['image']
    torch.testing.assert_close(out, SmartiesNormalize.from_preset('eurosat', bands=['B8A', 'B04'])(batch['image']))
    # differs from normalising the channels in the other order (the statistics follow the channels)
    assert not torch.allclose(out, SmartiesNormalize.from_preset('eurosat', bands=['B04', 'B8A'])(batch['image']))


def test_bigearthnet_s1_is_db_and_reordered_to_vv_vh() -> None:
    dm = SMARTIESBigEarthNetDataModule(root='x', bands='s1')
    assert dm.band_ids == ('sentinel1:VV', 'sentinel1:VH')
    assert not any(dm.normalize.sar_to_db)  # BigEarthNet-S1 is already in dB
    # torchgeo returns (VH, VV): sorted *_VH.tif, *_VV.tif
    image = torch.tensor([-20.0, -10.0], dtype=torch.float64).view(1, 2, 1, 1)
    out = _aug(dm, {'image': image})['image'].flatten().tolist()
    # VV: (-10 + 29.5197) / 26.0628 = 0.748949 -> (0.748949 - 0.649346) / 0.190305 = 0.523388
    assert out == pytest.approx([0.5233880950658657, -0.14331894831622358], abs=1e-9)
    batch = _batch(2, seed=2, low=-40.0, high=5.0)
    expected = SmartiesNormalize.from_preset('bigearthnet_s1')(batch['image'][:, [1, 0]])
    torch.testing.assert_close(_aug(dm, batch)['image'], expected)


def test_bigearthnet_s2() -> None:
    dm = SMARTIESBigEarthNetDataModule(root='x', bands='s2')
    _no_torchgeo_normalize(dm)
    assert dm.band_ids == tuple(f'sentinel2:{b}' for b in S2_BEN)
    batch = _batch(12, seed=3)
    expected = SmartiesNormalize.from_preset('bigearthnet_s2')(batch['image'])
    torch.testing.assert_close(_aug(dm, batch)['image'], expected)


def test_bigearthnet_all_uses_both_presets() -> None:
    dm = SMARTIESBigEarthNetDataModule(root='x')  # bands='all'
    assert len(dm.band_ids) == 14 and dm.band_ids[:2] == ('sentinel1:VV', 'sentinel1:VH')
    s1 = _batch(2, seed=4, low=-40.0, high=5.0)['image']
    s2 = _batch(12, seed=5)['image']
    out = _aug(dm, {'image': torch.cat([s1, s2], dim=1)})['image']
    torch.testing.assert_close(out[:, :2], SmartiesNormalize.from_preset('bigearthnet_s1')(s1[:, [1, 0]]))
    torch.testing.assert_close(out[:, 2:], SmartiesNormalize.from_preset('bigearthnet_s2')(s2))


def test_bigearthnet_bad_bands() -> None:
    with pytest.raises(InputError, match="'s1', 's2' or 'all'"):
        SMARTIESBigEarthNetDataModule(root='x', bands='rgb')


def test_sen12ms_l1c_and_s1_db() -> None:
    dm = SMARTIESSEN12MSDataModule(root='x', band_set='s2-all')
    assert dm.band_ids[8] == 'sentinel2:B8A' and len(dm.band_ids) == 13
    image = torch.full((1, 13, 1, 1), 1500.0, dtype=torch.float64)
    out = _aug(dm, {'image': image})['image'].flatten()
    # sentinel2_l1c B01: p1 37.65, p99 3080.51 -> (0.480658 - 0.485953) / 0.127587 = -0.042073
    assert out[0].item() == pytest.approx(-0.04207343426401739, abs=1e-9)
    dm_all = SMARTIESSEN12MSDataModule(root='x', band_set='all')
    s1 = _batch(2, seed=6, low=-40.0, high=5.0)['image']
    s2 = _batch(13, seed=7)['image']
    out = _aug(dm_all, {'image': torch.cat([s1, s2], dim=1)})['image']
    torch.testing.assert_close(out[:, :2], SmartiesNormalize.from_preset('sentinel1')(s1))
    torch.testing.assert_close(out[:, 2:], SmartiesNormalize.from_preset('sentinel2_l1c', bands=dm.band_ids)(s2))


def test_on_after_batch_transfer_with_trainer_state() -> None:
    dm = SMARTIESSEN12MSDataModule(root='x', band_set='s2-reduced')
    dm.trainer = SimpleNamespace(training=True, validating=False, sanity_checking=False, testing=False,  # type: ignore[assignment]
                                 predicting=False)
    batch = _batch(6, seed=8)
    batch['mask'] = torch.full((2, 3, 3), 17, dtype=torch.long)
    raw = batch['image'].clone()
    out = dm.on_after_batch_transfer(batch, 0)
    expected = SmartiesNormalize.from_preset('sentinel2_l1c', bands=['B02', 'B03', 'B04', 'B08', 'B10', 'B11'])(raw)
    torch.testing.assert_close(out['image'], expected)
    assert out['mask'].unique().tolist() == [10]  # torchgeo's DFC2020 mapping is kept (IGBP 17 -> 10)


def test_smarties_normalize_for_mixes_presets() -> None:
    norm = smarties_normalize_for(['sentinel2:B04', 'sentinel1:VH'], 'bigearthnet_s2', 'bigearthnet_s1')
    ref_s2 = SmartiesNormalize.from_preset('bigearthnet_s2', bands=['B04'])
    ref_s1 = SmartiesNormalize.from_preset('bigearthnet_s1', bands=['VH'])
    assert norm.bands == ('sentinel2:B04', 'sentinel1:VH')
    assert norm.p1.tolist() == [ref_s2.p1.item(), ref_s1.p1.item()]
    assert norm.std.tolist() == [ref_s2.std.item(), ref_s1.std.item()]
