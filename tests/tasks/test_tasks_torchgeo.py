"""torchgeo's own tasks (and the deprecated torchgeo.trainers aliases) select SMARTIES by name."""

import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tasks_synthetic import SyntheticDataModule, run_all
from torchgeo.tasks import Classification, Regression, SemanticSegmentation

from torchgeo_smarties.errors import BandCountError, UnknownPresetError
from torchgeo_smarties.models import SMARTIESBase16_Weights, SMARTIESViT, from_release_keys


def _assert_loaded(model: torch.nn.Module, path: Path) -> None:
    sd = from_release_keys(load_file(str(path)))  # the file has the release's names (spectrum_projection.*)
    own = model.state_dict()
    for k in ('cls_token', 'patch_embed.spectrum_embeds.3.proj.weight', 'blocks.1.mlp.fc2.weight', 'norm.bias'):
        assert torch.equal(own[k], sd[k].to(own[k].dtype)), k


@pytest.mark.parametrize('freeze', [False, True])
def test_classification_fit(freeze: bool) -> None:
    task = Classification(model='smarties_test_d2.eurosat', in_channels=13, num_classes=3, lr=3e-3,
                          freeze_backbone=freeze)
    assert isinstance(task.model, SMARTIESViT)
    assert task.model.bands[-1] == 'sentinel2:B8A'  # the tag picked EuroSAT's order
    trainable = {n for n, p in task.model.named_parameters() if p.requires_grad}
    assert trainable == ({'head.weight', 'head.bias'} if freeze else trainable)
    before = task.model.blocks[0].attn.qkv.weight.detach().clone()
    dm = SyntheticDataModule(batch_size=8, channels=13, num_classes=3)
    _, preds = run_all(task, dm)
    assert preds[0].shape == (8, 3)
    torch.testing.assert_close(preds[0].sum(1), torch.ones(8))  # softmax probabilities
    assert torch.equal(task.model.blocks[0].attn.qkv.weight, before) == freeze


def test_multilabel_fit() -> None:
    task = Classification(model='smarties_test_d2.sentinel2_l2a', in_channels=12, task='multilabel', num_labels=4,
                          loss='bce', lr=3e-3)
    dm = SyntheticDataModule(batch_size=8, kind='multilabel', num_classes=4)
    _, preds = run_all(task, dm)
    assert preds[0].shape == (8, 4) and ((preds[0] >= 0) & (preds[0] <= 1)).all()


@pytest.mark.parametrize('freeze', [False, True])
def test_regression_fit(freeze: bool) -> None:
    task = Regression(model='smarties_test_d2.sentinel1', in_channels=2, num_outputs=1, lr=3e-3,
                      freeze_backbone=freeze)
    dm = SyntheticDataModule(batch_size=8, kind='regression', channels=2, num_classes=3)
    _, preds = run_all(task, dm)
    assert preds[0].shape == (8, 1)


@pytest.mark.parametrize('freeze', [False, True])
def test_dpt_segmentation_fit(freeze: bool) -> None:
    task = SemanticSegmentation(model='dpt', backbone='tu-smarties_test_d4.sentinel2_l2a', in_channels=12,
                                num_classes=3, lr=3e-3 if freeze else 3e-4, freeze_backbone=freeze)
    enc = task.model.encoder.model
    assert isinstance(enc, SMARTIESViT)
    assert any(p.requires_grad for p in enc.parameters()) == (not freeze)
    dm = SyntheticDataModule(batch_size=4, kind='segmentation', size=32, num_classes=3)
    _, preds = run_all(task, dm, steps=4)
    probs = preds[0]['probabilities']
    assert probs.shape == (4, 3, 32, 32)
    torch.testing.assert_close(probs.sum(1), torch.ones(4, 32, 32))


def test_dpt_needs_four_blocks() -> None:
    with pytest.raises(ValueError, match='Depth of the encoder'):
        SemanticSegmentation(model='dpt', backbone='tu-smarties_test_d2', in_channels=12, num_classes=2)


def test_deprecated_trainers_aliases() -> None:
    from torchgeo import trainers

    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        c = trainers.ClassificationTask(model='smarties_test_d2', in_channels=12, num_classes=5)
        m = trainers.MultiLabelClassificationTask(model='smarties_test_d2', in_channels=12, num_classes=5)
        r = trainers.RegressionTask(model='smarties_test_d2.sentinel1', in_channels=2, num_outputs=2)
        s = trainers.SemanticSegmentationTask(model='dpt', backbone='tu-smarties_test_d4', in_channels=12,
                                              num_classes=2)
    x = torch.randn(2, 12, 32, 32)
    assert c(x).shape == (2, 5) and m(x).shape == (2, 5) and m.hparams['task'] == 'multilabel'
    assert r(torch.randn(2, 2, 32, 32)).shape == (2, 2)
    assert s(x).shape == (2, 2, 32, 32)


def test_weights_true_uses_local_release_file(hub_weights: Path) -> None:
    task = Classification(model='smarties_test_d2', in_channels=12, num_classes=3, weights=True)
    _assert_loaded(task.model, hub_weights)


def test_weights_enum_and_name(hub_weights: Path) -> None:
    # torchgeo's utils.load_state_dict follows the first child chain to patch_embed.spectrum_embeds.0.proj (256)
    for w in (SMARTIESBase16_Weights.SMARTIES_V1, 'SMARTIESBase16_Weights.SMARTIES_V1'):
        task = Classification(model='smarties_test_d2', in_channels=12, num_classes=3, weights=w)
        _assert_loaded(task.model, hub_weights)


def test_demo_weight_by_its_torchgeo_name() -> None:
    # torchgeo spells the demo weight by its enum name ('demo' is the SMARTIES tasks' / CLI's shorthand)
    from torchgeo.models import get_model, get_weight

    from torchgeo_smarties.models import SMARTIESTiny16_Weights

    w = get_weight('SMARTIESTiny16_Weights.DEMO')
    assert w is SMARTIESTiny16_Weights.DEMO and w.meta['model'] == 'smarties_vit_tiny_patch16'
    sd = w.get_state_dict()
    task = Classification(model=w.meta['model'], weights='SMARTIESTiny16_Weights.DEMO', in_channels=13,
                          num_classes=3)
    built = get_model(w.meta['model'], weights=w)
    for model in (task.model, built):
        own = model.state_dict()
        assert all(torch.equal(own[k], v.to(own[k].dtype)) for k, v in sd.items())  # every encoder tensor loaded
    assert task(torch.randn(2, 13, 32, 32)).shape == (2, 3)


def test_lightning_ckpt_roundtrip(tmp_path: Path) -> None:
    from tasks_synthetic import trainer

    task = Classification(model='smarties_test_d2', in_channels=12, num_classes=3)
    tr = trainer(1)
    tr.fit(task, datamodule=SyntheticDataModule(batch_size=8))
    ckpt = tmp_path / 'run.ckpt'
    tr.save_checkpoint(ckpt)
    again = Classification(model='smarties_test_d2', in_channels=12, num_classes=3, weights=str(ckpt))
    for k, v in task.model.state_dict().items():
        assert torch.equal(again.model.state_dict()[k], v), k


def test_errors() -> None:
    with pytest.raises(BandCountError, match='in_chans=12 but the band set has 13 bands'):
        Classification(model='smarties_test_d2.eurosat', in_channels=12, num_classes=3)
    with pytest.raises(UnknownPresetError, match='unknown tag'):
        Classification(model='smarties_test_d2.not_a_preset', in_channels=12, num_classes=3)
