"""Random band-subset sampling (spectral dropout) for robustness to missing bands.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from kornia.augmentation import IntensityAugmentationBase2D
from torch import Tensor, nn

from ..errors import BandCountError, InputError
from ..ops import random_ranks
from ..spectrum import resolve_bands

__all__ = ('BAND_MASK_KEY', 'RandomBandSubset', 'attach_band_mask', 'batch_band_mask', 'random_band_mask')

#: The batch key of the (B, C) band mask (True = band kept/valid).
BAND_MASK_KEY = 'band_mask'


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


def attach_band_mask(batch: dict[str, Any], aug: nn.Module | None, key: str = 'image') -> dict[str, Any]:
    """Put the band masks of the :class:`RandomBandSubset` steps that just ran in *aug* into ``batch['band_mask']``.

    Masks of several steps (and a ``band_mask`` already in the batch) are combined with AND. Each step's
    mask is consumed (:meth:`RandomBandSubset.pop_band_mask`), so a step of another split's augmentation
    that did not run on this batch contributes nothing.

    Args:
        batch: the augmented batch (modified in place and returned).
        aug: the augmentation that was applied (any module; searched recursively), or None.
        key: the image key (the mask is checked against its batch size and channels).

    Raises:
        BandCountError: if a mask does not fit the image (B, C).
    """
    if aug is None:
        return batch
    masks = [m.pop_band_mask() for m in aug.modules() if isinstance(m, RandomBandSubset)]
    found = [m for m in masks if m is not None]
    if not found:
        return batch
    image = batch.get(key)
    mask = batch.get(BAND_MASK_KEY)
    for m in found:
        if isinstance(image, Tensor) and tuple(m.shape) != (image.shape[0], image.shape[-3]):
            raise BandCountError(
                f'the RandomBandSubset mask has shape {tuple(m.shape)} but batch[{key!r}] is {tuple(image.shape)}; '
                'put RandomBandSubset in the augmentation of the image, after any channel selection'
            )
        m = m.to(image.device) if isinstance(image, Tensor) else m
        mask = m if mask is None else mask & m
    batch[BAND_MASK_KEY] = mask
    return batch


def batch_band_mask(batch: Mapping[str, Any], key: str = 'image') -> Tensor | None:
    """The (B, C) band mask of a batch: ``batch['band_mask']`` AND "band not entirely NaN", or None if all valid.

    An all-NaN band of a sample (what :class:`RandomBandSubset` writes by default) counts as dropped.

    Raises:
        BandCountError: if ``batch['band_mask']`` does not fit the image (B, C).
    """
    x = batch.get(key)
    mask = batch.get(BAND_MASK_KEY)
    if not isinstance(x, Tensor) or x.ndim != 4:
        return mask if isinstance(mask, Tensor) else None
    if mask is not None:
        if not isinstance(mask, Tensor) or tuple(mask.shape) != (x.shape[0], x.shape[1]):
            shape = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
            raise BandCountError(
                f"batch['band_mask'] has shape {shape} but the image batch is {tuple(x.shape)}; it must be "
                '(B, C) bool, True = band valid'
            )
        mask = mask.to(device=x.device, dtype=torch.bool)
    if x.is_floating_point():
        dropped = torch.isnan(x).flatten(2).all(2)
        if bool(dropped.any()):
            mask = ~dropped if mask is None else mask & ~dropped
    return mask


class RandomBandSubset(IntensityAugmentationBase2D):
    """Spectral dropout: keep a random subset of bands per sample, as a kornia augmentation.

    Dropped bands are filled with *fill_value* (default NaN) and the (B, C) keep-mask of the last call is
    :attr:`band_mask`. The mask must reach the encoder as ``band_mask=`` so that dropped bands are excluded
    from the token mean (SMARTIES averages over valid bands, so the token is then exactly the token of the
    kept bands). Inside a torchgeo data module's ``aug``, the SMARTIES data modules put it into the batch as
    ``batch['band_mask']`` (:func:`attach_band_mask`) and the SMARTIES tasks pass it to the model. The NaN
    fill makes every other path fail loudly (the encoder refuses NaN without a mask; the SMARTIES tasks
    treat an all-NaN band as dropped) instead of feeding zeros as if they were data. A zero fill
    (``fill_value=0``, the band mean after SMARTIES normalisation) is only right when you pass the mask
    yourself. For a whole batch with fewer channels, use :meth:`select`.

    Args:
        min_bands: fewest bands kept per sample (≥ 1).
        max_bands: most bands kept (default: all).
        fill_value: value written into dropped bands (default NaN; see above).
        p: probability of applying it to a sample (samples not applied keep all bands).
        generator: RNG for the draw (CPU). Without it the draw uses torch's global RNG, so
            ``torch.manual_seed`` makes it deterministic.
        keepdim: kornia's flag.

    Example:
        >>> drop = RandomBandSubset(min_bands=3)
        >>> x = drop(torch.randn(4, 12, 32, 32))
        >>> bool(x.isnan().any())  # dropped bands are NaN until masked
        True
        >>> drop.band_mask.shape, bool((drop.band_mask.sum(1) >= 3).all())
        (torch.Size([4, 12]), True)

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        min_bands: int = 1,
        max_bands: int | None = None,
        *,
        fill_value: float = float('nan'),
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

    def pop_band_mask(self) -> Tensor | None:
        """The keep-mask of the last call, once: a second call returns ``None`` until the module runs again."""
        mask = self.band_mask
        params = getattr(self, '_params', None)
        if params:
            params.pop('keep', None)
        return mask

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
