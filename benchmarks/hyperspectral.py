"""Hyperspectral at the cost of 12 bands: ViT-B forward at 224 bands ÷ 12 bands, in ONE interleaved run.

Arms (same ViT-B/16 weights, inference, float32, batch ``--batch`` at 224²):

* ``s2``      the 12 Sentinel-2 L2A bands (fused projection);
* ``hyper``   a 224-band plan (the L2A bands repeated and interleaved with interpolated Landsat bands):
  the tokenizer mixes the 224 channels into the 17 learned ranges first (``mixes_first``), the default;
* ``fused``   the same 224-band plan forced through the fused C-channel projection (the old path), for reference;
* ``tok_*``   the tokenizer alone at 224 bands, mix-first vs fused.

Prints the median time of each arm over ``--rounds`` interleaved rounds and the ratios
``hyper / s2`` (target ≤ 1.15) and ``fused / s2``.

Usage: ``python benchmarks/hyperspectral.py [--rounds 5] [--batch 2] [--threads N]``.
"""

import argparse
import statistics
import time
from unittest import mock

import torch

from torchgeo_smarties.models import smarties_vitb
from torchgeo_smarties.models.tokenizer import SpectrumAwareProjection
from torchgeo_smarties.spectrum import plan_bands


def main() -> None:
    """Run the benchmark and print one line per arm and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--threads', type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = smarties_vitb().eval()
    s2 = plan_bands('sentinel2_l2a')
    pool = list(s2.bands) + ['landsat8:B1', 'landsat8:B2', 'landsat8:B5', 'landsat8:B7']
    hyper = plan_bands([pool[i % len(pool)] for i in range(224)])
    assert model.spectrum_projection.mixes_first(hyper) and not model.spectrum_projection.mixes_first(s2)
    g = torch.Generator().manual_seed(0)
    x12 = torch.randn(args.batch, 12, 224, 224, generator=g)
    x224 = torch.randn(args.batch, 224, 224, 224, generator=g)

    def fused_forward() -> torch.Tensor:
        with mock.patch.object(SpectrumAwareProjection, 'mixes_first', lambda self, plan: False):
            return model(x224, bands=hyper)

    def fused_tokens() -> torch.Tensor:
        with mock.patch.object(SpectrumAwareProjection, 'mixes_first', lambda self, plan: False):
            return model.patch_tokens(x224, bands=hyper)

    arms = {
        's2': lambda: model(x12, bands=s2),
        'hyper': lambda: model(x224, bands=hyper),
        'fused': fused_forward,
        'tok_mix': lambda: model.patch_tokens(x224, bands=hyper),
        'tok_fused': fused_tokens,
    }
    times: dict[str, list[float]] = {k: [] for k in arms}
    with torch.inference_mode():
        for fn in arms.values():  # warm-up (and the fused-weight caches)
            fn()
        for _ in range(args.rounds):
            for name, fn in arms.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f'{k:6s} median {v * 1e3:8.1f} ms  (rounds: {", ".join(f"{t * 1e3:.0f}" for t in times[k])})')
    print(f'forward at 224 bands ÷ 12 bands (mix first): {med["hyper"] / med["s2"]:.3f}   target ≤ 1.15')
    print(f'forward at 224 bands ÷ 12 bands (fused, old): {med["fused"] / med["s2"]:.3f}')
    print(f'tokenizer at 224 bands, fused ÷ mix first: {med["tok_fused"] / med["tok_mix"]:.2f}')


if __name__ == '__main__':
    main()
