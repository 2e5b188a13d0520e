"""Model builders: torchgeo-style ``smarties_vitb``/``smarties_vitl`` and timm entrypoints.

* ``smarties_vitb(weights=..., bands=..., interpolation=...)`` — torchgeo style; *weights*
  is an enum member, a local ``.safetensors``/``.pth`` path, or None.
* timm: ``smarties_vit_base_patch16`` / ``smarties_vit_large_patch16`` with pretrained
  tags that set the default band preset, e.g.
  ``timm.create_model('smarties_vit_base_patch16.sentinel1', pretrained=True)``.
"""

import os
from collections.abc import Mapping
from typing import Any

from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import Tensor

from ..errors import CheckpointError, UnknownPresetError
from ..spectrum import NUM_LEARNED_RANGES, PRESETS, InterpolationPolicy
from .checkpoint import checkpoint_filter_fn, load_encoder_weights
from .pyramid import pyramid_feature_cfg
from .vit import Bands, SMARTIESViT, default_bands_for
from .weights import (
    SMARTIESBase16_Weights,
    SMARTIESLarge16_Weights,
    SMARTIESWeightsEnum,
    find_weights_file,
    pretrained_cfg_notes,
)

__all__ = (
    'ARCHS',
    'FIRST_CONV',
    'TIMM_TAGS',
    'smarties_vit_base_patch16',
    'smarties_vit_large_patch16',
    'smarties_vitb',
    'smarties_vitl',
)

#: Architecture hyper-parameters (release: ``models_smarties.py``).
ARCHS: dict[str, dict[str, Any]] = {
    'smarties_vit_base_patch16': {'embed_dim': 768, 'depth': 12, 'num_heads': 12},
    'smarties_vit_large_patch16': {'embed_dim': 1024, 'depth': 24, 'num_heads': 16},
}
_ENUMS: dict[str, type[SMARTIESWeightsEnum]] = {
    'smarties_vit_base_patch16': SMARTIESBase16_Weights,
    'smarties_vit_large_patch16': SMARTIESLarge16_Weights,
}

#: timm pretrained tags → default band preset (the first tag is the default).
TIMM_TAGS: tuple[str, ...] = (
    'sentinel2_l2a', 'sentinel2_l1c', 'sentinel2_rgb', 'sentinel1', 'maxar_rgb', 'eurosat', 'bigearthnet_s2',
    'bigearthnet_s1', 'landsat8', 'landsat8_sr', 'landsat9', 'landsat7', 'hls_s30', 'hls_l30', 'planetscope',
    'superdove', 'worldview3',
)

#: timm ``default_cfg['first_conv']``: the spectral projection, one learned ``Linear(S·S → D)`` per range, all of
#: them the model's input layer (inside ``patch_embed``).
FIRST_CONV: tuple[str, ...] = tuple(f'patch_embed.spectrum_embeds.{k}.proj' for k in range(NUM_LEARNED_RANGES))


def _cfg(arch: str, tag: str) -> dict[str, Any]:
    enum = _ENUMS[arch].SMARTIES_V1
    return {
        'hf_hub_id': enum.meta['hf_repo'],
        'hf_hub_filename': enum.meta['filename'],
        'num_classes': 0,
        'input_size': (len(PRESETS[tag]), 224, 224),
        # SMARTIES normalisation is per band and sensor (SmartiesNormalize), not timm's mean/std: identity here
        'mean': (0.0,) * len(PRESETS[tag]),
        'std': (1.0,) * len(PRESETS[tag]),
        'fixed_input_size': False,
        'first_conv': FIRST_CONV,
        'classifier': 'head',
        'license': 'apache-2.0',
        'paper_ids': 'arXiv:2506.19585',
        'paper_name': 'SMARTIES: Spectrum-Aware Multi-Sensor Auto-Encoder for Remote Sensing Images',
        'origin_url': 'https://github.com/gsumbul/SMARTIES',
        'custom_load': True,
        **pretrained_cfg_notes(tag),  # band ids, and that mean/std are not the normalisation
    }


default_cfgs = generate_default_cfgs({f'{a}.{t}': _cfg(a, t) for a in ARCHS for t in TIMM_TAGS})


def _tag_of(pretrained_cfg: Any) -> str | None:
    if pretrained_cfg is None:
        return None
    if isinstance(pretrained_cfg, str):
        return pretrained_cfg
    tag = getattr(pretrained_cfg, 'tag', None)
    if tag is None and isinstance(pretrained_cfg, Mapping):
        tag = pretrained_cfg.get('tag')
    return None if tag is None else str(tag)


def _create(arch: str, pretrained: bool, **kwargs: Any) -> SMARTIESViT:
    tag = _tag_of(kwargs.get('pretrained_cfg'))
    if tag is not None and tag not in TIMM_TAGS:
        raise UnknownPresetError(f'unknown tag {tag!r} for {arch}; valid tags: {", ".join(TIMM_TAGS)}')
    if kwargs.get('bands') is None:
        if tag is not None:
            kwargs['bands'] = tag
        elif kwargs.get('in_chans') is not None:
            kwargs['bands'] = default_bands_for(int(kwargs['in_chans']))
        else:
            kwargs['bands'] = TIMM_TAGS[0]
    for k, v in ARCHS[arch].items():
        kwargs.setdefault(k, v)
    overlay = dict(kwargs.pop('pretrained_cfg_overlay', None) or {})
    if pretrained and 'file' not in overlay:
        enum = _ENUMS[arch].SMARTIES_V1
        overlay['file'] = str(find_weights_file(enum.meta['hf_repo'], enum.meta['filename']))
    if pretrained:
        overlay['custom_load'] = True
    feature_cfg = pyramid_feature_cfg(kwargs)  # features_only=True → the 4-level pyramid (models/pyramid.py)
    model: SMARTIESViT = build_model_with_cfg(
        SMARTIESViT,
        arch,
        pretrained,
        pretrained_cfg_overlay=overlay or None,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=feature_cfg,
        **kwargs,
    )
    return model


@register_model
def smarties_vit_base_patch16(pretrained: bool = False, **kwargs: Any) -> SMARTIESViT:
    """timm entrypoint: SMARTIES ViT-B/16 (768 × 12 blocks × 12 heads)."""
    return _create('smarties_vit_base_patch16', pretrained, **kwargs)


@register_model
def smarties_vit_large_patch16(pretrained: bool = False, **kwargs: Any) -> SMARTIESViT:
    """timm entrypoint: SMARTIES ViT-L/16 (1024 × 24 blocks × 16 heads)."""
    return _create('smarties_vit_large_patch16', pretrained, **kwargs)


def _build(
    arch: str,
    weights: SMARTIESWeightsEnum | str | os.PathLike[str] | Mapping[str, Tensor] | None,
    bands: Bands | None,
    interpolation: InterpolationPolicy,
    kwargs: dict[str, Any],
) -> SMARTIESViT:
    for k, v in ARCHS[arch].items():
        kwargs.setdefault(k, v)
    model = SMARTIESViT(bands=bands, interpolation=interpolation, **kwargs)
    if weights is None:
        return model
    if isinstance(weights, SMARTIESWeightsEnum):
        if weights.meta['model'] != arch:
            raise CheckpointError(f'{weights!r} holds {weights.meta["model"]} weights, not {arch}')
        state: Any = weights.get_state_dict()
    elif isinstance(weights, str) and not os.path.exists(weights) and '.' in weights and '/' not in weights:
        from torchgeo.models import get_weight

        try:
            state = get_weight(weights).get_state_dict()
        except (ValueError, KeyError) as err:
            raise CheckpointError(f'{weights!r} is neither a file nor a weights enum name: {err}') from err
    else:
        state = weights
    load_encoder_weights(model, state)
    return model


def smarties_vitb(
    weights: SMARTIESBase16_Weights | str | os.PathLike[str] | Mapping[str, Tensor] | None = None,
    bands: Bands | None = None,
    interpolation: InterpolationPolicy = 'linear',
    **kwargs: Any,
) -> SMARTIESViT:
    """SMARTIES ViT-B/16 encoder (torchgeo-style builder).

    Args:
        weights: ``SMARTIESBase16_Weights.SMARTIES_V1``, a local ``.safetensors``/``.pth``
            file in the release's key format, a state dict, or None (random init).
        bands: default band set (preset name or ``'<sensor>:<band>'`` list); if None it
            follows ``in_chans`` (12 → sentinel2_l2a, 13 → L1C, 2 → S1, 3 → Maxar RGB).
        interpolation: policy for unseen bands: ``'linear'``, ``'nearest'``, ``'official'``, ``'learned'``.
        **kwargs: timm overrides (``embed_dim``, ``depth``, ``num_heads``, ``img_size``,
            ``num_classes``, ``global_pool``, ``dynamic_img_size``, ``in_chans``, ...).

    Returns:
        A :class:`SMARTIESViT` (a timm ``VisionTransformer``).

    Raises:
        CheckpointError: if the weights cannot be read or do not fit the model.
        BandCountError: if ``in_chans`` and *bands* disagree.
    """
    return _build('smarties_vit_base_patch16', weights, bands, interpolation, kwargs)


def smarties_vitl(
    weights: SMARTIESLarge16_Weights | str | os.PathLike[str] | Mapping[str, Tensor] | None = None,
    bands: Bands | None = None,
    interpolation: InterpolationPolicy = 'linear',
    **kwargs: Any,
) -> SMARTIESViT:
    """SMARTIES ViT-L/16 encoder (torchgeo-style builder); arguments as :func:`smarties_vitb`."""
    return _build('smarties_vit_large_patch16', weights, bands, interpolation, kwargs)
