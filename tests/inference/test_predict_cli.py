"""smarties predict, the CLI entry points, weight loading and previews."""

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from torchgeo_smarties.errors import CheckpointError, InputError
from torchgeo_smarties.inference import infer_architecture, load_encoder, pca_rgb, predict_raster
from torchgeo_smarties.inference.cli import embed_main, predict_main
from torchgeo_smarties.models import SMARTIESViT, load_checkpoint

from .conftest import TINY_WEIGHTS

KW = {'progress': False, 'num_workers': 0, 'log': lambda s: None}


class _PixelSeg(nn.Module):
    """Tiny segmentation model: encoder patch tokens → 1×1 conv → ×16 upsampling (pixel logits)."""

    def __init__(self, enc: SMARTIESViT, k: int = 4) -> None:
        super().__init__()
        self.enc, self.conv = enc, nn.Conv2d(enc.embed_dim, k, 1)

    def forward(self, x: Tensor) -> Tensor:
        f = self.enc.forward_dense(x, bands='sentinel2_l1c')
        return nn.functional.interpolate(self.conv(f), scale_factor=16, mode='bilinear')


def test_predict_pixel_segmentation(tiny_model: SMARTIESViT, sample: Path, tmp_path: Path) -> None:
    torch.manual_seed(1)
    net = _PixelSeg(tiny_model)
    out = tmp_path / 'pred.tif'
    res = predict_raster(sample, out, model=net, classes=['water', 'land', 'urban', 'other'], tile=128, **KW)
    assert res.num_classes == 4 and res.shape == (384, 384)
    with rasterio.open(out) as c, rasterio.open(res.probabilities) as p, rasterio.open(sample) as s:
        assert c.dtypes[0] == 'uint8' and c.nodata == 255 and c.shape == (384, 384)
        assert c.crs == s.crs and c.transform == s.transform  # pixel map: the input grid
        cmap = c.colormap(1)
        assert cmap[0] != cmap[1] and cmap[255][3] == 0
        ids, probs = c.read(1), p.read()
        assert p.count == 4 and p.descriptions == ('water', 'land', 'urban', 'other')
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(ids, probs.argmax(0))
    assert len(np.unique(ids)) > 1


def test_predict_linear_head_cli(sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(2)
    head = tmp_path / 'head.safetensors'
    save_file({'head.weight': torch.randn(3, 64), 'head.bias': torch.zeros(3)}, str(head))
    (tmp_path / 'w.json').write_text(json.dumps({'num_heads': 4}))
    weights = tmp_path / 'w.safetensors'
    weights.write_bytes(TINY_WEIGHTS.read_bytes())
    out = tmp_path / 'o' / 'seg.tif'
    out.parent.mkdir()
    code = predict_main([str(sample), '-o', str(out), '--weights', str(weights), '--head', str(head),
                         '--tile', '128', '--workers', '0', '--no-progress'])
    assert code == 0
    with rasterio.open(out) as c:
        assert c.shape == (24, 24) and c.transform.a == 160  # per-patch map
        assert set(np.unique(c.read(1))) <= {0, 1, 2}
    text = capsys.readouterr().out
    assert 'heads 4' in text and 'sentinel2:B10' in text
    # classification: one class per tile fills the tile's footprint
    out2 = tmp_path / 'o' / 'cls.tif'
    assert predict_main([str(sample), '-o', str(out2), '--weights', str(weights), '--head', str(head), '--mode',
                         'classification', '--tile', '128', '--workers', '0', '--no-progress']) == 0
    with rasterio.open(out2) as c:
        ids = c.read(1)
    blocks = ids.reshape(3, 8, 3, 8)
    assert (blocks == blocks[:, :1, :, :1]).all()


def test_embed_cli_prints_mapping_and_weights(sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                             ) -> None:
    out = tmp_path / 'out'
    code = embed_main(['--sample', 'sentinel2', '-o', f'{out}/', '--weights', str(TINY_WEIGHTS), '--num-heads', '4',
                       '--tile', '128', '--workers', '0', '--no-progress'])
    assert code == 0
    text = capsys.readouterr().out
    assert 'weights: ' in text and 'heads 4' in text
    assert 'sentinel2:B10          -> ignored' in text and 'sentinel2:B02          -> blue_1[1]' in text
    tif = out / 'sentinel2_l1c_crop_embeddings.tif'
    png = out / 'sentinel2_l1c_crop_preview.png'
    assert tif.is_file() and png.is_file() and png.stat().st_size > 10_000
    with rasterio.open(tif) as ds:
        assert ds.count == 64 and ds.shape == (24, 24)


def test_cli_errors_are_messages(sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert embed_main([str(sample), '-o', str(tmp_path / 'x.tif'), '--sensor', 'nosuchsensor', '--weights',
                       str(TINY_WEIGHTS), '--num-heads', '4']) == 1
    assert 'not a band preset' in capsys.readouterr().err
    assert embed_main([str(sample), '-o', str(tmp_path / 'x.tif'), '--weights', str(TINY_WEIGHTS)]) == 1
    assert '--num-heads' in capsys.readouterr().err
    assert embed_main(['-o', str(tmp_path / 'x.tif')]) == 1
    assert list(tmp_path.iterdir()) == []


def test_weights_resolution(tmp_path: Path) -> None:
    sd = load_checkpoint(TINY_WEIGHTS)
    arch = infer_architecture(sd, num_heads=4)
    assert arch == {'embed_dim': 64, 'depth': 2, 'img_size': 64, 'mlp_ratio': 4.0, 'num_heads': 4}
    with pytest.raises(CheckpointError, match='--num-heads'):
        infer_architecture(sd)
    model, desc = load_encoder(str(TINY_WEIGHTS), num_heads=4)
    assert model.embed_dim == 64 and 'depth 2' in desc
    with pytest.raises(CheckpointError, match='neither an existing file'):
        load_encoder('nonexistent.safetensors')
    with pytest.raises(CheckpointError, match='no member'):
        load_encoder('SMARTIESBase16_Weights.NOPE')
    with pytest.raises(CheckpointError, match='not found locally'):  # offline: fails fast, no hang
        load_encoder('SMARTIESBase16_Weights.SMARTIES_V1')


def test_default_weights_offline_fall_back_to_demo() -> None:
    try:
        model, desc = load_encoder(None)
    except CheckpointError as err:  # the demo checkpoint is not bundled in this checkout
        assert 'demo' in str(err)
    else:
        assert desc.startswith('demo') and 'official ViT-B weights not found' in desc
        assert isinstance(model, SMARTIESViT)


def test_pca_rgb() -> None:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(8, 10, 12)).astype(np.float32)
    emb[:, 0, 0] = np.nan
    rgb = pca_rgb(emb)
    assert rgb.shape == (10, 12, 3) and (rgb[0, 0] == 0).all()
    assert 0 <= rgb.min() and rgb.max() <= 1 and rgb[1:].std() > 0.1


def test_predict_needs_one_model(sample: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match='exactly one'):
        predict_raster(sample, tmp_path / 'p.tif', **KW)
