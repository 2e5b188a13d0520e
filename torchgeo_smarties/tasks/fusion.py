"""Multimodal fusion of two co-registered sensors with one SMARTIES encoder (paper Tab. 8).

Strategies:

* ``'stack'`` — image stacking: all bands of both sensors go into one token
  (the encoder sees the band set ``bands_a + bands_b``); features are D-dimensional.
* ``'concat'`` — feature concatenation: encode each sensor alone, concatenate the CLS vectors (2D).
* ``'mixup_concat'`` — Mixup-Concatenation (the paper's): a random half of the patches
  takes sensor a and the rest sensor b; the complementary mix is built too; both mixes are
  encoded and their CLS vectors concatenated (2D). Mixing uses
  :func:`~torchgeo_smarties.ops.mixing.random_assignment` and
  :func:`~torchgeo_smarties.ops.mixing.stack_pair` (band-masked tokens).

The model takes the **stacked** channels ``cat([a, b], dim=1)`` so that torchgeo tasks, which pass
only ``batch['image']``, can use it (e.g. BigEarthNet ``bands='all'`` gives S1 then S2).
"""

from typing import Literal

import torch
from torch import Tensor, nn

from ..errors import BandCountError, InputError
from ..models import SMARTIESViT
from ..models.vit import Bands
from ..ops import random_assignment, stack_pair
from ..transforms.mixup import pair_patch_grid

__all__ = ('FusionStrategy', 'SMARTIESFusion')

FusionStrategy = Literal['stack', 'concat', 'mixup_concat']


class SMARTIESFusion(nn.Module):
    """Two-sensor fusion wrapper around one (shared) SMARTIES encoder, usable as a timm-like classifier.

    ``forward(x)`` takes the stacked channels (B, Ca + Cb, H, W), splits them by band counts,
    fuses with the chosen strategy and applies ``head``. ``num_features`` is 2D for
    ``'concat'``/``'mixup_concat'`` and D for ``'stack'``. ``get_classifier()`` returns the head.

    Mixing at evaluation: the release draws a new random assignment for every sample even at
    evaluation (no seed), so its test scores vary slightly between runs. Here, in ``eval()``
    mode the assignment is drawn from a generator re-seeded with *eval_seed* on every call
    (deterministic, reproducible); pass ``eval_seed=None`` for the release's behaviour.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        encoder: SMARTIESViT,
        bands_a: Bands,
        bands_b: Bands,
        strategy: FusionStrategy = 'mixup_concat',
        num_classes: int = 0,
        mixup_ratio: float = 0.5,
        eval_seed: int | None = 0,
    ) -> None:
        """Initialize a new SMARTIESFusion instance.

        Args:
            encoder: the shared encoder (its classifier is ignored; ``num_classes=0`` recommended).
            bands_a: band set of the first sensor (the first ``len(bands_a)`` channels), e.g. ``'bigearthnet_s1'``.
            bands_b: band set of the second sensor (the remaining channels), e.g. ``'bigearthnet_s2'``.
            strategy: ``'stack'``, ``'concat'`` or ``'mixup_concat'``.
            num_classes: outputs of the linear head on the fused features (0: no head, features out).
            mixup_ratio: fraction of patches taken from sensor a in the first mix (paper: 0.5).
            eval_seed: seed of the assignment in eval mode; None draws randomly like the release.

        Raises:
            InputError: for an unknown strategy.
        """
        super().__init__()
        if strategy not in ('stack', 'concat', 'mixup_concat'):
            raise InputError(f"unknown fusion strategy {strategy!r}; choose 'stack', 'concat' or 'mixup_concat'")
        self.encoder = encoder
        self.plan_a = encoder.plan_for(bands_a)
        self.plan_b = encoder.plan_for(bands_b)
        self.bands_ab = (*self.plan_a.bands, *self.plan_b.bands)
        self.plan_ab = encoder.plan_for(list(self.bands_ab))
        self.strategy: FusionStrategy = strategy
        self.mixup_ratio = mixup_ratio
        self.eval_seed = eval_seed
        self.patch_size = encoder.patch_size
        self.embed_dim = encoder.embed_dim
        self.num_features = encoder.embed_dim * (1 if strategy == 'stack' else 2)
        self.head: nn.Module = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.num_classes = num_classes

    @property
    def in_chans(self) -> int:
        """Number of stacked input channels (Ca + Cb)."""
        return self.plan_a.num_bands + self.plan_b.num_bands

    def get_classifier(self) -> nn.Module:
        """The classification head (timm API; used by torchgeo's ``freeze_backbone``)."""
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head by a fresh ``Linear(num_features, num_classes)`` (Identity for 0)."""
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Split stacked channels into (a, b) by the band counts.

        Raises:
            BandCountError: if the channel count is not Ca + Cb.
        """
        if x.ndim != 4:
            raise InputError(f'expected a (B, C, H, W) batch of stacked channels, got shape {tuple(x.shape)}')
        ca = self.plan_a.num_bands
        if x.shape[1] != self.in_chans:
            raise BandCountError(
                f'the fused input has {x.shape[1]} channels but the pair needs {ca} ({", ".join(self.plan_a.bands)}) '
                f'+ {self.plan_b.num_bands} ({", ".join(self.plan_b.bands)}) = {self.in_chans}; stack sensor a '
                'then sensor b along the channel axis'
            )
        return x[:, :ca], x[:, ca:]

    def _assignment(self, batch: int, grid: tuple[int, int], device: torch.device) -> Tensor:
        gen = None
        if not self.training and self.eval_seed is not None:
            gen = torch.Generator().manual_seed(self.eval_seed)
        return random_assignment(batch, grid, self.mixup_ratio, generator=gen, device=device)

    def forward_pair(self, a: Tensor, b: Tensor) -> Tensor:
        """Fused features (B, num_features) of two co-registered images a (B, Ca, H, W) and b (B, Cb, H, W).

        Raises:
            InputError: if an image is not (B, C, H, W) or the batch sizes differ.
            ImageSizeError: if the two images are not on the same grid (or not multiples of the patch).
            BandCountError: if a channel count does not match its band set.
        """
        grid = pair_patch_grid(a, b, self.patch_size, (self.plan_a.bands, self.plan_b.bands), resize='K.Resize')
        p = self.patch_size
        enc = self.encoder
        if self.strategy == 'stack':
            out: Tensor = enc(torch.cat([a, b.to(a.dtype)], dim=1), bands=self.plan_ab)
            return out
        if self.strategy == 'concat':
            return torch.cat([enc(a, bands=self.plan_a), enc(b, bands=self.plan_b)], dim=-1)
        assign = self._assignment(a.shape[0], grid, a.device)
        x1, m1 = stack_pair(a, b, assign, p)
        x2, m2 = stack_pair(a, b, ~assign, p)
        f1 = enc(x1, bands=self.plan_ab, band_mask=m1)
        f2 = enc(x2, bands=self.plan_ab, band_mask=m2)
        return torch.cat([f1, f2], dim=-1)

    def forward_features(self, x: Tensor) -> Tensor:
        """Fused features (B, num_features) of stacked channels (B, Ca + Cb, H, W)."""
        a, b = self.split(x)
        return self.forward_pair(a, b)

    def forward(self, x: Tensor) -> Tensor:
        """Head output (logits, or the fused features if ``num_classes == 0``) for stacked channels."""
        out: Tensor = self.head(self.forward_features(x))
        return out

    def extra_repr(self) -> str:
        """Show strategy and band sets."""
        return (f'strategy={self.strategy!r}, bands_a={list(self.plan_a.bands)}, bands_b={list(self.plan_b.bands)}, '
                f'eval_seed={self.eval_seed}')

