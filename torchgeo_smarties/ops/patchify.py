"""Patch layout: (B, C, H, W) images as rows of S×S band patches (row-major patches, row-major pixels)."""

from torch import Tensor

__all__ = ('patchify', 'patchify_bands')


def patchify(x: Tensor, patch_size: int) -> Tensor:
    """(B, C, H, W) → (B·h·w, C·S·S): one row per patch, bands in channel order, pixels row-major per band."""
    b, c, h, w = x.shape
    s = patch_size
    x = x.reshape(b, c, h // s, s, w // s, s).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b * (h // s) * (w // s), c * s * s)


def patchify_bands(x: Tensor, patch_size: int) -> Tensor:
    """(B, C, H, W) → (B, h·w, C, S·S): tokens row-major, pixels row-major within each band patch."""
    b, c, h, w = x.shape
    s = patch_size
    x = x.reshape(b, c, h // s, s, w // s, s).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // s) * (w // s), c, s * s)
