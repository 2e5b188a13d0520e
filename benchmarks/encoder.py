"""Encoder cost vs timm's plain ViT-B/16, measured in ONE interleaved A/B run.

Prints, for batch 8 at 224² with the 12 Sentinel-2 L2A bands in float32:

* inference time ratio   SMARTIES ViT-B / timm ``vit_base_patch16_224`` (in_chans=12)   target ≤ 1.02
* training-step ratio    (forward + backward + SGD step), same pair                     target ≤ 1.02
* forward peak-memory growth at batch 32 (no grad), SMARTIES / timm                       target ≤ 1.15
* forward peak-memory growth at batch 32, 3 bands / 12 bands (SMARTIES)                   target ≈ 1.00

and, for reference, the release's tokenizer algorithm (loop over projection indices with
boolean masks into a (B, h, w, C, D) buffer, re-implemented here from its description) vs ours.

Usage: ``python benchmarks/encoder.py [--rounds 5] [--batch 8] [--threads N]``. On a GPU
(``--device cuda``) it also reports bf16 autocast and ``torch.compile`` throughput at batch 256.
"""

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import timm
import torch
from torch import nn

from torchgeo_smarties.models import SMARTIESViT, smarties_vitb
from torchgeo_smarties.spectrum import PROJECTION_SCALER, plan_bands


class ReleaseLoopTokenizer(nn.Module):
    """The release's algorithm: per unique projection index, masked gather → Linear → scatter into (B,h,w,C,D)."""

    def __init__(self, model: SMARTIESViT) -> None:
        super().__init__()
        self.embeds = model.spectrum_projection.spectrum_embeds

    def forward(self, x: torch.Tensor, proj_idx: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        s = 16
        patches = x.reshape(b, c, h // s, s, w // s, s).permute(0, 2, 4, 1, 3, 5)  # (B, h, w, C, s, s)
        idx = proj_idx.view(1, 1, 1, c).expand(b, h // s, w // s, c)
        out = torch.zeros(b, h // s, w // s, c, self.embeds[0].proj.out_features, dtype=x.dtype, device=x.device)
        for k in torch.unique(idx):
            m = idx == k
            out[m] = self.embeds[int(k)](patches[m].reshape(-1, s * s))
        return PROJECTION_SCALER * out.mean(dim=3)


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _status_kib(field: str) -> int:
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(field + ':'):
            return int(line.split()[1])
    raise RuntimeError(f'{field} not in /proc/self/status (Linux only)')


def memory_child(which: str, batch: int, bands: int) -> None:
    """Run in a subprocess: print the forward's peak RSS growth (MiB) over the built model."""
    torch.manual_seed(0)
    if which == 'timm':
        model: nn.Module = timm.create_model('vit_base_patch16_224', in_chans=bands, num_classes=0)
        kw: dict[str, object] = {}
    else:
        preset = {12: 'sentinel2_l2a', 3: 'maxar_rgb'}[bands]
        model = smarties_vitb(bands=preset)
        kw = {}
    model.eval()
    x = torch.randn(batch, bands, 224, 224)
    with torch.no_grad():
        model(x[:1], **kw)  # warm-up: allocate caches, fused weights
    gc.collect()
    base = _status_kib('VmRSS')
    Path('/proc/self/clear_refs').write_text('5')  # reset the peak-RSS counter (VmHWM) to the current RSS
    with torch.no_grad():
        model(x, **kw)
    peak = _status_kib('VmHWM')
    print(json.dumps({'growth_mib': (peak - base) / 1024}))


def memory_growth(which: str, batch: int, bands: int, threads: int) -> float:
    # glibc keeps freed heap in its arenas, which makes peak RSS depend on allocation history; serving large blocks
    # with mmap (returned at free) makes the measurement track live memory and repeat to within ~0.1 MiB.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536', MALLOC_ARENA_MAX='2')
    out = subprocess.run(
        [sys.executable, __file__, '--child', which, '--batch', str(batch), '--bands', str(bands),
         '--threads', str(threads)],
        check=True, capture_output=True, text=True, env=env,
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])['growth_mib'])


def throughput(ours: nn.Module, ref: nn.Module, loop: ReleaseLoopTokenizer, proj_idx: torch.Tensor,
               dev: torch.device, batch: int, rounds: int) -> None:
    """Images/s of ours vs timm in fp32, bf16 autocast and compiled bf16, plus the release's loop tokenizer (GPU)."""
    x = torch.randn(batch, 12, 224, 224, device=dev)
    ours.eval()
    ref.eval()
    compiled = {'ours': torch.compile(ours), 'timm': torch.compile(ref)}

    def sync() -> None:
        if dev.type == 'cuda':
            torch.cuda.synchronize()

    def run(fn: Callable[[], object]) -> float:
        fn()  # warm-up (and compilation)
        sync()
        t = time.perf_counter()
        fn()
        sync()
        return batch / (time.perf_counter() - t)

    def infer(m: nn.Module, bf16: bool) -> Callable[[], object]:
        def f() -> object:
            with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                return m(x)
        return f

    cases = {
        'fp32': (infer(ours, False), infer(ref, False)),
        'bf16 autocast': (infer(ours, True), infer(ref, True)),
        'bf16 + torch.compile': (infer(compiled['ours'], True), infer(compiled['timm'], True)),
    }
    res: dict[str, list[tuple[float, float]]] = {k: [] for k in cases}
    for r in range(rounds):
        for name, (a, b) in cases.items():
            pair = (run(a), run(b)) if r % 2 == 0 else tuple(reversed((run(b), run(a))))
            res[name].append((pair[0], pair[1]))
    print(f'throughput at batch {batch}, 224², 12 bands, device {dev} ({rounds} interleaved rounds, median img/s):')
    for name, vals in res.items():
        a = statistics.median(v[0] for v in vals)
        b = statistics.median(v[1] for v in vals)
        print(f'  {name:<22} ours {a:9.1f}  timm {b:9.1f}  ratio ours/timm {a / b:.3f}')
    with torch.inference_mode():
        tok = statistics.median(run(lambda: ours.patch_tokens(x)) for _ in range(rounds))
        rel = statistics.median(run(lambda: loop(x, proj_idx.to(dev))) for _ in range(rounds))
    print(f'  tokenizer only          fused {tok:9.1f}  release loop {rel:9.1f}  ratio fused/loop {tok / rel:.2f}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rounds', type=int, default=8)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--mem-batch', type=int, default=32)
    parser.add_argument('--threads', type=int, default=torch.get_num_threads())
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--throughput', action='store_true', help='throughput section (default on CUDA)')
    parser.add_argument('--throughput-batch', type=int, default=256)
    parser.add_argument('--child', default=None)
    parser.add_argument('--bands', type=int, default=12)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        memory_child(args.child, args.batch, args.bands)
        return

    dev = torch.device(args.device)
    torch.manual_seed(0)
    ours = smarties_vitb(bands='sentinel2_l2a').to(dev)
    ref = timm.create_model('vit_base_patch16_224', in_chans=12, num_classes=0).to(dev)
    x = torch.randn(args.batch, 12, 224, 224, device=dev)
    plan = plan_bands('sentinel2_l2a')
    proj_idx = torch.tensor([e.indices[0] for e in plan.entries])
    loop = ReleaseLoopTokenizer(ours)
    opts = {m: torch.optim.SGD(m.parameters(), lr=1e-6) for m in (ours, ref)}

    def infer(m: nn.Module) -> None:
        m.eval()
        with torch.inference_mode():
            m(x)

    def train(m: nn.Module) -> None:
        m.train()
        opts[m].zero_grad(set_to_none=True)
        m(x).float().pow(2).mean().backward()
        opts[m].step()

    def sync() -> None:
        if dev.type == 'cuda':
            torch.cuda.synchronize()

    for m in (ours, ref):  # warm-up
        infer(m)
        train(m)
    times: dict[str, list[float]] = {k: [] for k in ('inf_ours', 'inf_timm', 'train_ours', 'train_timm', 'tok_fused',
                                                    'tok_loop')}
    for r in range(args.rounds):
        pairs = [('inf_ours', lambda: infer(ours)), ('inf_timm', lambda: infer(ref)),
                 ('train_ours', lambda: train(ours)), ('train_timm', lambda: train(ref))]
        if r % 2:
            pairs = pairs[::-1]
        for name, fn in pairs:
            sync()
            times[name].append(timed(lambda fn=fn: (fn(), sync())))
        with torch.inference_mode():  # tokenizers compared on the benchmark device
            ours.eval()
            times['tok_fused'].append(timed(lambda: (ours.patch_tokens(x), sync())))
            times['tok_loop'].append(timed(lambda: (loop(x, proj_idx.to(dev)), sync())))
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    print(f'torch {torch.__version__}, timm {timm.__version__}, threads {torch.get_num_threads()}, device {dev}, '
          f'batch {args.batch}, 224², 12 S2 bands, fp32, {args.rounds} interleaved rounds')
    rows = (('inference', 'inf_ours', 'inf_timm', 1.02), ('train step', 'train_ours', 'train_timm', 1.02))
    for label, a, b, target in rows:
        print(f'{label:<12} ours {med[a]:.3f}s  timm {med[b]:.3f}s  ratio of medians {med[a] / med[b]:.3f}  '
              f'ratio of minima {best[a] / best[b]:.3f}  (target <= {target})')
    print(f'tokenizer    fused {med["tok_fused"] * 1e3:.1f} ms  release loop {med["tok_loop"] * 1e3:.1f} ms  '
          f'ratio loop/fused {med["tok_loop"] / med["tok_fused"]:.2f}')
    if dev.type == 'cuda' or args.throughput:
        throughput(ours, ref, loop, proj_idx, dev, args.throughput_batch, max(2, args.rounds // 2))
    if dev.type == 'cpu':
        g_ours = memory_growth('ours', args.mem_batch, 12, args.threads)
        g_timm = memory_growth('timm', args.mem_batch, 12, args.threads)
        g_ours3 = memory_growth('ours', args.mem_batch, 3, args.threads)
        print(f'forward peak-memory growth at batch {args.mem_batch}: ours {g_ours:.0f} MiB  timm {g_timm:.0f} MiB  '
              f'ratio {g_ours / g_timm:.3f}  (target <= 1.15)')
        print(f'forward peak-memory growth, 3 bands {g_ours3:.0f} MiB vs 12 bands {g_ours:.0f} MiB  '
              f'ratio {g_ours3 / g_ours:.3f}  (target ~1.00)')


if __name__ == '__main__':
    main()
