"""smp decoders (UNet, UPerNet, FPN, Segformer) on the SMARTIES feature pyramid via ``tu-smarties_*``."""

import pytest
import segmentation_models_pytorch as smp
import timm
import torch

from torchgeo_smarties.errors import InputError
from torchgeo_smarties.models.pyramid import SMARTIESFeaturePyramid, spectral_inputs

# smarties_test_d4 (tests/tasks/tasks_synthetic.py): 32-d, 4 blocks, 2 heads; smp reserves the keyword `depth`
# for the encoder depth, so the tiny architecture comes from a registered entrypoint, not from kwargs.
ENCODER = 'tu-smarties_test_d4'
DECODERS = ('unet', 'upernet', 'fpn', 'segformer')


@pytest.mark.parametrize('arch', DECODERS)
@pytest.mark.parametrize(('channels', 'preset'), [(12, 'sentinel2_l2a'), (13, 'sentinel2_l1c')])
def test_smp_decoder_forward(arch: str, channels: int, preset: str) -> None:
    from torchgeo_smarties.spectrum import PRESETS

    model = smp.create_model(arch, encoder_name=ENCODER, encoder_weights=None, in_channels=channels, classes=3)
    pyramid = model.encoder.model
    assert isinstance(pyramid, SMARTIESFeaturePyramid)
    assert pyramid.model.bands == tuple(PRESETS[preset])  # 12 → L2A, 13 → L1C, like the encoder's default
    x = torch.randn(2, channels, 64, 64)
    y = model(x)
    assert y.shape == (2, 3, 64, 64) and bool(torch.isfinite(y).all())
    y.mean().backward()
    grads = [p.grad for p in pyramid.model.spectrum_projection.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)  # gradients reach the spectral projection


def test_feature_info_is_a_power_of_two_pyramid() -> None:
    with torch.device('meta'):  # what smp's TimmUniversalEncoder does first
        feats = timm.create_model('smarties_vit_base_patch16', features_only=True)
    assert feats.feature_info.reduction() == [4, 8, 16, 32]
    assert feats.feature_info.channels() == [768] * 4
    assert feats.block_indices == (3, 5, 7, 11)  # PANGAEA's blocks for ViT-B
    x = torch.randn(1, 12, 64, 64)
    maps = timm.create_model('smarties_test_d4', features_only=True, out_indices=(1, 3))(x)
    assert [tuple(m.shape) for m in maps] == [(1, 32, 8, 8), (1, 32, 2, 2)]
    # the plain per-block getter stays available
    getter = timm.create_model('smarties_test_d4', features_only=True, feature_cls='getter')
    assert getter.feature_info.reduction() == [16, 16, 16]


@pytest.mark.parametrize('depth', [2, 3, 4])
def test_encoder_depth_selects_levels(depth: int) -> None:
    model = smp.Unet(ENCODER, encoder_weights=None, in_channels=12, classes=2, encoder_depth=depth,
                     decoder_channels=[8] * depth)
    assert model.encoder.model.feature_info.reduction() == [4, 8, 16, 32][: depth - 1]
    assert model(torch.randn(1, 12, 32, 32)).shape == (1, 2, 32, 32)


def test_bad_depth_and_stride_are_typed_errors() -> None:
    with pytest.raises(InputError, match='encoder_depth 2 to 5'):
        smp.Unet(ENCODER, encoder_weights=None, in_channels=12, encoder_depth=1, decoder_channels=[8])
    with pytest.raises(InputError, match='output_stride=16 is not supported'):
        timm.create_model('smarties_test_d4', features_only=True, output_stride=16)  # smp's DeepLab dilation
    with pytest.raises(InputError, match='pyramid_blocks must name 4 blocks'):
        smp.Unet(ENCODER, encoder_weights=None, in_channels=12, pyramid_blocks=(0, 1))


def test_bands_and_band_mask_reach_the_encoder() -> None:
    torch.manual_seed(0)
    model = smp.Unet(ENCODER, encoder_weights=None, in_channels=4, classes=2, pyramid_blocks=(0, 1, 2, 3),
                     bands=['sentinel2:B02', 'sentinel2:B03', 'sentinel2:B04', 'sentinel2:B08']).eval()
    assert model.encoder.model.block_indices == (0, 1, 2, 3)
    x = torch.randn(2, 4, 32, 32)
    mask = torch.tensor([[True, True, False, True], [True, False, True, True]])
    noise = torch.where(mask[:, :, None, None], x, torch.randn_like(x) * 100)
    with torch.no_grad():
        with spectral_inputs(band_mask=mask):
            a, b = model(x), model(noise)
        c = model(noise)
    # masked bands are excluded exactly from the token mean; same computation on both inputs, so only
    # float reassociation separates them (1e-5 on O(1) logits)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    assert (a - c).abs().max() > 1e-2  # without the mask the garbage bands change the output


def test_torchgeo_semantic_segmentation_unet() -> None:
    from torchgeo.tasks import SemanticSegmentation

    for arch in ('unet', 'upernet'):
        task = SemanticSegmentation(model=arch, backbone=ENCODER, in_channels=12, num_classes=3, loss='ce')
        assert task(torch.randn(2, 12, 32, 32)).shape == (2, 3, 32, 32)
