"""Tests of the SMARTIESPretraining Lightning task, its schedule, resume, export and CLI configs."""

import math
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from torchgeo_smarties.models.checkpoint import load_encoder_weights
from torchgeo_smarties.models.mae import random_token_mask
from torchgeo_smarties.models.vit import SMARTIESViT
from torchgeo_smarties.ops import random_assignment
from torchgeo_smarties.tasks.paired_data import PairedDataModule
from torchgeo_smarties.tasks.pretrain_cli import build_cli, main
from torchgeo_smarties.tasks.pretraining import SMARTIESPretraining, effective_lr, warmup_cosine

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(bands_a='sentinel2_10m', bands_b='sentinel2_20m', img_size=32, embed_dim=32, depth=1, num_heads=2,
            decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2)


def datamodule(crop: str, batch_size: int = 2, length: int = 8) -> PairedDataModule:
    return PairedDataModule([(crop, crop)], 'sentinel2_10m', 'sentinel2_20m', indexes_a=[2, 3, 4, 8],
                            indexes_b=[5, 6, 7, 9, 12, 13], size=32, length=length, batch_size=batch_size,
                            normalize_a='sentinel2_l1c', normalize_b='sentinel2_l1c', cache=True)


class Record(Callback):
    def __init__(self) -> None:
        self.rows: list[tuple[int, float, float]] = []

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        lr = trainer.optimizers[0].param_groups[0]['lr']
        self.rows.append((trainer.global_step, float(outputs['loss']), lr))


def trainer(tmp: Path, *cbs: Callback, **kw: Any) -> L.Trainer:
    return L.Trainer(accelerator='cpu', devices=1, logger=False, enable_progress_bar=False,
                     enable_model_summary=False, default_root_dir=str(tmp), callbacks=list(cbs), **kw)


def test_warmup_cosine_and_lr_rule() -> None:
    assert effective_lr(1.5e-4, 256, 1, 8) == pytest.approx(1.2e-3)  # the paper: batch 2048 over 8 GPUs
    assert effective_lr(1.5e-4, 64, 4, 2) == pytest.approx(1.5e-4 * 512 / 256)
    assert warmup_cosine(0, 4, 10) == pytest.approx(0.25)
    assert warmup_cosine(3, 4, 10) == pytest.approx(1.0)
    assert warmup_cosine(4, 4, 10) == pytest.approx(1.0)
    assert warmup_cosine(7, 4, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert warmup_cosine(10, 4, 10, 0.1) == pytest.approx(0.1)


def test_optimizer_groups_and_scaled_lr(tmp_path: Path, crop: str) -> None:
    task = SMARTIESPretraining(**TINY, blr=1.5e-4, warmup_steps=2)  # type: ignore[arg-type]
    dm = datamodule(crop, batch_size=2, length=8)
    rec = Record()
    trainer(tmp_path, rec, max_steps=2, accumulate_grad_batches=2).fit(task, datamodule=dm)
    opt = task.trainer.optimizers[0]
    peak = 1.5e-4 * 2 * 2 / 256  # batch × accumulate × world / 256
    assert task.peak_lr() == pytest.approx(peak)
    decay, no_decay = opt.param_groups
    assert decay['weight_decay'] == 0.05 and no_decay['weight_decay'] == 0.0
    ids = {id(p) for p in no_decay['params']}
    m = task.model
    assert id(m.cls_token) in ids and id(m.mask_token) in ids and id(m.norm.weight) in ids
    assert id(m.blocks[0].attn.qkv.bias) in ids and id(m.blocks[0].attn.qkv.weight) not in ids
    assert all(p.requires_grad for g in opt.param_groups for p in g['params'])  # fixed pos-embeds excluded
    assert rec.rows[0][2] == pytest.approx(peak * 0.5)  # warmup step 1 of 2 (accumulated batches keep the LR)


def test_resume_continues_exact_schedule_and_loss(tmp_path: Path, crop: str) -> None:
    kw = dict(**TINY, lr=1e-3, warmup_steps=2)
    full = Record()
    L.seed_everything(0)
    ckpt = ModelCheckpoint(dirpath=str(tmp_path / 'ck'), save_top_k=-1, every_n_epochs=1)
    trainer(tmp_path / 'a', full, ckpt, max_epochs=2).fit(SMARTIESPretraining(**kw), datamodule=datamodule(crop))
    assert len(full.rows) == 8
    first = sorted((tmp_path / 'ck').glob('epoch=0*.ckpt'))[0]
    resumed = Record()
    L.seed_everything(123)  # a different global RNG state must not matter
    trainer(tmp_path / 'b', resumed, max_epochs=2).fit(SMARTIESPretraining(**kw), datamodule=datamodule(crop),
                                                      ckpt_path=str(first))
    assert [r[0] for r in resumed.rows] == [5, 6, 7, 8]
    for (s1, l1, lr1), (s2, l2, lr2) in zip(full.rows[4:], resumed.rows, strict=True):
        assert s1 == s2 and lr1 == pytest.approx(lr2, rel=1e-12) and l1 == pytest.approx(l2, rel=1e-6)
    assert full.rows[-1][2] < full.rows[2][2]  # cosine decays


def test_export_on_train_end_reloads(tmp_path: Path, crop: str) -> None:
    out = tmp_path / 'enc.safetensors'
    task = SMARTIESPretraining(**TINY, lr=1e-3, warmup_steps=1, export_path=str(out))  # type: ignore[arg-type]
    trainer(tmp_path, max_steps=2).fit(task, datamodule=datamodule(crop))
    enc = SMARTIESViT(bands='sentinel2_10m', img_size=32, embed_dim=32, depth=1, num_heads=2)
    load_encoder_weights(enc, out)
    x = torch.randn(2, 4, 32, 32)
    task.model.eval()
    assert torch.equal(enc.eval()(x), task.model.encoder(x))


def test_loss_decreases_on_real_imagery_tiny_cpu_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """(a) fixed mask + fixed mixup, tiny CPU config, the bundled real crop: loss after ≤ 50 steps < step 0."""
    monkeypatch.chdir(ROOT)
    cli = build_cli(['--config', 'configs/pretrain_tiny_cpu.yaml'], run=False)
    task, dm = cli.model, cli.datamodule
    dm.setup('fit')
    batch = next(iter(dm.train_dataloader()))
    assert batch['image_a'].shape == (8, 4, 64, 64) and batch['image_b'].shape == (8, 6, 64, 64)
    g = torch.Generator().manual_seed(0)
    tm, asg = random_token_mask(8, 16, 0.75, generator=g), random_assignment(8, (4, 4), 0.5, generator=g)
    torch.manual_seed(0)
    opt = torch.optim.AdamW(task.model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    losses = []
    for _ in range(40):
        out = task.model(batch['image_a'], 'sentinel2_10m', batch['image_b'], 'sentinel2_20m', token_mask=tm,
                         assign=asg)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_configs_parse_and_instantiate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    tiny = build_cli(['--config', 'configs/pretrain_tiny_cpu.yaml'], run=False)
    assert tiny.model.model.encoder.embed_dim == 64 and tiny.datamodule.batch_size == 8
    paper = yaml.safe_load((ROOT / 'configs' / 'pretrain_vitb_paper.yaml').read_text())
    t, m, d = paper['trainer'], paper['model'], paper['data']
    assert t['devices'] * t.get('num_nodes', 1) * d['batch_size'] * t['accumulate_grad_batches'] == 2048
    assert (m['mask_ratio'], m['mixup_ratio'], m['img_size'], m['embed_dim'], m['depth']) == (0.75, 0.5, 224, 768, 12)
    assert t['strategy'] == 'ddp'
    cli = build_cli(['--config', 'configs/pretrain_vitb_paper.yaml', '--trainer.accelerator', 'cpu',
                     '--trainer.devices', '1', '--trainer.strategy', 'auto', '--trainer.precision', '32-true'],
                    run=False)
    mae = cli.model.model
    assert mae.encoder.embed_dim == 768 and len(mae.blocks) == 12 and len(mae.decoder_blocks) == 8
    assert mae.decoder_embed.out_features == 512 and mae.decoder_blocks[0].attn.num_heads == 16
    assert len(mae.decoder_preds) == 17 and mae.mask_ratio == 0.75 and mae.mixup_ratio == 0.5
    assert cli.datamodule.hparams['reproject_to'] == 'a'


def test_cli_main_help_returns_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['--help']) == 0
    out = capsys.readouterr().out
    assert 'fit' in out and 'validate' in out
