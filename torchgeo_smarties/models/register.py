"""Register SMARTIES with torchgeo's model API (``get_model``, ``get_weight``, ...).

torchgeo has no public registration function; its lookups read two module-level
dicts of ``torchgeo.models.api`` at call time. We add our entries idempotently and
fail loudly (a warning naming the change) if their shape ever changes.
"""

import warnings
from collections.abc import Callable
from typing import Any

from .builders import smarties_vitb, smarties_vitl
from .weights import SMARTIESBase16_Weights, SMARTIESLarge16_Weights

__all__ = ('TORCHGEO_NAMES', 'register_with_torchgeo')

#: Names under which ``torchgeo.models.get_model`` finds the builders.
TORCHGEO_NAMES: dict[str, tuple[Callable[..., Any], Any]] = {
    'smarties_vit_base_patch16': (smarties_vitb, SMARTIESBase16_Weights),
    'smarties_vit_large_patch16': (smarties_vitl, SMARTIESLarge16_Weights),
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
