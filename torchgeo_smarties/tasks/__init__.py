"""Downstream tasks: torchgeo task subclasses, heads, multimodal fusion and evaluation protocols.

torchgeo's own tasks (``torchgeo.tasks.Classification``, ``Regression``,
``SemanticSegmentation(model='dpt', backbone='tu-smarties_vit_base_patch16.<tag>')``) accept
SMARTIES once ``torchgeo_smarties`` is imported; the ``SMARTIES*`` subclasses here add band sets,
release-format weight files, the release's heads, the UPerNet probe and two-sensor fusion, and
are importable LightningCLI ``class_path`` targets.
"""

from .classification import SMARTIESClassification, SMARTIESRegression
from .datamodules import (
    SMARTIESBigEarthNetDataModule,
    SMARTIESEuroSATDataModule,
    SMARTIESSEN12MSDataModule,
    smarties_normalize_for,
)
from .evaluation import (
    DEFAULT_SCALES,
    extract_features,
    knn_accuracy,
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
from .normalization_check import NormalizationCheck, NormalizationCheckMixin
from .paired_data import PairedDataModule, PairedRasterDataset, TorchGeoPairedDataset, collate_pairs
from .pretraining import SMARTIESPretraining, effective_lr, warmup_cosine
from .segmentation import SMARTIESSemanticSegmentation

__all__ = (
    'DEFAULT_SCALES',
    'FusionStrategy',
    'NormalizationCheck',
    'NormalizationCheckMixin',
    'PairedDataModule',
    'PairedRasterDataset',
    'SMARTIESBigEarthNetDataModule',
    'SMARTIESClassification',
    'SMARTIESEuroSATDataModule',
    'SMARTIESFusion',
    'SMARTIESLinearSegHead',
    'SMARTIESLinearSegmentation',
    'SMARTIESPretraining',
    'SMARTIESRegression',
    'SMARTIESSEN12MSDataModule',
    'SMARTIESSemanticSegmentation',
    'SMARTIESUPerNet',
    'TorchGeoPairedDataset',
    'UPerNetHead',
    'collate_pairs',
    'default_layer_indices',
    'effective_lr',
    'extract_features',
    'knn_accuracy',
    'knn_scores',
    'linear_probe_head',
    'multiscale_sizes',
    'param_groups_lrd',
    'resize_to_scale',
    'smarties_normalize_for',
    'warmup_cosine',
)
