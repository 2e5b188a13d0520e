"""The SMARTIES task subclasses: band sets, release-format weights, UPerNet/linear probes, fusion, errors."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from tasks_synthetic import SyntheticDataModule, run_all

from torchgeo_smarties.errors import BandCountError, CheckpointError, ImageSizeError, InputError, UnknownPresetError
from torchgeo_smarties.models import SMARTIESViT
from torchgeo_smarties.tasks import (
    SMARTIESClassification,
    SMARTIESFusion,
    SMARTIESLinearSegmentation,
    SMARTIESRegression,
    SMARTIESSemanticSegmentation,
    SMARTIESUPerNet,
)


def _encoder_equal(enc: torch.nn.Module, sd: dict[str, torch.Tensor]) -> None:
    own = enc.state_dict()
    for k, v in sd.items():
        if k in own:
            assert torch.equal(own[k], v.to(own[k].dtype)), k


@pytest.mark.parametrize('freeze', [False, True])
def test_classification_release_weights_fit(tiny_weights: Path, freeze: bool) -> None:
    task = SMARTIESClassification(model='smarties_test_d2', weights=str(tiny_weights), in_channels=13,
                                  bands='eurosat', num_classes=3, lr=3e-3, freeze_backbone=freeze,
                                  head='probe' if freeze else 'linear')
    _encoder_equal(task.model, load_file(str(tiny_weights)))
    assert task.hparams['bands'] == 'eurosat'
    if freeze:
        assert {n for n, p in task.model.named_parameters() if p.requires_grad} == {'head.1.weight', 'head.1.bias'}
        assert isinstance(task.model.head[0], torch.nn.BatchNorm1d)
    _, preds = run_all(task, SyntheticDataModule(batch_size=8, channels=13, num_classes=3))
    assert preds[0].shape == (8, 3)


def test_regression_release_weights_layer_decay(tiny_weights: Path) -> None:
    task = SMARTIESRegression(model='smarties_test_d2.sentinel1', weights=tiny_weights, in_channels=2,
                              layer_decay=0.75, lr=3e-3)
    opt = task.configure_optimizers()['optimizer']
    scales = {n: g['lr_scale'] for g in opt.param_groups for n in g['names']}
    assert scales['blocks.0.attn.qkv.weight'] == pytest.approx(0.75**2)
    assert scales['patch_embed.spectrum_embeds.0.proj.weight'] == 1.0 == scales['head.weight']
    run_all(task, SyntheticDataModule(batch_size=8, kind='regression', channels=2))


@pytest.mark.parametrize('freeze', [True, False])
def test_upernet_probe_fit(tmp_path: Path, freeze: bool) -> None:
    # a release-format depth-4 checkpoint (DPT/UPerNet need 4 blocks)
    src = SMARTIESViT(embed_dim=32, depth=4, num_heads=2, img_size=32)
    path = tmp_path / 'd4.safetensors'
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    task = SMARTIESSemanticSegmentation(model='upernet', backbone='smarties_test_d4', weights=str(path),
                                        in_channels=12, num_classes=3, freeze_backbone=freeze,
                                        decoder_channels=16, lr=3e-3 if freeze else 1e-3)
    assert isinstance(task.model, SMARTIESUPerNet) and task.model.layer_indices == (0, 1, 2, 3)
    _encoder_equal(task.model.encoder, src.state_dict())
    assert all(not p.requires_grad for p in task.model.encoder.parameters()) == freeze
    before = task.model.encoder.blocks[0].mlp.fc1.weight.detach().clone()
    _, preds = run_all(task, SyntheticDataModule(batch_size=4, kind='segmentation', size=64), steps=5)
    assert preds[0]['probabilities'].shape == (4, 3, 64, 64)
    assert torch.equal(task.model.encoder.blocks[0].mlp.fc1.weight, before) == freeze


def test_linear_seg_and_dpt_subclass(tiny_weights: Path) -> None:
    task = SMARTIESSemanticSegmentation(model='linear', backbone='smarties_test_d2', weights=tiny_weights,
                                        in_channels=12, num_classes=3, lr=1e-2)
    assert isinstance(task.model, SMARTIESLinearSegmentation)
    assert [n for n, p in task.model.named_parameters() if p.requires_grad] == ['decoder.conv.weight',
                                                                              'decoder.conv.bias']
    run_all(task, SyntheticDataModule(batch_size=4, kind='segmentation', size=64), steps=5)
    dpt = SMARTIESSemanticSegmentation(model='dpt', backbone='tu-smarties_test_d4', bands='eurosat',
                                       in_channels=13, num_classes=2).eval()
    assert dpt.model.encoder.model.bands[-1] == 'sentinel2:B8A'
    assert dpt(torch.randn(1, 13, 32, 32)).shape == (1, 2, 32, 32)
    with pytest.raises(ImageSizeError, match='not a multiple of the patch size 16'):
        dpt(torch.randn(1, 13, 40, 40))


@pytest.mark.parametrize('freeze', [True, False])
def test_fusion_mixup_concat_fit(tiny_weights: Path, freeze: bool) -> None:
    task = SMARTIESClassification(model='smarties_test_d2', weights=tiny_weights, in_channels=14,
                                  bands='bigearthnet_s1', bands_b='bigearthnet_s2', fusion='mixup_concat',
                                  task='multilabel', num_labels=3, loss='bce', lr=3e-3, freeze_backbone=freeze)
    assert isinstance(task.model, SMARTIESFusion) and task.model.num_features == 128
    _encoder_equal(task.model.encoder, load_file(str(tiny_weights)))
    _, preds = run_all(task, SyntheticDataModule(batch_size=8, kind='multilabel', channels=14, num_classes=3))
    assert preds[0].shape == (8, 3)


def test_fusion_strategies_and_determinism() -> None:
    enc = SMARTIESViT(embed_dim=32, depth=1, num_heads=2, img_size=32)
    a, b = torch.randn(2, 2, 32, 32), torch.randn(2, 12, 32, 32)
    x = torch.cat([a, b], 1)
    stack = SMARTIESFusion(enc, 'sentinel1', 'sentinel2_l2a', 'stack').eval()
    concat = SMARTIESFusion(enc, 'sentinel1', 'sentinel2_l2a', 'concat').eval()
    mix = SMARTIESFusion(enc, 'sentinel1', 'sentinel2_l2a', 'mixup_concat').eval()
    with torch.no_grad():
        assert stack(x).shape == (2, 32)
        torch.testing.assert_close(stack(x), enc(x, bands=list(stack.bands_ab)))
        torch.testing.assert_close(concat(x), torch.cat([enc(a, bands='sentinel1'), enc(b, bands='sentinel2_l2a')], 1))
        torch.testing.assert_close(mix(x), mix(x))  # seeded at eval
        # ratio 1 -> first mix is pure S1, the complement pure S2: equals feature concatenation
        pure = SMARTIESFusion(enc, 'sentinel1', 'sentinel2_l2a', 'mixup_concat', mixup_ratio=1.0).eval()
        torch.testing.assert_close(pure(x), concat(x), atol=1e-5, rtol=1e-5)
        mix.eval_seed = None
        assert not torch.allclose(mix(x), mix(x))  # the release's behaviour: random at eval
        mix.train()
        assert not torch.allclose(mix(x), mix(x))
    with pytest.raises(ImageSizeError, match='co-registered on the same grid'):
        concat.forward_pair(a, torch.randn(2, 12, 48, 48))
    # a batch-size mismatch is not a grid problem: InputError (not ImageSizeError), as in CrossSensorMixup
    with pytest.raises(InputError, match='the pair has different batch sizes: 2 and 3') as info:
        concat.forward_pair(a, torch.randn(3, 12, 32, 32))
    assert not isinstance(info.value, ImageSizeError)
    with pytest.raises(BandCountError, match='image b has 13 channels but bands_b lists 12 bands'):
        mix.forward_pair(a, torch.randn(2, 13, 32, 32))
    with pytest.raises(BandCountError, match='2 .* \\+ 12 .* = 14'):
        concat(torch.randn(2, 13, 32, 32))


def test_torchgeo_arguments_pass_through() -> None:
    # the SMARTIES arguments are declared once; torchgeo's come through **kwargs, typed for jsonargparse
    from jsonargparse import ArgumentParser

    from torchgeo_smarties.tasks.cli import build_cli

    for cls, torchgeo_args in ((SMARTIESClassification, {'num_classes', 'loss', 'task', 'patience'}),
                               (SMARTIESRegression, {'num_outputs', 'loss', 'patience'})):
        parser = ArgumentParser()
        parser.add_class_arguments(cls, 'm')
        keys = {a.dest.split('.', 1)[1] for a in parser._actions if a.dest.startswith('m.')}
        assert torchgeo_args | {'head', 'fusion', 'bands', 'layer_decay', 'weight_decay'} <= keys, cls
    cli = build_cli(['--config', 'eurosat_classification', '--model.init_args.weights', 'null',
                     '--model.init_args.model', 'smarties_test_d2.eurosat', '--model.init_args.num_classes', '7',
                     '--model.init_args.loss', 'focal', '--trainer.accelerator', 'cpu', '--trainer.logger', 'false'],
                    run=False)
    hp = cli.model.hparams
    assert (hp['num_classes'], hp['loss'], hp['layer_decay'], hp['head']) == (7, 'focal', 0.75, 'linear')
    assert cli.model.model.get_classifier().out_features == 7
    with pytest.raises(TypeError):  # a misspelt torchgeo argument still fails in torchgeo's signature
        SMARTIESClassification(model='smarties_test_d2', in_channels=12, num_clases=3)
    with pytest.raises(InputError, match='SMARTIESRegression does not use backbone, num_filters'):
        SMARTIESRegression(model='smarties_test_d2', in_channels=12, backbone='resnet18', num_filters=8)


def test_task_errors(tmp_path: Path) -> None:
    with pytest.raises(BandCountError, match="in_channels=12 but bands='eurosat' has 13 bands"):
        SMARTIESClassification(model='smarties_test_d2', bands='eurosat', in_channels=12, num_classes=2)
    with pytest.raises(BandCountError, match='the model tag .sentinel1. has 2 bands'):
        SMARTIESRegression(model='smarties_test_d2.sentinel1', in_channels=12)
    with pytest.raises(UnknownPresetError, match='unknown band-set tag'):
        SMARTIESClassification(model='smarties_test_d2.sentinel3', in_channels=12, num_classes=2)
    with pytest.raises(UnknownPresetError):
        SMARTIESClassification(model='smarties_test_d2', bands='not_a_preset', in_channels=12, num_classes=2)
    with pytest.raises(BandCountError, match='fused pair has 2 \\+ 12 = 14'):
        SMARTIESClassification(model='smarties_test_d2', bands='sentinel1', bands_b='sentinel2_l2a',
                               fusion='concat', in_channels=12, num_classes=2)
    with pytest.raises(CheckpointError, match='neither an existing file nor a weights enum'):
        SMARTIESClassification(model='smarties_test_d2', weights=str(tmp_path / 'missing.safetensors'),
                               in_channels=12, num_classes=2)
    with pytest.raises(CheckpointError, match='does not match'):  # depth-2 file into a depth-4 encoder
        SMARTIESSemanticSegmentation(backbone='smarties_test_d4', weights=str(Path(__file__).parents[1] / 'data' /
                                     'tiny_encoder.safetensors'), in_channels=12, num_classes=2)
    seg = SMARTIESSemanticSegmentation(backbone='smarties_test_d4', in_channels=12, num_classes=2,
                                       decoder_channels=8)
    with pytest.raises(ImageSizeError, match='40×40 is not a multiple of the patch size 16'):
        seg(torch.randn(2, 12, 40, 40))
    with pytest.raises(ImageSizeError):
        seg.model(torch.randn(2, 12, 32, 20))
