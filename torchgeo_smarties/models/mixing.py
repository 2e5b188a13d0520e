"""Deprecated location: the mixing primitives live in :mod:`torchgeo_smarties.ops.mixing` (re-exported here)."""

from ..ops.mixing import MIXUP_MODES, MixupMode, check_mixup_mode, mix_tokens, random_assignment, stack_pair

__all__ = ('MIXUP_MODES', 'MixupMode', 'check_mixup_mode', 'mix_tokens', 'random_assignment', 'stack_pair')
