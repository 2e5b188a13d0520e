"""Cost of SMARTIES normalisation + cross-sensor mixup relative to the ViT-B encoder forward.

One interleaved A/B run: each round times, on the same batch, (A) the transforms and (B) the encoder
forward, so that machine-load drift affects both. Prints per-round times and the median ratio.

    PYTHONPATH=. .venv/bin/python benchmarks/transforms.py            # 64 × 12 × 224², 2 rounds, CPU
    PYTHONPATH=. .venv/bin/python benchmarks/transforms.py --device cuda --rounds 10

Target (issue 4): normalisation + mixup < 5 % of the encoder forward on CPU.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from torchgeo_smarties.models import smarties_vitb
from torchgeo_smarties.transforms import CrossSensorMixup, PairedGeometric, SmartiesNormalize


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fn()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--batch', type=int, default=64)
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (default: torch default)')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    b, s = args.batch, args.size

    # raw-unit inputs: S2 L2A reflectance ×10000 (12 bands) and co-registered S1 in dB (2 bands)
    s2 = (torch.rand(b, 12, s, s, device=device) * 4000.0).contiguous()
    s1 = (torch.rand(b, 2, s, s, device=device) * 25.0 - 30.0).contiguous()
    fine = torch.rand(b, 3, 2 * s, 2 * s, device=device) * 255.0

    norm_s2 = SmartiesNormalize.from_preset('sentinel2_l2a')
    norm_s1 = SmartiesNormalize.from_preset('sentinel1')
    mixup = CrossSensorMixup(bands_a='sentinel2_l2a', bands_b='sentinel1')
    paired = PairedGeometric(size=s)
    model = smarties_vitb().to(device).eval()

    def transforms() -> object:
        a = norm_s2(s2)
        c = norm_s1(s1)
        return mixup(a, c)

    def geometry() -> object:
        return paired(s2, fine)

    def encoder() -> object:
        return model(s2)

    rows: list[tuple[float, float, float]] = []
    with torch.inference_mode():
        transforms()  # warm-up (allocator, kernels)
        geometry()
        for r in range(args.rounds):
            t_enc = _timed(encoder, device)
            t_tr = _timed(transforms, device)
            t_geo = _timed(geometry, device)
            rows.append((t_tr, t_geo, t_enc))
            print(
                f'round {r}: normalise+mixup {t_tr * 1e3:8.1f} ms | paired crop/flip/rot90 {t_geo * 1e3:8.1f} ms | '
                f'ViT-B forward {t_enc * 1e3:9.1f} ms | ratio {100 * t_tr / t_enc:5.2f} %',
                flush=True,
            )
    med = statistics.median
    ratio = med(r[0] / r[2] for r in rows)
    ratio_geo = med(r[1] / r[2] for r in rows)
    print(
        f'\nbatch {b}×12×{s}² (+ S1 {b}×2×{s}², fine RGB {b}×3×{2 * s}² for the paired geometry), device {device}, '
        f'threads {torch.get_num_threads()}, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, '
        f'torch {torch.__version__}, {datetime.date.today().isoformat()}'
    )
    print(f'median normalise(S2)+normalise(S1)+mixup / ViT-B forward: {100 * ratio:.2f} % (target < 5 % on CPU)')
    print(f'median paired RandomResizedCrop+flips+rot90 / ViT-B forward: {100 * ratio_geo:.2f} % (informative)')


if __name__ == '__main__':
    main()
