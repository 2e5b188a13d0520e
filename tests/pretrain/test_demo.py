"""(b) The demo checkpoint is a real model: held-out masked reconstruction beats untrained and trivial baselines."""

import pytest
import rasterio
import torch

from torchgeo_smarties.models.demo import DEMO_DECODER, DEMO_INFO, DEMO_WEIGHTS, load_demo_encoder, load_demo_mae
from torchgeo_smarties.models.vit import SMARTIESViT
from torchgeo_smarties.tasks.demo_report import demo_heldout_report
from torchgeo_smarties.transforms import SmartiesNormalize


def test_demo_files_and_info() -> None:
    assert DEMO_WEIGHTS.stat().st_size + DEMO_DECODER.stat().st_size <= 10 * 2**20
    for key in ('embed_dim', 'depth', 'num_heads', 'img_size', 'default_bands', 'normalization', 'training', 'data'):
        assert key in DEMO_INFO
    assert DEMO_INFO['licence'] == 'Apache-2.0' and 'CC0' in DEMO_INFO['data']['licence']
    assert 'sentinel2:B08' in DEMO_INFO['normalization']['stats']
    assert DEMO_INFO['training']['steps'] >= 500


def test_load_demo_encoder_embeds_the_sample(crop: str) -> None:
    enc = load_demo_encoder()
    assert isinstance(enc, SMARTIESViT) and enc.embed_dim == DEMO_INFO['embed_dim']
    with rasterio.open(crop) as src:
        x = torch.from_numpy(src.read(window=((0, 96), (0, 96))).astype('float32'))
    x = SmartiesNormalize.from_preset('sentinel2_l1c', 'sentinel2_l1c').normalize(x)[None]
    with torch.no_grad():
        f = enc(x)
    assert f.shape == (1, DEMO_INFO['embed_dim']) and torch.isfinite(f).all()
    assert load_demo_encoder(img_size=224).patch_embed.img_size == (224, 224)
    with pytest.raises(Exception, match='embed_dim'):
        load_demo_encoder(embed_dim=32)


def test_demo_heldout_reconstruction_beats_untrained_and_baseline() -> None:
    report = demo_heldout_report(load_demo_mae(), seed=0)
    trained, untrained = report['trained'], report['untrained']
    assert report['tiles'] == 16 and trained['num_tokens'] == untrained['num_tokens'] > 0
    assert trained['model_mse'] < trained['baseline_mse']
    assert trained['model_mse'] < untrained['model_mse']
    # the documented numbers
    ref = DEMO_INFO['heldout_eval']
    assert trained['model_mse'] == pytest.approx(ref['trained']['model_mse'], rel=1e-3)
    assert trained['baseline_mse'] == pytest.approx(ref['trained']['baseline_mse'], rel=1e-3)
    assert untrained['model_mse'] == pytest.approx(ref['untrained']['model_mse'], rel=1e-3)
