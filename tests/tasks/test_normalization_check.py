"""Tasks given a SMARTIES weight warn when the data module's normalisation differs from the weights'."""

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kornia.augmentation as K
import lightning
import numpy as np
import pytest
import rasterio
import torch
import torchvision
from torchgeo.datamodules import EuroSATDataModule
from torchgeo.tasks import Classification

from torchgeo_smarties.errors import NormalizationMismatchWarning
from torchgeo_smarties.models import SMARTIESBase16_Weights, SMARTIESTiny16_Weights
from torchgeo_smarties.tasks import (
    NormalizationCheck,
    SMARTIESClassification,
    SMARTIESEuroSATDataModule,
    smarties_normalize_for,
)
from torchgeo_smarties.tasks.normalization_check import normalization_mismatch
from torchgeo_smarties.transforms import SmartiesNormalize

DEMO = SMARTIESTiny16_Weights.DEMO
#: torchgeo's EuroSAT band names in the demo member's (Sentinel-2 L1C) channel order: B8A after B08.
L1C_ORDER = [b.split(':')[1] for b in DEMO.meta['bands']]
CLASSES = ('Forest', 'River')


@pytest.fixture(scope='module')
def eurosat_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny dataset in torchgeo's EuroSAT layout: 2 classes × 3 images of 13 bands, 32×32 uint16 DNs."""
    root = tmp_path_factory.mktemp('eurosat')
    tif = root / 'ds' / 'images' / 'remote_sensing' / 'otherDatasets' / 'sentinel_2' / 'tif'
    rng = np.random.default_rng(0)
    names = []
    for k, cls in enumerate(CLASSES):
        (tif / cls).mkdir(parents=True)
        for i in range(3):
            data = rng.integers(500, 3000, (13, 32, 32)).astype('uint16') + 500 * k
            profile = {'driver': 'GTiff', 'width': 32, 'height': 32, 'count': 13, 'dtype': 'uint16',
                       'transform': rasterio.transform.from_origin(0, 320, 10, 10)}
            with rasterio.open(tif / cls / f'{cls}_{i}.tif', 'w', **profile) as dst:
                dst.write(data)
            names.append(f'{cls}_{i}.jpg')
    for split in ('train', 'val', 'test'):
        (root / f'eurosat-{split}.txt').write_text('\n'.join(names) + '\n')
    return root


def _trainer(callbacks: list[Any] | None = None) -> lightning.Trainer:
    return lightning.Trainer(
        accelerator='cpu', max_steps=1, limit_val_batches=1, limit_test_batches=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=callbacks or [],
    )


@contextmanager
def _no_mismatch() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter('error', NormalizationMismatchWarning)
        yield


def _torchgeo_task() -> Classification:
    return Classification(model='smarties_vit_tiny_patch16', weights='SMARTIESTiny16_Weights.DEMO', in_channels=13,
                          num_classes=2)


def test_torchgeo_task_with_torchgeo_normalisation_warns(eurosat_root: Path) -> None:
    dm = EuroSATDataModule(root=str(eurosat_root), batch_size=2, bands=L1C_ORDER)
    with pytest.warns(NormalizationMismatchWarning) as record:
        _trainer([NormalizationCheck()]).fit(_torchgeo_task(), datamodule=dm)
    messages = [str(w.message) for w in record if issubclass(w.category, NormalizationMismatchWarning)]
    assert len(messages) == 1  # train and val share `aug`: one warning
    msg = messages[0]
    assert msg.startswith('EuroSATDataModule.aug normalises with K.Normalize(mean=[')
    assert 'SMARTIESTiny16_Weights.DEMO expects the SMARTIES normalisation of ' in msg
    assert 'datamodule.aug = SMARTIESTiny16_Weights.DEMO.transforms' in msg


def test_torchgeo_task_with_the_weights_transforms_is_silent(eurosat_root: Path) -> None:
    dm = EuroSATDataModule(root=str(eurosat_root), batch_size=2, bands=L1C_ORDER)
    dm.aug = DEMO.transforms  # what the warning recommends
    task = _torchgeo_task()
    trainer = _trainer([NormalizationCheck()])
    with _no_mismatch():
        trainer.fit(task, datamodule=dm)
        trainer.test(task, datamodule=dm, verbose=False)
    assert NormalizationCheck().check(trainer, task, 'fit') == []
    # the recommended transforms do normalise the torchgeo batch: SMARTIES values are O(1) z-scores, not DNs
    batch = next(iter(dm.train_dataloader()))
    x = dm.aug(batch)['image']
    assert float(x.abs().max()) < 20 and float(batch['image'].min()) >= 500


def test_smarties_task_checks_by_itself(eurosat_root: Path) -> None:
    task = SMARTIESClassification(model='smarties_vit_tiny_patch16', weights='demo', in_channels=13, num_classes=2,
                                  bands=[f'sentinel2:{b}' for b in L1C_ORDER])
    dm = EuroSATDataModule(root=str(eurosat_root), batch_size=2, bands=L1C_ORDER)
    with pytest.warns(NormalizationMismatchWarning, match='EuroSATDataModule.aug normalises with K.Normalize'):
        _trainer().fit(task, datamodule=dm)  # no callback given: the task brings it
    with pytest.warns(NormalizationMismatchWarning, match='EuroSATDataModule.aug normalises'):
        _trainer().test(task, datamodule=dm, verbose=False)
    # the SMARTIES EuroSAT data module (the release's EuroSAT statistics preset) is the release's recipe
    task = SMARTIESClassification(model='smarties_vit_tiny_patch16', weights='demo', in_channels=13, num_classes=2,
                                  bands='eurosat')
    with _no_mismatch():
        _trainer().fit(task, datamodule=SMARTIESEuroSATDataModule(root=str(eurosat_root), batch_size=2))


def test_smarties_fit_adds_the_check() -> None:
    from torchgeo_smarties.tasks.cli import build_cli

    cli = build_cli(['--config', 'eurosat_classification', '--model.init_args.weights', 'null',
                     '--trainer.accelerator', 'cpu', '--trainer.logger', 'false'], run=False)
    assert sum(isinstance(cb, NormalizationCheck) for cb in cli.trainer.callbacks) == 1


def _explicit(stats_scale: float = 1.0, digits: int | None = None, bands: list[str] | None = None
              ) -> SmartiesNormalize:
    """The demo member's normalisation rebuilt from explicit (optionally rounded or scaled) statistics."""
    s = DEMO.transforms.normalize.stats
    keep = [s.bands.index(b) for b in bands] if bands else range(len(s.bands))

    def col(v: tuple[float, ...], scale: float = 1.0) -> list[float]:
        out = [v[i] * scale for i in keep]
        return [float(f'{x:.{digits}g}') for x in out] if digits else out

    return SmartiesNormalize(col(s.p1), col(s.p99), col(s.mean, stats_scale), col(s.std),
                             bands=bands or list(s.bands))


def test_mismatch_rules() -> None:
    where = 'DM.aug'
    # statistics copied with 4 significant digits agree within the tolerance; 5% off does not
    assert normalization_mismatch(DEMO, [_explicit(digits=4)], where) is None
    msg = normalization_mismatch(DEMO, [_explicit(stats_scale=1.05)], where)
    assert msg is not None and 'SmartiesNormalize(' in msg
    assert "which differs from the weights' normalisation by up to" in msg
    # channels are aligned by band id: a reordered subset with the member's statistics matches
    assert normalization_mismatch(DEMO, [_explicit(bands=['sentinel2:B8A', 'sentinel2:B02'])], where) is None
    # another sensor's bands: nothing to compare; a release preset: accepted (the release's own recipe)
    assert normalization_mismatch(DEMO, [SmartiesNormalize([0.0], [1.0], [0.5], [0.2], bands=['sentinel1:VV'])],
                                  where) is None
    assert normalization_mismatch(DEMO, [SmartiesNormalize.from_preset('eurosat')], where) is None
    # ... also assembled band by band from presets (the SMARTIES BigEarthNet / SEN12MS data modules)
    mixed = smarties_normalize_for(['sentinel1:VV', 'sentinel2:B04', 'sentinel2:B8A'], 'bigearthnet_s2')
    assert mixed.method != 'preset' and normalization_mismatch(DEMO, [mixed], where) is None
    # the clip is part of the normalisation: the same affine map without it differs
    zscore = SmartiesNormalize.from_preset('sentinel2_l1c', mode='zscore')
    assert "differs from the weights' normalisation" in (normalization_mismatch(DEMO, [zscore], where) or '')
    # no step, two steps, a channel count that does not fit
    assert 'has no normalisation step' in (normalization_mismatch(DEMO, [], where) or '')
    twice = normalization_mismatch(DEMO, [K.Normalize(0.0, 255.0), DEMO.transforms], where)
    assert twice is not None and twice.startswith("DM.aug normalises twice: K.Normalize(mean=0, std=255) (torchgeo's")
    tv = normalization_mismatch(DEMO, [torchvision.transforms.v2.Normalize([0.0] * 13, [10000.0] * 13)], where)
    assert tv is not None and tv.startswith('DM.aug normalises with torchvision Normalize(mean=[0, 0, 0, 0, …]')
    three = normalization_mismatch(DEMO, [K.Normalize(torch.zeros(3), torch.ones(3))], where)
    assert three is not None and 'normalises 3 channels' in three and 'is for 13 bands' in three
    # nothing to compare: no SMARTIES member, or an opaque pipeline
    for weights in (None, True, False, 'null', str(Path(__file__))):
        assert normalization_mismatch(weights, [], where) is None
    assert normalization_mismatch(DEMO, None, where) is None
    # enum members and their names work alike
    l2a = SMARTIESBase16_Weights.SENTINEL2_L2A_SMARTIES
    for weights in (l2a, 'SMARTIESBase16_Weights.SENTINEL2_L2A_SMARTIES'):
        text = normalization_mismatch(weights, [K.Normalize(0.0, 10000.0)], where)
        assert text is not None and "SMARTIESBase16_Weights.SENTINEL2_L2A_SMARTIES expects the SMARTIES " \
            "normalisation of 'sentinel2_l2a'" in text
    assert normalization_mismatch(l2a, [l2a.transforms], where) is None
