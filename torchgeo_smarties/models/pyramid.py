"""A simple feature pyramid on the SMARTIES ViT: timm ``features_only`` and smp ``tu-`` encoders.

A plain ViT has one scale (stride 16). Hierarchical decoders (smp's UNet, UPerNet, FPN, Segformer)
need maps at strides 4, 8, 16 and 32. As in ViTDet (Li et al. 2022, "simple feature pyramid") and
mmseg's ``Feature2Pyramid`` (the PANGAEA UPerNet probe), each pyramid level takes the output of one
encoder block (default: 4 evenly spaced blocks ending with the last, (3, 5, 7, 11) for ViT-B) and
rescales it: two stride-2 transposed convolutions (stride 4), one (stride 8), identity (stride 16)
and a 2×2 max-pool (stride 32). All levels keep the encoder width.

``timm.create_model('smarties_vit_base_patch16', features_only=True)`` returns a
:class:`SMARTIESFeaturePyramid` whose ``feature_info`` reports reductions 4/8/16/32, which is what
smp's ``TimmUniversalEncoder`` needs, so ``smp.Unet('tu-smarties_vit_base_patch16', in_channels=12)``
works; smp's ``encoder_depth`` d selects the first d − 1 levels (d = 5: all four). Pass
``feature_cls='getter'`` to get timm's plain per-block getter (all maps at stride 16) instead.

Band sets and masks reach the encoder as arguments (``pyramid(x, bands=..., band_mask=...)``) or,
through a decoder whose ``forward(x)`` cannot carry them (smp), from :func:`spectral_inputs`::

    with spectral_inputs(band_mask=mask):
        logits = unet(x)

.. versionadded:: 0.2
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from timm.models._features import FeatureInfo
from torch import Tensor, nn

from ..errors import InputError

if TYPE_CHECKING:
    from .vit import Bands, SMARTIESViT

__all__ = (
    'PYRAMID_STRIDES',
    'SMARTIESFeaturePyramid',
    'SimpleFeaturePyramid',
    'default_layer_indices',
    'pyramid_feature_cfg',
    'spectral_inputs',
)

#: Output strides of the four pyramid levels, relative to the input (patch size 16).
PYRAMID_STRIDES: tuple[int, int, int, int] = (4, 8, 16, 32)
#: Rescale factor of each level relative to the patch grid.
_SCALES: tuple[float, float, float, float] = (4.0, 2.0, 1.0, 0.5)

_SPECTRAL: ContextVar[tuple[Any, Tensor | None] | None] = ContextVar('smarties_spectral_inputs', default=None)


@contextmanager
def spectral_inputs(bands: Bands | None = None, band_mask: Tensor | None = None) -> Iterator[None]:
    """Band set / band mask for pyramid encoders called inside a decoder whose ``forward(x)`` cannot carry them.

    Context-local (a :class:`contextvars.ContextVar`): other threads and tasks are not affected.
    Explicit ``bands=``/``band_mask=`` arguments of :meth:`SMARTIESFeaturePyramid.forward` take precedence.

    Example:
        >>> with spectral_inputs(band_mask=batch['band_mask']):  # doctest: +SKIP
        ...     logits = unet(batch['image'])
    """
    token = _SPECTRAL.set((bands, band_mask))
    try:
        yield
    finally:
        _SPECTRAL.reset(token)


def default_layer_indices(depth: int) -> tuple[int, int, int, int]:
    """The encoder blocks of the 4 pyramid levels: (3, 5, 7, 11) for 12 blocks, (5, 11, 17, 23) for 24.

    Other depths get 4 evenly spaced blocks ending with the last one (PANGAEA's choice for ViT-B/L).

    Raises:
        InputError: for fewer than 4 blocks.
    """
    if depth == 12:
        return (3, 5, 7, 11)
    if depth == 24:
        return (5, 11, 17, 23)
    if depth < 4:
        raise InputError(f'the feature pyramid needs an encoder with at least 4 blocks, got depth={depth}')
    idx = tuple(round((i + 1) * depth / 4) - 1 for i in range(4))
    return idx  # type: ignore[return-value]


class SimpleFeaturePyramid(nn.Module):
    """Stride-16 maps → strides 4, 8, 16, 32 (ViTDet / mmseg ``Feature2Pyramid``, rescales 4, 2, 1, 0.5).

    Only the selected *levels* get their layers (unused levels hold no parameters).

    .. versionadded:: 0.2
    """

    def __init__(self, dim: int, levels: Sequence[int] = (0, 1, 2, 3)) -> None:
        """Initialize a new SimpleFeaturePyramid instance.

        Args:
            dim: channels of the input maps (kept at every level).
            levels: pyramid levels built, in output order (0 → stride 4, ..., 3 → stride 32).
        """
        super().__init__()
        self.levels = tuple(levels)
        self.up4 = (
            nn.Sequential(
                nn.ConvTranspose2d(dim, dim, 2, stride=2), nn.BatchNorm2d(dim), nn.GELU(),
                nn.ConvTranspose2d(dim, dim, 2, stride=2),
            )
            if 0 in self.levels
            else None
        )
        self.up2 = nn.ConvTranspose2d(dim, dim, 2, stride=2) if 1 in self.levels else None
        self.same = nn.Identity()
        self.down2 = nn.MaxPool2d(2, stride=2)

    def _op(self, level: int) -> nn.Module:
        op = (self.up4, self.up2, self.same, self.down2)[level]
        assert op is not None
        return op

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        """One map per level of ``self.levels`` (each (B, D, h, w) at stride 16) → the rescaled maps."""
        return [self._op(level)(f) for level, f in zip(self.levels, feats, strict=True)]


def _as_levels(out_indices: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(out_indices, int):  # timm: an int n means the last n levels
        if not 1 <= out_indices <= 4:
            raise InputError(f'out_indices={out_indices} levels; the SMARTIES pyramid has 1 to 4 levels')
        return tuple(range(4 - out_indices, 4))
    levels = tuple(int(i) for i in out_indices)
    if not levels:
        raise InputError(
            'the SMARTIES feature pyramid got no level to output (out_indices=(); smp encoder_depth=1): use smp '
            'encoder_depth 2 to 5 (levels at strides 4, 8, 16, 32; 5 = all four)'
        )
    bad = [i for i in levels if not -4 <= i < 4]
    if bad:
        raise InputError(
            f'out_indices {list(levels)} name levels outside the 4-level SMARTIES pyramid (strides 4, 8, 16, 32, '
            'indices 0 to 3); smp encoder_depth must be 2 to 5'
        )
    levels = tuple(i % 4 for i in levels)
    if list(levels) != sorted(set(levels)):
        raise InputError(f'out_indices must be increasing and distinct, got {list(levels)}')
    return levels


class SMARTIESFeaturePyramid(nn.Module):
    """timm ``features_only`` wrapper of a :class:`~torchgeo_smarties.models.SMARTIESViT`: a 4-level pyramid.

    ``forward(x)`` returns a list of (B, D, H/s, W/s) maps for the strides s of ``out_indices``
    (``feature_info.reduction()``), each from its own encoder block (without the final norm unless *norm*).

    .. versionadded:: 0.2
    """

    def __init__(
        self,
        model: SMARTIESViT,
        out_indices: int | Sequence[int] = (0, 1, 2, 3),
        block_indices: Sequence[int] | None = None,
        norm: bool = False,
        output_fmt: str = 'NCHW',
    ) -> None:
        """Initialize a new SMARTIESFeaturePyramid instance.

        Args:
            model: the encoder (kept whole, so its state dict loads as usual).
            out_indices: pyramid levels to output (0 → stride 4, 1 → 8, 2 → 16, 3 → 32), or an int n for the
                last n levels; smp's ``encoder_depth`` d gives ``range(d - 1)``.
            block_indices: 4 encoder blocks, one per level (default :func:`default_layer_indices`).
            norm: apply the encoder's final norm to the block outputs.
            output_fmt: only ``'NCHW'``.

        Raises:
            InputError: for bad *out_indices* or *block_indices*, or another output format.
        """
        super().__init__()
        if output_fmt != 'NCHW':
            raise InputError(f"the SMARTIES feature pyramid outputs 'NCHW' maps only, got output_fmt={output_fmt!r}")
        depth = len(model.blocks)
        blocks = tuple(default_layer_indices(depth) if block_indices is None else block_indices)
        if len(blocks) != 4 or any(not -depth <= int(i) < depth for i in blocks):
            raise InputError(
                f'pyramid_blocks must name 4 blocks (one per level) of the {depth}-block encoder, got {list(blocks)}'
            )
        self.levels = _as_levels(out_indices)
        self.block_indices = tuple(int(i) % depth for i in blocks)
        self.model = model
        self.norm = norm
        self.output_fmt = 'NCHW'
        self.neck = SimpleFeaturePyramid(model.embed_dim, self.levels)
        patch = model.patch_size
        info = [
            {'num_chs': model.embed_dim, 'reduction': int(patch / scale), 'module': f'neck.level{i}', 'index': i}
            for i, scale in enumerate(_SCALES)
        ]
        self.feature_info = FeatureInfo(info, self.levels)
        self.out_indices = self.levels
        #: channels of the output levels (what TerraTorch and other frameworks read).
        self.out_channels: list[int] = list(self.feature_info.channels())

    def forward(self, x: Tensor, bands: Bands | None = None, band_mask: Tensor | None = None) -> list[Tensor]:
        """Pyramid maps for images (B, C, H, W); *bands*/*band_mask* default to :func:`spectral_inputs`."""
        ctx = _SPECTRAL.get()
        if ctx is not None:
            bands = ctx[0] if bands is None else bands
            band_mask = ctx[1] if band_mask is None else band_mask
        idx = sorted({self.block_indices[level] for level in self.levels})
        maps = self.model.forward_intermediates(
            x, indices=idx, bands=bands, band_mask=band_mask, norm=self.norm, output_fmt='NCHW',
            intermediates_only=True,
        )
        by_block = dict(zip(idx, maps, strict=True))
        out: list[Tensor] = self.neck([by_block[self.block_indices[level]] for level in self.levels])
        return out


def pyramid_feature_cfg(kwargs: MutableMapping[str, Any]) -> dict[str, Any]:
    """The ``feature_cfg`` of a SMARTIES timm entrypoint; pops the pyramid options from *kwargs*.

    With ``features_only=True`` the model is wrapped in :class:`SMARTIESFeaturePyramid` (options
    ``out_indices`` and ``pyramid_blocks``); an explicit ``feature_cls=`` (e.g. ``'getter'``) keeps timm's
    wrapper with the last 3 blocks by default.

    Raises:
        InputError: for ``pyramid_blocks`` without ``features_only=True``, or an output stride other than 32.
    """
    blocks = kwargs.pop('pyramid_blocks', None)
    features = bool(kwargs.get('features_only', False))
    if blocks is not None and not features:
        raise InputError('pyramid_blocks= applies to features_only=True models only')
    if features and 'output_stride' in kwargs:
        stride = kwargs.pop('output_stride')
        if stride not in (None, 32):
            raise InputError(
                f'output_stride={stride} is not supported: the SMARTIES pyramid has fixed strides 4, 8, 16, 32 '
                '(use smp encoder_output_stride=32, the default)'
            )
    if 'feature_cls' in kwargs:
        if blocks is not None:
            cls = kwargs['feature_cls']
            raise InputError(f'pyramid_blocks= applies to the SMARTIES pyramid, not feature_cls={cls!r}')
        return {'out_indices': 3, 'feature_cls': 'getter'}
    return {'out_indices': (0, 1, 2, 3), 'feature_cls': SMARTIESFeaturePyramid, 'block_indices': blocks}
