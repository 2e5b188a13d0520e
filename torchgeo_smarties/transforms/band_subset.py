"""Random band-subset sampling (spectral dropout) for robustness to missing bands.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from kornia.augmentation import IntensityAugmentationBase2D
from torch import Tensor

from ..errors import BandCountError, InputError
from ..ops import random_ranks
from ..spectrum import resolve_bands

__all__ = ('RandomBandSubset', 'random_band_mask')


def random_band_mask(
    batch: int,
    channels: int,
    min_bands: int = 1,
    max_bands: int | None = None,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Per-sample random band subsets as a (B, C) bool mask (True = kept).

    Each sample keeps ``n`` bands, ``n`` uniform in ``[min_bands, max_bands]``, chosen uniformly.
    Draws on the CPU (reproducible across devices) and moves the result to *device*.

    Raises:
        InputError: if the bounds are not ``1 ≤ min_bands ≤ max_bands ≤ channels``.
    """
    hi = channels if max_bands is None else max_bands
    if not 1 <= min_bands <= hi <= channels:
        raise InputError(
            f'need 1 ≤ min_bands ≤ max_bands ≤ channels, got min_bands={min_bands}, max_bands={hi}, '
            f'channels={channels}; keep at least one band'
        )
    n = torch.randint(min_bands, hi + 1, (batch, 1), generator=generator)
    return (random_ranks(batch, channels, generator=generator, device='cpu') < n).to(device)


class RandomBandSubset(IntensityAugmentationBase2D):
    """Spectral dropout: keep a random subset of bands per sample, as a kornia augmentation.

    In the augmentation pipeline the dropped bands are filled with *fill_value* (0 = the band mean after
    SMARTIES normalisation), and the (B, C) keep-mask of the last call is :attr:`band_mask` — pass it to
    the encoder as ``band_mask=`` so that dropped bands are excluded from the token mean (SMARTIES
    averages over valid bands, so the token is then exactly the token of the kept bands). For a whole
    batch with fewer channels, use :meth:`select`.

    Args:
        min_bands: fewest bands kept per sample (≥ 1).
        max_bands: most bands kept (default: all).
        fill_value: value written into dropped bands (``float('nan')`` works with the encoder's mask).
        p: probability of applying it to a sample (samples not applied keep all bands).
        generator: RNG for the draw (CPU). Without it the draw uses torch's global RNG, so
            ``torch.manual_seed`` makes it deterministic.
        keepdim: kornia's flag.

    Example:
        >>> drop = RandomBandSubset(min_bands=3)
        >>> x = drop(torch.randn(4, 12, 32, 32))
        >>> drop.band_mask.shape, bool((drop.band_mask.sum(1) >= 3).all())
        (torch.Size([4, 12]), True)

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        min_bands: int = 1,
        max_bands: int | None = None,
        *,
        fill_value: float = 0.0,
        p: float = 1.0,
        generator: torch.Generator | None = None,
        keepdim: bool = False,
    ) -> None:
        super().__init__(p=1.0, same_on_batch=False, keepdim=keepdim)
        if min_bands < 1 or (max_bands is not None and max_bands < min_bands):
            raise InputError(f'need 1 ≤ min_bands ≤ max_bands, got {min_bands}, {max_bands}; keep at least one band')
        if not 0.0 <= p <= 1.0:
            raise InputError(f'p must be in [0, 1], got {p}')
        self.min_bands = int(min_bands)
        self.max_bands = max_bands
        self.fill_value = float(fill_value)
        self.p_apply = float(p)
        self.generator = generator

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
        """Draw the (B, C) keep-mask ``{'keep': ...}`` for an input of *batch_shape*."""
        b, c = int(batch_shape[0]), int(batch_shape[-3])
        hi = c if self.max_bands is None else min(self.max_bands, c)
        if self.min_bands > c:
            raise BandCountError(f'min_bands={self.min_bands} exceeds the {c} channels of the input')
        keep = random_band_mask(b, c, self.min_bands, hi, generator=self.generator)
        if self.p_apply < 1.0:
            applied = torch.rand(b, 1, generator=self.generator) < self.p_apply
            keep = keep | ~applied
        return {'keep': keep}

    def apply_transform(
        self, input: Tensor, params: dict[str, Tensor], flags: dict[str, Any], transform: Tensor | None = None
    ) -> Tensor:
        """Fill the dropped bands with ``fill_value``."""
        keep = params['keep'].to(input.device)[:, :, None, None]
        return torch.where(keep, input, torch.full_like(input, self.fill_value))

    @property
    def band_mask(self) -> Tensor | None:
        """The (B, C) keep-mask of the last call (True = kept), or ``None`` before the first call."""
        params = getattr(self, '_params', None)
        if not params or 'keep' not in params:
            return None
        return params['keep']

    def select(
        self, x: Tensor, bands: str | Sequence[str], *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, tuple[str, ...]]:
        """Per-batch variant: keep one random band subset for the whole batch and drop the other channels.

        Args:
            x: (B, C, H, W) images.
            bands: their band ids (preset or list, channel order).
            generator: RNG (defaults to the module's).

        Returns:
            ``(x[:, kept], kept_band_ids)``, kept channels in their original order.

        Raises:
            BandCountError: if *bands* does not match the channels.
        """
        ids = tuple(b.id for b in resolve_bands(bands))
        if x.ndim != 4 or x.shape[1] != len(ids):
            raise BandCountError(
                f'x has shape {tuple(x.shape)} but {len(ids)} bands were given; give one band id per channel'
            )
        c = len(ids)
        hi = c if self.max_bands is None else min(self.max_bands, c)
        keep = random_band_mask(1, c, self.min_bands, hi, generator=generator or self.generator)[0]
        idx = keep.nonzero().flatten()
        return x[:, idx.to(x.device)], tuple(ids[i] for i in idx.tolist())

    def extra_repr(self) -> str:  # noqa: D102
        return f'min_bands={self.min_bands}, max_bands={self.max_bands}, fill_value={self.fill_value}'

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.extra_repr()})'
