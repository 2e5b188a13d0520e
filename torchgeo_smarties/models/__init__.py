"""SMARTIES encoder, weights, builders and registration."""

from .builders import (
    ARCHS,
    TIMM_TAGS,
    smarties_vit_base_patch16,
    smarties_vit_large_patch16,
    smarties_vitb,
    smarties_vitl,
)
from .checkpoint import (
    check_state_dict_values,
    checkpoint_filter_fn,
    extract_backbone,
    filter_encoder_state_dict,
    from_release_keys,
    load_checkpoint,
    load_encoder_weights,
    read_checkpoint,
    to_release_keys,
    to_release_state_dict,
)
from .demo import DEMO_INFO, load_demo_encoder, load_demo_mae
from .mae import SMARTIESMAE, MAEOutput, masked_reconstruction_errors, patchify_bands, random_token_mask
from .pos_embed import get_2d_sincos_pos_embed, resample_pos_embed
from .register import register_with_torchgeo, smarties_vit_tiny_patch16, smarties_vitt
from .tokenizer import SpectrumAwareProjection, SpectrumPatchEmbed, SpectrumRangeProjection, patch_validity
from .vit import DEFAULT_PRESETS, Bands, SMARTIESViT, default_bands_for
from .weights import (
    SMARTIESBase16_Weights,
    SMARTIESLarge16_Weights,
    SMARTIESTiny16_Weights,
    SMARTIESWeightsEnum,
    SmartiesWeightsTransforms,
    find_weights_file,
    resolve_weights_arg,
)

__all__ = (
    'ARCHS',
    'DEFAULT_PRESETS',
    'DEMO_INFO',
    'SMARTIESMAE',
    'TIMM_TAGS',
    'Bands',
    'MAEOutput',
    'SMARTIESBase16_Weights',
    'SMARTIESLarge16_Weights',
    'SMARTIESTiny16_Weights',
    'SMARTIESViT',
    'SMARTIESWeightsEnum',
    'SmartiesWeightsTransforms',
    'SpectrumAwareProjection',
    'SpectrumPatchEmbed',
    'SpectrumRangeProjection',
    'check_state_dict_values',
    'checkpoint_filter_fn',
    'default_bands_for',
    'extract_backbone',
    'filter_encoder_state_dict',
    'find_weights_file',
    'from_release_keys',
    'get_2d_sincos_pos_embed',
    'load_checkpoint',
    'load_demo_encoder',
    'load_demo_mae',
    'load_encoder_weights',
    'masked_reconstruction_errors',
    'patch_validity',
    'patchify_bands',
    'random_token_mask',
    'read_checkpoint',
    'register_with_torchgeo',
    'resample_pos_embed',
    'resolve_weights_arg',
    'smarties_vit_base_patch16',
    'smarties_vit_large_patch16',
    'smarties_vit_tiny_patch16',
    'smarties_vitb',
    'smarties_vitl',
    'smarties_vitt',
    'to_release_keys',
    'to_release_state_dict',
)

# Importing torchgeo_smarties.models registers with torchgeo (the timm entrypoints register in builders.py).
register_with_torchgeo()
