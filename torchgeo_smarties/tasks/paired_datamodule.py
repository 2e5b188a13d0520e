"""Batches of paired samples: collation and the Lightning data module for pretraining.

.. versionadded:: 0.1
"""

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import torch
from lightning import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader

from ..errors import ImageSizeError, InputError
from ..spectrum import ProjectionPlan
from ..transforms.paired import PairedGeometric
from .paired_raster import PairedRasterDataset

__all__ = ('PairedDataModule', 'collate_pairs', 'transfer_keeping_plans')

_AUG_SALT = 0x5A17  # separates the augmentation draws from the crop/mask draws of the same (seed, epoch, index)


def transfer_keeping_plans(batch: Any, move: Callable[[Any], Any]) -> Any:
    """Apply *move* (Lightning's device transfer) to a dict batch without its ``ProjectionPlan`` entries.

    Lightning's ``apply_to_collection`` rebuilds dataclasses field by field, which a frozen plan refuses.
    """
    if not isinstance(batch, dict):
        return move(batch)
    plans = {k: v for k, v in batch.items() if isinstance(v, ProjectionPlan)}
    moved = move({k: v for k, v in batch.items() if k not in plans})
    return {**moved, **plans}


def collate_pairs(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack paired samples; all must share band sets (``ProjectionPlan``, passed through) and sizes.

    Raises:
        ImageSizeError: if the images of the batch differ in shape.
        InputError: if the samples mix band sets.
    """
    if not samples:
        raise InputError('empty batch')
    out: dict[str, Any] = {}
    for key in ('image_a', 'image_b'):
        if key not in samples[0]:
            continue
        shapes = {tuple(s[key].shape) for s in samples}
        if len(shapes) != 1:
            raise ImageSizeError(
                f'batch with mismatched {key} shapes {sorted(shapes)}; crop/resize every sample to the same size'
            )
        out[key] = torch.stack([s[key] for s in samples])
    if 'image_a' in out and 'image_b' in out and out['image_a'].shape[-2:] != out['image_b'].shape[-2:]:
        raise ImageSizeError(
            f'sensor a is {tuple(out["image_a"].shape[-2:])} px and sensor b {tuple(out["image_b"].shape[-2:])} px; '
            'a pair must be resampled to the same size'
        )
    for key in ('bands_a', 'bands_b'):
        if key in samples[0]:
            vals = {s[key] for s in samples}  # ProjectionPlans (hashable) or band-id strings
            if len(vals) != 1:
                shown = sorted(','.join(v.bands) if isinstance(v, ProjectionPlan) else str(v) for v in vals)
                raise InputError(f'batch mixes band sets for {key}: {shown}; batch pairs of one band set')
            out[key] = samples[0][key]
    if 'index' in samples[0]:
        out['index'] = torch.tensor([int(s['index']) for s in samples])
    return out


class PairedDataModule(LightningDataModule):
    """LightningDataModule over :class:`PairedRasterDataset` (train, optional val pairs).

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        pairs: list[tuple[str | list[str], str | list[str]]],
        bands_a: str | list[str],
        bands_b: str | list[str],
        *,
        val_pairs: list[tuple[str | list[str], str | list[str]]] | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        size: int = 224,
        length: int = 1000,
        val_length: int = 64,
        res: float | None = None,
        indexes_a: list[int] | None = None,
        indexes_b: list[int] | None = None,
        roi: list[float] | None = None,
        val_roi: list[float] | None = None,
        reproject_to: Literal['a', 'b'] | None = None,
        normalize_a: str | None = None,
        normalize_b: str | None = None,
        cache: bool = False,
        seed: int = 0,
        augment: bool = True,
        crop_scale: tuple[float, float] = (0.25, 1.0),
    ) -> None:
        """Initialize a new PairedDataModule (arguments as :class:`PairedRasterDataset`; *batch_size* per process).

        With *augment* (default) training batches get the release's paired geometric augmentation on the
        device after transfer: the same random resized crop (area *crop_scale* as a fraction of the crop,
        aspect 1), flips and rot90 on both images of a pair
        (:class:`~torchgeo_smarties.transforms.PairedGeometric`), drawn per sample from (*seed*, epoch,
        ``index``). Validation and prediction batches are untouched.
        """
        super().__init__()
        if not (0.0 < crop_scale[0] <= crop_scale[1] <= 1.0):
            raise InputError(f'crop_scale must satisfy 0 < min <= max <= 1, got {tuple(crop_scale)}')
        self.save_hyperparameters()
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.train_dataset: PairedRasterDataset | None = None
        self.val_dataset: PairedRasterDataset | None = None
        self.augmentation: PairedGeometric | None = (
            PairedGeometric(size, scale=(float(crop_scale[0]), float(crop_scale[1])), ratio=(1.0, 1.0))
            if augment else None
        )
        self.epoch = 0

    def _dataset(self, pairs: Any, roi: Any, length: int, random_crop: bool) -> PairedRasterDataset:
        h = self.hparams
        return PairedRasterDataset(
            [tuple(p) for p in pairs], h['bands_a'], h['bands_b'], size=h['size'], length=length, res=h['res'],
            indexes_a=h['indexes_a'], indexes_b=h['indexes_b'], roi=tuple(roi) if roi is not None else None,
            reproject_to=h['reproject_to'], normalize_a=h['normalize_a'], normalize_b=h['normalize_b'],
            cache=h['cache'], seed=h['seed'], random_crop=random_crop,
        )

    def setup(self, stage: str | None = None) -> None:
        """Open the rasters (checks pairing, overlap, CRS and bands)."""
        h = self.hparams
        if self.train_dataset is None:
            self.train_dataset = self._dataset(h['pairs'], h['roi'], h['length'], True)
        if self.val_dataset is None and (h['val_pairs'] or h['val_roi']):
            self.val_dataset = self._dataset(h['val_pairs'] or h['pairs'], h['val_roi'], h['val_length'], False)

    def train_dataloader(self) -> DataLoader[dict[str, Any]]:
        """Training batches (random crops seeded by index and epoch; under DDP an unshuffled DistributedSampler)."""
        assert self.train_dataset is not None
        sampler: Any = None
        trainer = getattr(self, 'trainer', None)
        if trainer is not None and trainer.world_size > 1:
            # unshuffled (crops are already random per index and epoch): rank r takes r, r + W, ... so that
            # the global batch of step k is the same samples as with one process and W× the batch size
            from torch.utils.data import DistributedSampler

            sampler = DistributedSampler(self.train_dataset, num_replicas=trainer.world_size,
                                         rank=trainer.global_rank, shuffle=False, drop_last=True)
        return DataLoader(self.train_dataset, batch_size=self.batch_size, shuffle=False, drop_last=True,
                          num_workers=self.num_workers, collate_fn=collate_pairs, sampler=sampler,
                          persistent_workers=False)

    def val_dataloader(self) -> DataLoader[dict[str, Any]]:
        """Validation batches (fixed tiles)."""
        if self.val_dataset is None:
            return []  # type: ignore[return-value]
        return DataLoader(self.val_dataset, batch_size=self.batch_size, shuffle=False,
                          num_workers=self.num_workers, collate_fn=collate_pairs)

    def set_epoch(self, epoch: int) -> None:
        """New random crops (and augmentations) each epoch."""
        self.epoch = int(epoch)
        if self.train_dataset is not None:
            self.train_dataset.set_epoch(epoch)

    def augment_batch(self, batch: dict[str, Any], epoch: int | None = None) -> dict[str, Any]:
        """Apply the paired geometric augmentation to a collated batch (on its device).

        With ``index`` in the batch each sample's crop/flip/rot90 is drawn from a generator seeded by
        (seed, epoch, index), so augmentations are reproducible, survive resume and do not depend on the
        number of processes; without it one draw for the batch comes from torch's global RNG
        (``seed_everything``).

        Raises:
            InputError: if the batch holds other per-pixel tensors (e.g. masks), which would not be transformed.
        """
        aug = self.augmentation
        if aug is None:
            return batch
        extra = [k for k, v in batch.items()
                 if k not in aug.keys and isinstance(v, Tensor) and v.ndim >= 3]
        if extra:
            raise InputError(
                f'the paired augmentation transforms only {aug.keys}, but the batch also holds per-pixel tensors '
                f'{sorted(extra)}; pass augment=False or drop them'
            )
        ep = self.epoch if epoch is None else int(epoch)
        index = batch.get('index')
        out = dict(batch)
        a, b = batch[aug.keys[0]], batch[aug.keys[1]]
        if index is None:
            out[aug.keys[0]], out[aug.keys[1]] = aug(a, b)
            return out
        outs_a, outs_b = [], []
        for i, idx in enumerate(index.tolist()):
            ss = np.random.SeedSequence([int(self.hparams['seed']), _AUG_SALT, ep % 2**32, int(idx)])
            seed = int(ss.generate_state(1)[0])
            ra, rb = aug(a[i:i + 1], b[i:i + 1], generator=torch.Generator().manual_seed(seed))
            outs_a.append(ra)
            outs_b.append(rb)
        out[aug.keys[0]], out[aug.keys[1]] = torch.cat(outs_a), torch.cat(outs_b)
        return out

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Move the tensors; the batch's :class:`ProjectionPlan` values (frozen, not tensors) pass unchanged."""
        return transfer_keeping_plans(batch, lambda b: super(PairedDataModule, self).transfer_batch_to_device(
            b, device, dataloader_idx))

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augment training batches on the device; validation/prediction batches pass unchanged."""
        trainer = getattr(self, 'trainer', None)
        if self.augmentation is not None and trainer is not None and trainer.training and isinstance(batch, dict):
            return self.augment_batch(batch)
        return batch
