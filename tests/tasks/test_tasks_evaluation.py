"""Evaluation protocols: kNN (hand-computed), linear-probe head, layer-wise lr decay, multi-scale, eval CLI."""

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from torchgeo_smarties.errors import InputError
from torchgeo_smarties.models import SMARTIESViT
from torchgeo_smarties.tasks import (
    SMARTIESFusion,
    eval_cli,
    extract_features,
    knn_accuracy,
    knn_scores,
    linear_probe_head,
    multiscale_sizes,
    param_groups_lrd,
    resize_to_scale,
)

TRAIN = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
LABELS = torch.tensor([0, 1, 1])
TEST = torch.tensor([[1.0, 0.2]])


def test_knn_hand_computed() -> None:
    # cosine similarities of (1, 0.2)/|.| to the three training vectors
    n = math.hypot(1.0, 0.2)
    s0, s1, s2 = 1 / n, 0.2 / n, 1.2 / n / math.sqrt(2)  # 0.98058, 0.19612, 0.83205
    # k=2, T=0.5: neighbours 0 (class 0) and 2 (class 1)
    scores = knn_scores(TRAIN, LABELS, TEST, 3, k=2, temperature=0.5)
    torch.testing.assert_close(scores, torch.tensor([[math.exp(s0 / 0.5), math.exp(s2 / 0.5), 0.0]]))
    assert scores[0, 0] == pytest.approx(7.1075, abs=1e-3) and scores[0, 1] == pytest.approx(5.2806, abs=1e-3)
    assert knn_scores(TRAIN, LABELS, TEST, 3, k=2, temperature=0.5).argmax(1).tolist() == [0]
    # k=3, T=10: the weights flatten and the two class-1 neighbours outvote class 0
    scores = knn_scores(TRAIN, LABELS, TEST, 3, k=3, temperature=10.0)
    expected = [math.exp(s0 / 10), math.exp(s1 / 10) + math.exp(s2 / 10), 0.0]
    torch.testing.assert_close(scores, torch.tensor([expected]))
    assert knn_scores(TRAIN, LABELS, TEST, 3, k=3, temperature=10.0).argmax(1).tolist() == [1]
    # the defaults are the paper's (k=20 clipped to N=3, T=0.07): class 0 wins by a wide margin
    scores = knn_scores(TRAIN, LABELS, TEST, 3)
    ratio = math.exp(s0 / 0.07) / (math.exp(s1 / 0.07) + math.exp(s2 / 0.07))
    assert scores[0, 0] / scores[0, 1] == pytest.approx(ratio, rel=1e-4)
    # scale invariance (cosine on L2-normalised features)
    torch.testing.assert_close(knn_scores(TRAIN * 5, LABELS, TEST * 0.1, 3), knn_scores(TRAIN, LABELS, TEST, 3),
                               rtol=1e-5, atol=0)


def test_knn_multilabel_and_accuracy() -> None:
    multi = torch.tensor([[1, 0], [0, 1], [1, 1]])
    scores = knn_scores(TRAIN, multi, TEST, 2, k=2, temperature=0.5)
    n = math.hypot(1.0, 0.2)
    w0, w2 = math.exp(1 / n / 0.5), math.exp(1.2 / n / math.sqrt(2) / 0.5)
    torch.testing.assert_close(scores, torch.tensor([[w0 + w2, w2]]))
    assert knn_accuracy(knn_scores(TRAIN, LABELS, torch.cat([TEST, TRAIN[1:2]]), 2, k=1), torch.tensor([0, 1])) == 1.0
    assert knn_accuracy(knn_scores(TRAIN, multi, TRAIN, 2, k=1), multi) == 1.0  # mAP of a perfect ranking


def test_map_ties_and_labels_without_positives() -> None:
    from torchgeo_smarties.tasks.evaluation import _mean_average_precision

    scores = torch.tensor([[0.9, 0.1, 0.5], [0.5, 0.2, 0.5], [0.5, 0.3, 0.1]])
    targets = torch.tensor([[1, 0, 1], [0, 0, 1], [1, 0, 0]])
    # label 0: the tie at 0.5 (one positive, one negative) is one threshold: AP = 0.5·1 + 0.5·(2/3) = 5/6, whatever
    # the order argsort gives the tied rows; label 1 has no positive and is left out; label 2: AP = 1
    assert _mean_average_precision(scores, targets) == pytest.approx((5 / 6 + 1.0) / 2)
    assert _mean_average_precision(scores[[2, 1, 0]], targets[[2, 1, 0]]) == pytest.approx((5 / 6 + 1.0) / 2)
    with pytest.raises(InputError):
        knn_scores(TRAIN, LABELS[:2], TEST, 2)


def test_linear_probe_head_matches_release() -> None:
    torch.manual_seed(0)
    head = linear_probe_head(768, 1000)
    bn, fc = head
    assert isinstance(bn, torch.nn.BatchNorm1d) and not bn.affine and bn.eps == 1e-6 and bn.weight is None
    assert isinstance(fc, torch.nn.Linear) and (fc.in_features, fc.out_features) == (768, 1000)
    assert float(fc.weight.std()) == pytest.approx(0.01, rel=0.02) and float(fc.weight.mean()) == pytest.approx(
        0.0, abs=1e-4)
    assert torch.count_nonzero(fc.bias) == 0
    assert [n for n, _ in head.named_parameters()] == ['1.weight', '1.bias']


def test_param_groups_lrd_layer_scales() -> None:
    model = SMARTIESViT(embed_dim=32, depth=3, num_heads=2, img_size=32, num_classes=5)
    groups = param_groups_lrd(model, 1e-3, 0.05, 0.75)
    ours = {n: g['lr_scale'] for g in groups for n in g['names']}
    assert ours.keys() == {n for n, p in model.named_parameters() if p.requires_grad}
    for g in groups:  # torch optimisers read lr, not lr_scale
        assert g['lr'] == pytest.approx(1e-3 * g['lr_scale'])
    assert ours['cls_token'] == pytest.approx(0.75**4)
    assert ours['blocks.0.attn.qkv.weight'] == pytest.approx(0.75**3)
    assert ours['blocks.2.mlp.fc2.bias'] == pytest.approx(0.75)
    assert ours['patch_embed.spectrum_embeds.7.proj.weight'] == 1.0 == ours['head.weight']
    assert ours['norm.weight'] == pytest.approx(0.75)  # with the last block, as timm's matcher
    assert 'pos_embed' not in ours  # fixed sin-cos, not trained
    groups = param_groups_lrd(model, 1e-3, 0.05, 0.75)
    wd = {n: g['weight_decay'] for g in groups for n in g['names']}
    assert wd['cls_token'] == 0.05 and wd['blocks.0.norm1.weight'] == 0.0  # like the release
    # a wrapper: encoder params are decayed, the fusion head gets 1.0
    fusion = SMARTIESFusion(SMARTIESViT(embed_dim=32, depth=2, num_heads=2, img_size=32), 'sentinel1',
                            'sentinel2_l2a', 'concat', num_classes=3)
    scales = {n: g['lr_scale'] for g in param_groups_lrd(fusion, 1.0) for n in g['names']}
    assert scales['encoder.blocks.0.attn.proj.weight'] == pytest.approx(0.75**2) and scales['head.weight'] == 1.0


def test_multiscale() -> None:
    assert multiscale_sizes(224, 224) == [(32, 32), (64, 64), (112, 112), (224, 224)]
    assert multiscale_sizes(64, 64) == [(16, 16), (16, 16), (32, 32), (64, 64)]
    assert multiscale_sizes(120, 96, (0.5,)) == [(64, 48)]
    x = torch.randn(2, 3, 64, 64)
    assert resize_to_scale(x, 0.5).shape == (2, 3, 32, 32)
    assert resize_to_scale(x, 1.0) is x
    with pytest.raises(InputError):
        multiscale_sizes(64, 64, (0.0,))


class FakeEuroSAT(torch.utils.data.Dataset[dict[str, Tensor]]):
    """EuroSAT-like: 13 bands (B8A last), 64 px, 10 classes of distinct spectra; 'train'/'test' splits."""

    def __init__(self, root: str = 'data', split: str = 'train', download: bool = False) -> None:
        assert Path(root).is_dir()
        g = torch.Generator().manual_seed(0 if split == 'train' else 1)
        proto = torch.rand(10, 13, 1, 1, generator=torch.Generator().manual_seed(7)) * 3000
        self.labels = torch.arange(30) % 10
        self.images = proto[self.labels] + torch.rand(30, 13, 64, 64, generator=g) * 100

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {'image': self.images[i], 'label': self.labels[i]}


class FakeSpec(eval_cli.EvalDataset):
    def load(self) -> Any:
        return FakeEuroSAT


def test_eval_knn_cli(tmp_path: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch,
                      capsys: pytest.CaptureFixture[str]) -> None:
    spec = FakeSpec('fake:FakeEuroSAT', 'eurosat', 10, normalize='eurosat')
    monkeypatch.setitem(eval_cli.DATASETS, 'eurosat', spec)
    monkeypatch.setattr(eval_cli, '_normalizer', lambda preset, bands=None: (lambda x: x / 3000))
    out = tmp_path / 'res.json'
    from torchgeo_smarties.cli import main

    code = main(['eval', 'knn', '--dataset', 'eurosat', '--root', str(tmp_path), '--model', 'smarties_test_d2',
                 '--weights', str(tiny_weights), '--image-size', '64', '--scales', '0.5', '1.0',
                 '--batch-size', '16', '--device', 'cpu', '--output', str(out)])
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    results = json.loads(out.read_text())
    assert lines == results and [r['scale'] for r in results] == [0.5, 1.0]
    for r in results:
        assert r['metric'] == 'accuracy' and r['k'] == 20 and r['n_train'] == r['n_test'] == 30
        assert r['value'] >= 0.9  # classes have distinct spectra


def test_eval_real_normalizer_or_skip() -> None:
    pytest.importorskip('torchgeo_smarties.transforms')
    try:
        norm = eval_cli._normalizer('eurosat')
    except Exception as err:  # the transforms engineer's preset names may differ
        pytest.skip(f'SmartiesNormalize.from_preset("eurosat") unavailable: {err}')
    x = torch.rand(2, 13, 32, 32) * 3000
    y = norm(x)
    assert y.shape == x.shape and torch.isfinite(y).all() and not torch.allclose(x, y)


def test_extract_features_on_loader() -> None:
    enc = SMARTIESViT(embed_dim=32, depth=1, num_heads=2, img_size=32, bands='eurosat').eval()
    ds = FakeEuroSAT.__new__(FakeEuroSAT)
    ds.labels = torch.arange(5)
    ds.images = torch.randn(5, 13, 32, 32)
    feats, labels = extract_features(enc, DataLoader(ds, batch_size=2))
    assert feats.shape == (5, 32) and labels.tolist() == [0, 1, 2, 3, 4]
    with torch.no_grad():
        torch.testing.assert_close(feats, enc(ds.images))


def test_bigearthnet_s1_channels_follow_torchgeo_file_order() -> None:
    """torchgeo reads BigEarthNet S1 as (VH, VV): the encoder and the normaliser must use that order."""
    spec = eval_cli.DATASETS['bigearthnet_s1']
    assert spec.channels == ('sentinel1:VH', 'sentinel1:VV')
    norm = eval_cli._normalizer(spec.normalize or '', spec.channels)
    x = torch.tensor([-20.0, -10.0]).reshape(1, 2, 1, 1)  # VH = -20 dB, VV = -10 dB
    out = norm(x).flatten()
    # VV at -10 dB: ((-10 + 29.5197) / (-3.4569 + 29.5197) - 0.64934552) / 0.19030459 = 0.5234
    assert abs(float(out[1]) - 0.5234) < 1e-3
