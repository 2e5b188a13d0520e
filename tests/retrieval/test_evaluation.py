"""``smarties eval retrieval``: the BigEarthNetV2 adapter (mocked dataset) and the paired-folder path."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch

from torchgeo_smarties.cli import main
from torchgeo_smarties.models import SMARTIESViT
from torchgeo_smarties.retrieval import bigearthnet_v2_chips, embed_pairs, evaluate_pairs, read_paired_folder
from torchgeo_smarties.retrieval.evaluation import BIGEARTHNET_V2_BANDS


class FakeBigEarthNetV2:
    """What torchgeo's BigEarthNetV2(bands='all') returns: image_s1 (2, H, W), image_s2 (12, H, W), label (19,)."""

    def __init__(self, n: int = 6) -> None:
        g = torch.Generator().manual_seed(0)
        self.items = [{'image_s1': torch.rand(2, 20, 20, generator=g) * -20,
                       'image_s2': torch.rand(12, 20, 20, generator=g) * 3000,
                       'mask': torch.zeros(1, 20, 20, dtype=torch.long),
                       'label': torch.nn.functional.one_hot(torch.tensor(i % 3), 19)} for i in range(n)]
        self.calls = 0

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        self.calls += 1
        return self.items[i]


@pytest.fixture
def tiny() -> SMARTIESViT:
    torch.manual_seed(0)
    return SMARTIESViT(bands='sentinel2_l1c', embed_dim=32, depth=2, num_heads=2, img_size=32).eval()


def test_bigearthnet_v2_adapter(tiny: SMARTIESViT) -> None:
    ds = FakeBigEarthNetV2()
    chips = bigearthnet_v2_chips(ds, max_samples=5)
    assert chips.bands == BIGEARTHNET_V2_BANDS and chips.labels.shape == (5, 19)
    assert chips.norm == {'s1': 'bigearthnet_s1', 's2': 'bigearthnet_s2'}
    emb = embed_pairs(chips, tiny, image_size=32, batch_size=4, log=lambda _: None)
    assert emb.vectors['s1'].shape == emb.vectors['s2'].shape == (5, 32)
    assert torch.isfinite(emb.vectors['s1']).all()
    # the first embedding equals the one of the chip alone (batching does not mix samples; float tolerance)
    one = embed_pairs(bigearthnet_v2_chips(ds, max_samples=1), tiny, image_size=32, log=lambda _: None)
    torch.testing.assert_close(one.vectors['s2'][0], emb.vectors['s2'][0], atol=1e-5, rtol=1e-5)
    res = evaluate_pairs(emb, k=[2])
    assert [r['direction'] for r in res] == ['s1->s2', 's2->s1', 's1->s1', 's2->s2']
    assert all(0 <= r['mAP@2'] <= 1 for r in res)


def write_chips(root: Path, n: int = 6) -> Path:
    rng = np.random.default_rng(0)
    (root / 's1').mkdir(parents=True)
    (root / 's2').mkdir()
    names = ['forest', 'water', 'urban']
    with open(root / 'labels.csv', 'w') as f:
        f.write('id,labels\n')
        for i in range(n):
            f.write(f'chip{i},{names[i % 3]};{names[(i + 1) % 3] if i % 2 else names[i % 3]}\n')
    for s, c in (('s1', 2), ('s2', 4)):
        for i in range(n):
            with rasterio.open(root / s / f'chip{i}.tif', 'w', driver='GTiff', height=32, width=32, count=c,
                               dtype='float32') as ds:
                ds.write((rng.random((c, 32, 32)) * (3000 if s == 's2' else -20)).astype(np.float32))
    return root


def test_paired_folder(tmp_path: Path) -> None:
    root = write_chips(tmp_path / 'chips')
    chips = read_paired_folder(root, bands={'s1': 'sentinel1:VV,sentinel1:VH',
                                            's2': 'sentinel2:B02,sentinel2:B03,sentinel2:B04,sentinel2:B08'})
    assert chips.ids == [f'chip{i}' for i in range(6)]
    assert chips.labels.sum(1).tolist() == [1, 2, 1, 2, 1, 2]  # forest/water/urban per row
    assert chips.images['s2'][3].shape == (4, 32, 32)


def test_eval_retrieval_cli_on_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_chips(tmp_path / 'chips')
    out = tmp_path / 'res.json'
    rc = main(['eval', 'retrieval', '--folder', str(root), '--weights', 'demo', '--image-size', '32', '-k', '1', '3',
               '--s1-bands', 'sentinel1:VV,sentinel1:VH', '--norm-s1', 'none', '--norm-s2', 'none',
               '--s2-bands', 'sentinel2:B02,sentinel2:B03,sentinel2:B04,sentinel2:B08', '--output', str(out)])
    assert rc == 0
    results = json.loads(out.read_text())
    assert len(results) == 8 and {r['k'] for r in results} == {1, 3}
    assert results[0]['weights'].startswith('demo') and 'mAP@1' in results[0]
    assert capsys.readouterr().out.count('\n') == 8  # one JSON line per result
