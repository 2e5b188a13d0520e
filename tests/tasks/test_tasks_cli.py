"""LightningCLI: every config in configs/ parses and instantiates; `smarties fit --config` runs end to end."""

from pathlib import Path

import pytest
import yaml

from torchgeo_smarties.tasks import (
    SMARTIESClassification,
    SMARTIESFusion,
    SMARTIESSemanticSegmentation,
    SMARTIESUPerNet,
)
from torchgeo_smarties.tasks.cli import build_cli

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'
EXPECTED = {
    'eurosat_classification.yaml': (SMARTIESClassification, 'SMARTIESEuroSATDataModule', 13),
    'bigearthnet_s2_multilabel.yaml': (SMARTIESClassification, 'SMARTIESBigEarthNetDataModule', 12),
    'bigearthnet_s1_multilabel.yaml': (SMARTIESClassification, 'SMARTIESBigEarthNetDataModule', 2),
    'bigearthnet_mm_fusion.yaml': (SMARTIESClassification, 'SMARTIESBigEarthNetDataModule', 14),
    'sen12ms_upernet_probe.yaml': (SMARTIESSemanticSegmentation, 'SMARTIESSEN12MSDataModule', 13),
}


def test_all_configs_listed() -> None:
    found = {p.name for p in CONFIGS.glob('*.yaml') if not p.name.startswith('pretrain')}
    assert found == set(EXPECTED)


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_config_instantiates(name: str) -> None:
    cls, dm_name, channels = EXPECTED[name]
    # weights: null keeps the test offline; the full ViT-B/16 is built as written
    cli = build_cli(['--config', str(CONFIGS / name), '--model.init_args.weights', 'null',
                     '--trainer.accelerator', 'cpu', '--trainer.logger', 'false'], run=False)
    assert type(cli.model) is cls
    assert type(cli.datamodule).__name__ == dm_name
    assert cli.model.hparams['in_channels'] == channels
    model = cli.model.model
    if name == 'bigearthnet_mm_fusion.yaml':
        assert isinstance(model, SMARTIESFusion) and model.strategy == 'mixup_concat' and model.num_features == 1536
        assert model.plan_a.bands == ('sentinel1:VV', 'sentinel1:VH') and model.plan_b.num_bands == 12
    elif name == 'sen12ms_upernet_probe.yaml':
        assert isinstance(model, SMARTIESUPerNet) and model.layer_indices == (3, 5, 7, 11)
        assert not any(p.requires_grad for p in model.encoder.parameters())
        assert model.encoder.bands[8] == 'sentinel2:B8A'
    else:
        assert model.embed_dim == 768 and len(model.blocks) == 12 and model.default_plan.num_bands == channels
    cfg = yaml.safe_load((CONFIGS / name).read_text())
    assert cfg['model']['init_args']['weights'] is True  # the shipped configs use the released weights


def test_smarties_fit_config(tmp_path: Path, tiny_weights: Path) -> None:
    cfg = {
        'model': {'class_path': 'torchgeo_smarties.tasks.SMARTIESClassification',
                  'init_args': {'model': 'smarties_test_d2.eurosat', 'weights': str(tiny_weights), 'in_channels': 13,
                                'num_classes': 3, 'freeze_backbone': True, 'head': 'probe', 'lr': 0.003}},
        'data': {'class_path': 'tasks_synthetic.SyntheticDataModule',
                 'init_args': {'batch_size': 8},
                 'dict_kwargs': {'channels': 13, 'num_classes': 3}},
        'trainer': {'accelerator': 'cpu', 'max_steps': 3, 'max_epochs': 3, 'logger': False,
                    'enable_checkpointing': False, 'enable_progress_bar': False, 'num_sanity_val_steps': 0,
                    'default_root_dir': str(tmp_path)},
    }
    path = tmp_path / 'cfg.yaml'
    path.write_text(yaml.safe_dump(cfg))
    from torchgeo_smarties.cli import main

    assert main(['fit', '--config', str(path)]) == 0
    assert main(['validate', '--config', str(path)]) == 0
    assert main(['test', '--config', str(path)]) == 0


def test_cli_rejects_bad_band_count(tmp_path: Path) -> None:
    # jsonargparse re-raises the task's BandCountError as a ValueError carrying its message
    with pytest.raises(ValueError, match="in_channels=12 but the model tag 'eurosat' has 13 bands"):
        build_cli(['--config', str(CONFIGS / 'eurosat_classification.yaml'), '--model.init_args.weights', 'null',
                   '--model.init_args.in_channels', '12', '--trainer.accelerator', 'cpu'], run=False)


def test_fit_writes_last_ckpt_and_resumes(tmp_path: Path) -> None:
    cfg = {
        'model': {'class_path': 'torchgeo_smarties.tasks.SMARTIESClassification',
                  'init_args': {'model': 'smarties_test_d2', 'in_channels': 12, 'num_classes': 3}},
        'data': {'class_path': 'tasks_synthetic.SyntheticDataModule', 'init_args': {'batch_size': 8}},
        'trainer': {'accelerator': 'cpu', 'max_steps': 2, 'max_epochs': 2, 'logger': False,
                    'enable_progress_bar': False, 'num_sanity_val_steps': 0, 'default_root_dir': str(tmp_path)},
    }
    path = tmp_path / 'cfg.yaml'
    path.write_text(yaml.safe_dump(cfg))
    from torchgeo_smarties.cli import main

    assert main(['fit', '--config', str(path)]) == 0
    last = tmp_path / 'checkpoints' / 'last.ckpt'  # logger off: <default_root_dir>/checkpoints/
    assert last.is_file()
    import torch

    # our own checkpoint, just written by this test (Lightning's format needs the full unpickler)
    assert torch.load(last, weights_only=False, map_location='cpu')['global_step'] == 2
    assert main(['fit', '--config', str(path), '--trainer.max_steps', '4', '--trainer.max_epochs', '4',
                 '--ckpt_path', str(last)]) == 0
    assert torch.load(last, weights_only=False, map_location='cpu')['global_step'] > 2  # trained on from last.ckpt
