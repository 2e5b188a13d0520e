"""TerraTorch backbone registration (runs in the second environment of scripts/terratorch_env.sh)."""

import pytest
import torch

pytest.importorskip('terratorch', reason='TerraTorch 1.2.x needs torchgeo<0.10: run scripts/terratorch_env.sh')


def test_terratorch_backbone_and_decoder() -> None:
    from terratorch.models import EncoderDecoderFactory
    from terratorch.registry import BACKBONE_REGISTRY

    import torchgeo_smarties.integrations.terratorch  # noqa: F401  (registers the backbones)

    tiny = {'embed_dim': 32, 'depth': 4, 'num_heads': 2, 'img_size': 32}
    assert 'terratorch_smarties_vit_base_patch16' in BACKBONE_REGISTRY
    backbone = BACKBONE_REGISTRY.build('terratorch_smarties_vit_base_patch16', bands='sentinel1', **tiny)
    maps = backbone(torch.randn(2, 2, 64, 64))
    assert backbone.out_channels == [32] * 4
    assert [tuple(m.shape[-2:]) for m in maps] == [(16, 16), (8, 8), (4, 4), (2, 2)]  # strides 4, 8, 16, 32
    model = EncoderDecoderFactory().build_model(
        task='segmentation', backbone='terratorch_smarties_vit_base_patch16', decoder='UperNetDecoder', num_classes=3,
        backbone_bands='sentinel2_l2a', decoder_channels=16, **{f'backbone_{k}': v for k, v in tiny.items()},
    )
    assert model(torch.randn(2, 12, 64, 64)).output.shape == (2, 3, 64, 64)
