"""SMARTIES subclass of torchgeo's ``SemanticSegmentation`` task.

``model`` selects the decoder:

* ``'upernet'`` — the frozen-encoder UPerNet probe of PANGAEA (:class:`~torchgeo_smarties.tasks.SMARTIESUPerNet`);
* ``'linear'`` — the release's 1×1-conv head (:class:`~torchgeo_smarties.tasks.SMARTIESLinearSegmentation`);
* ``'dpt'`` — smp's DPT with the ``tu-<backbone>`` timm encoder (what plain torchgeo
  ``SemanticSegmentation(model='dpt', backbone='tu-smarties_vit_base_patch16.<tag>')`` builds);
* ``'unet'``, ``'fpn'``, ``'segformer'`` — smp's decoders on the SMARTIES feature pyramid
  (:class:`~torchgeo_smarties.models.pyramid.SMARTIESFeaturePyramid`, strides 4/8/16/32).

Note: plain torchgeo ``model='upernet'`` is smp's UPerNet on the feature pyramid; here ``'upernet'``
is the PANGAEA ViT probe (same pyramid, mmseg's UPerNet head).

The batch's band mask (``batch['band_mask']``, all-NaN bands) reaches the encoder for every decoder
except ``'dpt'`` (smp's ViT encoder calls the model without it), which refuses a masked batch.
"""

from collections.abc import Sequence
from typing import Literal

import segmentation_models_pytorch as smp
from torch import Tensor

from ..errors import InputError
from ..models import SMARTIESViT, resolve_weights_arg
from ..models.pyramid import spectral_inputs
from ..models.vit import Bands
from ._build import Weights, create_encoder, load_weights, resolve_task_bands
from .band_masks import BandMaskMixin
from .classification import _OptimMixin
from .heads import SMARTIESLinearSegmentation, SMARTIESUPerNet, check_image_size
from .normalization_check import NormalizationCheckMixin

try:  # torchgeo >= 0.10
    from torchgeo.tasks import SemanticSegmentation
except ImportError:  # pragma: no cover - torchgeo < 0.10
    from torchgeo.trainers import SemanticSegmentationTask as SemanticSegmentation  # type: ignore[no-redef]

__all__ = ('SMARTIESSemanticSegmentation',)


#: Decoders of smp built on the SMARTIES feature pyramid.
SMP_PYRAMID_DECODERS: tuple[str, ...] = ('unet', 'fpn', 'segformer')
SegmentationModel = Literal['upernet', 'linear', 'dpt', 'unet', 'fpn', 'segformer']


class SMARTIESSemanticSegmentation(_OptimMixin, NormalizationCheckMixin, BandMaskMixin, SemanticSegmentation):  # type: ignore[misc]
    """torchgeo ``SemanticSegmentation`` with a SMARTIES encoder: UPerNet probe, linear head or smp decoders.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        model: SegmentationModel = 'upernet',
        backbone: str = 'smarties_vit_base_patch16',
        weights: Weights = None,
        in_channels: int = 12,
        bands: Bands | None = None,
        task: Literal['binary', 'multiclass', 'multilabel'] = 'multiclass',
        num_classes: int | None = None,
        num_labels: int | None = None,
        labels: list[str] | None = None,
        pos_weight: Tensor | None = None,
        loss: Literal['ce', 'bce', 'jaccard', 'focal', 'dice'] = 'ce',
        class_weights: Tensor | Sequence[float] | None = None,
        ignore_index: int | None = None,
        lr: float = 1e-3,
        patience: int = 10,
        freeze_backbone: bool = True,
        freeze_decoder: bool = False,
        layer_indices: Sequence[int] | None = None,
        decoder_channels: int = 512,
        layer_decay: float | None = None,
        weight_decay: float | None = None,
    ) -> None:
        """Initialize a new SMARTIESSemanticSegmentation instance.

        Args:
            model: decoder: ``'upernet'`` (PANGAEA probe), ``'linear'`` (release head), ``'dpt'`` (smp) or
                smp's ``'unet'``, ``'fpn'``, ``'segformer'`` on the SMARTIES feature pyramid.
            backbone: SMARTIES timm name with optional band-set tag (a ``tu-`` prefix is accepted).
            weights: None, True, a weights enum or its name, a release-format ``.safetensors``/``.pth``
                path, or a Lightning ``.ckpt``.
            in_channels: number of image channels (checked against the band set).
            bands: band set of the channels in order (default: the tag, else the default for *in_channels*).
            task: ``'binary'``, ``'multiclass'`` or ``'multilabel'``.
            num_classes: classes.
            num_labels: labels (multilabel).
            labels: class names.
            pos_weight: positive weight of the 'bce' loss.
            loss: loss name.
            class_weights: class weights of the 'ce' loss.
            ignore_index: ignored class index.
            lr: learning rate.
            patience: ReduceLROnPlateau patience.
            freeze_backbone: freeze the encoder (PANGAEA protocol: True).
            freeze_decoder: freeze the decoder.
            layer_indices: 4 encoder blocks of the pyramid levels of the UPerNet probe and the smp pyramid
                decoders (default (3, 5, 7, 11) for ViT-B).
            decoder_channels: UPerNet width (PANGAEA: 512).
            layer_decay: layer-wise lr decay (fine-tuning) or None.
            weight_decay: AdamW weight decay or None.

        Raises:
            BandCountError: if *in_channels* does not match the band set.
            UnknownPresetError: for an unknown tag or preset.
            InputError: for an unknown model or bad *layer_indices*.
        """
        super().__init__(
            model=model,  # type: ignore[arg-type]
            backbone=backbone, weights=resolve_weights_arg(weights), in_channels=in_channels,
            task=task, num_classes=num_classes, num_labels=num_labels, labels=labels, pos_weight=pos_weight,
            loss=loss, class_weights=class_weights, ignore_index=ignore_index, lr=lr, patience=patience,
            freeze_backbone=freeze_backbone, freeze_decoder=freeze_decoder,
        )

    def _encoder(self) -> SMARTIESViT:
        enc = self.model.encoder
        kind = self.hparams['model']
        if kind == 'dpt':
            enc = enc.model
        elif kind in SMP_PYRAMID_DECODERS:
            enc = enc.model.model  # TimmUniversalEncoder → SMARTIESFeaturePyramid → SMARTIESViT
        assert isinstance(enc, SMARTIESViT)
        return enc

    def configure_models(self) -> None:
        """Build encoder + decoder, load weights, freeze."""
        hp = self.hparams
        kind = hp['model']
        name: str = hp['backbone']
        name = name[3:] if name.startswith('tu-') else name
        num_classes = hp['num_classes'] or hp['num_labels'] or 1
        plan = resolve_task_bands(name, hp.get('bands'), hp['in_channels'])
        pretrained = self.weights is True
        if kind == 'dpt':
            self.model = smp.DPT(encoder_name=f'tu-{name}', encoder_weights=True if pretrained else None,
                                 in_channels=hp['in_channels'], classes=num_classes, bands=plan)
        elif kind in SMP_PYRAMID_DECODERS:
            blocks = hp.get('layer_indices')
            self.model = smp.create_model(
                kind, encoder_name=f'tu-{name}', encoder_weights=True if pretrained else None,
                in_channels=hp['in_channels'], classes=num_classes, bands=plan,
                **({} if blocks is None else {'pyramid_blocks': tuple(blocks)}),
            )
        elif kind in ('upernet', 'linear'):
            enc = create_encoder(name, plan, pretrained=pretrained)
            if kind == 'upernet':
                self.model = SMARTIESUPerNet(enc, num_classes, hp.get('layer_indices'), hp.get('decoder_channels', 512))
            else:
                self.model = SMARTIESLinearSegmentation(enc, num_classes)
        else:
            raise InputError(
                f"unknown segmentation model {kind!r}; choose 'upernet', 'linear', 'dpt', 'unet', 'fpn' or 'segformer'"
            )
        load_weights(self.model, self._encoder(), self.weights)
        if hp['freeze_backbone']:
            for p in self.model.encoder.parameters():
                p.requires_grad = False
        if hp['freeze_decoder']:
            for p in self.model.decoder.parameters():
                p.requires_grad = False

    def forward(self, x: Tensor, band_mask: Tensor | None = None) -> Tensor:
        """Logits (B, K, H, W); H and W must be multiples of the patch size (ImageSizeError otherwise)."""
        if x.ndim == 4:
            check_image_size(x, self._encoder().patch_size)
        return super().forward(x, band_mask)

    def forward_masked(self, x: Tensor, band_mask: Tensor) -> Tensor:
        """Logits with the band mask passed to the encoder (refused for ``'dpt'``)."""
        kind = self.hparams['model']
        if kind == 'dpt':
            raise InputError(
                "the batch has a band mask (batch['band_mask'] or all-NaN bands, e.g. from RandomBandSubset) but "
                "smp's DPT calls the encoder without it; use model='unet', 'fpn', 'segformer' or 'upernet'"
            )
        if kind in SMP_PYRAMID_DECODERS:
            with spectral_inputs(band_mask=band_mask):
                out: Tensor = self.model(x)
            return out
        out = self.model(x, band_mask=band_mask)
        return out
