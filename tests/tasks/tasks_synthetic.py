"""Synthetic torchgeo-style datasets / data modules and tiny SMARTIES timm models for the task tests."""

from typing import Any

import lightning
import torch
from timm.models import register_model
from torch import Tensor
from torchgeo.datamodules import NonGeoDataModule
from torchgeo.datasets import NonGeoDataset

from torchgeo_smarties.models import SMARTIESViT
from torchgeo_smarties.models.builders import _create

_TINY = {
    # matches tests/data/tiny_encoder.safetensors
    'smarties_test_d2': {'embed_dim': 64, 'depth': 2, 'num_heads': 4, 'img_size': 64},
    # DPT / UPerNet need >= 4 blocks
    'smarties_test_d4': {'embed_dim': 32, 'depth': 4, 'num_heads': 2, 'img_size': 32},
}


def _tiny(name: str, pretrained: bool, kwargs: dict[str, Any]) -> SMARTIESViT:
    for k, v in _TINY[name].items():
        kwargs.setdefault(k, v)
    # the ViT-B machinery (tags, weights lookup, filters) with a tiny architecture
    return _create('smarties_vit_base_patch16', pretrained, **kwargs)


@register_model
def smarties_test_d2(pretrained: bool = False, **kwargs: Any) -> SMARTIESViT:
    """Tiny test SMARTIES: 64-d, 2 blocks, 4 heads."""
    return _tiny('smarties_test_d2', pretrained, kwargs)


@register_model
def smarties_test_d4(pretrained: bool = False, **kwargs: Any) -> SMARTIESViT:
    """Tiny test SMARTIES: 32-d, 4 blocks, 2 heads."""
    return _tiny('smarties_test_d4', pretrained, kwargs)


class SyntheticDataset(NonGeoDataset):
    """A learnable toy dataset: the target is a function of per-class band offsets.

    kind: 'multiclass' ({'image', 'label'} int), 'multilabel' (multi-hot), 'regression' (float),
    'segmentation' ({'image', 'mask'}: class per 16x16 patch).
    """

    def __init__(self, split: str = 'train', kind: str = 'multiclass', num_classes: int = 3, channels: int = 12,
                 size: int = 64, length: int = 8, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed + {'train': 0, 'val': 1, 'test': 2, 'predict': 3}[split])
        self.kind, self.length = kind, length
        self.labels = torch.arange(length) % num_classes
        self.images = torch.randn(length, channels, size, size, generator=g) * 0.5
        proto = torch.randn(num_classes, channels, 1, 1, generator=torch.Generator().manual_seed(123))
        if kind == 'segmentation':
            p = size // 16
            self.masks = torch.randint(0, num_classes, (length, p, p), generator=g)
            up = self.masks.repeat_interleave(16, 1).repeat_interleave(16, 2)
            self.images += proto[up].squeeze(-1).squeeze(-1).permute(0, 3, 1, 2)
            self.masks = up
        else:
            self.images += proto[self.labels]
        self.num_classes = num_classes

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        x = self.images[i]
        if self.kind == 'segmentation':
            return {'image': x, 'mask': self.masks[i]}
        y = self.labels[i]
        if self.kind == 'multilabel':
            return {'image': x, 'label': torch.stack([y == c for c in range(self.num_classes)]).long()}
        if self.kind == 'regression':
            return {'image': x, 'label': y.float()}
        return {'image': x, 'label': y}


class SyntheticDataModule(NonGeoDataModule):
    """NonGeoDataModule over :class:`SyntheticDataset` (identity normalisation, predict split too)."""

    mean = torch.tensor(0.0)
    std = torch.tensor(1.0)

    def __init__(self, batch_size: int = 8, num_workers: int = 0, **kwargs: Any) -> None:
        super().__init__(SyntheticDataset, batch_size, num_workers, **kwargs)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == 'predict':
            self.predict_dataset = SyntheticDataset(split='predict', **self.kwargs)


class LossRecorder(lightning.Callback):
    """Collects the training loss of every step."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = outputs['loss'] if isinstance(outputs, dict) else outputs
        self.losses.append(float(loss))


def trainer(steps: int = 6, callbacks: list[Any] | None = None) -> lightning.Trainer:
    """A quiet CPU trainer."""
    return lightning.Trainer(
        accelerator='cpu', max_steps=steps, max_epochs=steps, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, log_every_n_steps=1,
        callbacks=callbacks or [],
    )


def run_all(task: lightning.LightningModule, dm: SyntheticDataModule, steps: int = 6) -> tuple[list[float], Any]:
    """fit (asserting the loss decreases), validate, test, predict; returns (losses, predictions)."""
    rec = LossRecorder()
    tr = trainer(steps, [rec])
    tr.fit(task, datamodule=dm)
    assert len(rec.losses) == steps
    assert min(rec.losses[-2:]) < rec.losses[0], rec.losses
    val = tr.validate(task, datamodule=dm, verbose=False)
    assert 'val_loss' in val[0]
    test = tr.test(task, datamodule=dm, verbose=False)
    assert 'test_loss' in test[0]
    preds = tr.predict(task, datamodule=dm)
    assert preds is not None and len(preds) >= 1
    return rec.losses, preds
