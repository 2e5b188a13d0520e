"""DDP (2 CPU processes, gloo) gives the same loss curve as 1 process with the same global batch.

Slow (spawns processes): ``pytest -m slow tests/pretrain/test_ddp.py``.
"""

import json
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from torchgeo_smarties.tasks.paired_data import PairedDataModule
from torchgeo_smarties.tasks.pretraining import SMARTIESPretraining

TINY = dict(bands_a='sentinel2_10m', bands_b='sentinel2_20m', img_size=32, embed_dim=32, depth=1, num_heads=2,
            decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2, lr=1e-3, warmup_steps=2)


class GlobalLoss(Callback):
    """Rank-averaged loss and LR per step, written by rank 0."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.rows: list[list[Any]] = []

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = trainer.strategy.reduce(outputs['loss'].detach(), reduce_op='mean')
        idx = pl_module.all_gather(batch['index']).reshape(-1).tolist()
        self.rows.append([float(loss), trainer.optimizers[0].param_groups[0]['lr'], sorted(idx)])

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if trainer.is_global_zero:
            Path(self.path).write_text(json.dumps(self.rows))


def fit(crop: str, devices: int, batch_size: int, out: str, root: str) -> list[list[float]]:
    dm = PairedDataModule([(crop, crop)], 'sentinel2_10m', 'sentinel2_20m', indexes_a=[2, 3, 4, 8],
                          indexes_b=[5, 6, 7, 9, 12, 13], size=32, length=16, batch_size=batch_size,
                          normalize_a='sentinel2_l1c', normalize_b='sentinel2_l1c', cache=True)
    L.seed_everything(0)
    task = SMARTIESPretraining(**TINY)  # type: ignore[arg-type]
    trainer = L.Trainer(accelerator='cpu', devices=devices, strategy='ddp_spawn' if devices > 1 else 'auto',
                        max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=root, callbacks=[GlobalLoss(out)])
    trainer.fit(task, datamodule=dm)
    rows: list[list[Any]] = json.loads(Path(out).read_text())
    return rows


@pytest.mark.slow
def test_ddp_two_processes_match_one(tmp_path: Path, crop: str) -> None:
    torch.set_num_threads(1)
    one = fit(crop, 1, 4, str(tmp_path / 'one.json'), str(tmp_path / 'r1'))
    two = fit(crop, 2, 2, str(tmp_path / 'two.json'), str(tmp_path / 'r2'))  # 2 × 2 = the same global batch 4
    assert len(one) == len(two) == 8
    print('1 process :', one)
    print('2 processes:', two)
    for (l1, lr1, i1), (l2, lr2, i2) in zip(one, two, strict=True):
        assert i1 == i2  # the same global batch
        assert lr1 == pytest.approx(lr2, rel=1e-9)
        assert l1 == pytest.approx(l2, rel=1e-4, abs=1e-5)
