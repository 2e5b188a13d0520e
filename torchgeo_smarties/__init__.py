"""torchgeo_smarties: the SMARTIES sensor-agnostic remote sensing foundation model for PyTorch.

Importing the package registers the timm entrypoints (``smarties_vit_base_patch16``,
``smarties_vit_large_patch16``) and adds the builders and weight enums to torchgeo's
model registry. Nothing is downloaded at import.
"""

from .models import (
    SMARTIESBase16_Weights,
    SMARTIESLarge16_Weights,
    SMARTIESViT,
    register_with_torchgeo,
    smarties_vitb,
    smarties_vitl,
)
from .spectrum import get_band, list_sensors, plan_bands, register_sensor, resolve_bands

__version__ = '0.1.0'

register_with_torchgeo()

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
