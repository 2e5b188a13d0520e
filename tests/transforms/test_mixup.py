import pytest
import torch

from torchgeo_smarties.errors import BandCountError, ImageSizeError, InputError
from torchgeo_smarties.models import SMARTIESViT
from torchgeo_smarties.ops import mix_tokens
from torchgeo_smarties.transforms import CrossSensorMixup

S2 = 'sentinel2_l2a'
S1 = 'sentinel1'
BANDS_A = [
    f'sentinel2:{b}' for b in ('B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B08', 'B8A', 'B09', 'B11', 'B12')
]
BANDS_B = ['sentinel1:VV', 'sentinel1:VH']


@pytest.fixture(scope='module')
def model() -> SMARTIESViT:
    torch.manual_seed(0)
    return SMARTIESViT(bands=S2, embed_dim=32, depth=1, num_heads=2, img_size=64, num_classes=0).eval()


@pytest.fixture
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(3, 12, 64, 64, generator=g), torch.randn(3, 2, 64, 64, generator=g)


def test_encode_mix_equals_mix_encode(model: SMARTIESViT, pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    a, b = pair
    mix = CrossSensorMixup(bands_a=S2, bands_b=S1)
    out = mix(a, b, generator=torch.Generator().manual_seed(0))
    assert out.bands == tuple(BANDS_A + BANDS_B)
    with torch.no_grad():
        ta = model.patch_tokens(a, bands=BANDS_A)
        tb = model.patch_tokens(b, bands=BANDS_B)
        got_a = model.patch_tokens(out.view_a, bands=BANDS_A + BANDS_B, band_mask=out.mask_a)
        got_b = model.patch_tokens(out.view_b, bands=BANDS_A + BANDS_B, band_mask=out.mask_b)
    torch.testing.assert_close(got_a, mix_tokens(ta, tb, out.assignment), atol=1e-5, rtol=0)
    torch.testing.assert_close(got_b, mix_tokens(tb, ta, out.assignment), atol=1e-5, rtol=0)
    # the two token sets really differ where the assignment picks differently (the test can fail)
    assert (got_a - got_b).abs().amax(-1)[out.assignment | ~out.assignment].min() > 1e-3


def test_views_are_complementary(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    a, b = pair
    out = CrossSensorMixup(ratio=0.5)(a, b, generator=torch.Generator().manual_seed(3))
    assert out.assignment.shape == (3, 4, 4) and out.assignment.dtype == torch.bool
    assert out.assignment.flatten(1).sum(1).tolist() == [8, 8, 8]  # exactly round(0.5·16) per sample
    assert torch.equal(out.mask_b, ~out.mask_a)
    assert torch.equal(out.mask_a[:, :12], out.assignment[:, None].expand(-1, 12, -1, -1))
    assert torch.equal(out.mask_a[:, 12:], ~out.assignment[:, None].expand(-1, 2, -1, -1))
    assert torch.equal(out.view_a, torch.cat([a, b], 1))
    # per-sample assignments differ
    assert not torch.equal(out.assignment[0], out.assignment[1])


def test_release_pretraining_mode_keeps_view_b_unmixed(
    model: SMARTIESViT, pair: tuple[torch.Tensor, torch.Tensor]
) -> None:
    a, b = pair
    gen = torch.Generator().manual_seed(0)
    out = CrossSensorMixup(mode='release_pretraining')(a, b, generator=gen)
    comp = CrossSensorMixup()(a, b, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out.assignment, comp.assignment) and torch.equal(out.mask_a, comp.mask_a)
    assert not out.mask_b[:, :12].any() and out.mask_b[:, 12:].all()
    with torch.no_grad():
        got_b = model.patch_tokens(out.view_b, bands=BANDS_A + BANDS_B, band_mask=out.mask_b)
        tb = model.patch_tokens(b, bands=BANDS_B)
    torch.testing.assert_close(got_b, tb, atol=1e-5, rtol=0)


@pytest.mark.parametrize('ratio', [0.0, 1.0])
def test_ratio_zero_and_one_return_the_inputs(
    model: SMARTIESViT, pair: tuple[torch.Tensor, torch.Tensor], ratio: float
) -> None:
    a, b = pair
    out = CrossSensorMixup(ratio=ratio)(a, b)
    assert bool(out.assignment.all()) is (ratio == 1.0) and bool((~out.assignment).all()) is (ratio == 0.0)
    with torch.no_grad():
        ta = model.patch_tokens(a, bands=BANDS_A)
        tb = model.patch_tokens(b, bands=BANDS_B)
        va = model.patch_tokens(out.view_a, bands=BANDS_A + BANDS_B, band_mask=out.mask_a)
        vb = model.patch_tokens(out.view_b, bands=BANDS_A + BANDS_B, band_mask=out.mask_b)
    first, second = (ta, tb) if ratio == 1.0 else (tb, ta)
    torch.testing.assert_close(va, first, atol=1e-5, rtol=0)
    torch.testing.assert_close(vb, second, atol=1e-5, rtol=0)


def test_deterministic_under_a_generator(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    a, b = pair
    mix = CrossSensorMixup()
    x = mix(a, b, generator=torch.Generator().manual_seed(7)).assignment
    y = mix(a, b, generator=torch.Generator().manual_seed(7)).assignment
    z = mix(a, b, generator=torch.Generator().manual_seed(8)).assignment
    assert torch.equal(x, y) and not torch.equal(x, z)
    torch.manual_seed(5)
    u = mix(a, b).assignment
    torch.manual_seed(5)
    assert torch.equal(u, mix(a, b).assignment)
    fixed = CrossSensorMixup(generator=torch.Generator().manual_seed(7))
    assert torch.equal(fixed(a, b).assignment, x)


def test_dict_batch(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    a, b = pair
    batch = {'s2': a, 's1': b, 'label': torch.arange(3)}
    out = CrossSensorMixup(keys=('s2', 's1'))(batch, generator=torch.Generator().manual_seed(0))
    assert set(out) >= {'s2', 's1', 'label', 'view_a', 'mask_a', 'view_b', 'mask_b', 'assignment'}
    assert out['view_a'].shape == (3, 14, 64, 64)
    with pytest.raises(InputError, match='keys'):
        CrossSensorMixup()(batch)


def test_errors(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    a, b = pair
    with pytest.raises(ImageSizeError, match='different spatial sizes.*PairedResize'):
        CrossSensorMixup()(a, b[..., :32, :32])
    with pytest.raises(InputError, match='the pair has different batch sizes: 3 and 2'):
        CrossSensorMixup()(a, b[:2])
    with pytest.raises(InputError, match='expected two \\(B, C, H, W\\) images'):
        CrossSensorMixup()(a[0], b[0])
    with pytest.raises(ImageSizeError, match='not a multiple of the patch size 16.*PairedResize\\(\\(64, 64\\)\\)'):
        CrossSensorMixup()(a[..., :60, :60], b[..., :60, :60])
    with pytest.raises(InputError, match='ratio must be in \\[0, 1\\]'):
        CrossSensorMixup(ratio=1.5)
    with pytest.raises(InputError, match='mode'):
        CrossSensorMixup(mode='other')  # type: ignore[arg-type]
    with pytest.raises(BandCountError, match='bands_b'):
        CrossSensorMixup(bands_a=S2, bands_b='sentinel2_rgb')(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    a, b = pair
    out = CrossSensorMixup()(a.cuda(), b.cuda(), generator=torch.Generator().manual_seed(0))
    ref = CrossSensorMixup()(a, b, generator=torch.Generator().manual_seed(0))
    assert out.mask_a.is_cuda and torch.equal(out.assignment.cpu(), ref.assignment)
