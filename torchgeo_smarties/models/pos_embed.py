"""Fixed 2-D sin-cos position embeddings and their resampling, as in the release.

The layout is MAE's ``get_2d_sincos_pos_embed``: the first D/2 channels encode the
grid *column*, the last D/2 the *row*; each half is ``[sin(pos·ω) | cos(pos·ω)]``
with ``ω_i = 10000^(−i/(D/4))``; the CLS row is zero. (timm's
``build_sincos2d_pos_embed`` orders its blocks differently, so it is not used.)

Resampling to another grid follows the release's fine-tuning path
(``interpolate_pos_embed``): bicubic, ``align_corners=False``, *no* antialiasing, CLS kept —
which is timm's :func:`~timm.layers.resample_abs_pos_embed` with ``antialias=False`` (max
difference 0.0 against the release's formula; timm's default ``antialias=True`` would change the
numbers when shrinking). Interpolation runs in float32, as in both.
"""

import torch
from timm.layers import resample_abs_pos_embed
from torch import Tensor

__all__ = ('get_2d_sincos_pos_embed', 'resample_pos_embed')


def _sincos_1d(dim: int, pos: Tensor) -> Tensor:
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / 10000**omega
    out = pos.reshape(-1).to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)


def get_2d_sincos_pos_embed(embed_dim: int, grid_size: tuple[int, int], cls_token: bool = True) -> Tensor:
    """Build the release's fixed position embedding.

    Args:
        embed_dim: token width D, divisible by 4.
        grid_size: (rows, cols) of the token grid.
        cls_token: prepend an all-zero row for the CLS token.

    Returns:
        A float32 tensor of shape (1, [1 +] rows·cols, D).

    Raises:
        ValueError: if *embed_dim* is not divisible by 4.
    """
    if embed_dim % 4:
        raise ValueError(f'embed_dim must be divisible by 4 for the 2-D sin-cos embedding, got {embed_dim}')
    rows, cols = grid_size
    gy, gx = torch.meshgrid(
        torch.arange(rows, dtype=torch.float64), torch.arange(cols, dtype=torch.float64), indexing='ij'
    )
    emb = torch.cat([_sincos_1d(embed_dim // 2, gx), _sincos_1d(embed_dim // 2, gy)], dim=1)
    if cls_token:
        emb = torch.cat([torch.zeros(1, embed_dim, dtype=torch.float64), emb], dim=0)
    return emb.to(torch.float32)[None]


def resample_pos_embed(
    pos_embed: Tensor, new_size: tuple[int, int], old_size: tuple[int, int], num_prefix_tokens: int = 1
) -> Tensor:
    """Resample a (1, P + h·w, D) position embedding to another grid, the release's way.

    timm's ``resample_abs_pos_embed(..., antialias=False)``: bicubic, ``align_corners=False``, no
    antialiasing; prefix (CLS) rows are kept. Returns *pos_embed* unchanged when the grid is the same.
    """
    out: Tensor = resample_abs_pos_embed(
        pos_embed, new_size=[int(new_size[0]), int(new_size[1])], old_size=[int(old_size[0]), int(old_size[1])],
        num_prefix_tokens=num_prefix_tokens, antialias=False,
    )
    return out
