"""Loading weights: release key format, errors, weight enums, timm and torchgeo registration."""

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file
from timm.models import register_model

import torchgeo_smarties
from torchgeo_smarties.errors import CheckpointError
from torchgeo_smarties.inference.weights import load_encoder, load_task_checkpoint
from torchgeo_smarties.models import (
    SMARTIESBase16_Weights,
    SMARTIESLarge16_Weights,
    SMARTIESViT,
    find_weights_file,
    load_encoder_weights,
    smarties_vitb,
    to_release_state_dict,
)
from torchgeo_smarties.models.builders import _create
from torchgeo_smarties.models.checkpoint import extract_backbone, load_checkpoint, read_checkpoint

DATA = Path(__file__).parents[1] / 'data'
TINY = {'embed_dim': 64, 'depth': 2, 'num_heads': 4}


@pytest.fixture
def tiny_sd() -> dict[str, torch.Tensor]:
    return load_file(str(DATA / 'tiny_encoder.safetensors'))


@pytest.fixture
def hub_file(tmp_path: Path, tiny_sd: dict[str, torch.Tensor], monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tiny weights saved where the ViT-B enum looks for its file (torch hub dir)."""
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    path = tmp_path / 'hub' / 'checkpoints' / 'smarties-v1-vitb.safetensors'
    path.parent.mkdir(parents=True)
    save_file(tiny_sd, str(path))
    return path


def reference_output(x: torch.Tensor) -> torch.Tensor:
    model = SMARTIESViT(img_size=64, **TINY)
    load_encoder_weights(model, DATA / 'tiny_encoder.safetensors')
    with torch.no_grad():
        return model.eval()(x)


def test_every_key_consumed(tiny_sd: dict[str, torch.Tensor]) -> None:
    model = SMARTIESViT(img_size=64, **TINY)
    load_encoder_weights(model, tiny_sd)
    for k, v in to_release_state_dict(model).items():  # the fixture is in the release's key names
        assert torch.equal(v, tiny_sd[k]), k


def test_decoder_keys_ignored_and_head_allowed(tiny_sd: dict[str, torch.Tensor]) -> None:
    sd = dict(tiny_sd, mask_token=torch.zeros(1, 1, 32), **{'decoder_embed.weight': torch.zeros(32, 64)})
    model = SMARTIESViT(img_size=64, num_classes=5, **TINY)
    load_encoder_weights(model, sd)  # head.* missing is fine
    assert torch.equal(model.cls_token, tiny_sd['cls_token'])


def test_unexpected_missing_and_mismatched_keys(tiny_sd: dict[str, torch.Tensor]) -> None:
    model = SMARTIESViT(img_size=64, **TINY)
    with pytest.raises(CheckpointError, match=r"unexpected keys \(1\): \['foo.weight'\]"):
        load_encoder_weights(model, dict(tiny_sd, **{'foo.weight': torch.zeros(1)}))
    missing = {k: v for k, v in tiny_sd.items() if not k.startswith('blocks.1.')}
    with pytest.raises(CheckpointError, match=r'missing keys \(12\)'):
        load_encoder_weights(model, missing)
    big = SMARTIESViT(img_size=64, embed_dim=128, depth=2, num_heads=4)
    with pytest.raises(CheckpointError, match='shape mismatch'):
        load_encoder_weights(big, tiny_sd)


def test_half_precision_and_pth(tmp_path: Path, tiny_sd: dict[str, torch.Tensor]) -> None:
    x = torch.randn(1, 12, 32, 32)
    half = {k: v.half() for k, v in tiny_sd.items()}
    save_file(half, str(tmp_path / 'half.safetensors'))
    torch.save({'state_dict': tiny_sd}, tmp_path / 'w.pth')
    m1 = smarties_vitb(weights=tmp_path / 'half.safetensors', img_size=64, **TINY).eval()
    m2 = smarties_vitb(weights=str(tmp_path / 'w.pth'), img_size=64, **TINY).eval()
    assert m1.cls_token.dtype == torch.float32
    with torch.no_grad():
        torch.testing.assert_close(m2(x), reference_output(x))
        assert (m1(x) - m2(x)).abs().max() < 5e-2  # fp16 rounding of the weights only


def test_corrupt_and_truncated_files(tmp_path: Path) -> None:
    data = (DATA / 'tiny_encoder.safetensors').read_bytes()
    (tmp_path / 'cut.safetensors').write_bytes(data[: len(data) // 2])
    (tmp_path / 'junk.pth').write_bytes(b'not a checkpoint')
    for name in ('cut.safetensors', 'junk.pth', 'missing.safetensors'):
        with pytest.raises(CheckpointError):
            smarties_vitb(weights=tmp_path / name, **TINY)


def test_resized_position_embedding(tiny_sd: dict[str, torch.Tensor]) -> None:
    model = SMARTIESViT(img_size=128, **TINY)
    load_encoder_weights(model, tiny_sd)
    assert model.pos_embed.shape == (1, 65, 64)


def test_enum_loads_from_torch_hub_dir(hub_file: Path) -> None:
    w = SMARTIESBase16_Weights.SMARTIES_V1
    assert w.local_path == hub_file
    assert w.meta['model'] == 'smarties_vit_base_patch16'
    assert len(w.meta['bands']) == w.meta['in_chans'] == 12
    model = smarties_vitb(weights=w, img_size=64, **TINY).eval()
    x = torch.randn(1, 12, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference_output(x))
    # by name, as torchgeo configs give it
    model2 = smarties_vitb(weights='SMARTIESBase16_Weights.SMARTIES_V1', img_size=64, **TINY).eval()
    with torch.no_grad():
        torch.testing.assert_close(model2(x), model(x))


def test_enum_offline_without_file_fails_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path))
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setenv('HF_HOME', str(tmp_path / 'hf'))
    with pytest.raises(CheckpointError, match='put it in'):
        SMARTIESBase16_Weights.SMARTIES_V1.get_state_dict()
    with pytest.raises(CheckpointError):
        find_weights_file('gsumbul/SMARTIES-v1-ViT-B', 'nope.safetensors', download=False)


def test_timm_pretrained(hub_file: Path) -> None:
    model = timm.create_model('smarties_vit_base_patch16.sentinel2_l2a', pretrained=True, img_size=64, **TINY)
    x = torch.randn(1, 12, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), reference_output(x))
    clf = timm.create_model('smarties_vit_base_patch16.sentinel1', pretrained=True, num_classes=4, **TINY)
    assert clf(torch.randn(1, 2, 32, 32)).shape == (1, 4)
    assert torch.equal(clf.cls_token, load_file(str(hub_file))['cls_token'])


def test_torchgeo_registry(hub_file: Path) -> None:
    from torchgeo.models import get_model, get_model_weights, get_weight, list_models

    assert {'smarties_vit_base_patch16', 'smarties_vit_large_patch16'} <= set(list_models())
    assert get_weight('SMARTIESBase16_Weights.SMARTIES_V1') is SMARTIESBase16_Weights.SMARTIES_V1
    assert get_model_weights('smarties_vit_base_patch16') is SMARTIESBase16_Weights
    assert get_model_weights(torchgeo_smarties.smarties_vitb) is SMARTIESBase16_Weights
    model = get_model('smarties_vit_base_patch16', weights=SMARTIESBase16_Weights.SMARTIES_V1, img_size=64, **TINY)
    assert isinstance(model, SMARTIESViT)
    assert torchgeo_smarties.register_with_torchgeo()  # idempotent


def test_torchgeo_state_dict_loader_accepts_our_model(hub_file: Path) -> None:
    """torchgeo tasks load enum weights with tasks.utils.load_state_dict: its first-child walk must work."""
    from torchgeo.tasks.utils import load_state_dict

    model = SMARTIESViT(img_size=64, num_classes=3, **TINY)
    missing, unexpected = load_state_dict(model, SMARTIESBase16_Weights.SMARTIES_V1.get_state_dict())
    assert set(missing) == {'head.weight', 'head.bias'} and not unexpected


def test_manifest_mae_keys_are_ignored_by_the_encoder() -> None:
    manifest = json.loads((DATA / 'manifest_mae_vitb.json').read_text())
    extra = [k for k in manifest if k.startswith(('mask_token', 'decoder_'))]
    assert len(manifest) == 318 and len(extra) == 318 - 182


# --- safe checkpoint reading (models.checkpoint.read_checkpoint) and Lightning task checkpoints


@register_model
def smarties_wtest_d1(pretrained: bool = False, **kwargs: Any) -> SMARTIESViT:
    """A 32-d, 1-block SMARTIES for the checkpoint tests."""
    for k, v in {'embed_dim': 32, 'depth': 1, 'num_heads': 2, 'img_size': 32}.items():
        kwargs.setdefault(k, v)
    return _create('smarties_vit_base_patch16', pretrained, **kwargs)


@pytest.fixture(scope='module')
def fitted_ckpt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A Lightning checkpoint written by Trainer.fit (ModelCheckpoint) of a tiny SMARTIESClassification."""
    import lightning
    from lightning.pytorch.callbacks import ModelCheckpoint
    from torch.utils.data import DataLoader

    from torchgeo_smarties.tasks import SMARTIESClassification

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp('fit')
    task = SMARTIESClassification(model='smarties_wtest_d1', in_channels=12, num_classes=3, class_weights=[1, 2, 3])
    data = [{'image': torch.randn(12, 32, 32), 'label': torch.tensor(i % 3)} for i in range(4)]
    tr = lightning.Trainer(accelerator='cpu', max_steps=1, max_epochs=1, logger=False, num_sanity_val_steps=0,
                           enable_progress_bar=False, enable_model_summary=False, default_root_dir=out,
                           callbacks=[ModelCheckpoint(dirpath=out, save_last=True)])
    loader = DataLoader(data, batch_size=4)
    tr.fit(task, train_dataloaders=loader, val_dataloaders=loader)
    return out / 'last.ckpt', {k: v.clone() for k, v in task.state_dict().items()}


def test_read_checkpoint_local_and_url_formats(tmp_path: Path, http_root: tuple[Path, str],
                                               tiny_sd: dict[str, torch.Tensor], monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    root, base = http_root
    downloads = tmp_path / 'tmp'  # a private temp dir: the glob below never sees another process's download
    downloads.mkdir()
    monkeypatch.setattr(tempfile, 'tempdir', str(downloads))
    save_file(tiny_sd, str(root / 'w.safetensors'))
    torch.save({'state_dict': tiny_sd, 'path': Path('/data/x.tif')}, root / 'w.pth')  # pathlib is allow-listed
    for src in (root / 'w.safetensors', f'{base}/w.safetensors', f'{base}/w.pth?download=1'):
        sd = load_checkpoint(src)
        assert sd.keys() == tiny_sd.keys() and all(torch.equal(sd[k], tiny_sd[k]) for k in sd)
    assert read_checkpoint(root / 'w.pth')['path'] == Path('/data/x.tif')
    model, desc = load_encoder(f'{base}/w.safetensors', num_heads=4)
    assert desc.startswith(base) and torch.equal(model.cls_token, tiny_sd['cls_token'])
    assert not list(downloads.iterdir())  # every download (and its folder) is removed


def test_fitted_lightning_checkpoint_loads(fitted_ckpt: tuple[Path, dict[str, torch.Tensor]],
                                           http_root: tuple[Path, str]) -> None:
    from torchgeo_smarties.tasks import SMARTIESClassification, SMARTIESSemanticSegmentation

    path, ref = fitted_ckpt
    root, base = http_root
    (root / 'run.ckpt').write_bytes(path.read_bytes())
    for src in (path, f'{base}/run.ckpt'):
        task = load_task_checkpoint(src, [SMARTIESSemanticSegmentation, SMARTIESClassification])
        assert isinstance(task, SMARTIESClassification) and not task.training
        assert task.hparams['class_weights'] == [1, 2, 3]
        for k, v in task.state_dict().items():
            assert torch.equal(v, ref[k]), k
    # torchgeo-style weights=<.ckpt>: the backbone through the same safe reader
    name, backbone = extract_backbone(path)
    assert name == 'smarties_wtest_d1' and torch.equal(backbone['cls_token'], ref['model.cls_token'])


def test_predict_cli_with_fitted_checkpoint_url(fitted_ckpt: tuple[Path, dict[str, torch.Tensor]],
                                                http_root: tuple[Path, str], tmp_path: Path) -> None:
    from torchgeo_smarties.cli import main as smarties_main

    root, base = http_root
    (root / 'run.ckpt').write_bytes(fitted_ckpt[0].read_bytes())
    sample = Path(torchgeo_smarties.__file__).parent / 'data' / 'samples' / 'sentinel2_l1c_crop.tif'
    out = tmp_path / 'cls.tif'
    code = smarties_main(['predict', str(sample), '-o', str(out), '--checkpoint', f'{base}/run.ckpt', '--tile', '128',
                          '--workers', '0', '--no-progress'])
    assert code == 0 and out.is_file()


# --- one enum member per sensor, normalisation carried by the weights, the demo as a named weight


@pytest.mark.parametrize(('member', 'preset'), [('SENTINEL2_L2A_SMARTIES', 'sentinel2_l2a'),
                                                 ('SENTINEL2_L1C_SMARTIES', 'sentinel2_l1c'),
                                                 ('SENTINEL1_SMARTIES', 'sentinel1'), ('RGB_SMARTIES', 'maxar_rgb'),
                                                 ('SMARTIES_V1', 'sentinel2_l2a')])
def test_sensor_members_carry_bands_and_normalisation(member: str, preset: str) -> None:
    from torchgeo.models import get_weight

    from torchgeo_smarties.spectrum import PRESETS
    from torchgeo_smarties.transforms import SmartiesNormalize

    for enum in (SMARTIESBase16_Weights, SMARTIESLarge16_Weights):
        w = enum[member]
        assert w.meta['bands'] == PRESETS[preset] and w.meta['in_chans'] == len(PRESETS[preset])
        assert w.meta['preset'] == preset and w.meta['filename'] == enum.SMARTIES_V1.meta['filename']
        assert get_weight(f'{enum.__name__}.{member}') is w  # torchgeo finds every member (SMARTIES_V1 too)
    # torchgeo's convention: weights.transforms applied to a batch dict (other keys untouched) or a tensor
    torch.manual_seed(0)
    n = len(PRESETS[preset])
    x = torch.rand(2, n, 16, 16) * 3000
    batch = {'image': x, 'label': torch.tensor([1, 2])}
    ref = SmartiesNormalize.from_preset(preset)(x)
    out = SMARTIESBase16_Weights[member].transforms(batch)
    assert torch.equal(out['image'], ref) and torch.equal(out['label'], batch['label'])  # same op, same inputs
    assert torch.equal(SMARTIESBase16_Weights[member].transforms(x), ref)
    assert SMARTIESBase16_Weights[member].transforms(x[0]).shape == x[0].shape  # a sample keeps its shape
    assert not torch.allclose(ref, x)  # not the identity of 0.1


def test_sentinel2_batch_normalised_like_from_preset() -> None:
    """Issue 13: ``weights.transforms`` normalises a Sentinel-2 batch like ``SmartiesNormalize.from_preset``."""
    from torchgeo_smarties.transforms import SmartiesNormalize

    x = torch.linspace(0, 10000, 2 * 12 * 8 * 8).reshape(2, 12, 8, 8)
    ref = SmartiesNormalize.from_preset('sentinel2_l2a', SMARTIESBase16_Weights.SENTINEL2_L2A_SMARTIES.meta['bands'])
    torch.testing.assert_close(SMARTIESBase16_Weights.SENTINEL2_L2A_SMARTIES.transforms({'image': x})['image'], ref(x),
                               rtol=0, atol=0)


def test_timm_cfg_carries_band_ids_and_says_mean_std_are_not_the_normalisation() -> None:
    cfg = timm.create_model('smarties_vit_base_patch16.sentinel1', img_size=32, **TINY).pretrained_cfg
    assert cfg['mean'] == (0.0, 0.0) and cfg['std'] == (1.0, 1.0)  # what timm expects: one per channel
    notes = ' '.join(cfg['notes'])
    assert 'smarties_bands=sentinel1:VV,sentinel1:VH' in notes and 'NOT the normalisation' in notes
    assert "from_preset('sentinel1')" in notes
    # the cfg stays a valid timm PretrainedCfg (round trip through create_model)
    again = timm.create_model('smarties_vit_base_patch16', pretrained_cfg=cfg, img_size=32, **TINY)
    assert again.pretrained_cfg['notes'] == cfg['notes']


def test_demo_is_a_named_weight_everywhere() -> None:
    from torchgeo.models import get_model, get_weight

    from torchgeo_smarties.models import SMARTIESTiny16_Weights, load_demo_encoder, smarties_vitt

    ref = load_demo_encoder()
    w = SMARTIESTiny16_Weights.DEMO
    assert get_weight('SMARTIESTiny16_Weights.DEMO') is w and w.meta['model'] == 'smarties_vit_tiny_patch16'
    models = [
        timm.create_model('smarties_vit_tiny_patch16.demo', pretrained=True),
        get_model('smarties_vit_tiny_patch16', weights=w),
        smarties_vitt(weights='demo'),
        load_encoder('demo')[0],
        load_encoder('SMARTIESTiny16_Weights.DEMO')[0],
    ]
    x = torch.randn(1, 13, 32, 32)
    with torch.no_grad():
        y = ref(x)
        for m in models:
            assert isinstance(m, SMARTIESViT) and m.embed_dim == ref.embed_dim
            torch.testing.assert_close(m.eval()(x), y)  # same weights, same module: equal up to kernel choice
    assert 'notes' in models[0].pretrained_cfg
    with pytest.raises(CheckpointError, match='the demo weights have embed_dim=128'):
        timm.create_model('smarties_vit_tiny_patch16.demo', pretrained=True, embed_dim=64)


def test_tasks_accept_demo_and_every_weights_form(tmp_path: Path) -> None:
    from torchgeo_smarties.models import load_demo_encoder
    from torchgeo_smarties.tasks import SMARTIESClassification
    from torchgeo_smarties.tasks.cli import build_cli

    ref = load_demo_encoder().cls_token
    for w in ('demo', 'SMARTIESTiny16_Weights.DEMO'):
        task = SMARTIESClassification(model='smarties_vit_tiny_patch16', weights=w, in_channels=13, num_classes=3)
        assert torch.equal(task.model.cls_token, ref)
    config = Path(torchgeo_smarties.__file__).parents[1] / 'configs' / 'eurosat_classification.yaml'
    for value in ('False', 'demo'):
        cli = build_cli(['--config', str(config), '--model.init_args.model', 'smarties_vit_tiny_patch16',
                         '--model.init_args.weights', value, '--trainer.accelerator', 'cpu',
                         '--trainer.logger', 'false'], run=False)
        assert torch.equal(cli.model.model.cls_token, ref) == (value == 'demo'), value


def test_eval_knn_accepts_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchgeo_smarties.tasks import eval_cli

    class Fake(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __init__(self, root: str, split: str, download: bool, **kwargs: Any) -> None:
            g = torch.Generator().manual_seed(int(split == 'test'))
            self.x = torch.rand(6, 13, 32, 32, generator=g) * 3000

        def __len__(self) -> int:
            return 6

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {'image': self.x[i], 'label': torch.tensor(i % 2)}

    monkeypatch.setattr(eval_cli.EvalDataset, 'load', lambda self: Fake)
    out = tmp_path / 'r.json'
    assert eval_cli.main(['knn', '--dataset', 'eurosat', '--root', str(tmp_path), '--weights', 'demo', '--k', '3',
                          '--image-size', '32', '--batch-size', '6', '--output', str(out)]) == 0
    result = json.loads(out.read_text())[0]
    assert result['model'] == 'smarties_vit_tiny_patch16' and result['n_train'] == 6


@pytest.mark.parametrize(('value', 'expected'), [
    (None, None), ('null', None), ('None', None), ('', None), (True, True), ('true', True), ('TRUE', True),
    (False, False), ('false', False), ('demo', 'SMARTIESTiny16_Weights.DEMO'),
    ('SMARTIESBase16_Weights.SENTINEL1_SMARTIES', 'SMARTIESBase16_Weights.SENTINEL1_SMARTIES'),
    ('SMARTIESLarge16_Weights', 'SMARTIESLarge16_Weights.SENTINEL2_L2A_SMARTIES'),
    ('http://example.org/w.safetensors', 'http://example.org/w.safetensors'),
])
def test_resolve_weights_arg(value: Any, expected: Any) -> None:
    from torchgeo_smarties.models import resolve_weights_arg

    got = resolve_weights_arg(value)
    assert (repr(got) if hasattr(got, 'meta') else got) == expected


def test_resolve_weights_arg_paths_and_members(tmp_path: Path) -> None:
    from torchgeo_smarties.models import resolve_weights_arg

    path = tmp_path / 'w.safetensors'
    path.write_bytes(b'')
    assert resolve_weights_arg(str(path)) == path and resolve_weights_arg(path) == path
    member = SMARTIESBase16_Weights.RGB_SMARTIES
    assert resolve_weights_arg(member) is member


def test_models_do_not_import_tasks_or_inference() -> None:
    """Layering: models ← tasks / inference, never the other way round (models/demo.py imported tasks)."""
    import ast

    models = Path(torchgeo_smarties.__file__).parent / 'models'
    for f in models.glob('*.py'):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                name = ('.' * node.level) + (node.module or '')
                assert not name.startswith(('..tasks', '..inference', '..retrieval', 'torchgeo_smarties.tasks',
                                            'torchgeo_smarties.inference')), f'{f.name} imports {name}'
