"""Paired geometric augmentation of PairedDataModule training batches."""

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from torchgeo_smarties.errors import InputError
from torchgeo_smarties.tasks.paired_data import PairedDataModule, collate_pairs
from torchgeo_smarties.tasks.pretraining import SMARTIESPretraining

TINY = dict(bands_a='sentinel2_10m', bands_b=['sentinel2:B02', 'sentinel2:B03'], img_size=32, embed_dim=32,
            depth=1, num_heads=2, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2)


def datamodule(crop: str, **kw: Any) -> PairedDataModule:
    """Sensor b = the first two bands of sensor a (same raster, same grid): a deterministic function of a."""
    return PairedDataModule([(crop, crop)], 'sentinel2_10m', ['sentinel2:B02', 'sentinel2:B03'],
                            indexes_a=[2, 3, 4, 8], indexes_b=[2, 3], size=32, length=8, batch_size=4,
                            normalize_a='sentinel2_l1c', normalize_b='sentinel2_l1c', cache=True, **kw)


def raw_batch(dm: PairedDataModule) -> dict[str, Any]:
    dm.setup('fit')
    assert dm.train_dataset is not None
    return collate_pairs([dm.train_dataset[i] for i in range(4)])


def test_augmented_pair_stays_co_registered(crop: str) -> None:
    dm = datamodule(crop)
    batch = raw_batch(dm)
    assert torch.equal(batch['image_a'][:, :2], batch['image_b'])  # the construction
    dm.trainer = SimpleNamespace(training=True)  # type: ignore[assignment]
    out = dm.on_after_batch_transfer(batch, 0)
    assert out['image_a'].shape == (4, 4, 32, 32) and out['image_b'].shape == (4, 2, 32, 32)
    torch.testing.assert_close(out['image_a'][:, :2], out['image_b'], atol=1e-5, rtol=0)
    assert not torch.allclose(out['image_a'], batch['image_a'])  # really augmented
    assert out['bands_a'] == batch['bands_a'] and torch.equal(out['index'], batch['index'])
    # deterministic per (seed, epoch, index); a new epoch draws new augmentations
    again = dm.on_after_batch_transfer(batch, 0)
    assert torch.equal(again['image_a'], out['image_a'])
    one = dm.augment_batch({k: (v[1:2] if torch.is_tensor(v) else v) for k, v in batch.items()})
    assert torch.equal(one['image_a'][0], out['image_a'][1])  # independent of the batch composition
    dm.set_epoch(1)
    assert not torch.equal(dm.on_after_batch_transfer(batch, 0)['image_a'], out['image_a'])


def test_no_augmentation_when_off_or_not_training(crop: str) -> None:
    dm = datamodule(crop)
    batch = raw_batch(dm)
    dm.trainer = SimpleNamespace(training=False)  # type: ignore[assignment]  # validation / prediction
    assert dm.on_after_batch_transfer(batch, 0) is batch
    off = datamodule(crop, augment=False)
    off.trainer = SimpleNamespace(training=True)  # type: ignore[assignment]
    assert off.augmentation is None and off.on_after_batch_transfer(batch, 0) is batch


def test_per_pixel_masks_are_refused_and_bad_scale(crop: str) -> None:
    dm = datamodule(crop)
    batch = raw_batch(dm)
    with pytest.raises(InputError, match='per-pixel.*mask_a.*augment=False'):
        dm.augment_batch({**batch, 'mask_a': torch.ones(4, 32, 32)})
    with pytest.raises(InputError, match='crop_scale'):
        datamodule(crop, crop_scale=(0.0, 1.0))


class Capture(Callback):
    def __init__(self) -> None:
        self.train: list[dict[str, Any]] = []
        self.val: list[dict[str, Any]] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.train.append(batch)

    def on_validation_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int,
                                  dataloader_idx: int = 0) -> None:
        self.val.append(batch)


def test_trainer_augments_train_batches_only(tmp_path: Path, crop: str) -> None:
    dm = datamodule(crop, val_pairs=[(crop, crop)], val_length=4)
    cap = Capture()
    L.seed_everything(0)
    trainer = L.Trainer(accelerator='cpu', devices=1, max_steps=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=1, val_check_interval=1, default_root_dir=str(tmp_path), callbacks=[cap])
    trainer.fit(SMARTIESPretraining(**TINY), datamodule=dm)  # type: ignore[arg-type]
    assert cap.train and cap.val
    tb = cap.train[0]
    raw = collate_pairs([dm.train_dataset[int(i)] for i in tb['index']])  # type: ignore[index]
    assert not torch.allclose(tb['image_a'], raw['image_a'])
    torch.testing.assert_close(tb['image_a'][:, :2], tb['image_b'], atol=1e-5, rtol=0)
    vb = cap.val[0]
    raw_val = collate_pairs([dm.val_dataset[int(i)] for i in vb['index']])  # type: ignore[index]
    assert torch.equal(vb['image_a'], raw_val['image_a']) and torch.equal(vb['image_b'], raw_val['image_b'])
