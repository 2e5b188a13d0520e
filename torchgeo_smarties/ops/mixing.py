"""Cross-sensor token mixing primitives (paper Eq. 1–2), shared by transforms, MAE and fusion.

A *pair* is two co-registered images of the same footprint from two sensors,
``a`` (B, Ca, H, W) and ``b`` (B, Cb, H, W), on the same patch grid. An
*assignment* ``M`` (B, h, w) bool says which sensor each 16×16 patch takes:
view a′ takes a's patch where M is True and b's elsewhere; view b′ is the complement.

The encoder consumes a mixed view exactly as the stacked band set ``bands_a + bands_b``
with a per-patch validity mask (a's bands valid where M, b's where not): since a
token is 12 × the mean over the *valid* bands of its patch, this gives exactly
a's token or b's token per patch — mixing images is mixing tokens.
"""

import warnings
from typing import Literal, cast

import torch
from torch import Tensor

from ..errors import ImageSizeError, InputError
from .sampling import random_ranks

__all__ = ('MIXUP_MODES', 'MixupMode', 'check_mixup_mode', 'mix_tokens', 'random_assignment', 'stack_pair')

#: How the second view of a pair is built — one vocabulary for the MAE, the pretraining task and the transforms:
#: ``'complementary'`` (paper Eq. 1–2: view b′ is the mirrored mix of view a′), ``'release'`` (the official
#: pretraining code: view b′ is the unmixed sensor-b image), ``'none'`` (no mixing: two plain views).
MixupMode = Literal['complementary', 'release', 'none']
MIXUP_MODES: tuple[str, ...] = ('complementary', 'release', 'none')
_DEPRECATED_MODES = {'release_pretraining': 'release'}


def check_mixup_mode(mode: str, allowed: tuple[str, ...] = MIXUP_MODES) -> MixupMode:
    """Validate a mix-up mode; the old spelling ``'release_pretraining'`` maps to ``'release'`` with a warning.

    Raises:
        InputError: for a mode not in *allowed*, listing the valid ones.
    """
    if mode in _DEPRECATED_MODES:
        new = _DEPRECATED_MODES[mode]
        warnings.warn(f'mixup mode {mode!r} is deprecated; use {new!r}', DeprecationWarning, stacklevel=3)
        mode = new
    if mode not in allowed:
        raise InputError(f'unknown mixup mode {mode!r}; choose one of {", ".join(map(repr, allowed))}')
    return cast(MixupMode, mode)


def random_assignment(
    batch: int,
    grid: tuple[int, int],
    ratio: float = 0.5,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Draw a per-sample assignment with exactly ``round(ratio·h·w)`` patches from sensor a.

    Args:
        batch: number of samples B.
        grid: token grid (h, w).
        ratio: fraction of patches taken from sensor a (0 → all b, 1 → all a).
        generator: optional RNG for reproducibility.
        device: device of the returned mask.

    Returns:
        A bool tensor (B, h, w), True = sensor a.

    Raises:
        InputError: if *ratio* is outside [0, 1].
    """
    if not 0.0 <= ratio <= 1.0:
        raise InputError(f'mixup ratio must be in [0, 1], got {ratio}')
    h, w = grid
    k = int(round(ratio * h * w))
    return (random_ranks(batch, h * w, generator=generator, device=device) < k).reshape(batch, h, w)


def _check_pair(a: Tensor, b: Tensor, assign: Tensor, patch_size: int) -> tuple[int, int]:
    if a.ndim != 4 or b.ndim != 4:
        raise InputError(f'expected two (B, C, H, W) images, got shapes {tuple(a.shape)} and {tuple(b.shape)}')
    if a.shape[0] != b.shape[0] or a.shape[-2:] != b.shape[-2:]:
        raise ImageSizeError(
            f'the pair must have the same batch size and spatial size after resampling, got {tuple(a.shape)} and '
            f'{tuple(b.shape)}; resize both to the model size first (e.g. PairedResize / K.Resize)'
        )
    h, w = a.shape[-2:]
    if h % patch_size or w % patch_size:
        raise ImageSizeError(f'image size {h}×{w} is not a multiple of the patch size {patch_size}; pad or crop')
    grid = (h // patch_size, w // patch_size)
    if tuple(assign.shape) != (a.shape[0], *grid):
        raise InputError(f'assignment must have shape (B, h, w) = {(a.shape[0], *grid)}, got {tuple(assign.shape)}')
    return grid


def stack_pair(a: Tensor, b: Tensor, assign: Tensor, patch_size: int = 16) -> tuple[Tensor, Tensor]:
    """Build the mixed view a′ (a where *assign*, b elsewhere) in the encoder's input form.

    Returns:
        ``(x, band_mask)``: x = cat([a, b], dim=1) of shape (B, Ca + Cb, H, W), and a
        per-patch mask (B, Ca + Cb, h, w). Encode with
        ``model(x, bands=bands_a + bands_b, band_mask=band_mask)``. For view b′ pass ``~assign``.

    Raises:
        ImageSizeError: if the images differ in size or are not multiples of the patch.
        InputError: if the assignment has the wrong shape.
    """
    _check_pair(a, b, assign, patch_size)
    m = assign.to(torch.bool)
    ca, cb = a.shape[1], b.shape[1]
    mask = torch.cat([m[:, None].expand(-1, ca, -1, -1), (~m)[:, None].expand(-1, cb, -1, -1)], dim=1)
    x = torch.cat([a, b.to(a.dtype)], dim=1)
    return x, mask


def mix_tokens(tokens_a: Tensor, tokens_b: Tensor, assign: Tensor) -> Tensor:
    """Mix token grids (B, h, w, D) (or (B, N, D) with a (B, N) assignment): a where *assign*, else b."""
    if tokens_a.shape != tokens_b.shape:
        raise InputError(f'token grids differ: {tuple(tokens_a.shape)} vs {tuple(tokens_b.shape)}')
    return torch.where(assign.to(torch.bool)[..., None], tokens_a, tokens_b)
