"""SMARTIES subclasses of torchgeo's ``Classification`` and ``Regression`` tasks.

torchgeo's own tasks already accept ``model='smarties_vit_base_patch16.<tag>'`` once
``torchgeo_smarties`` is imported. These subclasses add what torchgeo cannot express:

* ``bands=`` — the band set of the data in channel order (checked against ``in_channels``);
* ``weights=<path>`` to a **release-format** ``.safetensors``/``.pth`` file (torchgeo
  treats a path as a Lightning checkpoint); Lightning ``.ckpt`` files still work;
* ``head='probe'`` — the release's linear-probe head (BatchNorm1d without affine + Linear);
* ``fusion=`` + ``bands_b=`` — two-sensor fusion (:class:`~torchgeo_smarties.tasks.SMARTIESFusion`);
* ``layer_decay=`` / ``weight_decay=`` — fine-tuning with layer-wise lr decay;
* the batch's band mask (``batch['band_mask']``, all-NaN bands) passed to the encoder
  (:class:`~torchgeo_smarties.tasks.band_masks.BandMaskMixin`).

They are also importable ``class_path`` targets for LightningCLI configs
(``class_path: torchgeo_smarties.tasks.SMARTIESClassification``).
"""

from typing import Any, ClassVar

from lightning.pytorch.core.mixins import HyperparametersMixin
from torch import Tensor
from torch.optim import AdamW
from torch.optim.lr_scheduler import ReduceLROnPlateau

from ..errors import InputError
from ..models.vit import Bands
from ._build import HeadKind, Weights, build_classifier
from .band_masks import BandMaskMixin
from .evaluation import param_groups_lrd
from .fusion import FusionStrategy, SMARTIESFusion
from .normalization_check import NormalizationCheckMixin

try:  # torchgeo >= 0.10
    from torchgeo.tasks import Classification, Regression
except ImportError:  # pragma: no cover - torchgeo < 0.10
    from torchgeo.trainers import ClassificationTask as Classification  # type: ignore[no-redef]
    from torchgeo.trainers import RegressionTask as Regression  # type: ignore[no-redef]

__all__ = ('SMARTIESClassification', 'SMARTIESRegression')


class _OptimMixin:
    """AdamW with optional layer-wise lr decay; ReduceLROnPlateau like torchgeo."""

    hparams: Any
    model: Any
    monitor: str

    def configure_optimizers(self) -> Any:
        """AdamW (+ layer-wise lr decay when ``layer_decay`` is set) with torchgeo's ReduceLROnPlateau."""
        hp = self.hparams
        lr = hp['lr']
        wd = hp.get('weight_decay')
        if hp.get('layer_decay') is not None:
            groups = param_groups_lrd(self.model, lr, 0.05 if wd is None else wd, hp['layer_decay'])
            optimizer = AdamW(groups, lr=lr)
        else:
            params = [p for p in self.model.parameters() if p.requires_grad]
            optimizer = AdamW(params, lr=lr) if wd is None else AdamW(params, lr=lr, weight_decay=wd)
        scheduler = ReduceLROnPlateau(optimizer, patience=hp['patience'])
        return {'optimizer': optimizer, 'lr_scheduler': {'scheduler': scheduler, 'monitor': self.monitor}}


class _EncoderMaskMixin(BandMaskMixin, HyperparametersMixin):
    """The SMARTIES arguments, model construction and band-mask forward shared by the classifier and regressor.

    ``HyperparametersMixin`` makes Lightning's ``save_hyperparameters`` (called by torchgeo) collect the
    arguments of this ``__init__`` too; jsonargparse (LightningCLI) follows ``**kwargs`` to torchgeo's
    ``Classification``/``Regression`` signature, so their arguments stay typed configuration keys.
    """

    hparams: Any
    weights: Any
    #: torchgeo arguments that the SMARTIES model does not use (refused rather than ignored).
    unsupported_arguments: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        model: str = 'smarties_vit_base_patch16',
        weights: Weights = None,
        in_channels: int = 12,
        bands: Bands | None = None,
        head: HeadKind = 'linear',
        fusion: FusionStrategy | None = None,
        bands_b: Bands | None = None,
        mixup_ratio: float = 0.5,
        fusion_eval_seed: int | None = 0,
        layer_decay: float | None = None,
        weight_decay: float | None = None,
        **kwargs: Any,
    ) -> None:
        """Initialize the task (SMARTIES arguments here, torchgeo's through *kwargs*).

        Args:
            model: SMARTIES timm name, optionally with a band-set tag
                (``'smarties_vit_base_patch16.eurosat'``).
            weights: None (random), True (released weights via timm / the local cache),
                a weights enum or its name (``'SMARTIESBase16_Weights.SMARTIES_V1'``, ``'demo'``), a path to a
                release-format ``.safetensors``/``.pth`` file, or a Lightning ``.ckpt``.
            in_channels: number of image channels; must equal the band set's length
                (for fusion: both sensors' bands).
            bands: band set of the image channels in order (preset or ``'<sensor>:<band>'`` list);
                default: the model tag, else the default for *in_channels* (12 → S2 L2A, 13 → L1C, 2 → S1, 3 → RGB).
                For fusion: the first sensor's bands.
            head: ``'linear'`` (Linear) or ``'probe'`` (the release's BatchNorm1d(affine=False) + Linear).
            fusion: None, or ``'stack'``, ``'concat'``, ``'mixup_concat'`` for two sensors stacked in the
                channels (first *bands*, then *bands_b*).
            bands_b: band set of the second sensor (fusion only).
            mixup_ratio: share of patches from the first sensor in Mixup-Concatenation.
            fusion_eval_seed: seed of the mixing in eval mode (None: random like the release).
            layer_decay: layer-wise lr decay for fine-tuning (release: 0.75); None disables it.
            weight_decay: AdamW weight decay (None: torchgeo's default, or 0.05 with *layer_decay*).
            **kwargs: the arguments of torchgeo's task (``task``, ``num_classes``, ``loss``, ``lr``,
                ``patience``, ``freeze_backbone``, ...; ``num_outputs`` for regression).

        Raises:
            BandCountError: if *in_channels* does not match the band set.
            UnknownPresetError: for an unknown tag or preset.
            CheckpointError: if *weights* cannot be found or do not fit.
            InputError: for a torchgeo argument the SMARTIES model does not use (:attr:`unsupported_arguments`).
        """
        unused = [k for k in self.unsupported_arguments if k in kwargs]
        if unused:
            raise InputError(
                f'{type(self).__name__} does not use {", ".join(unused)} (torchgeo\'s pixel-wise regression '
                'backbones); the SMARTIES encoder is chosen by model=, drop these arguments'
            )
        super().__init__(model=model, weights=weights, in_channels=in_channels, **kwargs)  # type: ignore[call-arg]

    def _build_model(self, num_outputs: int) -> None:
        """Set ``self.model``: the SMARTIES classifier/regressor of the task's hyper-parameters."""
        self.model = build_classifier(self.hparams, self.weights, num_outputs)

    def forward_masked(self, x: Tensor, band_mask: Tensor) -> Tensor:
        """The encoder (+ head) with ``band_mask=``; fusion models take no band mask."""
        if isinstance(self.model, SMARTIESFusion):
            raise InputError(
                'the batch has a band mask (batch["band_mask"] or all-NaN bands, e.g. from RandomBandSubset) but '
                'fusion models build their own per-patch masks; drop RandomBandSubset from the fusion pipeline'
            )
        out: Tensor = self.model(x, band_mask=band_mask)
        return out


class SMARTIESClassification(_OptimMixin, NormalizationCheckMixin, _EncoderMaskMixin, Classification):  # type: ignore[misc]
    """torchgeo ``Classification`` with a SMARTIES encoder, band sets, release-format weights and fusion.

    Arguments: the SMARTIES ones (``model``, ``weights``, ``in_channels``, ``bands``, ``head``, ``fusion``,
    ``bands_b``, ``mixup_ratio``, ``fusion_eval_seed``, ``layer_decay``, ``weight_decay``; see
    ``help(SMARTIESClassification.__init__)``) and torchgeo ``Classification``'s (``task``, ``num_classes``,
    ``num_labels``, ``labels``, ``pos_weight``, ``loss``, ``class_weights``, ``ignore_index``, ``lr``,
    ``patience``, ``freeze_backbone``), all keywords.

    .. versionadded:: 0.1
    """

    def configure_models(self) -> None:
        """Build the SMARTIES model, load weights, set the head and freeze the backbone."""
        self._build_model(self.hparams['num_classes'] or self.hparams['num_labels'] or 1)


class SMARTIESRegression(_OptimMixin, NormalizationCheckMixin, _EncoderMaskMixin, Regression):  # type: ignore[misc]
    """torchgeo ``Regression`` (image → value(s)) with a SMARTIES encoder.

    Arguments: the SMARTIES ones as :class:`SMARTIESClassification` and torchgeo ``Regression``'s
    (``num_outputs``, ``labels``, ``loss``, ``lr``, ``patience``, ``freeze_backbone``), all keywords.

    .. versionadded:: 0.1
    """

    unsupported_arguments = ('backbone', 'num_filters', 'freeze_decoder')

    def configure_models(self) -> None:
        """Build the SMARTIES model, load weights, set the head and freeze the backbone."""
        self._build_model(self.hparams['num_outputs'])
