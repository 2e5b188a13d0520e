"""Step time of SMARTIES MAE pretraining vs torchgeo's ``tasks.MAE`` (same ViT size, batch, image size).

One interleaved A/B run: each round times a few Lightning training steps (forward, backward, AdamW step) of
both tasks on the same random batch; the ratio of medians is printed (target ≤ 1.10 for single-sensor MAE).
Both use norm_pix_loss, mask 0.75, the same decoder (width/depth/heads) and no augmentation. SMARTIES
is also timed on a cross-sensor *pair* (two views, i.e. ~2× the work by design) for information.

    PYTHONPATH=. python benchmarks/pretrain.py --rounds 3 --steps 6 --threads 2
"""

import argparse
import platform
import statistics
import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.utils.data import DataLoader, Dataset


class Fixed(Dataset[dict[str, Any]]):
    def __init__(self, sample: dict[str, Any], n: int) -> None:
        self.sample, self.n = sample, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.sample


class Timer(Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_start(self, *a: Any) -> None:
        self.t0 = time.perf_counter()

    def on_train_batch_end(self, *a: Any) -> None:
        self.times.append(time.perf_counter() - self.t0)


def run(task: L.LightningModule, sample: dict[str, Any], batch: int, steps: int) -> float:
    timer = Timer()
    trainer = L.Trainer(accelerator='cpu', devices=1, max_steps=steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[timer])
    trainer.fit(task, DataLoader(Fixed(sample, batch * steps), batch_size=batch))
    return statistics.median(timer.times[1:])  # first step warms up


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--steps', type=int, default=6)
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--threads', type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    import warnings

    warnings.filterwarnings('ignore')
    from torchgeo.tasks import MAE

    from torchgeo_smarties.tasks.pretraining import SMARTIESPretraining

    size, chans = 224, 13
    dec = dict(dim=128, depth=1, heads=4)
    torch.manual_seed(0)
    x = torch.randn(chans, size, size)
    xb = torch.randn(2, size, size)

    def ours() -> SMARTIESPretraining:
        return SMARTIESPretraining(bands_a='sentinel2_l1c', img_size=size, embed_dim=192, depth=12, num_heads=3,
                                   decoder_embed_dim=dec['dim'], decoder_depth=dec['depth'],
                                   decoder_num_heads=dec['heads'], norm_pix_loss=True, lr=1e-4, warmup_steps=1,
                                   lr_batch_size=args.batch)

    def ours_pair() -> SMARTIESPretraining:
        t = ours()
        t.hparams['bands_b'] = 'sentinel1'
        return t

    def theirs() -> MAE:
        return MAE(model='vit_tiny_patch16_224', in_channels=chans, transform=nn.Identity(), decoder_dim=dec['dim'],
                   decoder_depth=dec['depth'], decoder_num_heads=dec['heads'], size=size, norm_pix_loss=True,
                   lr=1e-4, warmup_epochs=0)

    res: dict[str, list[float]] = {'smarties': [], 'torchgeo': [], 'smarties_pair': []}
    for _ in range(args.rounds):
        res['smarties'].append(run(ours(), {'image_a': x}, args.batch, args.steps))
        res['torchgeo'].append(run(theirs(), {'image': x}, args.batch, args.steps))
        res['smarties_pair'].append(run(ours_pair(), {'image_a': x, 'image_b': xb}, args.batch, args.steps))
    med = {k: statistics.median(v) for k, v in res.items()}
    print(f'machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, '
          f'torch {torch.__version__}, date {time.strftime("%Y-%m-%d")}')
    print(f'config: ViT-Ti (192/12/3), decoder {dec}, image {size}, batch {args.batch}, {chans} bands, '
          f'rounds {args.rounds} x {args.steps} steps (interleaved)')
    for k, v in res.items():
        print(f'{k:14s} median step {med[k] * 1e3:8.1f} ms   rounds: ' + ', '.join(f'{t * 1e3:.1f}' for t in v))
    print(f'ratio smarties / torchgeo.MAE (single sensor): {med["smarties"] / med["torchgeo"]:.3f}  (target <= 1.10)')
    print(f'ratio smarties pair (2 views) / torchgeo.MAE: {med["smarties_pair"] / med["torchgeo"]:.3f}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
