"""The band mask of RandomBandSubset travels in the batch and reaches the model in every SMARTIES task."""

from types import SimpleNamespace
from typing import Any

import kornia.augmentation as K
import pytest
import torch
from tasks_synthetic import SyntheticDataModule

from torchgeo_smarties.errors import InputError
from torchgeo_smarties.tasks import SMARTIESClassification, SMARTIESSemanticSegmentation
from torchgeo_smarties.tasks.datamodules import _SmartiesNormalizeMixin
from torchgeo_smarties.transforms import RandomBandSubset


class MaskedDM(_SmartiesNormalizeMixin, SyntheticDataModule):
    """The SMARTIES data-module hook on the synthetic data, with spectral dropout as the batch augmentation."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        drop = RandomBandSubset(min_bands=3, max_bands=6, generator=torch.Generator().manual_seed(0))
        self.aug = K.AugmentationSequential(drop, data_keys=None, keepdim=True)


def _augmented_batch(kind: str = 'multiclass') -> tuple[dict[str, Any], torch.Tensor]:
    dm = MaskedDM(batch_size=4, kind=kind)
    dm.setup('fit')
    batch = next(iter(dm.train_dataloader()))
    clean = batch['image'].clone()
    dm.trainer = SimpleNamespace(training=True)  # type: ignore[assignment]
    return dm.on_after_batch_transfer(batch, 0), clean


def test_classification_forward_uses_the_batch_mask() -> None:
    batch, clean = _augmented_batch()
    mask = batch['band_mask']
    assert mask.shape == (4, 12) and not mask.all() and batch['image'][~mask].isnan().all()
    task = SMARTIESClassification(model='smarties_test_d2', in_channels=12, num_classes=3).eval()
    with torch.no_grad():
        with task._step(batch):
            out = task(batch['image'])
        ref = task.model(clean, band_mask=mask)  # the encoder's masked forward on the clean images
        unmasked = task.model(torch.nan_to_num(batch['image']))
    # same masked tokenizer on inputs that differ only in masked-out bands: equal up to float reassociation
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    assert (out - unmasked).abs().max() > 1e-3  # zeros fed as data would give another answer
    # the training step runs with the mask (NaN never reaches the loss)
    task.train()
    loss = task.training_step(batch, 0)
    assert bool(torch.isfinite(loss))


def test_plain_datamodule_nan_bands_are_masked() -> None:
    """Without batch['band_mask'] (a plain torchgeo data module), all-NaN bands count as dropped."""
    batch, clean = _augmented_batch()
    mask = batch.pop('band_mask')
    task = SMARTIESClassification(model='smarties_test_d2', in_channels=12, num_classes=3).eval()
    with torch.no_grad():
        with task._step(batch):
            out = task(batch['image'])
        ref = task.model(clean, band_mask=mask)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize('kind', ['unet', 'upernet'])
def test_segmentation_forward_uses_the_batch_mask(kind: str) -> None:
    batch, clean = _augmented_batch('segmentation')
    mask = batch['band_mask']
    task = SMARTIESSemanticSegmentation(model=kind, backbone='smarties_test_d4', in_channels=12, num_classes=3,
                                        decoder_channels=16).eval()
    with torch.no_grad():
        with task._step(batch):
            out = task(batch['image'])
        ref = task(clean, band_mask=mask)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_dpt_refuses_a_masked_batch() -> None:
    batch, _ = _augmented_batch('segmentation')
    task = SMARTIESSemanticSegmentation(model='dpt', backbone='smarties_test_d4', in_channels=12, num_classes=3)
    with pytest.raises(InputError, match="smp's DPT calls the encoder without it"), task._step(batch):
        task(batch['image'])
