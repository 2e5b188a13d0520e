"""TerraTorch integration: the SMARTIES backbones in TerraTorch's registry, plugin loading and model factory.

TerraTorch 1.2.x pins ``torchgeo<0.10`` and cannot share the main environment, so in the main environment this module
is skipped with the reason. ``scripts/terratorch_env.sh`` (a CI step) runs it in the second environment with
``SMARTIES_REQUIRE_TERRATORCH=1``: there an unimportable TerraTorch is a collection error, not a skip.
"""

import os
import sys
from pathlib import Path

import pytest
import torch

try:
    import terratorch  # noqa: F401
except ImportError as err:
    if os.environ.get('SMARTIES_REQUIRE_TERRATORCH'):
        raise
    pytest.skip(
        f'TerraTorch is not importable here ({err}); TerraTorch 1.2.x needs torchgeo<0.10: these tests run in the '
        'second environment of bash scripts/terratorch_env.sh',
        allow_module_level=True,
    )

import timm
from terratorch.models import EncoderDecoderFactory
from terratorch.registry import BACKBONE_REGISTRY

from torchgeo_smarties.errors import BandCountError, InputError
from torchgeo_smarties.integrations import terratorch as plugin
from torchgeo_smarties.models.pyramid import SMARTIESFeaturePyramid

TINY = {'embed_dim': 32, 'depth': 4, 'num_heads': 2, 'img_size': 32}
NAME = 'terratorch_smarties_vit_base_patch16'  # TerraTorch's source prefix + our name


@pytest.mark.parametrize('name', [NAME, 'smarties_vit_base_patch16'])
def test_registry_builds_the_pyramid_by_name(name: str) -> None:
    # Unprefixed, the MultiSourceRegistry asks its sources in order; TerraTorch's own comes first, before timm's.
    assert {NAME, 'terratorch_smarties_vit_large_patch16'} <= set(BACKBONE_REGISTRY)
    backbone = BACKBONE_REGISTRY.build(name, bands='sentinel1', **TINY)
    assert isinstance(backbone, SMARTIESFeaturePyramid)
    assert backbone.out_channels == [32] * 4
    maps = backbone(torch.randn(2, 2, 64, 64))
    assert [tuple(m.shape) for m in maps] == [(2, 32, 16, 16), (2, 32, 8, 8), (2, 32, 4, 4), (2, 32, 2, 2)]


def test_registry_backbone_computes_the_timm_pyramid() -> None:
    torch.manual_seed(0)
    backbone = BACKBONE_REGISTRY.build(NAME, bands='sentinel2_l2a', out_indices=(1, 3), **TINY).eval()
    ref = timm.create_model('smarties_vit_base_patch16', features_only=True, out_indices=(1, 3), in_chans=12, **TINY)
    ref.load_state_dict(backbone.state_dict())
    x = torch.randn(1, 12, 64, 64)
    with torch.no_grad():
        got, want = backbone(x), ref.eval()(x)
    assert [m.shape[-1] for m in got] == [8, 2]  # strides 8 and 32 only
    # Same weights through the same modules; the tolerance only allows for a different kernel choice per call.
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)


def test_factory_segmentation_model_shapes_and_bands() -> None:
    model = EncoderDecoderFactory().build_model(
        task='segmentation',
        backbone=NAME,
        decoder='UperNetDecoder',
        num_classes=3,
        backbone_bands='sentinel2_l2a',
        decoder_channels=16,
        **{f'backbone_{k}': v for k, v in TINY.items()},
    )
    assert model(torch.randn(2, 12, 64, 64)).output.shape == (2, 3, 64, 64)
    with pytest.raises(BandCountError):  # backbone_bands reached the encoder: 12 bands, not 2
        model(torch.randn(2, 2, 64, 64))


def test_timm_source_finds_the_model_too() -> None:
    backbone = BACKBONE_REGISTRY.build('timm_smarties_vit_base_patch16', in_chans=12, **TINY)
    assert backbone.out_channels == [32] * 4
    assert [m.shape[-1] for m in backbone(torch.randn(1, 12, 64, 64))] == [16, 8, 4, 2]


def test_not_a_smarties_model_is_refused() -> None:
    with pytest.raises(InputError, match='is not a SMARTIES model'):
        plugin.smarties_backbone('resnet18')


def test_terratorch_custom_modules_path_loads_the_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # TerraTorch 1.2.x discovers third-party backbones only by import, e.g. from its CLI's custom_modules_path (or
    # TERRATORCH_CUSTOM_MODULE_PATH); it has no entry-point group. Here: an empty TerraTorch registry and a plugin
    # not yet imported, then TerraTorch's own loader; everything is restored afterwards.
    from terratorch.cli_tools import import_custom_modules
    from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY

    import torchgeo_smarties.integrations as integrations

    modules = tmp_path / 'smarties_tt_custom_modules'
    modules.mkdir()
    (modules / '__init__.py').write_text('import torchgeo_smarties.integrations.terratorch  # noqa: F401\n')
    registry = {k: v for k, v in TERRATORCH_BACKBONE_REGISTRY._registry.items() if 'smarties' not in k}
    monkeypatch.setattr(TERRATORCH_BACKBONE_REGISTRY, '_registry', registry)
    monkeypatch.delitem(sys.modules, plugin.__name__)
    monkeypatch.setattr(integrations, 'terratorch', plugin)  # restored after the re-import rebinds it
    monkeypatch.setattr(sys, 'path', list(sys.path))  # import_custom_modules prepends the folder's parent
    assert NAME not in BACKBONE_REGISTRY
    try:
        import_custom_modules(modules)
    finally:
        sys.modules.pop(modules.name, None)
    assert NAME in BACKBONE_REGISTRY
    assert isinstance(BACKBONE_REGISTRY.build(NAME, **TINY), SMARTIESFeaturePyramid)
