"""Downstream tasks: torchgeo task subclasses, heads, multimodal fusion and evaluation protocols.

torchgeo's own tasks (``torchgeo.tasks.Classification``, ``Regression``,
``SemanticSegmentation(model='dpt', backbone='tu-smarties_vit_base_patch16.<tag>')``) accept
SMARTIES once ``torchgeo_smarties`` is imported; the ``SMARTIES*`` subclasses here add band sets,
release-format weight files, the release's heads, the UPerNet probe and two-sensor fusion, and
are importable LightningCLI ``class_path`` targets.
"""

from .classification import SMARTIESClassification, SMARTIESRegression
from .evaluation import (
    DEFAULT_SCALES,
    extract_features,
    knn_accuracy,
    knn_predict,
    knn_scores,
    multiscale_sizes,
    param_groups_lrd,
    resize_to_scale,
)
from .fusion import FusionStrategy, SMARTIESFusion
from .heads import (
    SMARTIESLinearSegHead,
    SMARTIESLinearSegmentation,
    SMARTIESUPerNet,
    UPerNetHead,
    default_layer_indices,
    linear_probe_head,
)
from .segmentation import SMARTIESSemanticSegmentation

__all__ = [
    'DEFAULT_SCALES',
    'FusionStrategy',
    'SMARTIESClassification',
    'SMARTIESFusion',
    'SMARTIESLinearSegHead',
    'SMARTIESLinearSegmentation',
    'SMARTIESRegression',
    'SMARTIESSemanticSegmentation',
    'SMARTIESUPerNet',
    'UPerNetHead',
    'default_layer_indices',
    'extract_features',
    'knn_accuracy',
    'knn_predict',
    'knn_scores',
    'linear_probe_head',
    'multiscale_sizes',
    'param_groups_lrd',
    'resize_to_scale',
]

# --- MAE pretraining (tasks/pretraining.py, owned by the pretraining engineer) --------------------------------------
# Exported when present; the guard keeps the downstream tasks importable while it is being written.
try:
    from . import pretraining as _pretraining
except ImportError:  # pragma: no cover - depends on the parallel work
    _pretraining = None  # type: ignore[assignment]
else:
    for _name in getattr(_pretraining, '__all__', ()):
        globals()[_name] = getattr(_pretraining, _name)
        __all__.append(_name)
    del _name
