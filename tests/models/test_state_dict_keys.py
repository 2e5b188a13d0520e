"""State-dict key names: the projection lives in ``patch_embed``; release names are mapped at load/export only."""

import warnings

import timm
import torch
from torchgeo.tasks import Classification
from torchgeo.tasks.utils import _get_input_layer_name_and_module, load_state_dict

from torchgeo_smarties.models import (
    SMARTIESMAE,
    SMARTIESTiny16_Weights,
    SMARTIESViT,
    checkpoint_filter_fn,
    from_release_keys,
    load_checkpoint,
    smarties_vitt,
    to_release_keys,
    to_release_state_dict,
)
from torchgeo_smarties.models.demo import DEMO_WEIGHTS

TINY = {'embed_dim': 32, 'depth': 2, 'num_heads': 2, 'img_size': 32}
RELEASE_W0 = 'spectrum_projection.spectrum_embeds.0.proj.weight'
MODEL_W0 = 'patch_embed.spectrum_embeds.0.proj.weight'


def _tiny(seed: int) -> SMARTIESViT:
    torch.manual_seed(seed)
    return SMARTIESViT(bands='sentinel2_10m', **TINY).eval()


def test_module_names_are_state_dict_keys_and_patch_embed_is_the_first_child() -> None:
    model = _tiny(0)
    assert next(iter(model.named_children()))[0] == 'patch_embed'
    assert model.spectrum_projection is model.patch_embed  # the release's name is an alias, not a second module
    params = {n for n, _ in model.named_parameters()}
    buffers = {n for n, _ in model.named_buffers() if n != 'default_mix'}  # default_mix is not persistent
    assert set(model.state_dict()) == params | buffers
    assert MODEL_W0 in params and not any(k.startswith('spectrum_projection.') for k in model.state_dict())
    name, layer = _get_input_layer_name_and_module(model)
    assert name == 'patch_embed.spectrum_embeds.0.proj' and layer.in_channels == 16 * 16  # type: ignore[union-attr]


def test_timm_first_conv_names_the_learned_ranges() -> None:
    model = timm.create_model('smarties_vit_base_patch16', embed_dim=32, depth=1, num_heads=2)
    first = model.pretrained_cfg['first_conv']
    assert len(first) == 17 and first[0] == 'patch_embed.spectrum_embeds.0.proj'
    assert all(isinstance(model.get_submodule(n), torch.nn.Linear) for n in first)


def test_release_state_dict_round_trip() -> None:
    a, b = _tiny(0), _tiny(1)
    release = to_release_state_dict(a)
    assert RELEASE_W0 in release and not any(k.startswith('patch_embed.') for k in release)
    assert from_release_keys(release).keys() == a.state_dict().keys()
    assert to_release_keys(from_release_keys(release)).keys() == release.keys()
    # model.load_state_dict takes the release layout (strict: every key consumed, none missing)
    assert b.load_state_dict(release) is not None
    x = torch.randn(2, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(b(x), a(x))  # the same weights and the same computation path
    for k, v in a.state_dict().items():
        assert torch.equal(b.state_dict()[k], v), k
    # and its own layout, of course
    _tiny(2).load_state_dict(a.state_dict())


def test_mae_keeps_the_release_keys() -> None:
    mae = SMARTIESMAE(bands='sentinel2_10m', img_size=32, embed_dim=32, depth=1, num_heads=2, decoder_embed_dim=32,
                      decoder_depth=1, decoder_num_heads=2)
    sd = mae.state_dict()
    assert RELEASE_W0 in sd and not any(k.startswith(('patch_embed.', 'encoder.')) for k in sd)
    other = SMARTIESMAE(bands='sentinel2_10m', img_size=32, embed_dim=32, depth=1, num_heads=2, decoder_embed_dim=32,
                        decoder_depth=1, decoder_num_heads=2)
    other.load_state_dict(sd)
    other.load_state_dict(from_release_keys(sd))  # flat model names load too
    assert torch.equal(other.encoder.patch_embed.spectrum_embeds[3].proj.weight,
                       mae.encoder.patch_embed.spectrum_embeds[3].proj.weight)


def test_torchgeo_load_state_dict_with_the_enum_state_dict() -> None:
    model = smarties_vitt()
    state = SMARTIESTiny16_Weights.DEMO.get_state_dict()
    assert MODEL_W0 in state and RELEASE_W0 not in state  # the enum speaks the model's names
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # torchgeo warns on an in_channels or class-count mismatch
        missing, unexpected = load_state_dict(model, state)
    assert missing == [] and unexpected == []
    release = load_checkpoint(DEMO_WEIGHTS)
    assert torch.equal(model.patch_embed.spectrum_embeds[5].proj.bias,
                       release['spectrum_projection.spectrum_embeds.5.proj.bias'])


def test_torchgeo_classification_with_the_weights_enum() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter('error', UserWarning)
        task = Classification(model='smarties_vit_tiny_patch16', in_channels=13, num_classes=3,
                              weights=SMARTIESTiny16_Weights.DEMO)
    release = load_checkpoint(DEMO_WEIGHTS)
    own = task.model.state_dict()
    for k in ('cls_token', 'blocks.3.mlp.fc2.weight', 'norm.bias'):
        assert torch.equal(own[k], release[k]), k
    assert torch.equal(own['patch_embed.spectrum_embeds.9.proj.weight'],
                       release['spectrum_projection.spectrum_embeds.9.proj.weight'])


def test_filter_fn_maps_release_keys_and_passes_model_keys() -> None:
    model = _tiny(0)
    release = to_release_state_dict(model)
    assert checkpoint_filter_fn(release, model).keys() == model.state_dict().keys()
    assert checkpoint_filter_fn(model.state_dict(), model).keys() == model.state_dict().keys()


def test_the_spectral_projection_stays_on_top_in_layer_decay() -> None:
    from timm.optim import param_groups_layer_decay

    model = _tiny(0)
    scales = {n: g['lr_scale'] for g in param_groups_layer_decay(model, layer_decay=0.5)
              for n, p in model.named_parameters() if any(p is q for q in g['params'])}
    # as in the release (its spectrum_projection is outside the stem): scale 1.0 like the head, not 0.5**3
    assert scales[MODEL_W0] == 1.0 and scales['cls_token'] == 0.5**3
