"""Nodata (band_mask_a / band_mask_b) support of the SMARTIES MAE (torchgeo_smarties.models.mae)."""

from typing import Any

import pytest
import torch

from torchgeo_smarties.errors import InputError
from torchgeo_smarties.models.mae import SMARTIESMAE, random_token_mask
from torchgeo_smarties.ops import random_assignment
from torchgeo_smarties.tasks.pretraining import SMARTIESPretraining

TINY = dict(embed_dim=32, depth=2, num_heads=2, img_size=64, decoder_embed_dim=32, decoder_depth=1,
            decoder_num_heads=2)


def tiny(**kw: Any) -> SMARTIESMAE:
    torch.manual_seed(0)
    return SMARTIESMAE(bands='sentinel2_10m', **{**TINY, **kw}).eval()


def masks(b: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return random_token_mask(b, 16, 0.75, generator=g), random_assignment(b, (4, 4), 0.5, generator=g)


def data(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 4, 64, 64, generator=g), torch.randn(2, 6, 64, 64, generator=g)


def masked_token(tm: torch.Tensor, sample: int = 0) -> tuple[int, int]:
    """(row, col) of the first masked token of *sample*."""
    k = int(tm[sample].nonzero()[0])
    return divmod(k, 4)


@pytest.mark.parametrize('norm_pix_loss', [True, False])
def test_all_true_mask_takes_the_unmasked_path(norm_pix_loss: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny(norm_pix_loss=norm_pix_loss)
    xa, xb = data()
    tm, asg = masks()
    ref = model(xa, 'sentinel2_10m', xb, 'sentinel2_20m', token_mask=tm, assign=asg)
    # an all-valid mask must not reach the masked tokenizer at all (it would round differently on some CPUs)
    calls: list[int] = []
    proj = type(model.encoder.spectrum_projection)
    original = proj._masked
    monkeypatch.setattr(proj, '_masked', lambda self, *a: calls.append(1) or original(self, *a))
    for ma, mb in [
        (torch.ones(2, 4, dtype=torch.bool), torch.ones(2, 6, dtype=torch.bool)),
        (torch.ones(2, 4, 4, 4, dtype=torch.bool), None),
        (torch.ones(2, 4, 64, 64, dtype=torch.bool), torch.ones(2, 6, 64, 64, dtype=torch.bool)),
    ]:
        out = model(xa, 'sentinel2_10m', xb, 'sentinel2_20m', token_mask=tm, assign=asg, band_mask_a=ma,
                    band_mask_b=mb)
        # same path, so the numbers agree; the tolerance (float32, a few ulps of a loss of O(1)) only keeps the
        # test honest should the paths ever differ by a reduction order, while a wrong mask moves the loss by >1e-3
        torch.testing.assert_close(out.loss, ref.loss, rtol=1e-6, atol=1e-6)
        for u, v in zip(out.view_losses, ref.view_losses):
            torch.testing.assert_close(u, v, rtol=1e-6, atol=1e-6)
    single = model(xa, 'sentinel2_10m', token_mask=tm)
    torch.testing.assert_close(
        model(xa, 'sentinel2_10m', token_mask=tm, band_mask_a=torch.ones(2, 4, dtype=torch.bool)).loss, single.loss,
        rtol=1e-6, atol=1e-6,
    )
    assert calls == []
    # a mask with one invalid (band, patch) does take the masked path
    mask = torch.ones(2, 4, 4, 4, dtype=torch.bool)
    mask[0, 1, 0, 0] = False
    model(xa, 'sentinel2_10m', token_mask=tm, band_mask_a=mask)
    assert calls


@pytest.mark.parametrize('norm_pix_loss', [True, False])
def test_nan_under_invalid_mask_does_not_reach_the_loss(norm_pix_loss: bool) -> None:
    model = tiny(norm_pix_loss=norm_pix_loss)
    xa, xb = data()
    tm, asg = masks()
    r, c = masked_token(tm)
    ys, xs = slice(16 * r, 16 * r + 16), slice(16 * c, 16 * c + 16)
    mask = torch.ones(2, 4, 64, 64, dtype=torch.bool)
    mask[0, 2, ys, xs] = False
    nan = xa.clone()
    nan[0, 2, ys.start + 3:ys.start + 9, xs] = float('nan')  # some pixels NaN; the whole (band, patch) is invalid
    other = xa.clone()
    other[0, 2, ys, xs] = 1.0e3 * torch.randn(16, 16, generator=torch.Generator().manual_seed(7))
    kw: dict[str, Any] = dict(token_mask=tm, assign=asg)
    o_nan = model(nan, 'sentinel2_10m', xb, 'sentinel2_20m', band_mask_a=mask, **kw)
    o_other = model(other, 'sentinel2_10m', xb, 'sentinel2_20m', band_mask_a=mask, **kw)
    o_clean = model(xa, 'sentinel2_10m', xb, 'sentinel2_20m', band_mask_a=mask, **kw)
    ref = model(xa, 'sentinel2_10m', xb, 'sentinel2_20m', **kw)
    assert torch.isfinite(o_nan.loss)
    assert torch.equal(o_nan.loss, o_other.loss) and torch.equal(o_nan.loss, o_clean.loss)
    assert not torch.equal(o_nan.loss, ref.loss)  # the mask does change something
    # gradients are finite too
    o_nan.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)

    # the masked token's error is the MSE over its 3 remaining valid bands × 256 pixels: check it by hand
    out = model(xa, 'sentinel2_10m', token_mask=tm, band_mask_a=mask, return_preds=True)
    n = 4 * r + c
    pred = out.preds[0]['a'][0, n]  # (4, 256)
    tgt = model.targets(xa, model.encoder.plan_for('sentinel2_10m'))[0, n]  # unmasked targets of that token
    keep = [0, 1, 3]
    t = tgt[keep]
    if norm_pix_loss:  # statistics over the valid bands × pixels only
        raw = xa[0, keep, ys, xs].reshape(3, 256)
        t = (raw - raw.mean()) / (raw.var() + 1.0e-6) ** 0.5
    expected = (pred[keep] - t).pow(2).mean()
    torch.testing.assert_close(out.token_losses[0][0, n], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('form', ['patch', 'pixel'])
def test_fully_invalid_patch_contributes_nothing(form: str) -> None:
    model = tiny()
    xa, xb = data()
    tm, asg = masks()
    r, c = masked_token(tm)
    ys, xs = slice(16 * r, 16 * r + 16), slice(16 * c, 16 * c + 16)
    if form == 'patch':
        mask = torch.ones(2, 4, 4, 4, dtype=torch.bool)
        mask[0, :, r, c] = False
    else:
        mask = torch.ones(2, 4, 64, 64, dtype=torch.bool)
        mask[0, :, ys, xs] = False
    kw: dict[str, Any] = dict(token_mask=tm, band_mask_a=mask)
    changed = xa.clone()
    changed[0, :, ys, xs] = torch.randn(4, 16, 16, generator=torch.Generator().manual_seed(3)) * 50.0
    nan = xa.clone()
    nan[0, :, ys, xs] = float('nan')
    o1 = model(xa, 'sentinel2_10m', **kw)
    o2 = model(changed, 'sentinel2_10m', **kw)
    o3 = model(nan, 'sentinel2_10m', **kw)
    assert torch.equal(o1.loss, o2.loss) and torch.equal(o1.loss, o3.loss)
    n = 4 * r + c
    assert float(o1.token_losses[0][0, n].detach()) == 0.0
    # the loss is the mean over the other masked tokens (the invalid one is not in the denominator)
    others = tm.clone()
    others[0, n] = False
    expected = o1.token_losses[0][others].sum() / others.sum()
    torch.testing.assert_close(o1.loss, expected)
    # the pair path as well (the invalid patch counts wherever view a' or b' shows sensor a there)
    p1 = model(xa, 'sentinel2_10m', xb, 'sentinel2_20m', token_mask=tm, assign=asg, band_mask_a=mask)
    p2 = model(nan, 'sentinel2_10m', xb, 'sentinel2_20m', token_mask=tm, assign=asg, band_mask_a=mask)
    assert torch.isfinite(p2.loss) and torch.equal(p1.loss, p2.loss)


def test_mask_b_without_x_b_and_bad_shape_raise() -> None:
    model = tiny()
    xa, _ = data()
    with pytest.raises(InputError, match='band_mask_b'):
        model(xa, 'sentinel2_10m', band_mask_b=torch.ones(2, 6, dtype=torch.bool))
    with pytest.raises(InputError, match='band_mask'):
        model(xa, 'sentinel2_10m', band_mask_a=torch.ones(2, 3, dtype=torch.bool))


def test_task_passes_batch_masks_through() -> None:
    task = SMARTIESPretraining(bands_a='sentinel2_10m', bands_b='sentinel2_20m', lr=1e-3, **TINY)
    task.model.eval()
    xa, xb = data()
    mask = torch.ones(2, 6, 64, 64, dtype=torch.bool)
    mask[:, 1, :16, :16] = False
    xb_nan = xb.clone()
    xb_nan[:, 1, :16, :16] = float('nan')
    batch = {'image_a': xa, 'image_b': xb_nan, 'index': torch.tensor([0, 1]), 'mask_b': mask}
    out = task._shared_step(batch, 0)
    assert torch.isfinite(out.loss)
    ref = task._shared_step({**batch, 'image_b': xb}, 0)
    assert torch.equal(out.loss, ref.loss)
    plain = task._shared_step({'image_a': xa, 'image_b': xb, 'index': torch.tensor([0, 1])}, 0)
    assert not torch.equal(out.loss, plain.loss)
