"""Random per-sample ranks: the one argsort-rank sampler behind token masks, mixup assignments and band subsets."""

import torch
from torch import Tensor

__all__ = ('random_ranks',)


def random_ranks(
    batch: int, n: int, *, generator: torch.Generator | None = None, device: torch.device | str | None = None
) -> Tensor:
    """Per sample, a uniformly random rank 0…n−1 for each of *n* items: (B, n) int64.

    The release's sampler: the rank of each item in an argsort of uniform noise (so ``ranks < k`` selects
    exactly k items uniformly at random). With a *generator* the noise is drawn on the CPU (reproducible
    across devices) and the ranks moved to *device*.
    """
    noise = torch.rand(batch, n, generator=generator, device='cpu' if generator is not None else device)
    return noise.argsort(dim=1).argsort(dim=1).to(device)
