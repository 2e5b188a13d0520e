import pytest
import torch

from torchgeo_smarties.errors import ImageSizeError, InputError
from torchgeo_smarties.transforms import CrossSensorMixup, PairedGeometric, PairedResize


def ground_field(batch: int, channels: int, n: int, extent: float = 64.0) -> torch.Tensor:
    """Sample per-channel linear fields f(X, Y) = c0 + c1·X + c2·Y at the pixel centres of an n×n grid.

    X, Y are ground coordinates in [0, extent]; the same field sampled at 64 px and at 256 px is the same
    scene at two resolutions. Bilinear interpolation is exact on a linear field, so co-registered
    resampling of the two must give equal outputs.
    """
    g = torch.Generator().manual_seed(0)
    coef = torch.randn(batch, channels, 3, generator=g, dtype=torch.float64)
    centres = (torch.arange(n, dtype=torch.float64) + 0.5) * extent / n
    yy, xx = torch.meshgrid(centres, centres, indexing='ij')
    return coef[..., 0, None, None] + coef[..., 1, None, None] * xx + coef[..., 2, None, None] * yy


def test_outputs_stay_co_registered_across_resolutions() -> None:
    coarse = ground_field(4, 3, 64)  # e.g. 10 m S2, 64×64
    fine = ground_field(4, 3, 256)  # the same field, 4× finer (2.5 m), 256×256
    aug = PairedGeometric(size=32, hflip=0.5, vflip=0.5, rot90=0.5)
    for seed in range(4):
        a, b = aug(coarse, fine, generator=torch.Generator().manual_seed(seed))
        assert a.shape == b.shape == (4, 3, 32, 32)
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    # the draw really crops (output ≠ a plain resize of the whole image)
    full_a, _ = PairedResize(32, antialias=False)(coarse, fine)
    assert (a - full_a).abs().max() > 1e-2


def test_upsampled_copy_matches_after_resize() -> None:
    """b = nearest 4× upsampling of random a: the crops agree after resizing b's output to a's grid."""
    a = torch.rand(2, 5, 64, 64, generator=torch.Generator().manual_seed(1))
    b = a.repeat_interleave(4, dim=-1).repeat_interleave(4, dim=-2)
    aug = PairedGeometric(size=64, scale=(0.5, 0.5), resample='nearest', rot90=0.0)
    out_a, out_b = aug(a, b, generator=torch.Generator().manual_seed(0))
    # nearest sampling of the same ground points: identical except where a sample sits on a pixel boundary
    assert (out_a == out_b).float().mean() > 0.95


def test_same_params_both_images_and_determinism() -> None:
    a = torch.rand(3, 12, 64, 64)
    b = torch.rand(3, 2, 256, 256)
    aug = PairedGeometric(size=64)
    x = aug(a, b, generator=torch.Generator().manual_seed(3))
    y = aug(a, b, generator=torch.Generator().manual_seed(3))
    assert torch.equal(x[0], y[0]) and torch.equal(x[1], y[1])
    z = aug(a, b, generator=torch.Generator().manual_seed(4))
    assert not torch.equal(x[0], z[0])
    torch.manual_seed(11)
    u = aug(a, b)
    torch.manual_seed(11)
    v = aug(a, b)
    assert torch.equal(u[0], v[0]) and torch.equal(u[1], v[1])
    # the generator does not disturb the global RNG
    torch.manual_seed(0)
    r1 = torch.rand(1)
    torch.manual_seed(0)
    aug(a, b, generator=torch.Generator().manual_seed(3))
    assert torch.equal(torch.rand(1), r1)


def test_dict_batch_and_then_mixup() -> None:
    batch = {'s2': torch.rand(2, 12, 64, 64), 's1': torch.rand(2, 2, 128, 128), 'label': torch.tensor([1, 0])}
    out = PairedGeometric(size=32, keys=('s2', 's1'))(batch, generator=torch.Generator().manual_seed(0))
    assert out['s2'].shape == (2, 12, 32, 32) and out['s1'].shape == (2, 2, 32, 32)
    assert torch.equal(out['label'], batch['label'])
    mixed = CrossSensorMixup(keys=('s2', 's1'))(out)
    assert mixed['mask_a'].shape == (2, 14, 2, 2)


def test_paired_resize() -> None:
    coarse = ground_field(2, 2, 64)
    fine = ground_field(2, 2, 256)
    a, b = PairedResize(32, antialias=False)(coarse, fine)
    assert a.shape == b.shape == (2, 2, 32, 32)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_different_extents_is_an_error() -> None:
    with pytest.raises(ImageSizeError, match='different spatial extents.*same footprint'):
        PairedGeometric(32)(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 256, 128))
    with pytest.raises(ImageSizeError, match='different spatial extents'):
        PairedResize(32)(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 100, 128))
    with pytest.raises(InputError, match='batch sizes'):
        PairedGeometric(32)(torch.rand(2, 3, 64, 64), torch.rand(1, 3, 64, 64))
    with pytest.raises(InputError, match='both images'):
        PairedGeometric(32)(torch.rand(2, 3, 64, 64))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda() -> None:
    coarse = ground_field(2, 3, 64).float()
    fine = ground_field(2, 3, 256).float()
    aug = PairedGeometric(size=32)
    a, b = aug(coarse.cuda(), fine.cuda(), generator=torch.Generator().manual_seed(0))
    ra, _ = aug(coarse, fine, generator=torch.Generator().manual_seed(0))
    assert a.is_cuda
    torch.testing.assert_close(a.cpu(), ra, atol=1e-3, rtol=0)
    torch.testing.assert_close(b.cpu(), a.cpu(), atol=1e-3, rtol=0)


def test_pair_sequential_dict_and_tuple_call_shapes() -> None:
    import kornia.augmentation as K

    from torchgeo_smarties.errors import InputError
    from torchgeo_smarties.transforms import CrossSensorMixup, PairedGeometric, PairSequential

    a, b = torch.rand(2, 3, 32, 32), torch.rand(2, 1, 128, 128)
    b[..., :64] = 5.0  # left half marked in the high-resolution image
    a[..., :16] = 5.0  # the same ground footprint in the low-resolution one
    seq = PairSequential(PairedGeometric(32, hflip=1.0, vflip=0.0, rot90=0.0), K.RandomGaussianNoise(std=1e-3, p=1.0),
                         data_keys=('s2', 'hr'))
    torch.manual_seed(0)
    out = seq({'s2': a, 'hr': b, 'label': torch.tensor([1, 2])})
    assert set(out) == {'s2', 'hr', 'label'} and out['s2'].shape == out['hr'].shape[:1] + (3, 32, 32)
    # same geometry on both: the marked half lands on the same side of both outputs
    ma, mb = out['s2'][:, 0] > 2.5, out['hr'][:, 0] > 2.5
    assert (ma == mb).float().mean() > 0.95
    torch.manual_seed(0)
    ta, tb = seq(a, b)
    torch.testing.assert_close(ta, out['s2'])
    torch.testing.assert_close(tb, out['hr'])
    mixed = PairSequential(PairedGeometric(32), CrossSensorMixup())({'image_a': a, 'image_b': b})
    assert mixed['view_a'].shape == (2, 4, 32, 32) and mixed['mask_a'].shape == (2, 4, 2, 2)
    with pytest.raises(InputError, match='must be the last step'):
        PairSequential(CrossSensorMixup(), PairedGeometric(32))
    with pytest.raises(InputError, match='would misalign the pair'):
        PairSequential(K.RandomHorizontalFlip())
    with pytest.raises(InputError, match='needs the keys'):
        seq({'image_a': a, 'image_b': b})
