"""Property tests of the planner + tokenizer (hypothesis): permutation, fused == per-band loop, all-valid mask."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torchgeo_smarties.models.tokenizer import SpectrumAwareProjection
from torchgeo_smarties.spectrum import ProjectionPlan, plan_bands

#: Bands the planner resolves in different ways: learned ranges, interpolated (Landsat), ignored (S2 B10), SAR.
POOL = (
    *plan_bands('sentinel2_l1c').bands,
    *plan_bands('sentinel1').bands,
    'landsat8:B1', 'landsat8:B2', 'landsat8:B5', 'landsat8:B7', 'maxar:red',
)
S, D = 4, 8  # tiny patch and width: the algebra does not depend on the size
SETTINGS = settings(max_examples=15, deadline=None, derandomize=True)


def _projection(dtype: torch.dtype = torch.float32) -> SpectrumAwareProjection:
    torch.manual_seed(0)
    proj = SpectrumAwareProjection(patch_size=S, embed_dim=D).to(dtype)
    with torch.no_grad():  # non-zero biases so that the bias part of the algebra is exercised too
        for m in proj.spectrum_embeds:
            m.proj.bias.normal_()  # type: ignore[union-attr]
    return proj.eval()


def _reference(proj: SpectrumAwareProjection, x: torch.Tensor, plan: ProjectionPlan) -> torch.Tensor:
    """The release's loop: 12 · mean over the active bands of Linear_k(c)(patch_c), mixed ranges weighted by A."""
    b, c, h, w = x.shape
    patches = x.reshape(b, c, h // S, S, w // S, S).permute(0, 2, 4, 1, 3, 5).reshape(b, h // S, w // S, c, S * S)
    out = torch.zeros(b, h // S, w // S, D, dtype=x.dtype)
    for ch, row in enumerate(plan.matrix()):
        for k, a in enumerate(row):
            if a:
                out += a * proj.spectrum_embeds[k].proj(patches[..., ch, :])  # type: ignore[operator]
    return proj.scaler * out / plan.num_active


bands_st = st.lists(st.sampled_from(POOL), min_size=1, max_size=6, unique=True).filter(
    lambda bs: bs != ['sentinel2:B10']  # a plan needs one projected band (the planner refuses this one)
)


@SETTINGS
@given(bands=bands_st, data=st.data())
def test_permuting_channels_with_the_plan_leaves_tokens_unchanged(bands: list[str], data: st.DataObject) -> None:
    perm = data.draw(st.permutations(range(len(bands))))
    proj = _projection()
    x = torch.randn(2, len(bands), 2 * S, 3 * S, generator=torch.Generator().manual_seed(len(bands)))
    with torch.no_grad():
        ref = proj(x, plan_bands(bands))
        out = proj(x[:, list(perm)], plan_bands([bands[i] for i in perm]))
    # float32 sums over C·S·S ≤ 96 products in another order: a few ulps of O(1) values
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


@SETTINGS
@given(bands=bands_st, grad=st.booleans())
def test_fused_projection_equals_the_per_band_loop_in_float64(bands: list[str], grad: bool) -> None:
    proj = _projection(torch.float64)
    plan = plan_bands(bands)
    x = torch.randn(2, len(bands), 2 * S, 2 * S, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.set_grad_enabled(grad):  # grad: weight rebuilt each call; no grad: cached fused weight
        out = proj(x, plan)
    with torch.no_grad():
        ref = _reference(proj, x, plan)
    # float64 associativity only (~1e-15 relative); 1e-10 is far below any real error (weights are O(0.1))
    torch.testing.assert_close(out.detach(), ref, rtol=1e-10, atol=1e-10)


@SETTINGS
@given(bands=bands_st, form=st.sampled_from(['band', 'patch', 'pixel']))
def test_all_valid_mask_matches_unmasked(bands: list[str], form: str) -> None:
    proj = _projection()
    plan = plan_bands(bands)
    b, c, h, w = 2, len(bands), 2 * S, 2 * S
    x = torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(2))
    shape = {'band': (b, c), 'patch': (b, c, h // S, w // S), 'pixel': (b, c, h, w)}[form]
    with torch.no_grad():
        torch.testing.assert_close(proj(x, plan, torch.ones(shape, dtype=torch.bool)), proj(x, plan),
                                   rtol=1e-6, atol=1e-6)  # same path (see tokenizer): float32 ulps at most


@pytest.mark.parametrize('grad', [False, True])
def test_masked_path_equals_the_per_band_loop_over_valid_bands_in_float64(grad: bool) -> None:
    """The masked path (a real mask) against the loop over each patch's valid bands, float64."""
    bands = ['sentinel2:B02', 'landsat8:B2', 'sentinel2:B10', 'sentinel1:VV']
    proj = _projection(torch.float64)
    plan = plan_bands(bands)
    x = torch.randn(2, 4, 2 * S, 2 * S, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    mask = torch.ones(2, 4, 2, 2, dtype=torch.bool)
    mask[0, 0, 0, 0] = mask[1, 1, 1, 0] = mask[1, 3, 1, 0] = False
    mask[0, :, 1, 1] = False  # no valid band: a zero token
    with torch.set_grad_enabled(grad):
        out = proj(x, plan, mask).detach()
    for i in range(2):
        for r in range(2):
            for col in range(2):
                keep = [ch for ch in range(4) if mask[i, ch, r, col] and plan.active[ch]]
                if not keep:
                    assert float(out[i, r, col].abs().max()) == 0.0
                    continue
                sub = plan_bands([bands[ch] for ch in keep])
                patch = x[i : i + 1, keep, r * S : (r + 1) * S, col * S : (col + 1) * S]
                torch.testing.assert_close(out[i, r, col], _reference(proj, patch, sub)[0, 0, 0],
                                           rtol=1e-10, atol=1e-10)


#: A 40-band plan (repeated and interpolated bands): more channels than learned ranges, so the tokenizer mixes first.
MANY = [POOL[i % len(POOL)] for i in range(40)]


def test_mix_first_is_chosen_by_the_operation_count() -> None:
    proj = _projection()  # D = 8 < K: mixing first never pays
    assert not proj.mixes_first(plan_bands(MANY))
    wide = SpectrumAwareProjection(patch_size=S, embed_dim=64)
    assert wide.mixes_first(plan_bands(MANY)) and not wide.mixes_first(plan_bands('sentinel2_l1c'))
    vitb = SpectrumAwareProjection(embed_dim=768)  # K = 17: from 18 bands on
    assert [vitb.mixes_first(plan_bands(MANY[:c])) for c in (17, 18)] == [False, True]


@pytest.mark.parametrize('grad', [False, True])
@pytest.mark.parametrize('masked', [False, True])
def test_mix_first_equals_the_fused_projection_in_float64(grad: bool, masked: bool) -> None:
    torch.manual_seed(0)
    proj = SpectrumAwareProjection(patch_size=S, embed_dim=64).double().eval()
    with torch.no_grad():
        for m in proj.spectrum_embeds:
            m.proj.bias.normal_()  # type: ignore[union-attr]
    plan = plan_bands(MANY)
    assert proj.mixes_first(plan)
    x = torch.randn(2, len(MANY), 2 * S, 3 * S, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    mask = None
    if masked:
        mask = torch.rand(2, len(MANY), 2, 3, generator=torch.Generator().manual_seed(5)) > 0.3
        mask[0, :, 1, 2] = False  # a patch without any valid band
    with torch.set_grad_enabled(grad):
        out = proj(x, plan, mask).detach()
    # the fused form of the same plan (per-channel weights), the masked reference per patch as in _masked
    weight, bias = proj.fused(plan, x.device, x.dtype)
    rows = x.reshape(2, len(MANY), 2, S, 3, S).permute(0, 2, 4, 1, 3, 5).reshape(12, -1)
    if mask is None:
        ref = (rows @ weight + bias).reshape(out.shape)
    else:
        v = (mask & torch.tensor(plan.active)[None, :, None, None]).permute(0, 2, 3, 1).reshape(12, -1).double()
        scale = proj.scaler / v.sum(1, keepdim=True).clamp_min(1.0)
        w_c = weight * plan.num_active / proj.scaler
        biases = torch.stack([m.proj.bias for m in proj.spectrum_embeds])  # type: ignore[misc]
        b_c = torch.tensor(plan.matrix(), dtype=torch.float64) @ biases
        ref = ((rows * v.repeat_interleave(S * S, 1)) @ w_c * scale + (v * scale) @ b_c.detach()).reshape(out.shape)
    # float64: different summation order only (~1e-14); 1e-9 is far below any real difference (values O(1))
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-9)
