import math
from pathlib import Path

import kornia.augmentation as K
import numpy as np
import pytest
import torch
import yaml
from torch import nn

from torchgeo_smarties.errors import BandCountError, InputError, SmartiesError, UnknownBandError, UnknownPresetError
from torchgeo_smarties.transforms import BandStats, SmartiesNormalize, list_stats_presets, preset_stats

L2A_B04 = (12.495476066364853, 2829.486095366986, 0.198346346616745, 0.1924632489681244)


def release_formula(x: np.ndarray, p1: np.ndarray, p99: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """The release's ImageNormalizeStandardize, per band, in float64 numpy."""
    sh = (-1, 1, 1)
    y = np.clip((x - p1.reshape(sh)) / (p99.reshape(sh) - p1.reshape(sh)), 0, 1)
    return (y - mean.reshape(sh)) / std.reshape(sh)


def test_one_pixel_by_hand() -> None:
    # B04 of the S2-L2A pretraining statistics, x = 1000:
    # (1000 − 12.4954761) / (2829.4860951 − 12.4954761) = 987.5045239 / 2816.9906193 = 0.3505530
    # (0.3505530 − 0.1983463) / 0.1924632 = 0.7908349
    norm = SmartiesNormalize.from_preset('sentinel2_l2a', bands=['sentinel2:B04'])
    x = torch.tensor([1000.0, 5.0, 4000.0]).view(1, 1, 1, 3)
    y = norm(x).flatten().tolist()
    assert y[0] == pytest.approx(0.7908349164533013, abs=1e-6)
    assert y[1] == pytest.approx((0.0 - L2A_B04[2]) / L2A_B04[3], abs=1e-6)  # clipped to 0: -1.0305674
    assert y[1] == pytest.approx(-1.0305673819815593, abs=1e-6)
    assert y[2] == pytest.approx((1.0 - L2A_B04[2]) / L2A_B04[3], abs=1e-6)  # clipped to 1: 4.1652298
    assert y[2] == pytest.approx(4.165229765585139, abs=1e-6)


@pytest.mark.parametrize('preset', ['sentinel2_l2a', 'sentinel2_l1c', 'eurosat', 'maxar_rgb', 'whu_rs19'])
def test_matches_release_formula(preset: str) -> None:
    stats = preset_stats(preset)
    g = torch.Generator().manual_seed(0)
    hi = max(stats.p99) * 1.2
    x = torch.rand(2, len(stats), 16, 16, generator=g, dtype=torch.float64) * hi - 0.1 * hi
    ref = release_formula(x.numpy(), *(np.array(getattr(stats, k)) for k in ('p1', 'p99', 'mean', 'std')))
    norm = SmartiesNormalize.from_preset(preset)
    np.testing.assert_allclose(norm(x).numpy(), ref, atol=1e-6, rtol=0)  # float64 input: to 1e-6 absolute
    # float32 input (as in training): float32 rounding only, i.e. 1e-6 relative to the output's magnitude
    np.testing.assert_allclose(norm(x.float()).double().numpy(), ref, atol=1e-6, rtol=1e-6)


def test_preset_numbers_are_the_release_numbers() -> None:
    l2a = preset_stats('sentinel2_l2a')
    assert l2a.bands[3] == 'sentinel2:B04'
    assert l2a.p1[3] == pytest.approx(12.4955, abs=1e-4)
    assert l2a.p99[8] == pytest.approx(5433.8925, abs=1e-4)  # B8A
    assert l2a.mean[0] == pytest.approx(0.11504940, abs=1e-8)
    assert l2a.std[11] == pytest.approx(0.23555098, abs=1e-8)
    l1c = preset_stats('sentinel2_l1c')
    assert len(l1c) == 13 and l1c.bands[10] == 'sentinel2:B10'
    assert l1c.p1[10] == pytest.approx(0.2313, abs=1e-4)
    assert l1c.p99[10] == pytest.approx(74.0699, abs=1e-4)
    assert l1c.mean[10] == pytest.approx(0.21859935, abs=1e-8)
    s1 = preset_stats('sentinel1')
    assert s1.bands == ('sentinel1:VV', 'sentinel1:VH')
    assert s1.p1 == pytest.approx((-29.5197, -33.4215), abs=1e-4)
    assert s1.p99 == pytest.approx((-3.4569, -9.9054), abs=1e-4)
    rgb = preset_stats('maxar_rgb')
    assert rgb.mean == pytest.approx((0.39974889, 0.40887943, 0.38511294), abs=1e-8)
    assert rgb.p99[0] == pytest.approx(254.8255, abs=1e-4)
    # EuroSAT: tif order, B10 and B8A last
    eu = preset_stats('eurosat')
    assert eu.bands[-1] == 'sentinel2:B8A' and eu.bands[9] == 'sentinel2:B10'
    assert eu.p1 == pytest.approx((968, 697, 457, 242, 203, 179, 158, 131, 57, 5, 22, 11, 119))
    assert eu.p99[-1] == 5312 and eu.p99[9] == 28
    assert eu.mean[-1] == pytest.approx(0.47680539, abs=1e-8)
    assert eu.std[0] == pytest.approx(0.21045533, abs=1e-8)
    assert preset_stats('whu_rs19').mean == pytest.approx((0.42999, 0.42833, 0.39491), abs=1e-5)
    assert preset_stats('resisc45').std == pytest.approx((0.22315, 0.21009, 0.20739), abs=1e-5)
    assert preset_stats('ucmerced').mean == rgb.mean
    assert preset_stats('bigearthnet_s2').p1 == l2a.p1
    assert preset_stats('bigearthnet_s1').std == s1.std


def test_release_band_names_map_to_band_ids() -> None:
    """The release names each stat by its spectral range; check our band ids use the same ranges."""
    from importlib import resources

    from torchgeo_smarties.spectrum import get_band

    spectrum = yaml.safe_load(
        resources.files('torchgeo_smarties').joinpath('data/release/electromagnetic_spectrum.yaml').read_text()
    )
    for name in list_stats_presets():
        stats = preset_stats(name)
        release_names = stats.extra['release_bands']
        assert len(release_names) == len(stats)
        for rel, band_id in zip(release_names, stats.bands, strict=True):
            assert spectrum[rel]['projection_idx'] == get_band(band_id).release_index, (name, rel, band_id)


def test_bands_select_and_reorder() -> None:
    full = SmartiesNormalize.from_preset('eurosat')
    rgb = SmartiesNormalize.from_preset('eurosat', bands=['B04', 'B03', 'B02'])  # bare names: preset's sensor
    assert rgb.bands == ('sentinel2:B04', 'sentinel2:B03', 'sentinel2:B02')
    x = torch.rand(2, 13, 8, 8) * 3000
    np.testing.assert_allclose(rgb(x[:, [3, 2, 1]]).numpy(), full(x)[:, [3, 2, 1]].numpy(), atol=1e-6)
    # the L2A order from EuroSAT stats (B8A moves into place, B10 dropped)
    l2a = SmartiesNormalize.from_preset('eurosat', bands='sentinel2_l2a')
    assert l2a.stats.p1[8] == 119.0  # B8A
    assert l2a.stats.p99[9] == 1851.0  # B09


def test_band_without_statistic_is_a_clear_error() -> None:
    with pytest.raises(UnknownBandError, match='no normalisation statistics.*B10.*compute_statistics'):
        SmartiesNormalize.from_preset('sentinel2_l2a', bands='sentinel2_l1c')


def test_unknown_preset() -> None:
    with pytest.raises(UnknownPresetError, match='did you mean eurosat'):
        SmartiesNormalize.from_preset('eurosatt')
    with pytest.raises(UnknownPresetError, match='compute_statistics'):
        preset_stats('landsat8')


def test_constructor_errors() -> None:
    with pytest.raises(BandCountError, match='one value per band'):
        SmartiesNormalize(p1=[0, 0], p99=[1, 1], mean=[0.5], std=[0.2, 0.2])
    with pytest.raises(InputError, match='p99 must be greater than p1.*channel 1'):
        SmartiesNormalize(p1=[0, 5], p99=[1, 5], mean=[0.5, 0.5], std=[0.2, 0.2])
    with pytest.raises(InputError, match='p99 must be greater than p1.*sentinel2:B03'):
        SmartiesNormalize(p1=[0, 9], p99=[1, 5], mean=[0.5, 0.5], std=[0.2, 0.2], bands=['s2:B02', 's2:B03'])
    with pytest.raises(InputError, match='std must be > 0'):
        SmartiesNormalize(p1=[0], p99=[1], mean=[0.5], std=[0.0])
    with pytest.raises(InputError, match="mode='zscore'"):
        SmartiesNormalize(mean=[0.5], std=[0.2])
    with pytest.raises(BandCountError, match='one value per band'):
        SmartiesNormalize(p1=[0, 0], p99=[1, 1], mean=[0.5, 0.5], std=[0.2, 0.2], bands=['sentinel1:VV'])
    for err in (BandCountError, InputError, UnknownBandError, UnknownPresetError):
        assert issubclass(err, SmartiesError)


def test_channel_count_mismatch_at_call() -> None:
    norm = SmartiesNormalize.from_preset('sentinel2_l2a')
    with pytest.raises(BandCountError, match='13 channels.*12 bands.*bands='):
        norm.normalize(torch.zeros(1, 13, 4, 4))


def test_tensor_and_numpy_statistics() -> None:
    a = SmartiesNormalize(p1=torch.tensor([0.0, 1.0]), p99=np.array([10.0, 11.0]), mean=(0.5, 0.5), std=[0.25, 0.5])
    x = torch.tensor([5.0, 6.0]).view(1, 2, 1, 1)
    assert a(x).flatten().tolist() == pytest.approx([0.0, 0.0])


def test_sar_to_db() -> None:
    norm = SmartiesNormalize.from_preset('sentinel1', sar_to_db=True)
    x = torch.tensor([0.01, 0.01]).view(1, 2, 1, 1)  # linear power → −20 dB
    y = norm(x).flatten().tolist()
    # VV: (−20 + 29.5196975)/(−3.4569002 + 29.5196975) = 0.3652616 → (0.3652616 − 0.6493455)/0.1903046 = −1.4927938
    assert y[0] == pytest.approx(-1.4927937780018112, abs=1e-6)
    db_input = SmartiesNormalize.from_preset('sentinel1')(torch.full((1, 2, 1, 1), -20.0))
    assert torch.allclose(norm(x), db_input, atol=1e-6)
    # zero / negative power: guarded (−100 dB clips to 0), no NaN/inf
    z = norm(torch.tensor([0.0, -1.0]).view(1, 2, 1, 1))
    assert torch.isfinite(z).all()
    assert z.flatten()[0].item() == pytest.approx(-0.6493455171585083 / 0.19030459225177765, abs=1e-6)
    # with S2 + S1 stacked only the SAR channels are converted
    stacked = BandStats(
        bands=('sentinel2:B04', 'sentinel1:VV'), p1=(0.0, -30.0), p99=(1000.0, 0.0), mean=(0.0, 0.0), std=(1.0, 1.0)
    )
    n2 = SmartiesNormalize.from_stats(stacked, sar_to_db=True)
    assert n2.sar_to_db == (False, True)
    out = n2(torch.tensor([500.0, 0.1]).view(1, 2, 1, 1)).flatten().tolist()
    assert out == pytest.approx([0.5, 20.0 / 30.0], abs=1e-6)


def test_nodata_and_nan_are_invalid() -> None:
    norm = SmartiesNormalize.from_preset('sentinel2_l2a', nodata=0.0)
    x = torch.full((2, 12, 32, 32), 1500.0)
    x[0, 3, :4, :4] = 0.0
    x[1, 5, 10, 10] = float('nan')
    y = norm(x)
    assert torch.isfinite(y).all()
    assert (y[0, 3, :4, :4] == 0).all() and y[1, 5, 10, 10] == 0
    mask = norm.valid_mask(x)
    assert mask.shape == x.shape and mask.dtype == torch.bool
    assert int((~mask).sum()) == 16 + 1
    assert torch.equal(norm.last_valid_mask, mask)
    # without nodata= the value 0 is data (and gets normalised)
    plain = SmartiesNormalize.from_preset('sentinel2_l2a')
    assert plain(x)[0, 3, 0, 0] != 0


def test_valid_mask_feeds_the_encoder() -> None:
    from torchgeo_smarties.models import SMARTIESViT

    torch.manual_seed(0)
    model = SMARTIESViT(bands='sentinel2_l2a', embed_dim=32, depth=1, num_heads=2, img_size=32, num_classes=0).eval()
    norm = SmartiesNormalize.from_preset('sentinel2_l2a')
    x = torch.rand(1, 12, 32, 32) * 3000
    x[0, 0] = float('nan')  # B01 missing
    with torch.no_grad():
        y = model.patch_tokens(norm(x), band_mask=norm.valid_mask(x))
        ref = model.patch_tokens(
            norm(x)[:, 1:],
            bands=[
                f'sentinel2:{b}' for b in ('B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B08', 'B8A', 'B09', 'B11', 'B12')
            ],
        )
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)


def test_zscore_mode() -> None:
    stats = preset_stats('sentinel2_l2a')
    z = SmartiesNormalize.from_preset('sentinel2_l2a', mode='zscore')
    s = SmartiesNormalize.from_preset('sentinel2_l2a')
    x = torch.rand(1, 12, 8, 8) * 500 + 500  # inside [p1, p99] for every band: no clipping → same result
    assert all(lo < 500 and hi > 1000 for lo, hi in zip(stats.p1, stats.p99, strict=True))
    torch.testing.assert_close(z(x), s(x), atol=1e-5, rtol=1e-5)
    big = torch.full((1, 12, 1, 1), 1e5)
    assert (z(big) > s(big)).all()  # no clip
    raw = SmartiesNormalize(mean=[10.0], std=[2.0], mode='zscore')
    assert raw(torch.full((1, 1, 1, 1), 14.0)).item() == 2.0
    m, sd = stats.affine_mean_std()
    assert m[3].item() == pytest.approx(L2A_B04[0] + L2A_B04[2] * (L2A_B04[1] - L2A_B04[0]))
    assert sd[3].item() == pytest.approx(L2A_B04[3] * (L2A_B04[1] - L2A_B04[0]))


def test_augmentation_containers_and_keepdim() -> None:
    norm = SmartiesNormalize.from_preset('eurosat')
    x = torch.rand(3, 13, 16, 16) * 3000
    ref = norm(x)
    aug = K.AugmentationSequential(SmartiesNormalize.from_preset('eurosat'), data_keys=None, keepdim=True)
    batch = {'image': x.clone(), 'label': torch.tensor([0, 1, 2])}
    out = aug(batch)
    assert torch.equal(out['image'], ref)
    assert torch.equal(out['label'], batch['label'])
    assert torch.equal(nn.Sequential(norm)(x), ref)
    single = SmartiesNormalize.from_preset('eurosat', keepdim=True)(x[0])
    assert single.shape == (13, 16, 16) and torch.equal(single, ref[0])
    # deterministic: no randomness
    assert torch.equal(norm(x), norm(x))
    assert norm.stats.p1 == preset_stats('eurosat').p1


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda() -> None:
    norm = SmartiesNormalize.from_preset('sentinel2_l2a', nodata=0.0)  # module stays on the CPU
    x = torch.rand(2, 12, 16, 16) * 3000
    y = norm(x.cuda())
    assert y.is_cuda
    torch.testing.assert_close(y.cpu(), norm(x), atol=1e-5, rtol=0)
    assert torch.equal(norm.cuda()(x.cuda()).cpu(), y.cpu())


def test_from_file_roundtrip(tmp_path: Path) -> None:
    stats = preset_stats('sentinel2_l2a')
    for suffix in ('.json', '.yaml'):
        path = stats.save(tmp_path / f'stats{suffix}')
        loaded = BandStats.load(path)
        assert loaded.bands == stats.bands and loaded.p99 == stats.p99 and loaded.std == stats.std
        norm = SmartiesNormalize.from_file(path, bands=['sentinel2:B8A', 'sentinel2:B02'])
        assert norm.stats.p1 == (stats.p1[8], stats.p1[1])
    with pytest.raises(InputError, match='does not exist'):
        BandStats.load(tmp_path / 'missing.json')
    (tmp_path / 'bad.json').write_text('{"x": 1}')
    with pytest.raises(InputError, match='not a statistics file'):
        BandStats.load(tmp_path / 'bad.json')


def test_as_tensors_for_datamodules() -> None:
    t = preset_stats('eurosat').as_tensors()
    assert set(t) == {'p1', 'p99', 'mean', 'std'}
    assert t['p1'].shape == (13,) and t['p1'][0].item() == 968.0
    assert math.isclose(t['std'][0].item(), 0.21045533, abs_tol=1e-7)


def test_in_a_torchgeo_datamodule() -> None:
    from torchgeo.datamodules import NonGeoDataModule
    from torchgeo.datasets import NonGeoDataset

    class Tiny(NonGeoDataset):
        def __init__(self, split: str = 'train') -> None:
            self.x = torch.rand(4, 13, 16, 16) * 3000

        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {'image': self.x[i], 'label': torch.tensor(i)}

    class TinyDataModule(NonGeoDataModule):
        def __init__(self) -> None:
            super().__init__(Tiny, batch_size=2)
            self.aug = K.AugmentationSequential(SmartiesNormalize.from_preset('eurosat'), data_keys=None, keepdim=True)

    dm = TinyDataModule()
    dm.setup('fit')
    batch = next(iter(dm.train_dataloader()))
    out = dm.aug(batch)
    torch.testing.assert_close(out['image'], SmartiesNormalize.from_preset('eurosat')(batch['image']))
    assert out['label'].tolist() == batch['label'].tolist()
