"""Bad input to the SMARTIES models (encoder, MAE, builders): typed errors that name the fix, or a documented cast."""

import pytest
import torch

from torchgeo_smarties.errors import BandCountError, CheckpointError, ImageSizeError, InputError, ModelConfigError
from torchgeo_smarties.models import (
    SMARTIESMAE,
    SMARTIESViT,
    load_encoder_weights,
    smarties_vitb,
    to_release_state_dict,
)

TINY = {'embed_dim': 32, 'depth': 2, 'num_heads': 2, 'img_size': 32}


@pytest.fixture(scope='module')
def model() -> SMARTIESViT:
    torch.manual_seed(0)
    return SMARTIESViT(bands='sentinel2_10m', **TINY).eval()


# class: half / bfloat16 / float64 input tensors into a float32 model (cast policy: the model's dtype)
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16, torch.float64])
def test_other_float_dtypes_are_cast_to_the_model_dtype(model: SMARTIESViT, dtype: torch.dtype) -> None:
    x = torch.randn(2, 4, 32, 32)
    with torch.no_grad():
        ref = model(x.to(dtype).float())  # what the cast gives: the same numbers as a float32 input of those values
        out = model(x.to(dtype))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=0, atol=0)  # same path, same float32 input after the cast


# class: integer or complex image tensors
@pytest.mark.parametrize('dtype', [torch.uint8, torch.int16, torch.complex64])
def test_non_float_images_are_refused(model: SMARTIESViT, dtype: torch.dtype) -> None:
    with pytest.raises(InputError, match='floating-point'):
        model(torch.zeros(1, 4, 32, 32, dtype=dtype))


# class: 0×0 (or 0-wide) image
@pytest.mark.parametrize('shape', [(1, 4, 0, 0), (1, 4, 32, 0)])
def test_empty_image_is_refused(model: SMARTIESViT, shape: tuple[int, ...]) -> None:
    with pytest.raises(ImageSizeError, match='image is empty'):
        model(torch.zeros(shape))


# class: empty batch (B = 0)
def test_empty_batch_is_refused(model: SMARTIESViT) -> None:
    with pytest.raises(InputError, match='batch is empty'):
        model(torch.zeros(0, 4, 32, 32))
    with pytest.raises(InputError, match='batch is empty'):
        model.forward_dense(torch.zeros(0, 4, 32, 32))


# class: embed_dim not divisible by num_heads (builder, timm entrypoint, MAE)
def test_embed_dim_not_divisible_by_heads() -> None:
    with pytest.raises(ModelConfigError, match='not divisible by num_heads=5'):
        smarties_vitb(embed_dim=64, depth=2, num_heads=5)
    import timm

    with pytest.raises(ModelConfigError, match='num_heads'):
        timm.create_model('smarties_vit_base_patch16', embed_dim=64, depth=2, num_heads=6)
    with pytest.raises(ModelConfigError, match='decoder embed_dim=30'):
        SMARTIESMAE(bands='sentinel2_10m', **TINY, decoder_embed_dim=30, decoder_depth=1, decoder_num_heads=4)


# class: zero / negative / non-integer heads or depth
@pytest.mark.parametrize(('kw', 'match'), [
    ({'num_heads': 0}, 'num_heads must be a positive integer, got 0'),
    ({'num_heads': -2}, 'num_heads must be a positive integer'),
    ({'depth': 0}, 'depth must be a positive integer, got 0'),
    ({'embed_dim': 64.0}, 'embed_dim must be a positive integer'),
])
def test_non_positive_sizes(kw: dict[str, object], match: str) -> None:
    with pytest.raises(ModelConfigError, match=match):
        smarties_vitb(**{'embed_dim': 64, 'depth': 2, 'num_heads': 4, **kw})


# class: embed_dim not divisible by 4 (sin-cos position table)
def test_embed_dim_not_divisible_by_four() -> None:
    with pytest.raises(ModelConfigError, match='divisible by 4'):
        smarties_vitb(embed_dim=34, depth=1, num_heads=2)


# class: channel count contradicting the band set, for the MAE's second sensor
def test_mae_second_sensor_channel_count() -> None:
    torch.manual_seed(0)
    mae = SMARTIESMAE(bands='sentinel2_10m', **TINY, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2)
    with pytest.raises(BandCountError, match='3 channels'):
        mae(torch.randn(1, 4, 32, 32), 'sentinel2_10m', torch.randn(1, 3, 32, 32), 'sentinel1')


# class: a state dict holding the spectral projection under both the release's and the model's key names
@pytest.mark.parametrize('load', ['load_state_dict', 'load_encoder_weights'])
def test_projection_under_both_key_names_is_refused(model: SMARTIESViT, load: str) -> None:
    both = {**model.state_dict(), **to_release_state_dict(model)}
    with pytest.raises(CheckpointError, match='keep one naming'):
        model.load_state_dict(both) if load == 'load_state_dict' else load_encoder_weights(model, both)
