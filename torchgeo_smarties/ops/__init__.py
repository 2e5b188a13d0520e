"""Tensor operations shared by the models, transforms and tasks (imports only torch and the spectrum core).

* :mod:`~torchgeo_smarties.ops.mixing`: cross-sensor token mixing (assignments, stacked pairs, mix-up modes);
* :mod:`~torchgeo_smarties.ops.masking`: validity masks per band / patch / pixel → per (band, patch);
* :mod:`~torchgeo_smarties.ops.patchify`: the patch layout of images;
* :mod:`~torchgeo_smarties.ops.sampling`: the argsort-rank sampler behind every random mask.
"""

from .masking import patch_validity
from .mixing import MIXUP_MODES, MixupMode, check_mixup_mode, mix_tokens, random_assignment, stack_pair
from .patchify import patchify, patchify_bands
from .sampling import random_ranks

__all__ = (
    'MIXUP_MODES',
    'MixupMode',
    'check_mixup_mode',
    'mix_tokens',
    'patch_validity',
    'patchify',
    'patchify_bands',
    'random_assignment',
    'random_ranks',
    'stack_pair',
)
