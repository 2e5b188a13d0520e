"""Behaviour of the SMARTIES encoder: API, band handling, masks, caching, errors."""

import itertools

import pytest
import timm
import torch

from torchgeo_smarties.errors import BandCountError, ImageSizeError, InputError, UnknownBandError
from torchgeo_smarties.models import SMARTIESViT, smarties_vitb, smarties_vitl, to_release_state_dict
from torchgeo_smarties.ops import mix_tokens, random_assignment, stack_pair

TINY = {'embed_dim': 64, 'depth': 2, 'num_heads': 4, 'img_size': 64}


@pytest.fixture
def model() -> SMARTIESViT:
    torch.manual_seed(0)
    return SMARTIESViT(bands='sentinel2_l2a', **TINY).eval()


def x12(b: int = 2, size: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, 12, size, size, generator=torch.Generator().manual_seed(seed))


def test_shapes_and_release_semantics(model: SMARTIESViT) -> None:
    x = x12()
    with torch.no_grad():
        pooled = model(x)
        feats = model.forward_features(x)
        dense = model.forward_dense(x)
        inter = model.forward_intermediates(x, indices=[0, 1], intermediates_only=True)
    assert pooled.shape == (2, 64) and feats.shape == (2, 17, 64) and dense.shape == (2, 64, 4, 4)
    # pooled = CLS after the final norm; dense = last block WITHOUT the final norm
    torch.testing.assert_close(pooled, feats[:, 0])
    torch.testing.assert_close(inter[1], dense)
    normed = model.norm(dense.flatten(2).transpose(1, 2))
    torch.testing.assert_close(normed, feats[:, 1:], atol=1e-5, rtol=1e-5)


def test_bands_keyword_on_every_method_and_timm_internal_calls(model: SMARTIESViT) -> None:
    x = torch.randn(2, 2, 32, 48)
    with torch.no_grad():
        a = model(x, bands='sentinel1')
        b = model.forward_head(model.forward_features(x, bands=['sentinel1:VV', 'sentinel1:VH']))
        c = model.forward_intermediates(x, bands='s1', indices=1, intermediates_only=True)[0]
    torch.testing.assert_close(a, b)
    assert c.shape == (2, 64, 2, 3)  # non-square works
    # the default band set is restored afterwards
    assert model.bands[0] == 'sentinel2:B01'
    with pytest.raises(BandCountError, match='bands='):
        model(x)


def test_default_bands_follow_in_chans() -> None:
    assert SMARTIESViT(in_chans=13, **TINY).bands[10] == 'sentinel2:B10'
    assert SMARTIESViT(in_chans=2, **TINY).bands == ('sentinel1:VV', 'sentinel1:VH')
    assert SMARTIESViT(in_chans=3, **TINY).bands == ('maxar:red', 'maxar:green', 'maxar:blue')
    with pytest.raises(BandCountError, match='pass bands='):
        SMARTIESViT(in_chans=5, **TINY)
    with pytest.raises(BandCountError, match='in_chans=3 but the band set has 12'):
        SMARTIESViT(in_chans=3, bands='sentinel2_l2a', **TINY)


@pytest.mark.parametrize('seed', range(3))
def test_band_permutation_invariance(model: SMARTIESViT, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(12, generator=g)
    x = x12(seed=seed)
    bands = list(model.bands)
    with torch.no_grad():
        ref = model(x)
        out = model(x[:, perm], bands=[bands[i] for i in perm])
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize('k', [2, 3, 4])
def test_duplicate_band_invariance(model: SMARTIESViT, k: int) -> None:
    """Tiling the bands k times (as the release does to reach 12 channels) changes nothing."""
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x, bands='maxar_rgb')
        out = model(x.repeat(1, k, 1, 1), bands=['maxar:red', 'maxar:green', 'maxar:blue'] * k)
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-5)


def test_l1c_b10_is_ignored(model: SMARTIESViT) -> None:
    x = x12()
    x13 = torch.cat([x[:, :10], torch.randn(2, 1, 64, 64) * 100, x[:, 10:]], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model(x13, bands='sentinel2_l1c'), model(x), atol=2e-5, rtol=1e-5)


def test_band_mask_equals_dropping_bands(model: SMARTIESViT) -> None:
    x = x12()
    keep = [0, 3, 7]
    mask = torch.zeros(2, 12, dtype=torch.bool)
    mask[:, keep] = True
    x_nan = x.clone()
    x_nan[:, 5] = float('nan')  # invalid data may be NaN
    with torch.no_grad():
        masked = model(x_nan, band_mask=mask)
        dropped = model(x[:, keep], bands=[model.bands[i] for i in keep])
        full = model(x, band_mask=torch.ones(2, 12, dtype=torch.bool))
    torch.testing.assert_close(masked, dropped, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(full, model(x), atol=2e-5, rtol=1e-5)


def test_pixel_mask_and_empty_patch(model: SMARTIESViT) -> None:
    x = x12()
    mask = torch.ones(2, 12, 64, 64, dtype=torch.bool)
    mask[0, :, :16, :16] = False  # patch (0, 0) of sample 0 has no valid band
    mask[1, 4, 20, 20] = False  # one pixel invalid: band 4 drops out of patch (1, 1) of sample 1
    x[0, :, :16, :16] = float('nan')
    with torch.no_grad():
        tok = model.patch_tokens(x, band_mask=mask)
        ref = model.patch_tokens(torch.nan_to_num(x))
        keep = [i for i in range(12) if i != 4]
        sub = model.patch_tokens(x[1:, keep], bands=[model.bands[i] for i in keep])
    assert torch.all(tok[0, 0, 0] == 0)
    torch.testing.assert_close(tok[0, 1:], ref[0, 1:], atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(tok[1, 1, 1], sub[0, 1, 1], atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(tok[1, 0, 0], ref[1, 0, 0], atol=2e-5, rtol=1e-5)


def test_mixing_images_is_mixing_tokens(model: SMARTIESViT) -> None:
    a, b = x12(), torch.randn(2, 2, 64, 64)
    assign = random_assignment(2, (4, 4), 0.5, generator=torch.Generator().manual_seed(1))
    x, mask = stack_pair(a, b, assign)
    bands = list(model.bands) + ['sentinel1:VV', 'sentinel1:VH']
    with torch.no_grad():
        mixed = model.patch_tokens(x, bands=bands, band_mask=mask)
        ref = mix_tokens(model.patch_tokens(a), model.patch_tokens(b, bands='sentinel1'), assign)
    assert (mixed - ref).abs().max() <= 1e-5


def test_fused_cache_follows_weight_updates(model: SMARTIESViT) -> None:
    x = x12()
    with torch.no_grad():
        before = model(x)
        # (a perturbation constant across channels would be removed by LayerNorm: use a random one)
        g = torch.Generator().manual_seed(0)
        model.patch_embed.spectrum_embeds[1].proj.weight.add_(0.1 * torch.randn(64, 256, generator=g))  # B02
        after = model(x)
        model.patch_embed.spectrum_embeds[15].proj.weight.add_(torch.randn(64, 256, generator=g))  # VV, unused
        unchanged = model(x)
    assert (after - before).abs().max() > 1e-3
    torch.testing.assert_close(unchanged, after)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state['patch_embed.spectrum_embeds.1.proj.bias'] += torch.randn(64, generator=g)
    model.load_state_dict(state)
    with torch.no_grad():
        assert (model(x) - after).abs().max() > 1e-3


def test_gradients_reach_the_ranges_of_the_plan(model: SMARTIESViT) -> None:
    model.train()
    out = model(torch.randn(2, 3, 32, 32), bands=['sentinel2:B04', 'sentinel2:B08', 'landsat8:B2'])
    (out * torch.randn_like(out)).sum().backward()
    grads = [e.proj.weight.grad for e in model.patch_embed.spectrum_embeds]
    used = {6, 9} | set(model.plan_for(['landsat8:B2']).entries[0].indices)
    for k, g in enumerate(grads):
        assert g is not None
        assert bool(g.abs().sum() > 0) == (k in used), k


def test_training_step_updates_and_inference_sees_it(model: SMARTIESViT) -> None:
    x = x12()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with torch.no_grad():
        before = model(x)
    model.train()
    model(x).pow(2).mean().backward()
    opt.step()
    model.eval()
    with torch.no_grad():
        assert (model(x) - before).abs().max() > 1e-4


@pytest.mark.parametrize(
    ('x', 'error', 'match'),
    [
        (torch.randn(12, 64, 64), InputError, 'batch dimension'),
        (torch.ones(1, 12, 64, 64, dtype=torch.int64), InputError, 'floating-point'),
        (torch.full((1, 12, 64, 64), float('nan')), InputError, 'band_mask'),
        (torch.randn(1, 12, 60, 64), ImageSizeError, 'multiple of the patch size'),
        (torch.randn(1, 5, 64, 64), BandCountError, '5 channels'),
    ],
)
def test_input_errors(model: SMARTIESViT, x: torch.Tensor, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        model(x)


def test_unknown_band_and_bad_mask(model: SMARTIESViT) -> None:
    with pytest.raises(UnknownBandError):
        model(torch.randn(1, 1, 32, 32), bands=['sentinel2:B13'])
    with pytest.raises(InputError, match='band_mask'):
        model(x12(), band_mask=torch.ones(2, 11, dtype=torch.bool))


def test_builders_and_timm_entrypoints() -> None:
    b = smarties_vitb(embed_dim=64, depth=2, num_heads=4)
    assert b.bands[-1] == 'sentinel2:B12' and b.num_classes == 0 and b.dynamic_img_size
    with torch.device('meta'):
        vitb, vitl = smarties_vitb(), smarties_vitl()
    # release: 88.563 M / 306.988 M encoder tensors (no head), counting the fixed pos-embed (a buffer here)
    full_b = sum(p.numel() for p in vitb.parameters()) + vitb.pos_embed.numel()
    assert abs(full_b / 1e6 - 88.563) < 0.01
    full_l = sum(p.numel() for p in vitl.parameters()) + vitl.pos_embed.numel()
    assert abs(full_l / 1e6 - 306.988) < 0.01
    assert 'pos_embed' not in dict(vitb.named_parameters()) and 'pos_embed' in vitb.state_dict()
    m = timm.create_model('smarties_vit_base_patch16.sentinel1', embed_dim=64, depth=2, num_heads=4, num_classes=3)
    assert m.bands == ('sentinel1:VV', 'sentinel1:VH')
    assert m(torch.randn(1, 2, 32, 32)).shape == (1, 3)
    m = timm.create_model('smarties_vit_base_patch16', in_chans=3, embed_dim=64, depth=2, num_heads=4)
    assert m.bands == ('maxar:red', 'maxar:green', 'maxar:blue')
    with pytest.raises(BandCountError):
        timm.create_model('smarties_vit_base_patch16.sentinel1', in_chans=12, embed_dim=64, depth=2, num_heads=4)


def test_state_dict_keys_match_the_release_manifest() -> None:
    import json
    from pathlib import Path

    data = Path(__file__).parents[1] / 'data'
    for builder, manifest in ((smarties_vitb, 'manifest_vitb.json'), (smarties_vitl, 'manifest_vitl.json')):
        expected = json.loads((data / manifest).read_text())
        with torch.device('meta'):
            sd = to_release_state_dict(builder())
        assert {k: list(v.shape) for k, v in sd.items()} == expected


def test_interpolation_policy_changes_unseen_bands_only() -> None:
    torch.manual_seed(0)
    lin = SMARTIESViT(bands='landsat8_sr', **TINY).eval()
    off = SMARTIESViT(bands='landsat8_sr', interpolation='nearest', **TINY).eval()
    off.load_state_dict(lin.state_dict())
    x = torch.randn(1, 7, 32, 32)
    with torch.no_grad():
        assert (lin(x) - off(x)).abs().max() > 1e-3
        s2 = torch.randn(1, 12, 32, 32)
        torch.testing.assert_close(lin(s2, bands='sentinel2_l2a'), off(s2, bands='sentinel2_l2a'))


@pytest.mark.parametrize('bands', list(itertools.islice(['sentinel2_rgb', 'hls_l30', 'superdove', 'worldview3'], 4)))
def test_other_sensors_run(model: SMARTIESViT, bands: str) -> None:
    n = len(model.plan_for(bands).bands)
    with torch.no_grad():
        out = model(torch.randn(1, n, 32, 32), bands=bands)
    assert torch.isfinite(out).all()


def test_concurrent_calls_with_different_band_sets_get_the_reference_outputs(model: SMARTIESViT) -> None:
    """One instance, two threads, two band sets (and a mask): no per-call state on the model."""
    import threading

    jobs = {
        'l2a': (x12(2, 32, 1), 'sentinel2_l2a', None),
        's1': (torch.randn(2, 2, 32, 32, generator=torch.Generator().manual_seed(2)), 'sentinel1',
               torch.tensor([[True, False], [True, True]])),
    }
    with torch.no_grad():
        ref = {k: model(x, bands=b, band_mask=m) for k, (x, b, m) in jobs.items()}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run(key: str) -> None:
        x, bands, mask = jobs[key]
        try:
            barrier.wait()
            with torch.no_grad():
                for _ in range(10):
                    # same path and weights as the reference, in another thread: the same numbers
                    torch.testing.assert_close(model(x, bands=bands, band_mask=mask), ref[key], rtol=0, atol=0)
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(k,)) for k in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_pos_embed_is_a_buffer_and_patch_embed_holds_no_call_state(model: SMARTIESViT) -> None:
    assert 'pos_embed' in dict(model.named_buffers()) and 'pos_embed' not in dict(model.named_parameters())
    # patch_embed holds the 17 learned ranges (weight + bias each) and nothing per call
    assert len(list(model.patch_embed.parameters())) == 2 * 17
    assert not hasattr(model.patch_embed, 'plan') and not hasattr(model.patch_embed, 'band_mask')
    # torchgeo's input-layer lookup (first children) lands on the first learned range, a state-dict key
    from torchgeo.tasks.utils import _get_input_layer_name_and_module

    name, layer = _get_input_layer_name_and_module(model)
    assert name == 'patch_embed.spectrum_embeds.0.proj' and f'{name}.weight' in model.state_dict()
    assert layer.in_channels == 256  # type: ignore[union-attr]
