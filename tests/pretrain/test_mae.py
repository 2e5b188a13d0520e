"""Tests of the SMARTIES MAE pretraining model (torchgeo_smarties.models.mae)."""

import json
from pathlib import Path

import pytest
import torch

from torchgeo_smarties.errors import ImageSizeError, InputError, SmartiesError
from torchgeo_smarties.models.checkpoint import load_encoder_weights, to_release_state_dict
from torchgeo_smarties.models.mae import SMARTIESMAE, masked_reconstruction_errors, patchify_bands, random_token_mask
from torchgeo_smarties.models.vit import SMARTIESViT
from torchgeo_smarties.ops import random_assignment, stack_pair
from torchgeo_smarties.spectrum import plan_bands

DATA = Path(__file__).resolve().parents[1] / 'data'
TINY = dict(embed_dim=32, depth=2, num_heads=2, img_size=64, decoder_embed_dim=32, decoder_depth=1,
            decoder_num_heads=2)


def tiny(**kw: object) -> SMARTIESMAE:
    torch.manual_seed(0)
    return SMARTIESMAE(bands='sentinel2_10m', **{**TINY, **kw})  # type: ignore[arg-type]


def masks(b: int = 2, grid: tuple[int, int] = (4, 4), seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return random_token_mask(b, grid[0] * grid[1], 0.75, generator=g), random_assignment(b, grid, 0.5, generator=g)


def test_state_dict_keys_match_release_manifest_vitb() -> None:
    manifest = json.loads((DATA / 'manifest_mae_vitb.json').read_text())
    model = SMARTIESMAE(bands='sentinel2_l1c')  # ViT-B, decoder 512/8/16
    sd = model.state_dict()
    assert len(manifest) == 318
    assert set(sd) == set(manifest)
    bad = {k: (tuple(sd[k].shape), tuple(v)) for k, v in manifest.items() if tuple(sd[k].shape) != tuple(v)}
    assert bad == {}
    assert not model.decoder_pos_embed.requires_grad and not model.pos_embed.requires_grad
    # encoder parameters are shared with model.encoder (one object, release key names)
    assert model.encoder.blocks is model.blocks
    assert model.encoder.cls_token is model.cls_token


def test_random_masking_matches_release_len_keep() -> None:
    m = random_token_mask(3, 196, 0.75, generator=torch.Generator().manual_seed(1))
    assert m.shape == (3, 196)
    assert (m.sum(1) == 196 - int(196 * 0.25)).all()  # 49 kept
    assert not torch.equal(m[0], m[1])


def test_pair_forward_deterministic_with_explicit_masks() -> None:
    model = tiny()
    xa, xb = torch.randn(2, 4, 64, 64), torch.randn(2, 6, 64, 64)
    tm, asg = masks()
    o1 = model(xa, 'sentinel2_10m', xb, 'sentinel2_20m', token_mask=tm, assign=asg)
    o2 = model(xa, 'sentinel2_10m', xb, 'sentinel2_20m', token_mask=tm, assign=asg)
    assert torch.equal(o1.loss, o2.loss)
    assert torch.allclose(o1.loss, o1.view_losses[0] + o1.view_losses[1])
    assert torch.equal(o1.token_mask, tm) and torch.equal(o1.assign, asg)
    # random masks when absent, reproducible through the generator
    o3 = model(xa, 'sentinel2_10m', xb, 'sentinel2_20m', generator=torch.Generator().manual_seed(5))
    o4 = model(xa, 'sentinel2_10m', xb, 'sentinel2_20m', generator=torch.Generator().manual_seed(5))
    assert torch.equal(o3.loss, o4.loss) and o3.token_mask.sum() == 2 * 12


def test_mixup_modes() -> None:
    xa, xb = torch.randn(2, 4, 64, 64), torch.randn(2, 6, 64, 64)
    tm, asg = masks()
    comp = tiny(mixup='complementary')(xa, 'sentinel2_10m', xb, 'sentinel2_20m', token_mask=tm, assign=asg)
    rel = tiny(mixup='release')(xa, 'sentinel2_10m', xb, 'sentinel2_20m', token_mask=tm, assign=asg)
    none = tiny(mixup='none')(xa, 'sentinel2_10m', xb, 'sentinel2_20m', token_mask=tm, assign=asg)
    # release: view a' as the paper's, view b' = unmixed sensor b; total halved
    assert torch.allclose(rel.view_losses[0], comp.view_losses[0])
    assert torch.allclose(rel.view_losses[1], none.view_losses[1])
    assert torch.allclose(rel.loss, 0.5 * (rel.view_losses[0] + rel.view_losses[1]))
    assert torch.allclose(none.loss, none.view_losses[0] + none.view_losses[1])
    # complementary is symmetric: swapping the sensors and the assignment swaps the views
    swap = tiny(mixup='complementary')
    swap.encoder.set_bands('sentinel2_20m')
    sw = swap(xb, 'sentinel2_20m', xa, 'sentinel2_10m', token_mask=tm, assign=~asg)
    assert torch.allclose(sw.loss, comp.loss, atol=1e-6)
    with pytest.raises(InputError, match='mixup'):
        tiny(mixup='bogus')  # type: ignore[arg-type]


def test_mixed_view_equals_image_space_mixing() -> None:
    model = tiny()
    enc = model.encoder
    xa, xb = torch.randn(2, 4, 64, 64), torch.randn(2, 6, 64, 64)
    _, asg = masks()
    ta, tb = enc.patch_tokens(xa, 'sentinel2_10m'), enc.patch_tokens(xb, 'sentinel2_20m')
    from torchgeo_smarties.ops import mix_tokens

    x, bm = stack_pair(xa, xb, asg)
    stacked = enc.patch_tokens(x, list(plan_bands('sentinel2_10m').bands + plan_bands('sentinel2_20m').bands), bm)
    assert torch.allclose(mix_tokens(ta, tb, asg), stacked, atol=1e-5)


def _constant_bands(plan_name: str, b: int = 2, size: int = 64, ignored_value: float = 1000.0) -> torch.Tensor:
    """Each band = Σ_k A[c, k]·k, i.e. its learned range index (mixed like the band's projection)."""
    plan = plan_bands(plan_name)
    vals = []
    for row, active in zip(plan.matrix(), plan.active, strict=True):
        vals.append(sum(w * k for k, w in enumerate(row)) if active else ignored_value)
    return torch.tensor(vals)[None, :, None, None].expand(b, -1, size, size).contiguous()


def _index_heads(model: SMARTIESMAE) -> None:
    """Head k predicts the constant k (zero weights, bias k): a band is reconstructed as its range index."""
    with torch.no_grad():
        for k, head in enumerate(model.decoder_preds):
            head.weight.zero_()
            head.bias.fill_(float(k))


@pytest.mark.parametrize('mixup', ['complementary', 'release', 'none'])
def test_reconstruction_targets_per_band_no_crossing(mixup: str) -> None:
    model = tiny(mixup=mixup, norm_pix_loss=False)
    _index_heads(model)
    xa = _constant_bands('sentinel2_10m')  # B02 B03 B04 B08: each band = its learned range index
    xb = _constant_bands('landsat8_sr')  # interpolated bands: folded heads
    tm, asg = masks()
    out = model(xa, 'sentinel2_10m', xb, 'landsat8_sr', token_mask=tm, assign=asg, return_preds=True)
    # every masked token of every view is reconstructed exactly from its own sensor's bands
    assert out.loss.item() == pytest.approx(0.0, abs=1e-8)
    for tl in out.token_losses:
        assert tl.abs().max().item() < 1e-8
    # targets are each band's own pixels, in order
    target = model.targets(xa, plan_bands('sentinel2_10m'))
    from torchgeo_smarties.spectrum import resolve_bands

    own = [float(b.learned_index) for b in resolve_bands('sentinel2_10m')]
    assert torch.equal(target[0, 0, :, 0], torch.tensor(own)) and torch.equal(target[1, 5, :, 17], torch.tensor(own))
    # negative control: crossing bands (reversed channel order for the same band list) gives a loss
    bad = model(xa, 'sentinel2_10m', xb.flip(1), 'landsat8_sr', token_mask=tm, assign=asg)
    assert bad.loss.item() > 0.1


def test_single_sensor_targets_ignore_b10() -> None:
    model = SMARTIESMAE(bands='sentinel2_l1c', norm_pix_loss=False, **TINY)  # type: ignore[arg-type]
    _index_heads(model)
    x = _constant_bands('sentinel2_l1c', ignored_value=12345.0)
    tm, _ = masks()
    out = model(x, token_mask=tm, return_preds=True)
    assert out.assign is None and len(out.view_losses) == 1
    assert out.loss.item() == pytest.approx(0.0, abs=1e-8)
    assert out.preds[0]['a'].shape == (2, 16, 12, 256)  # 13 bands, B10 has no target


def test_norm_pix_loss_normalises_all_bands_jointly() -> None:
    model = tiny(norm_pix_loss=True)
    x = torch.rand(2, 4, 64, 64) * torch.tensor([1.0, 5.0, 10.0, 20.0])[None, :, None, None]
    t = model.targets(x, plan_bands('sentinel2_10m'))  # (B, N, C, P)
    flat = t.reshape(2, 16, -1)
    assert torch.allclose(flat.mean(-1), torch.zeros(2, 16), atol=1e-5)
    assert torch.allclose(flat.var(-1), torch.ones(2, 16), atol=1e-3)
    assert not torch.allclose(t.mean(-1), torch.zeros(2, 16, 4), atol=1e-2)  # per band NOT zero-mean


def test_patchify_bands_layout() -> None:
    x = torch.arange(2 * 32 * 32, dtype=torch.float32).reshape(1, 2, 32, 32)
    p = patchify_bands(x, 16)
    assert p.shape == (1, 4, 2, 256)
    assert torch.equal(p[0, 1, 0, :16], x[0, 0, 0, 16:32])  # token 1 = top-right patch, row-major pixels
    assert torch.equal(p[0, 2, 1, 16:32], x[0, 1, 17, 0:16])


def test_errors() -> None:
    model = tiny()
    xa, xb = torch.randn(2, 4, 64, 64), torch.randn(2, 6, 64, 64)
    with pytest.raises(InputError, match='bands_b'):
        model(xa, 'sentinel2_10m', xb)
    with pytest.raises(ImageSizeError, match='same batch and spatial size'):
        model(xa, 'sentinel2_10m', torch.randn(2, 6, 32, 32), 'sentinel2_20m')
    with pytest.raises(InputError, match='token_mask must have shape'):
        model(xa, token_mask=torch.zeros(2, 5, dtype=torch.bool))
    uneven = torch.zeros(2, 16, dtype=torch.bool)
    uneven[0, :3] = True
    with pytest.raises(InputError, match='same number'):
        model(xa, token_mask=uneven)
    tm, _ = masks()
    with pytest.raises(InputError, match='assign must have shape'):
        model(xa, 'sentinel2_10m', xb, 'sentinel2_20m', token_mask=tm, assign=torch.ones(2, 3, 3, dtype=torch.bool))
    with pytest.raises(SmartiesError):
        model(xa, ['sentinel2:B99', 'x', 'y', 'z'])


def test_export_reload_identical_outputs(tmp_path: Path) -> None:
    model = tiny()
    with torch.no_grad():  # make the encoder non-trivial
        for p in model.encoder.parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    path = model.export_encoder(tmp_path / 'enc.safetensors')
    enc = SMARTIESViT(bands='sentinel2_10m', embed_dim=32, depth=2, num_heads=2, img_size=64)
    load_encoder_weights(enc, path)
    x = torch.randn(2, 4, 64, 64)
    model.eval()
    assert torch.equal(enc.eval()(x), model.encoder(x))
    assert torch.equal(enc.forward_features(x, bands='sentinel2_10m'), model.encoder.forward_features(x))
    from safetensors import safe_open

    with safe_open(path, 'pt') as f:
        keys = set(f.keys())
        assert f.metadata()['embed_dim'] == '32'
    # the release layout: the projection under spectrum_projection.*, not the model's patch_embed.*
    assert keys == set(to_release_state_dict(enc)) and not any(k.startswith(('mask_token', 'decoder_')) for k in keys)
    assert 'spectrum_projection.spectrum_embeds.0.proj.weight' in keys


def test_baseline_metric_on_constant_patches() -> None:
    model = tiny(norm_pix_loss=False)
    x = torch.ones(2, 4, 64, 64) * torch.tensor([1.0, 2.0, 3.0, 4.0])[None, :, None, None]
    tm, _ = masks()
    r = masked_reconstruction_errors(model, x, 'sentinel2_10m', token_mask=tm)
    assert r['baseline_mse'] == pytest.approx(0.0, abs=1e-10)  # the mean of the visible patches is exact
    assert r['model_mse'] > 0 and r['num_tokens'] == 24


def test_encoder_is_a_registered_submodule() -> None:
    model = tiny()
    assert dict(model.named_children())['encoder'] is model.encoder
    model.train()
    model.eval()
    assert [name for name, m in model.named_modules() if m.training] == []
    model.train()
    assert model.encoder.training and model.encoder.patch_drop.training and model.encoder.pos_drop.training
    model.half()
    assert model.encoder.cls_token.dtype == torch.float16 and model.encoder.pos_embed.dtype == torch.float16
    model.to(torch.float64)
    assert all(t.dtype == torch.float64 for t in model.encoder.state_dict().values())
    # release flat keys out, flat and nested keys in
    sd = model.state_dict()
    assert 'cls_token' in sd and not any(k.startswith('encoder.') for k in sd)
    other = tiny()
    other.load_state_dict(sd)
    other.load_state_dict({('encoder.' + k if not k.startswith(('mask_token', 'decoder_')) else k): v
                           for k, v in sd.items()})
    assert torch.equal(other.encoder.cls_token, model.encoder.cls_token.float())
