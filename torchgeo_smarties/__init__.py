"""torchgeo_smarties: the SMARTIES sensor-agnostic remote sensing foundation model for PyTorch.

Import contract:

* ``import torchgeo_smarties`` is light: it loads the band registry (pure Python)
  and imports no torch, timm or torchgeo, so ``smarties bands`` and
  ``smarties --help`` start at once.
* The model names (:class:`SMARTIESViT`, :func:`smarties_vitb`, the weight enums, …)
  are resolved lazily (PEP 562): the first access imports
  :mod:`torchgeo_smarties.models`.
* ``import torchgeo_smarties.models`` (or the first access to a model name on the
  package, or importing any of ``transforms``, ``tasks``, ``inference``) registers
  the timm entrypoints (``smarties_vit_base_patch16``, ``smarties_vit_large_patch16``)
  and adds the builders and weight enums to torchgeo's model registry.
* If timm or torchgeo is already imported when ``torchgeo_smarties`` is imported,
  the models are imported (and registered) at once: torch is loaded already, so
  this is cheap, and ``import timm; import torchgeo_smarties;
  timm.create_model('smarties_vit_base_patch16')`` keeps working. When the order
  may differ, import ``torchgeo_smarties.models`` explicitly.

Nothing is downloaded at import.
"""

import importlib
import sys
from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any

from .spectrum import get_band, list_sensors, plan_bands, register_sensor, resolve_bands

if TYPE_CHECKING:
    from .models import (
        SMARTIESBase16_Weights,
        SMARTIESLarge16_Weights,
        SMARTIESViT,
        register_with_torchgeo,
        smarties_vitb,
        smarties_vitl,
    )

try:
    __version__: str = _metadata.version('torchgeo-smarties')
except _metadata.PackageNotFoundError:  # a source tree that is not installed
    __version__ = '0+unknown'

#: Names served lazily from :mod:`torchgeo_smarties.models` (importing it registers with timm/torchgeo).
_MODEL_NAMES = frozenset(
    {
        'SMARTIESBase16_Weights',
        'SMARTIESLarge16_Weights',
        'SMARTIESViT',
        'register_with_torchgeo',
        'smarties_vitb',
        'smarties_vitl',
    }
)

__all__ = (
    'SMARTIESBase16_Weights',
    'SMARTIESLarge16_Weights',
    'SMARTIESViT',
    '__version__',
    'get_band',
    'list_sensors',
    'plan_bands',
    'register_sensor',
    'register_with_torchgeo',
    'resolve_bands',
    'smarties_vitb',
    'smarties_vitl',
)


def __getattr__(name: str) -> Any:
    """Resolve the model names on first access (imports :mod:`torchgeo_smarties.models`)."""
    if name in _MODEL_NAMES:
        value = getattr(importlib.import_module('.models', __name__), name)
        globals()[name] = value  # later accesses skip __getattr__
        return value
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__() -> list[str]:
    """The module's names, including the lazily resolved model names."""
    return sorted({*globals(), *_MODEL_NAMES})


if 'timm' in sys.modules or 'torchgeo' in sys.modules:
    # torch is loaded already: registering now is cheap and keeps `import timm; import torchgeo_smarties` working.
    importlib.import_module('.models', __name__)
