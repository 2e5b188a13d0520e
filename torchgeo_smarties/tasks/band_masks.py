"""Band masks from the batch to the model in the SMARTIES tasks.

torchgeo's task steps call ``self(x)`` with the image only. The SMARTIES tasks wrap every step so that
the batch's band mask (``batch['band_mask']``, put there by the SMARTIES data modules for
:class:`~torchgeo_smarties.transforms.RandomBandSubset`, AND the bands that are entirely NaN) reaches
``forward(x, band_mask=...)`` and from there the encoder: dropped bands never reach the model as data.

.. versionadded:: 0.2
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch
from torch import Tensor

from ..errors import BandCountError
from ..transforms.band_subset import batch_band_mask

__all__ = ('BandMaskMixin',)

_STEP_MASK: ContextVar[Tensor | None] = ContextVar('smarties_step_band_mask', default=None)


def _with_band_mask(hook: str) -> Callable[..., Any]:
    """torchgeo's step *hook* of the next class in the MRO, run inside :meth:`BandMaskMixin._step`."""

    def step(self: BandMaskMixin, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Any:
        with self._step(batch):
            return getattr(super(BandMaskMixin, self), hook)(batch, batch_idx, dataloader_idx)

    step.__name__ = hook
    step.__qualname__ = f'BandMaskMixin.{hook}'
    step.__doc__ = "torchgeo's step, with the batch's band mask passed to the model."
    return step


class BandMaskMixin:
    """Mixin for torchgeo tasks: each step's band mask goes to ``forward(x, band_mask=...)``.

    Subclasses implement :meth:`forward_masked`.
    """

    model: Any

    @contextmanager
    def _step(self, batch: Any) -> Iterator[None]:
        mask = batch_band_mask(batch) if isinstance(batch, Mapping) else None
        if mask is not None and isinstance(batch, dict):
            # the mask now carries the dropped bands; NaN must not reach torchgeo's metrics or plots
            x = batch.get('image')
            if isinstance(x, Tensor) and x.ndim == 4 and x.is_floating_point():
                batch['image'] = torch.where(mask[:, :, None, None], x, torch.zeros((), dtype=x.dtype, device=x.device))
        token = _STEP_MASK.set(mask)
        try:
            yield
        finally:
            _STEP_MASK.reset(token)

    training_step = _with_band_mask('training_step')
    validation_step = _with_band_mask('validation_step')
    test_step = _with_band_mask('test_step')
    predict_step = _with_band_mask('predict_step')

    def forward(self, x: Tensor, band_mask: Tensor | None = None) -> Tensor:
        """Model output for *x*; *band_mask* (B, C) defaults to the current step's mask.

        Raises:
            BandCountError: if the mask does not fit *x*.
        """
        mask = _STEP_MASK.get() if band_mask is None else band_mask
        if mask is None:
            out: Tensor = self.model(x)
            return out
        if x.ndim == 4 and mask.ndim == 2 and tuple(mask.shape) != (x.shape[0], x.shape[1]):
            raise BandCountError(f'band_mask of shape {tuple(mask.shape)} does not fit images {tuple(x.shape)}')
        return self.forward_masked(x, mask)

    def forward_masked(self, x: Tensor, band_mask: Tensor) -> Tensor:
        """Model output for *x* with a band mask (True = valid)."""
        raise NotImplementedError
