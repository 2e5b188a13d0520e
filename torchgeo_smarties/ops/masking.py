"""Validity masks: reduce a band mask given per band, per patch or per pixel to per-(band, patch) validity."""

from collections.abc import Sequence

import torch
from torch import Tensor

from ..errors import InputError

__all__ = ('patch_validity',)


def patch_validity(band_mask: Tensor, shape: Sequence[int], patch_size: int) -> Tensor:
    """Reduce a validity mask to per-(band, patch) validity (B, C, h, w).

    A band is valid in a patch when all its pixels there are valid.

    Raises:
        InputError: if the mask's shape fits none of (B, C), (B, C, h, w), (B, C, H, W).
    """
    b, c, h, w = shape
    s = patch_size
    gh, gw = h // s, w // s
    m = band_mask
    if m.dtype != torch.bool:
        m = m != 0
    if m.ndim == 2 and tuple(m.shape) == (b, c):
        return m[:, :, None, None].expand(b, c, gh, gw)
    if m.ndim == 4 and tuple(m.shape) == (b, c, gh, gw):
        return m
    if m.ndim == 4 and tuple(m.shape) == (b, c, h, w):
        return m.reshape(b, c, gh, s, gw, s).all(dim=5).all(dim=3)
    raise InputError(
        f'band_mask of shape {tuple(band_mask.shape)} fits neither (B, C)={b, c}, (B, C, h, w)={b, c, gh, gw} '
        f'nor (B, C, H, W)={b, c, h, w}'
    )
