"""Bad inputs refused by the tasks room: smp pyramid, band masks, pair pipelines, configs and the fit CLI."""

from pathlib import Path
from typing import Any

import pytest
import timm
import torch
from timm.models import register_model

import torchgeo_smarties  # noqa: F401  (registers the SMARTIES timm models)
from torchgeo_smarties.errors import BandCountError, ConfigNotFoundError, InputError
from torchgeo_smarties.models.builders import _create


@register_model
def smarties_robust_tiny(pretrained: bool = False, **kwargs: Any) -> Any:
    """32-d, 4 blocks, 2 heads: the smallest encoder the 4-level pyramid takes."""
    for k, v in {'embed_dim': 32, 'depth': 4, 'num_heads': 2, 'img_size': 32}.items():
        kwargs.setdefault(k, v)
    return _create('smarties_vit_base_patch16', pretrained, **kwargs)


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from torchgeo_smarties.cli import main

    code = main(args)
    return code, capsys.readouterr().err


def _one_line(err: str) -> str:
    # Lightning's own INFO log lines (seed, accelerator, tips) are not part of the error
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(('INFO:', '💡'))]
    assert len(lines) == 1 and 'Traceback' not in err, err
    return lines[0]


# class: smp encoder_depth=1 gives the pyramid no level
def test_smp_encoder_depth_one() -> None:
    import segmentation_models_pytorch as smp

    with pytest.raises(InputError, match='use smp encoder_depth 2 to 5'):
        smp.Unet('tu-smarties_robust_tiny', encoder_weights=None, in_channels=12, encoder_depth=1,
                 decoder_channels=[8])


# class: a dilated output stride (smp/DeepLab) asked of the fixed-stride pyramid
def test_pyramid_output_stride() -> None:
    with pytest.raises(InputError, match='output_stride=8 is not supported'):
        timm.create_model('smarties_robust_tiny', features_only=True, output_stride=8)


# class: pyramid levels outside 0..3
def test_pyramid_out_indices_out_of_range() -> None:
    with pytest.raises(InputError, match='outside the 4-level SMARTIES pyramid'):
        timm.create_model('smarties_robust_tiny', features_only=True, out_indices=(0, 4))


# class: pyramid blocks that are not 4 blocks of the encoder
@pytest.mark.parametrize('blocks', [(0, 1), (0, 1, 2, 9)])
def test_pyramid_blocks_bad(blocks: tuple[int, ...]) -> None:
    with pytest.raises(InputError, match='pyramid_blocks must name 4 blocks'):
        timm.create_model('smarties_robust_tiny', features_only=True, pyramid_blocks=blocks)


# class: pyramid_blocks given to a model that is not a feature pyramid
def test_pyramid_blocks_without_features_only() -> None:
    with pytest.raises(InputError, match='applies to features_only=True models only'):
        timm.create_model('smarties_robust_tiny', pyramid_blocks=(0, 1, 2, 3))


# class: a batch band mask of the wrong shape
def test_batch_band_mask_shape() -> None:
    from torchgeo_smarties.transforms.band_subset import batch_band_mask

    with pytest.raises(BandCountError, match=r'it must be \(B, C\) bool'):
        batch_band_mask({'image': torch.zeros(2, 12, 16, 16), 'band_mask': torch.ones(2, 13, dtype=torch.bool)})


# class: a masked batch given to smp's DPT (which cannot pass the mask to the encoder)
def test_dpt_with_band_mask() -> None:
    from torchgeo_smarties.tasks import SMARTIESSemanticSegmentation

    task = SMARTIESSemanticSegmentation(model='dpt', backbone='smarties_robust_tiny', in_channels=12, num_classes=2)
    with pytest.raises(InputError, match="use model='unet'"):
        task(torch.zeros(1, 12, 32, 32), band_mask=torch.ones(1, 12, dtype=torch.bool))


# class: a band mask given to a two-sensor fusion model
def test_fusion_with_band_mask() -> None:
    from torchgeo_smarties.tasks import SMARTIESClassification

    task = SMARTIESClassification(model='smarties_robust_tiny', in_channels=14, num_classes=2, fusion='concat',
                                  bands='sentinel1', bands_b='sentinel2_l2a')
    with pytest.raises(InputError, match='fusion models build their own per-patch masks'):
        task(torch.zeros(1, 14, 32, 32), band_mask=torch.ones(1, 14, dtype=torch.bool))


# class: CrossSensorMixup not the last step of a PairSequential
def test_pair_sequential_mixup_not_last() -> None:
    from torchgeo_smarties.transforms import CrossSensorMixup, PairedResize, PairSequential

    with pytest.raises(InputError, match='must be the last step'):
        PairSequential(CrossSensorMixup(), PairedResize(32))


# class: a per-image geometric augmentation in a pair pipeline
def test_pair_sequential_geometric_step() -> None:
    import kornia.augmentation as K

    from torchgeo_smarties.transforms import PairSequential

    with pytest.raises(InputError, match='would misalign the pair'):
        PairSequential(K.RandomRotation(30.0))


# class: a --config that is neither a file nor a bundled name
def test_unknown_config_name() -> None:
    from torchgeo_smarties.configs import config_path

    with pytest.raises(ConfigNotFoundError, match='run "smarties configs"'):
        config_path('eurosat_clasification')


# class: CLI --config with an unknown name
def test_cli_unknown_config(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _cli(['fit', '--config', 'nope'], capsys)
    assert code == 1 and 'bundled configs' in _one_line(err)


# class: CLI config with an unknown key
def test_cli_config_unknown_key(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _cli(['fit', '--config', 'eurosat_classification', '--model.init_args.bogus', '1'], capsys)
    assert code == 2 and 'model.init_args.bogus: unknown option' in _one_line(err)


# class: CLI config with an invalid value
def test_cli_config_bad_value(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _cli(['fit', '--config', 'eurosat_classification', '--model.init_args.lr', 'fast'], capsys)
    assert code == 2 and "model.init_args.lr: Expected a <class 'float'>" in _one_line(err)


# class: fit with a dataset root that does not hold the dataset
def test_cli_fit_wrong_dataset_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _cli(['fit', '--config', 'eurosat_classification', '--model.init_args.weights', 'null',
                      '--model.init_args.model', 'smarties_robust_tiny.eurosat', '--data.dict_kwargs.root',
                      str(tmp_path), '--trainer.accelerator', 'cpu', '--trainer.logger', 'false',
                      '--trainer.default_root_dir', str(tmp_path)], capsys)
    line = _one_line(err)
    assert code == 1 and f"dataset root '{tmp_path}' does not hold EuroSAT" in line
    assert 'eurosat-{train,val,test}.txt' in line  # the expected layout


# class: eval knn with a dataset root that is not a directory
def test_cli_eval_knn_wrong_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _cli(['eval', 'knn', '--dataset', 'eurosat', '--root', str(tmp_path / 'missing'), '--weights', 'none',
                      '--model', 'smarties_robust_tiny'], capsys)
    assert code == 1 and 'is not a directory; expected the layout of torchgeo.datasets.EuroSAT' in _one_line(err)


# class: a fusion pair whose two images have different batch sizes
def test_fusion_pair_batch_sizes() -> None:
    from torchgeo_smarties.models import SMARTIESViT
    from torchgeo_smarties.tasks import SMARTIESFusion

    fusion = SMARTIESFusion(SMARTIESViT(embed_dim=32, depth=1, num_heads=2, img_size=32), 'sentinel1',
                            'sentinel2_l2a', 'concat')
    with pytest.raises(InputError, match='different batch sizes: 2 and 1'):
        fusion.forward_pair(torch.randn(2, 2, 32, 32), torch.randn(1, 12, 32, 32))


# class: torchgeo regression-backbone arguments given to the SMARTIES regressor (refused, not ignored)
def test_regression_unused_torchgeo_arguments() -> None:
    from torchgeo_smarties.tasks import SMARTIESRegression

    with pytest.raises(InputError, match="does not use freeze_decoder .torchgeo's pixel-wise regression"):
        SMARTIESRegression(model='smarties_robust_tiny', in_channels=12, freeze_decoder=True)
