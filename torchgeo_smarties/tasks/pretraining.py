"""Lightning task for SMARTIES MAE pretraining with cross-sensor token mixup.

.. versionadded:: 0.1
"""

import math
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from lightning.pytorch.utilities.types import OptimizerLRScheduler
from torch import Tensor
from torch.optim.lr_scheduler import LambdaLR
from torchgeo.tasks import BaseTask

from ..errors import InputError
from ..models.mae import SMARTIESMAE, MixupMode, random_token_mask
from ..ops import random_assignment
from ..spectrum import ProjectionPlan

__all__ = ('SMARTIESPretraining', 'effective_lr', 'warmup_cosine')

_NO_DECAY = ('cls_token', 'pos_embed', 'mask_token', 'decoder_pos_embed')


def effective_lr(blr: float, batch_size: int, accumulate: int = 1, world_size: int = 1) -> float:
    """The MAE scaling rule: ``lr = blr × (batch × accumulate × world_size) / 256``."""
    return blr * batch_size * accumulate * world_size / 256.0


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    """LR factor at optimizer step *step*: linear warmup to 1 over *warmup* steps, then cosine to *min_ratio*."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if total <= warmup:
        return 1.0
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def _sample_seed(seed: int, epoch: int, index: int) -> int:
    # epoch −1 (validation's fixed masks) → 2**32 − 1: SeedSequence takes non-negative entries only
    return int(np.random.SeedSequence([seed, epoch % 2**32, index]).generate_state(1)[0])


class SMARTIESPretraining(BaseTask):
    """SMARTIES MAE pretraining (paper §3.2–3.3) as a torchgeo-style Lightning task.

    Batches are dicts with ``image_a`` (B, Ca, H, W) and optionally ``image_b`` (B, Cb, H, W),
    ``bands_a``/``bands_b`` (:class:`~torchgeo_smarties.spectrum.ProjectionPlan`, or band ids; else the task's
    *bands_a*/*bands_b*; plans are cached, never re-planned per step) and
    ``index`` (B,) sample ids (see :class:`~torchgeo_smarties.tasks.paired_data.PairedDataModule`).
    Optional ``mask_a``/``mask_b`` (bool, True = valid; (B, C), (B, C, h, w) or (B, C, H, W)) mark
    nodata: it is kept out of the tokens and of the loss
    (see :meth:`~torchgeo_smarties.models.mae.SMARTIESMAE.forward`).
    With ``index`` the token mask and mixup assignment of each sample are drawn from a
    generator seeded by (*seed*, epoch, index): runs are reproducible, resume exactly, and give
    the same masks with any number of processes.

    Optimiser: AdamW(0.9, 0.95), weight decay 0.05 except biases, norms and tokens;
    ``lr = blr × effective_batch / 256`` (effective batch = batch × accumulate × world size);
    linear warmup then cosine, stepped per optimizer step. Mixed precision, gradient
    accumulation, multi-GPU/multi-node (``strategy='ddp'``) and checkpoint/resume come from the
    Lightning ``Trainer``.

    .. versionadded:: 0.1
    """

    ignore = ('weights',)
    monitor = 'val_loss'

    def __init__(
        self,
        bands_a: str | Sequence[str] = 'sentinel2_l1c',
        bands_b: str | Sequence[str] | None = None,
        img_size: int = 224,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        decoder_embed_dim: int = 512,
        decoder_depth: int = 8,
        decoder_num_heads: int = 16,
        mask_ratio: float = 0.75,
        mixup_ratio: float = 0.5,
        mixup: MixupMode = 'complementary',
        norm_pix_loss: bool = True,
        interpolation: str = 'linear',
        weights: Any = None,
        blr: float = 1.5e-4,
        lr: float | None = None,
        weight_decay: float = 0.05,
        betas: tuple[float, float] = (0.9, 0.95),
        warmup_epochs: float = 20.0,
        warmup_steps: int | None = None,
        min_lr_ratio: float = 0.0,
        lr_batch_size: int | None = None,
        seed: int = 0,
        export_path: str | None = None,
    ) -> None:
        """Initialize a new SMARTIESPretraining instance.

        Args:
            bands_a: default band set of sensor a (used when a batch carries no ``bands_a``).
            bands_b: default band set of sensor b.
            img_size: nominal image size (224 in the paper).
            embed_dim: encoder width (768 ViT-B, 1024 ViT-L).
            depth: encoder blocks.
            num_heads: encoder heads.
            decoder_embed_dim: decoder width (512).
            decoder_depth: decoder blocks (8).
            decoder_num_heads: decoder heads (16).
            mask_ratio: masking ratio (0.75).
            mixup_ratio: fraction of view a′ from sensor a (0.5).
            mixup: ``'complementary'`` (paper), ``'release'`` (official code) or ``'none'``.
            norm_pix_loss: per-token normalised targets (the release's setting).
            interpolation: band interpolation policy of the encoder.
            weights: optional encoder weights to continue from (path, state dict or weights enum).
            blr: base learning rate (scaled by effective batch / 256).
            lr: absolute learning rate (overrides *blr* scaling).
            weight_decay: AdamW weight decay (not applied to biases, norms, tokens).
            betas: AdamW betas.
            warmup_epochs: linear warmup length in epochs (converted to steps).
            warmup_steps: warmup length in optimizer steps (overrides *warmup_epochs*).
            min_lr_ratio: final LR as a fraction of the peak.
            lr_batch_size: per-process batch size for the LR rule when the datamodule does not say.
            seed: seed of the per-sample masks.
            export_path: write the encoder (release key format) there at the end of training.
        """
        self.weights = weights
        self._plans: dict[Any, ProjectionPlan] = {}
        super().__init__()

    # -- BaseTask hooks ------------------------------------------------------------------------------------------------
    def configure_models(self) -> None:
        """Build the :class:`~torchgeo_smarties.models.mae.SMARTIESMAE`."""
        h = self.hparams
        self.model = SMARTIESMAE(
            bands=h['bands_a'], img_size=h['img_size'], embed_dim=h['embed_dim'], depth=h['depth'],
            num_heads=h['num_heads'], decoder_embed_dim=h['decoder_embed_dim'], decoder_depth=h['decoder_depth'],
            decoder_num_heads=h['decoder_num_heads'], mask_ratio=h['mask_ratio'], mixup_ratio=h['mixup_ratio'],
            mixup=h['mixup'], norm_pix_loss=h['norm_pix_loss'], interpolation=h['interpolation'],
        )
        if self.weights is not None:
            from ..models.checkpoint import load_encoder_weights

            w = self.weights
            if hasattr(w, 'get_state_dict'):
                w = w.get_state_dict(progress=True)
            load_encoder_weights(self.model.encoder, w)

    # -- learning rate -------------------------------------------------------------------------------------------------
    def _per_process_batch(self) -> int:
        dm = getattr(self.trainer, 'datamodule', None) if self._trainer is not None else None
        bs = getattr(dm, 'batch_size', None) or self.hparams['lr_batch_size']
        if bs is None:
            warnings.warn('batch size unknown (no datamodule.batch_size, no lr_batch_size=): LR scaled for 256',
                          stacklevel=2)
            return 256
        return int(bs)

    def peak_lr(self) -> float:
        """The peak learning rate: *lr*, or ``blr × batch × accumulate × world_size / 256``."""
        if self.hparams['lr'] is not None:
            return float(self.hparams['lr'])
        acc = self.trainer.accumulate_grad_batches if self._trainer is not None else 1
        ws = self.trainer.world_size if self._trainer is not None else 1
        return effective_lr(self.hparams['blr'], self._per_process_batch(), acc, ws)

    def schedule_steps(self) -> tuple[int, int]:
        """(warmup, total) in optimizer steps."""
        total = int(self.trainer.estimated_stepping_batches) if self._trainer is not None else 1
        if self.hparams['warmup_steps'] is not None:
            return int(self.hparams['warmup_steps']), total
        max_epochs = self.trainer.max_epochs if self._trainer is not None else None
        if max_epochs is None or max_epochs <= 0:
            return 0, total
        return int(round(self.hparams['warmup_epochs'] * total / max_epochs)), total

    def configure_optimizers(self) -> OptimizerLRScheduler:
        """AdamW with decoupled weight decay on weights only, warmup + cosine per step."""
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            if p.ndim <= 1 or name.endswith('.bias') or name.removeprefix('encoder.') in _NO_DECAY:
                no_decay.append(p)
            else:
                decay.append(p)
        lr = self.peak_lr()
        optimizer = torch.optim.AdamW(
            [
                {'params': decay, 'weight_decay': self.hparams['weight_decay']},
                {'params': no_decay, 'weight_decay': 0.0},
            ],
            lr=lr, betas=tuple(self.hparams['betas']),
        )
        warmup, total = self.schedule_steps()
        min_ratio = float(self.hparams['min_lr_ratio'])
        scheduler = LambdaLR(optimizer, lambda step: warmup_cosine(step, warmup, total, min_ratio))
        return {'optimizer': optimizer, 'lr_scheduler': {'scheduler': scheduler, 'interval': 'step', 'frequency': 1}}

    # -- steps ---------------------------------------------------------------------------------------------------------
    def _bands(self, batch: dict[str, Any], key: str) -> ProjectionPlan:
        """The batch's band plan for *key* (``ProjectionPlan`` from the data, else the task's band set), cached.

        Plans made with another interpolation policy than the model's are re-planned once (cached by plan).
        Strings (comma-separated ids, a preset name, or a collated list of identical strings) are accepted for
        batches from other data modules and planned once per distinct value.
        """
        val = batch.get(key)
        if val is None:
            val = self.hparams[key]
        if isinstance(val, (list, tuple)) and val and all(isinstance(v, ProjectionPlan) for v in val):
            if len(set(val)) != 1:
                raise InputError(f'batch mixes band sets for {key}; batch pairs of one band set')
            val = val[0]
        if isinstance(val, (list, tuple)) and val and isinstance(val[0], str) and ',' in val[0]:
            if len(set(val)) != 1:
                raise InputError(f'batch mixes band sets for {key}; batch pairs of one band set')
            val = val[0]
        cache_key: Any = val if isinstance(val, (str, ProjectionPlan)) else tuple(val)
        plan = self._plans.get(cache_key)
        if plan is None:
            enc = self.model.encoder
            if isinstance(val, ProjectionPlan) and val.policy == enc.interpolation:
                plan = val
            else:
                spec = val.bands if isinstance(val, ProjectionPlan) else val
                if isinstance(spec, str) and ',' in spec:
                    spec = spec.split(',')
                plan = enc.plan_for(spec)
            self._plans[cache_key] = plan
        return plan

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Move the tensors; ``ProjectionPlan`` entries of the batch pass unchanged."""
        from .paired_datamodule import transfer_keeping_plans

        return transfer_keeping_plans(batch, lambda b: super(SMARTIESPretraining, self).transfer_batch_to_device(
            b, device, dataloader_idx))

    def draw_masks(self, batch: dict[str, Any], x: Tensor, pair: bool, epoch: int) -> tuple[Tensor, Tensor | None]:
        """Token mask and assignment: per-sample seeded by (seed, epoch, index) when ``index`` is present."""
        b = x.shape[0]
        p = self.model.patch_size
        grid = (x.shape[-2] // p, x.shape[-1] // p)
        index = batch.get('index')
        if index is None:
            return self.model.draw_masks(b, grid, pair, None, x.device)
        masks, assigns = [], []
        for i in index.tolist():
            g = torch.Generator().manual_seed(_sample_seed(self.hparams['seed'], epoch, int(i)))
            masks.append(random_token_mask(1, grid[0] * grid[1], self.hparams['mask_ratio'], generator=g))
            if pair:
                assigns.append(random_assignment(1, grid, self.hparams['mixup_ratio'], generator=g))
        mask = torch.cat(masks).to(x.device)
        assign = torch.cat(assigns).to(x.device) if pair else None
        return mask, assign

    def _shared_step(self, batch: dict[str, Any], epoch: int) -> Any:
        if 'image_a' not in batch and 'image' in batch:  # single-sensor torchgeo batches
            batch = {**batch, 'image_a': batch['image']}
        x_a = batch['image_a'].float()
        x_b = batch.get('image_b')
        pair = x_b is not None
        token_mask, assign = self.draw_masks(batch, x_a, pair, epoch)
        return self.model(
            x_a, self._bands(batch, 'bands_a'), x_b.float() if x_b is not None else None,
            self._bands(batch, 'bands_b') if pair else None, token_mask=token_mask, assign=assign,
            band_mask_a=batch.get('mask_a'), band_mask_b=batch.get('mask_b') if pair else None,
        )

    def training_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        """MAE loss of the (mixed) pair; logs ``train_loss`` and the view losses."""
        out = self._shared_step(batch, self.current_epoch)
        b = batch['image_a'].shape[0] if 'image_a' in batch else batch['image'].shape[0]
        self.log('train_loss', out.loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=b)
        for i, vl in enumerate(out.view_losses):
            self.log(f'train_loss_view{i}', vl, on_step=True, on_epoch=False, batch_size=b)
        self.log('lr', self.trainer.optimizers[0].param_groups[0]['lr'], on_step=True, on_epoch=False, batch_size=b)
        loss: Tensor = out.loss
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        """MAE loss with fixed (epoch-independent) masks."""
        out = self._shared_step(batch, -1)
        b = batch['image_a'].shape[0] if 'image_a' in batch else batch['image'].shape[0]
        self.log('val_loss', out.loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=b, sync_dist=True)

    def on_train_epoch_start(self) -> None:
        """New random crops each epoch (datamodules with ``set_epoch``)."""
        dm = getattr(self.trainer, 'datamodule', None)
        if dm is not None and hasattr(dm, 'set_epoch'):
            dm.set_epoch(self.current_epoch)

    # -- export --------------------------------------------------------------------------------------------------------
    def export_encoder(self, path: str | os.PathLike[str], metadata: dict[str, Any] | None = None) -> str:
        """Write the encoder in the release key format (loads with ``smarties_vitb(weights=path)``)."""
        return self.model.export_encoder(path, metadata)

    def on_train_end(self) -> None:
        """Export the encoder to *export_path* (rank 0) when set."""
        path = self.hparams['export_path']
        if path and self.trainer.is_global_zero:
            self.export_encoder(path)
