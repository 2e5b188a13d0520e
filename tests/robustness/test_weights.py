"""Bad and hostile weights: code-executing pickles, unsafe URLs, corrupt tensors, impossible architectures."""

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from torchgeo_smarties.cli import main as smarties_main
from torchgeo_smarties.errors import CheckpointError
from torchgeo_smarties.inference.weights import infer_architecture, load_encoder, load_task_checkpoint
from torchgeo_smarties.models import SMARTIESViT, load_encoder_weights
from torchgeo_smarties.models.checkpoint import extract_backbone, read_checkpoint

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / 'tests' / 'data' / 'tiny_encoder.safetensors'  # 64-d, 2 blocks, 4 heads
SAMPLE = ROOT / 'torchgeo_smarties' / 'data' / 'samples' / 'sentinel2_l1c_crop.tif'


class _Payload:
    """Unpickling this calls ``exec`` on code that creates a marker file (a stand-in for any attack)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return exec, (f'open({str(self.marker)!r}, "w").write("pwned")',)


def _evil(path: Path, marker: Path) -> Path:
    """A checkpoint that looks like a Lightning one but runs code when unpickled without weights_only."""
    sd = load_file(str(TINY))
    torch.save({'state_dict': sd, 'hyper_parameters': {'model': 'x'}, 'callbacks': _Payload(marker)}, path)
    return path


def test_payload_is_live(tmp_path: Path) -> None:
    """Control: the payload used below really runs when unpickled unsafely (so the tests can fail)."""
    marker = tmp_path / 'marker'
    torch.load(_evil(tmp_path / 'x.ckpt', marker), weights_only=False)
    assert marker.read_text() == 'pwned'


# class: malicious pickle (__reduce__ payload) in a local .pth/.pt/.ckpt file
@pytest.mark.parametrize('suffix', ['.pth', '.ckpt', '.pt'])
@pytest.mark.parametrize('entry', ['read_checkpoint', 'load_encoder', 'load_encoder_weights', 'extract_backbone',
                                   'load_task_checkpoint'])
def test_malicious_pickle_local(tmp_path: Path, suffix: str, entry: str) -> None:
    marker = tmp_path / 'marker'
    path = _evil(tmp_path / f'x{suffix}', marker)
    calls = {
        'read_checkpoint': lambda: read_checkpoint(path),
        'load_encoder': lambda: load_encoder(str(path)),
        'load_encoder_weights': lambda: load_encoder_weights(SMARTIESViT(embed_dim=64, depth=2, num_heads=4), path),
        'extract_backbone': lambda: extract_backbone(path),
        'load_task_checkpoint': lambda: load_task_checkpoint(path, [SMARTIESViT]),
    }
    with pytest.raises(CheckpointError, match=r'refusing to load .*builtins\.exec.*could run code'):
        calls[entry]()
    assert not marker.exists()


# class: malicious pickle served by URL (read_checkpoint, load_encoder)
@pytest.mark.parametrize('entry', ['read_checkpoint', 'load_encoder', 'load_task_checkpoint'])
def test_malicious_pickle_url(tmp_path: Path, http_root: tuple[Path, str], entry: str) -> None:
    root, base = http_root
    marker = tmp_path / 'marker'
    _evil(root / 'x.ckpt', marker)
    url = f'{base}/x.ckpt'
    calls = {'read_checkpoint': lambda: read_checkpoint(url), 'load_encoder': lambda: load_encoder(url),
             'load_task_checkpoint': lambda: load_task_checkpoint(url, [SMARTIESViT])}
    with pytest.raises(CheckpointError, match='refusing to load'):
        calls[entry]()
    assert not marker.exists()


# class: malicious pickle by URL on the CLI (smarties predict --checkpoint http://...)
def test_malicious_pickle_predict_cli(tmp_path: Path, http_root: tuple[Path, str],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    root, base = http_root
    marker = tmp_path / 'marker'
    _evil(root / 'x.ckpt', marker)
    out = tmp_path / 'pred.tif'
    code = smarties_main(['predict', str(SAMPLE), '-o', str(out), '--checkpoint', f'{base}/x.ckpt', '--workers', '0',
                          '--no-progress'])
    err = capsys.readouterr().err
    assert code == 1
    assert not marker.exists()
    assert 'Traceback' not in err and len(err.strip().splitlines()) == 1
    assert 'refusing to load' in err and 'builtins.exec' in err
    assert not out.exists()


# class: a whole pickled module (torch.save(model)) instead of a state dict
def test_pickled_module_refused(tmp_path: Path) -> None:
    path = tmp_path / 'model.pth'
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(CheckpointError, match=r'torch\.nn\.modules\.linear\.Linear.*torch\.save\(model\.state_dict'):
        read_checkpoint(path)


# class: a file suffix that is neither safetensors nor a torch format
@pytest.mark.parametrize('name', ['w.pkl', 'w.npz', 'weights'])
def test_unknown_suffix(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b'\x80\x04K\x01.')
    with pytest.raises(CheckpointError, match='convert it to .safetensors'):
        read_checkpoint(tmp_path / name)


# class: a URL with an unknown suffix is refused before anything is downloaded
def test_url_unknown_suffix_not_downloaded(http_root: tuple[Path, str]) -> None:
    root, base = http_root
    (root / 'w.pkl').write_bytes(b'x')
    with pytest.raises(CheckpointError, match="has the suffix '.pkl'"):
        read_checkpoint(f'{base}/w.pkl')


# class: URL schemes other than http(s)
@pytest.mark.parametrize('url', ['ftp://127.0.0.1/x.pth', 'file:///etc/passwd.pth', 's3://bucket/x.safetensors'])
def test_url_scheme_refused(url: str) -> None:
    with pytest.raises(CheckpointError, match=r'only http:// and https:// URLs'):
        read_checkpoint(url)


# class: a download larger than the size cap
def test_download_size_cap(http_root: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    root, base = http_root
    (root / 'big.safetensors').write_bytes(TINY.read_bytes())
    with pytest.raises(CheckpointError, match='download cap'):
        read_checkpoint(f'{base}/big.safetensors', max_bytes=1000)
    monkeypatch.setenv('SMARTIES_MAX_DOWNLOAD_BYTES', '1000')
    with pytest.raises(CheckpointError, match='download cap'):
        load_encoder(f'{base}/big.safetensors')


# class: a URL that does not answer with the file (404)
def test_url_not_found(http_root: tuple[Path, str]) -> None:
    _, base = http_root
    with pytest.raises(CheckpointError, match=r'cannot download .*HTTPError.*404'):
        read_checkpoint(f'{base}/missing.pth')


# class: a torch file holding something other than a dict
def test_not_a_dict(tmp_path: Path) -> None:
    torch.save(torch.zeros(3), tmp_path / 't.pth')
    with pytest.raises(CheckpointError, match='holds a Tensor, not a dict'):
        read_checkpoint(tmp_path / 't.pth')


# class: NaN/inf values in the weights (would give an all-NaN raster indistinguishable from nodata)
@pytest.mark.parametrize('bad', [float('nan'), float('inf')])
def test_nonfinite_weights(tmp_path: Path, bad: float) -> None:
    sd = load_file(str(TINY))
    sd['blocks.1.attn.qkv.weight'][0, 0] = bad
    path = tmp_path / 'w.safetensors'
    save_file(sd, str(path))
    with pytest.raises(CheckpointError, match=r"NaN/inf values in 1 tensor\(s\): \['blocks.1.attn.qkv.weight'\]"):
        load_encoder(str(path), num_heads=4)
    with pytest.raises(CheckpointError, match='w.safetensors: NaN/inf'):
        load_encoder_weights(SMARTIESViT(embed_dim=64, depth=2, num_heads=4), path)


# class: integer tensors where the model has floating-point parameters
def test_integer_weights(tmp_path: Path) -> None:
    sd = load_file(str(TINY))
    sd['norm.weight'] = sd['norm.weight'].round().to(torch.int64)
    path = tmp_path / 'w.pth'
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match=r"integer tensors .*\['norm.weight \(int64\)'\]"):
        load_encoder(str(path), num_heads=4)


# class: embed_dim not divisible by num_heads (json beside the weights, num_heads=, --num-heads 0)
def test_heads_do_not_divide_embed_dim(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / 'w.safetensors'
    path.write_bytes(TINY.read_bytes())
    (tmp_path / 'w.json').write_text(json.dumps({'num_heads': 5}))
    with pytest.raises(CheckpointError, match=r'w.safetensors: num_heads=5 \(from w.json\) does not divide '
                                              r'embed_dim=64'):
        load_encoder(str(path))
    with pytest.raises(CheckpointError, match=r'num_heads=3 \(from num_heads\) does not divide'):
        load_encoder(str(path), num_heads=3)
    with pytest.raises(CheckpointError, match='positive divisor of 64'):
        infer_architecture(load_file(str(TINY)), num_heads=-4)
    code = smarties_main(['embed', str(SAMPLE), '-o', str(tmp_path / 'e.tif'), '--weights', str(path),
                          '--num-heads', '0', '--no-progress'])
    err = capsys.readouterr().err
    assert code == 1 and 'Traceback' not in err and len(err.strip().splitlines()) == 1
    # the CLI's option check (EncoderSpec) refuses 0 heads before the checkpoint is even opened
    assert 'number of heads must be an integer >= 1; got 0' in err


# class: invalid JSON config beside the weights
def test_invalid_json_beside_weights(tmp_path: Path) -> None:
    path = tmp_path / 'w.safetensors'
    path.write_bytes(TINY.read_bytes())
    (tmp_path / 'w.json').write_text('{"num_heads": 4')
    with pytest.raises(CheckpointError, match='is not valid JSON'):
        load_encoder(str(path))


# class: a release-format weights file given where a Lightning task checkpoint is expected
def test_not_a_lightning_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / 'enc.pth'
    torch.save(load_file(str(TINY)), path)
    with pytest.raises(CheckpointError, match=r'is not a Lightning checkpoint .*--weights'):
        load_task_checkpoint(path, [SMARTIESViT])
    with pytest.raises(CheckpointError, match='is not a Lightning checkpoint'):
        extract_backbone(path)


# class: a weights argument that is none of the accepted forms (API and CLI)
@pytest.mark.parametrize('value', ['bogus', 'flase', 3])
def test_weights_arg_not_understood(value: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from torchgeo_smarties.errors import WeightsArgumentError
    from torchgeo_smarties.models import resolve_weights_arg

    with pytest.raises(WeightsArgumentError, match=r"accepted: true / false / null .*'demo'.*SENTINEL1_SMARTIES"):
        resolve_weights_arg(value)
    if isinstance(value, str):
        code = smarties_main(['embed', str(SAMPLE), '-o', str(tmp_path / 'e.tif'), '--weights', value,
                              '--no-progress'])
        err = capsys.readouterr().err
        assert code == 1 and 'Traceback' not in err and len(err.strip().splitlines()) == 1 and 'accepted:' in err


# class: an enum name with a member that does not exist
def test_weights_enum_member_unknown() -> None:
    from torchgeo_smarties.errors import WeightsArgumentError
    from torchgeo_smarties.models import resolve_weights_arg

    with pytest.raises(WeightsArgumentError, match=r'has no member .*valid: SENTINEL2_L2A_SMARTIES'):
        resolve_weights_arg('SMARTIESBase16_Weights.SENTINEL3')


# class: a weights path that does not exist
@pytest.mark.parametrize('value', ['missing/w.safetensors', Path('missing.pth')])
def test_weights_path_missing(value: Any) -> None:
    from torchgeo_smarties.errors import WeightsArgumentError
    from torchgeo_smarties.tasks import SMARTIESClassification

    with pytest.raises(WeightsArgumentError, match=r'(does not exist|neither an existing file)'):
        SMARTIESClassification(model='smarties_vit_tiny_patch16', weights=value, in_channels=13, num_classes=2)


# class: a weights enum member of another architecture than the task's model
def test_weights_member_of_other_architecture() -> None:
    from torchgeo_smarties.tasks import SMARTIESClassification

    with pytest.raises(CheckpointError, match=r"holds smarties_vit_tiny_patch16 weights .*model='smarties_vit_tiny"):
        SMARTIESClassification(model='smarties_vit_base_patch16', weights='demo', in_channels=13, num_classes=2)


# class: weights=false for embeddings (a random encoder)
def test_embed_weights_false() -> None:
    from torchgeo_smarties.errors import WeightsArgumentError

    with pytest.raises(WeightsArgumentError, match='randomly initialised encoder'):
        load_encoder('false')


# class: changing the size of the demo architecture while loading its weights
def test_demo_size_cannot_change() -> None:
    import timm

    with pytest.raises(CheckpointError, match=r'the demo weights have depth=4; it cannot be changed'):
        timm.create_model('smarties_vit_tiny_patch16.demo', pretrained=True, depth=2)


# class: a weights member's transforms called on something that is not an image or a sample dict
def test_weights_transforms_bad_input() -> None:
    from torchgeo_smarties.errors import InputError
    from torchgeo_smarties.models import SMARTIESBase16_Weights

    with pytest.raises(InputError, match='take an image tensor or a dict with an "image" key'):
        SMARTIESBase16_Weights.SENTINEL1_SMARTIES.transforms([1, 2])
