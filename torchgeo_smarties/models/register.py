"""Register SMARTIES with torchgeo's model API (``get_model``, ``get_weight``, ...) and the demo model with timm.

torchgeo has no public registration function; its lookups read two module-level
dicts of ``torchgeo.models.api`` at call time. We add our entries idempotently and
fail loudly (a warning naming the change) if their shape ever changes.

The bundled demo checkpoint is a named weight everywhere: the timm name
``smarties_vit_tiny_patch16.demo`` (``timm.create_model(..., pretrained=True)`` loads the bundled file),
the torchgeo builder :func:`smarties_vitt` with :class:`~.weights.SMARTIESTiny16_Weights` (``DEMO``), and
``weights='demo'`` / ``--weights demo`` in every task and command.
"""

import os
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import Tensor

from ..errors import CheckpointError
from ..spectrum import PRESETS, InterpolationPolicy
from .builders import FIRST_CONV, smarties_vitb, smarties_vitl
from .checkpoint import checkpoint_filter_fn, load_encoder_weights
from .demo import DEMO_INFO, DEMO_WEIGHTS
from .vit import Bands, SMARTIESViT, default_bands_for
from .weights import (
    SMARTIESBase16_Weights,
    SMARTIESLarge16_Weights,
    SMARTIESTiny16_Weights,
    pretrained_cfg_notes,
    resolve_weights_arg,
)

__all__ = ('TINY_ARCH', 'TORCHGEO_NAMES', 'register_with_torchgeo', 'smarties_vit_tiny_patch16', 'smarties_vitt')

#: Architecture of the bundled demo checkpoint (``smarties_vit_tiny_patch16``).
TINY_ARCH: dict[str, Any] = {k: DEMO_INFO.get(k, d) for k, d in
                             (('embed_dim', 128), ('depth', 4), ('num_heads', 4), ('mlp_ratio', 4.0))}
_TINY_BANDS = str(DEMO_INFO.get('default_bands', 'sentinel2_l1c'))
_TINY_SIZE = int(DEMO_INFO.get('img_size', 96))
_N = len(PRESETS[_TINY_BANDS])

default_cfgs = generate_default_cfgs({
    'smarties_vit_tiny_patch16.demo': {
        'file': str(DEMO_WEIGHTS),
        'num_classes': 0,
        'input_size': (_N, _TINY_SIZE, _TINY_SIZE),
        # SMARTIES normalisation is per band and sensor, not timm's mean/std (see notes): identity here
        'mean': (0.0,) * _N,
        'std': (1.0,) * _N,
        'fixed_input_size': False,
        'first_conv': FIRST_CONV,
        'classifier': 'head',
        'license': 'apache-2.0',
        'custom_load': True,
        'origin_url': 'https://github.com/gsumbul/SMARTIES',
        **pretrained_cfg_notes(_TINY_BANDS),
    },
})


def _tiny_kwargs(pretrained: bool, kwargs: dict[str, Any]) -> dict[str, Any]:
    if pretrained:
        for k in ('embed_dim', 'depth', 'num_heads'):
            if k in kwargs and kwargs[k] != TINY_ARCH[k]:
                raise CheckpointError(f'the demo weights have {k}={TINY_ARCH[k]}; it cannot be changed '
                                      f'(got {kwargs[k]!r})')
    for k, v in TINY_ARCH.items():
        kwargs.setdefault(k, v)
    if kwargs.get('bands') is None:
        in_chans = kwargs.get('in_chans')
        kwargs['bands'] = default_bands_for(int(in_chans)) if in_chans is not None else _TINY_BANDS
    return kwargs


@register_model
def smarties_vit_tiny_patch16(pretrained: bool = False, **kwargs: Any) -> SMARTIESViT:
    """timm entrypoint: the demo architecture (128-d × 4 blocks × 4 heads); tag ``demo`` = the bundled weights."""
    kwargs = _tiny_kwargs(pretrained, kwargs)
    kwargs.setdefault('img_size', _TINY_SIZE)
    model: SMARTIESViT = build_model_with_cfg(
        SMARTIESViT, 'smarties_vit_tiny_patch16', pretrained, pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg={'out_indices': 3, 'feature_cls': 'getter'}, **kwargs,
    )
    return model


def smarties_vitt(
    weights: SMARTIESTiny16_Weights | str | os.PathLike[str] | Mapping[str, Tensor] | None = None,
    bands: Bands | None = None,
    interpolation: InterpolationPolicy = 'linear',
    **kwargs: Any,
) -> SMARTIESViT:
    """The demo-size SMARTIES encoder (torchgeo-style builder); ``weights=SMARTIESTiny16_Weights.DEMO`` or ``'demo'``.

    Args:
        weights: the demo member or ``'demo'``, a release-format file of this size, a state dict, or None.
        bands: default band set (default: the demo's ``sentinel2_l1c``, or the default for ``in_chans``).
        interpolation: policy for unseen bands.
        **kwargs: :class:`SMARTIESViT` overrides (``img_size``, ``num_classes``, ...).

    Raises:
        CheckpointError: if the weights cannot be read or do not fit.
    """
    kwargs = _tiny_kwargs(weights is not None, dict(kwargs, bands=bands))
    kwargs.setdefault('img_size', _TINY_SIZE)
    model = SMARTIESViT(interpolation=interpolation, **kwargs)
    if weights is None:
        return model
    if isinstance(weights, Mapping):
        return load_encoder_weights(model, weights)  # type: ignore[return-value]
    resolved = resolve_weights_arg(weights)
    if resolved is None or resolved is False:
        return model
    if resolved is True:
        resolved = SMARTIESTiny16_Weights.DEMO
    state: Any = resolved.get_state_dict() if hasattr(resolved, 'get_state_dict') else resolved
    load_encoder_weights(model, state, source=str(weights))
    return model


#: Names under which ``torchgeo.models.get_model`` finds the builders.
TORCHGEO_NAMES: dict[str, tuple[Callable[..., Any], Any]] = {
    'smarties_vit_base_patch16': (smarties_vitb, SMARTIESBase16_Weights),
    'smarties_vit_large_patch16': (smarties_vitl, SMARTIESLarge16_Weights),
    'smarties_vit_tiny_patch16': (smarties_vitt, SMARTIESTiny16_Weights),
}


def register_with_torchgeo() -> bool:
    """Add the SMARTIES builders and weight enums to torchgeo's registries.

    Returns:
        True if registered, False (with a warning) if torchgeo's registry layout is unknown.
    """
    try:
        from torchgeo.models import api
    except ImportError as err:  # pragma: no cover - torchgeo is a dependency
        warnings.warn(f'torchgeo_smarties: torchgeo.models.api unavailable ({err}); not registered', stacklevel=2)
        return False
    models = getattr(api, '_model', None)
    weights = getattr(api, '_model_weights', None)
    if not isinstance(models, dict) or not isinstance(weights, dict):
        warnings.warn(
            'torchgeo_smarties: torchgeo.models.api no longer has the _model/_model_weights dicts; SMARTIES is '
            'not registered with torchgeo.models.get_model (use torchgeo_smarties.smarties_vitb directly)',
            stacklevel=2,
        )
        return False
    for name, (builder, enum) in TORCHGEO_NAMES.items():
        models.setdefault(name, builder)
        weights.setdefault(name, enum)
        weights.setdefault(builder, enum)
    return True
