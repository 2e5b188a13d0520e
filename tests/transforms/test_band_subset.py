import kornia.augmentation as K
import pytest
import torch
from torch import nn

from torchgeo_smarties.errors import BandCountError, InputError
from torchgeo_smarties.models import SMARTIESViT
from torchgeo_smarties.transforms import RandomBandSubset, random_band_mask


def test_random_band_mask_bounds_and_determinism() -> None:
    m = random_band_mask(200, 12, 3, 5, generator=torch.Generator().manual_seed(0))
    assert m.shape == (200, 12) and m.dtype == torch.bool
    counts = m.sum(1)
    assert counts.min() == 3 and counts.max() == 5
    assert set(counts.tolist()) == {3, 4, 5}
    assert m.any(0).all()  # every band gets kept sometimes
    m2 = random_band_mask(200, 12, 3, 5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(m, m2)
    with pytest.raises(InputError, match='keep at least one band'):
        random_band_mask(2, 12, 0)
    with pytest.raises(InputError, match='max_bands'):
        random_band_mask(2, 4, 2, 6)


def test_augmentation_fills_dropped_bands_and_reports_the_mask() -> None:
    x = torch.rand(8, 12, 16, 16) + 1.0
    drop = RandomBandSubset(min_bands=4, generator=torch.Generator().manual_seed(0))
    y = drop(x)
    mask = drop.band_mask
    assert mask is not None and mask.shape == (8, 12)
    assert (mask.sum(1) >= 4).all() and not mask.all()
    assert torch.equal(y[mask], x[mask])
    assert y[~mask].isnan().all()  # default NaN fill: a consumer that ignores the mask fails loudly
    y0 = RandomBandSubset(min_bands=4, fill_value=0.0, generator=torch.Generator().manual_seed(0))(x)
    assert (y0[~mask] == 0).all()
    # in containers
    y2 = nn.Sequential(RandomBandSubset(min_bands=12))(x)  # keeps all 12 bands
    assert torch.equal(y2, x)
    out = K.AugmentationSequential(RandomBandSubset(min_bands=2), data_keys=None)({'image': x})
    assert out['image'].shape == x.shape
    torch.manual_seed(3)
    a = RandomBandSubset()(x)
    torch.manual_seed(3)
    torch.testing.assert_close(RandomBandSubset()(x), a, rtol=0, atol=0, equal_nan=True)  # same draw


def test_mask_makes_tokens_of_the_kept_bands() -> None:
    torch.manual_seed(0)
    model = SMARTIESViT(bands='sentinel2_l2a', embed_dim=32, depth=1, num_heads=2, img_size=32, num_classes=0).eval()
    x = torch.randn(2, 12, 32, 32)
    gen = torch.Generator().manual_seed(1)
    drop = RandomBandSubset(min_bands=3, max_bands=3, fill_value=float('nan'), generator=gen)
    y = drop(x)
    mask = drop.band_mask
    assert mask is not None
    with torch.no_grad():
        tok = model.patch_tokens(y, band_mask=mask)
        for i in range(2):
            ids = [b for b, k in zip(model.bands, mask[i].tolist(), strict=True) if k]
            ref = model.patch_tokens(x[i : i + 1, mask[i]], bands=ids)
            # two paths (masked mean over the 12 band slots vs the 3 kept bands alone) sum the same float32 terms
            # in another order; tokens are ~12 × the mean (|t| up to ~30, ulp 2e-6), so a few ulps relative
            # (rtol 1e-6) plus 1e-5: a band wrongly kept or dropped moves a token by O(1)
            torch.testing.assert_close(tok[i : i + 1], ref, atol=1e-5, rtol=1e-6)


def test_select_per_batch() -> None:
    x = torch.rand(4, 12, 8, 8)
    drop = RandomBandSubset(min_bands=2, max_bands=4)
    sub, ids = drop.select(x, 'sentinel2_l2a', generator=torch.Generator().manual_seed(0))
    assert 2 <= len(ids) <= 4 and sub.shape == (4, len(ids), 8, 8)
    from torchgeo_smarties.spectrum import PRESETS

    order = [PRESETS['sentinel2_l2a'].index(b) for b in ids]
    assert order == sorted(order)
    assert torch.equal(sub, x[:, order])
    with pytest.raises(BandCountError, match='one band id per channel'):
        drop.select(x, 'sentinel1')


def test_attach_band_mask_pops_and_combines() -> None:
    from torchgeo_smarties.transforms.band_subset import attach_band_mask, batch_band_mask

    x = torch.rand(4, 12, 16, 16)
    drop = RandomBandSubset(min_bands=3, max_bands=6, generator=torch.Generator().manual_seed(0))
    aug = K.AugmentationSequential(drop, data_keys=None, keepdim=True)
    batch = aug({'image': x.clone()})
    prior = torch.ones(4, 12, dtype=torch.bool)
    prior[:, 0] = False
    batch['band_mask'] = prior
    out = attach_band_mask(batch, aug)
    assert drop.band_mask is None  # consumed: a later batch of another split cannot pick up a stale mask
    mask = out['band_mask']
    assert mask.shape == (4, 12) and not mask[:, 0].any()
    assert int(mask.sum(1).max()) <= 6
    assert attach_band_mask({'image': x}, aug) == {'image': x}  # nothing ran → nothing attached
    # the dropped bands are NaN, and batch_band_mask finds them even without batch['band_mask']
    derived = batch_band_mask({'image': out['image']})
    assert derived is not None and torch.equal(derived | ~prior, (mask | ~prior))
    assert batch_band_mask({'image': x}) is None
    with pytest.raises(BandCountError, match=r"batch\['band_mask'\] has shape"):
        batch_band_mask({'image': x, 'band_mask': torch.ones(4, 3, dtype=torch.bool)})
