"""Task heads and dense-prediction models on top of the SMARTIES encoder.

* :func:`linear_probe_head` — the release's linear-probe head
  (``BatchNorm1d(D, affine=False, eps=1e-6)`` + ``Linear``, trunc-normal std 0.01).
* :class:`SMARTIESLinearSegHead` / :class:`SMARTIESLinearSegmentation` — the release's
  segmentation head (1×1 conv on the last block's tokens, bilinear upsampling to the input size).
* :class:`SMARTIESUPerNet` — the PANGAEA frozen-encoder protocol: features of 4 encoder
  blocks turned into a 4-level pyramid (×4, ×2, ×1, ×0.5) and a UPerNet head (PPM + FPN).
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ImageSizeError, InputError
from ..models import SMARTIESViT
from ..models.pyramid import SimpleFeaturePyramid, default_layer_indices

__all__ = (
    'SMARTIESLinearSegHead',
    'SMARTIESLinearSegmentation',
    'SMARTIESUPerNet',
    'UPerNetHead',
    'check_image_size',
    'default_layer_indices',
    'linear_probe_head',
)


def linear_probe_head(in_features: int, num_classes: int) -> nn.Sequential:
    """The release's linear-probe head: ``BatchNorm1d(D, affine=False, eps=1e-6)`` then ``Linear(D, K)``.

    The Linear weight is drawn from a truncated normal with std 0.01 and the bias is zero
    (release: ``trunc_normal_(head.weight, std=0.01)``).

    .. versionadded:: 0.1
    """
    linear = nn.Linear(in_features, num_classes)
    nn.init.trunc_normal_(linear.weight, std=0.01)
    nn.init.zeros_(linear.bias)
    return nn.Sequential(nn.BatchNorm1d(in_features, affine=False, eps=1e-6), linear)


def check_image_size(x: Tensor, patch_size: int) -> None:
    """Raise :class:`ImageSizeError` unless *x* is (B, C, H, W) with H and W multiples of *patch_size*."""
    if x.ndim != 4:
        raise InputError(f'expected a (B, C, H, W) image batch, got shape {tuple(x.shape)}')
    h, w = x.shape[-2:]
    if h % patch_size or w % patch_size:
        raise ImageSizeError(
            f'image size {h}×{w} is not a multiple of the patch size {patch_size}; pad or crop the input '
            f'(e.g. kornia.augmentation.CenterCrop / PadTo to {(h // patch_size + 1) * patch_size})'
        )


class SMARTIESLinearSegHead(nn.Module):
    """The release's segmentation head: ``Conv2d(D, K, 1)`` then bilinear upsampling to the input size.

    .. versionadded:: 0.1
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        """Initialize a new SMARTIESLinearSegHead instance.

        Args:
            in_channels: feature width D.
            num_classes: number of classes K.
        """
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_classes, kernel_size=1)

    def forward(self, features: Tensor, size: tuple[int, int]) -> Tensor:
        """Logits (B, K, H, W) from features (B, D, h, w), upsampled to *size* = (H, W)."""
        return F.interpolate(self.conv(features), size=size, mode='bilinear', align_corners=False)


class SMARTIESLinearSegmentation(nn.Module):
    """Encoder + the release's linear segmentation head (on the last block's tokens, without final norm).

    .. versionadded:: 0.1
    """

    def __init__(self, encoder: SMARTIESViT, num_classes: int) -> None:
        """Initialize a new SMARTIESLinearSegmentation instance.

        Args:
            encoder: a :class:`~torchgeo_smarties.models.SMARTIESViT` (its default band set is used).
            num_classes: number of classes.
        """
        super().__init__()
        self.encoder = encoder
        self.decoder = SMARTIESLinearSegHead(encoder.embed_dim, num_classes)

    def forward(self, x: Tensor, band_mask: Tensor | None = None) -> Tensor:
        """Logits (B, K, H, W) for images (B, C, H, W); H and W must be multiples of 16."""
        check_image_size(x, self.encoder.patch_size)
        return self.decoder(self.encoder.forward_dense(x, band_mask=band_mask), (x.shape[-2], x.shape[-1]))


class _ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))


class UPerNetHead(nn.Module):
    """UPerNet decoder (Xiao et al. 2018, mmseg ``UPerHead``): pyramid pooling on the top level + FPN fusion.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        channels: int,
        num_classes: int,
        pool_scales: Sequence[int] = (1, 2, 3, 6),
        dropout: float = 0.1,
    ) -> None:
        """Initialize a new UPerNetHead instance.

        Args:
            in_channels: channels of each pyramid level, finest first.
            channels: width of the decoder.
            num_classes: number of classes.
            pool_scales: output sizes of the pyramid pooling module.
            dropout: dropout before the classifier.
        """
        super().__init__()
        self.ppm = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(s), _ConvBNReLU(in_channels[-1], channels, 1)) for s in pool_scales
        )
        self.bottleneck = _ConvBNReLU(in_channels[-1] + len(pool_scales) * channels, channels, 3)
        self.lateral = nn.ModuleList(_ConvBNReLU(c, channels, 1) for c in in_channels[:-1])
        self.fpn = nn.ModuleList(_ConvBNReLU(channels, channels, 3) for _ in in_channels[:-1])
        self.fuse = _ConvBNReLU(len(in_channels) * channels, channels, 3)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        """Logits at the resolution of the finest level from a pyramid (finest first)."""
        top = feats[-1]
        size = top.shape[-2:]
        ppm = [F.interpolate(m(top), size=size, mode='bilinear', align_corners=False) for m in self.ppm]
        lat = [conv(f) for conv, f in zip(self.lateral, feats[:-1])]
        lat.append(self.bottleneck(torch.cat([top, *ppm], dim=1)))
        for i in range(len(lat) - 1, 0, -1):  # top-down
            lat[i - 1] = lat[i - 1] + F.interpolate(lat[i], size=lat[i - 1].shape[-2:], mode='bilinear',
                                                    align_corners=False)
        outs = [conv(f) for conv, f in zip(self.fpn, lat[:-1])] + [lat[-1]]
        outs = [outs[0]] + [F.interpolate(o, size=outs[0].shape[-2:], mode='bilinear', align_corners=False)
                            for o in outs[1:]]
        return self.classifier(self.dropout(self.fuse(torch.cat(outs, dim=1))))


class SMARTIESUPerNet(nn.Module):
    """Frozen-encoder UPerNet probe (PANGAEA protocol) on a SMARTIES encoder.

    The outputs of 4 encoder blocks (default (3, 5, 7, 11) for ViT-B, (5, 11, 17, 23) for
    ViT-L), without the final norm, become a 4-level pyramid by transposed convolutions
    (×4, ×2), identity and max-pooling (×0.5); a UPerNet head (PPM + FPN) predicts logits
    at stride 4, upsampled bilinearly to the input size.

    Freezing is the task's job (``freeze_backbone=True``); the model itself trains end to end.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        encoder: SMARTIESViT,
        num_classes: int,
        layer_indices: Sequence[int] | None = None,
        channels: int = 512,
        pool_scales: Sequence[int] = (1, 2, 3, 6),
    ) -> None:
        """Initialize a new SMARTIESUPerNet instance.

        Args:
            encoder: a :class:`~torchgeo_smarties.models.SMARTIESViT` (its default band set is used).
            num_classes: number of classes.
            layer_indices: 4 encoder block indices (0-based); default :func:`default_layer_indices`.
            channels: UPerNet decoder width (PANGAEA: 512).
            pool_scales: pyramid pooling sizes.

        Raises:
            InputError: if *layer_indices* does not name 4 valid blocks.
        """
        super().__init__()
        depth = len(encoder.blocks)
        idx = tuple(default_layer_indices(depth) if layer_indices is None else layer_indices)
        if len(idx) != 4 or any(not -depth <= i < depth for i in idx):
            raise InputError(f'layer_indices must name 4 blocks of the {depth}-block encoder, got {list(idx)}')
        self.layer_indices = tuple(i % depth for i in idx)
        self.encoder = encoder
        dim = encoder.embed_dim
        self.neck = SimpleFeaturePyramid(dim)
        self.decoder = UPerNetHead([dim] * 4, channels, num_classes, pool_scales)

    def forward(self, x: Tensor, band_mask: Tensor | None = None) -> Tensor:
        """Logits (B, K, H, W) for images (B, C, H, W); H and W must be multiples of 16; *band_mask* (B, C)."""
        check_image_size(x, self.encoder.patch_size)
        feats = self.encoder.forward_intermediates(
            x, indices=list(self.layer_indices), band_mask=band_mask, norm=False, output_fmt='NCHW',
            intermediates_only=True,
        )
        logits = self.decoder(self.neck(feats))
        return F.interpolate(logits, size=x.shape[-2:], mode='bilinear', align_corners=False)
