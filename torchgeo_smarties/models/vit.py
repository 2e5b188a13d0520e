"""The SMARTIES encoder: a timm ``VisionTransformer`` with a spectrum-aware patch embedding."""

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any, Literal

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from ..errors import BandCountError
from ..spectrum import InterpolationPolicy, OutOfRange, ProjectionPlan, plan_bands
from ..spectrum.registry import BandSpec
from .pos_embed import get_2d_sincos_pos_embed, resample_pos_embed
from .tokenizer import SpectrumAwareProjection, SpectrumPatchEmbed

__all__ = ('DEFAULT_PRESETS', 'Bands', 'SMARTIESViT', 'default_bands_for', 'release_init_')

#: What a band set may be given as: a preset name, band ids, or a resolved plan.
Bands = str | Sequence[BandSpec] | ProjectionPlan

#: Default preset chosen from the channel count when no band set is given.
DEFAULT_PRESETS: dict[int, str] = {12: 'sentinel2_l2a', 13: 'sentinel2_l1c', 2: 'sentinel1', 3: 'maxar_rgb'}


def default_bands_for(in_chans: int) -> str:
    """The documented default preset for a channel count (12, 13, 2 or 3).

    Raises:
        BandCountError: for any other count, asking for ``bands=``.
    """
    try:
        return DEFAULT_PRESETS[in_chans]
    except KeyError:
        raise BandCountError(
            f'no default band set for in_chans={in_chans}; pass bands=[...] ("<sensor>:<band>" per channel) '
            f'or a preset name. Defaults exist for: '
            + ', '.join(f'{k} → {v}' for k, v in DEFAULT_PRESETS.items())
        ) from None


def release_init_(modules: Iterable[nn.Module]) -> None:
    """The release's init: xavier-uniform ``Linear`` weights, zero biases, LayerNorm weight 1 / bias 0."""
    with torch.no_grad():
        for m in modules:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


class SMARTIESViT(VisionTransformer):
    """SMARTIES spectrum-aware Vision Transformer encoder.

    A timm :class:`~timm.models.vision_transformer.VisionTransformer` whose patch
    embedding projects each band with the learned projection of its spectral
    range (fused into one static projection per band set), with the release's
    fixed 2-D sin-cos position embedding, LayerNorm eps 1e-6, qkv bias and no
    layer-scale. ``forward``, ``forward_features``, ``forward_intermediates`` and
    the other timm methods accept ``bands=`` (and ``band_mask=``); without it the
    model's default band set is used (what torchgeo tasks get when they call ``model(x)``).
    A ``bands=``/``band_mask=`` argument is bound to the patch embedding for the duration of the
    call, so one model instance should not serve concurrent calls with *different* band sets from
    several threads (use one instance per thread, or :meth:`set_bands` per instance).

    Reference implementation: https://github.com/gsumbul/SMARTIES

    If you use this model in your research, please cite the following paper:

    * https://arxiv.org/abs/2506.19585

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        *,
        bands: Bands | None = None,
        interpolation: InterpolationPolicy = 'linear',
        out_of_range: OutOfRange = 'error',
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        in_chans: int | None = None,
        num_classes: int = 0,
        global_pool: Literal['token', 'avg', ''] = 'token',
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        dynamic_img_size: bool = True,
        **kwargs: Any,
    ) -> None:
        """Initialize a new SMARTIESViT instance.

        Args:
            bands: default band set: a preset name (``'sentinel2_l2a'``), a list of
                ``'<sensor>:<band>'`` ids, or a plan. If None, chosen from *in_chans*
                (12 → sentinel2_l2a, 13 → sentinel2_l1c, 2 → sentinel1, 3 → maxar_rgb).
            interpolation: policy for bands without a learned projection
                (``'linear'``, ``'nearest'``, ``'official'``, ``'learned'``).
            out_of_range: ``'error'`` (default) or ``'nearest'`` for bands outside the spectrum.
            img_size: nominal image size (the grid of the stored position embedding).
            patch_size: patch size; must be 16 for the released weights.
            in_chans: number of channels; checked against *bands* when both are given.
            num_classes: classifier outputs; 0 (default) gives a feature extractor.
            global_pool: ``'token'`` (CLS after the final norm, the release's default)
                or ``'avg'`` (mean of patch tokens then a new ``fc_norm``, the release's
                ``global_pool=True``).
            embed_dim: token width.
            depth: number of blocks.
            num_heads: attention heads.
            mlp_ratio: MLP expansion.
            dynamic_img_size: accept any image size that is a multiple of the patch
                (position embedding resampled bicubically like the release).
            **kwargs: other timm ``VisionTransformer`` arguments (e.g. ``drop_path_rate``).

        Raises:
            BandCountError: if *in_chans* contradicts *bands*, or neither determines the band set.
        """
        if bands is None:
            if in_chans is None:
                in_chans = 12
            bands = default_bands_for(in_chans)
        plan = plan_bands(bands, interpolation, out_of_range)
        if in_chans is not None and in_chans != plan.num_bands:
            raise BandCountError(
                f'in_chans={in_chans} but the band set has {plan.num_bands} bands ({", ".join(plan.bands)}); '
                'make them agree or drop in_chans'
            )
        for key in ('class_token', 'no_embed_class', 'reg_tokens', 'pre_norm', 'embed_layer', 'pos_embed'):
            if key in kwargs:
                raise TypeError(f'SMARTIESViT does not support overriding {key!r}')
        kwargs.setdefault('norm_layer', partial(nn.LayerNorm, eps=1e-6))
        kwargs.setdefault('qkv_bias', True)
        super().__init__(
            img_size=img_size,
            patch_size=patch_size,
            in_chans=plan.num_bands,
            num_classes=num_classes,
            global_pool=global_pool,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            dynamic_img_size=dynamic_img_size,
            embed_layer=SpectrumPatchEmbed,
            weight_init='skip',
            **kwargs,
        )
        self.interpolation: InterpolationPolicy = interpolation
        self.out_of_range: OutOfRange = out_of_range
        self.patch_size = patch_size
        self.spectrum_projection = SpectrumAwareProjection(patch_size, embed_dim)
        # spectrum_projection first: torchgeo's weight loader follows the first child to find the input layer
        self._modules = {'spectrum_projection': self._modules.pop('spectrum_projection'), **self._modules}
        patch_embed: SpectrumPatchEmbed = self.patch_embed  # type: ignore[assignment]
        patch_embed.projection = self.spectrum_projection
        patch_embed.plan = plan
        self.default_plan = plan
        self.pos_embed.requires_grad_(False)  # type: ignore[union-attr]
        self.init_weights()

    # -- init --------------------------------------------------------------------------------------------------------
    def init_weights(self, mode: str = '', needs_reset: bool = True) -> None:
        """Initialise like the release: fixed sin-cos pos-embed, CLS N(0, 0.02), xavier Linear, zero bias."""
        with torch.no_grad():
            grid = self.patch_embed.grid_size
            pe = get_2d_sincos_pos_embed(self.embed_dim, grid, cls_token=True)
            self.pos_embed.copy_(pe.to(self.pos_embed))  # type: ignore[union-attr]
            nn.init.normal_(self.cls_token, std=0.02)  # type: ignore[arg-type]
            release_init_(self.modules())

    # -- bands -------------------------------------------------------------------------------------------------------
    @property
    def bands(self) -> tuple[str, ...]:
        """The default band set (band ids in channel order)."""
        return self.default_plan.bands

    def plan_for(self, bands: Bands | None) -> ProjectionPlan:
        """Resolve *bands* with this model's interpolation policy (None → the default plan)."""
        if bands is None:
            return self.default_plan
        return plan_bands(bands, self.interpolation, self.out_of_range)

    def set_bands(self, bands: Bands) -> None:
        """Change the default band set (what ``model(x)`` uses without ``bands=``)."""
        plan = self.plan_for(bands)
        self.default_plan = plan
        self.in_chans = plan.num_bands
        if self._embed.band_mask is None:
            self._embed.plan = plan

    @property
    def _embed(self) -> SpectrumPatchEmbed:
        return self.patch_embed  # type: ignore[return-value]

    @contextmanager
    def _bound(self, bands: Bands | None, band_mask: Tensor | None) -> Iterator[None]:
        """Bind a band plan and mask to the patch embedding for one call (no-op when both are None)."""
        if bands is None and band_mask is None:
            yield
            return
        embed = self._embed
        prev = (embed.plan, embed.band_mask)
        embed.plan = self.plan_for(bands) if bands is not None else (embed.plan or self.default_plan)
        embed.band_mask = band_mask
        try:
            yield
        finally:
            embed.plan, embed.band_mask = prev

    # -- timm overrides -----------------------------------------------------------------------------------------------
    def _pos_embed(self, x: Tensor) -> Tensor:
        """Prepend CLS and add the position embedding, resampled like the release for other sizes."""
        assert self.pos_embed is not None and self.cls_token is not None
        pos_embed: Tensor = self.pos_embed
        if x.ndim == 4:
            b, h, w, c = x.shape
            pos_embed = resample_pos_embed(pos_embed, (h, w), self.patch_embed.grid_size, self.num_prefix_tokens)
            x = x.reshape(b, h * w, c)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        x = x + pos_embed.to(x.dtype)
        out: Tensor = self.pos_drop(x)
        return out

    def set_input_size(
        self, img_size: tuple[int, int] | None = None, patch_size: tuple[int, int] | None = None
    ) -> None:
        """Change the nominal image size; the position embedding is resampled the release's way."""
        old = self.patch_embed.grid_size
        self.patch_embed.set_input_size(img_size=img_size, patch_size=patch_size)
        new = self.patch_embed.grid_size
        if new != old and self.pos_embed is not None:
            self.pos_embed = nn.Parameter(
                resample_pos_embed(self.pos_embed.data, new, old, self.num_prefix_tokens), requires_grad=False
            )

    def patch_tokens(self, x: Tensor, bands: Bands | None = None, band_mask: Tensor | None = None) -> Tensor:
        """The tokenizer's output (B, h, w, D): 12 × the mean band embedding, before CLS and position.

        This is the token space in which cross-sensor mixup is defined.
        """
        with self._bound(bands, band_mask):
            embed = self._embed
            assert embed.plan is not None
            from .tokenizer import validate_image

            validate_image(x, embed.plan.num_bands, self.patch_size, embed.check_finite and embed.band_mask is None)
            return self.spectrum_projection(x, embed.plan, embed.band_mask)

    def forward_features(  # type: ignore[override]
        self,
        x: Tensor,
        bands: Bands | None = None,
        band_mask: Tensor | None = None,
        **kwargs: Any,
    ) -> Tensor:
        """Normed tokens (B, 1 + N, D) for *x* with band set *bands* (default: the model's)."""
        with self._bound(bands, band_mask):
            out: Tensor = super().forward_features(x, **kwargs)
            return out

    def forward_intermediates(  # type: ignore[override]
        self,
        x: Tensor,
        indices: int | list[int] | None = None,
        bands: Bands | None = None,
        band_mask: Tensor | None = None,
        **kwargs: Any,
    ) -> Any:
        """timm's ``forward_intermediates`` with ``bands=``; maps are (B, D, h, w) for ``output_fmt='NCHW'``.

        The release's dense output is the last block without the final norm:
        ``forward_intermediates(x, indices=[depth - 1], norm=False, intermediates_only=True)[0]``
        (also available as :meth:`forward_dense`).
        """
        with self._bound(bands, band_mask):
            return super().forward_intermediates(x, indices, **kwargs)

    def forward_dense(self, x: Tensor, bands: Bands | None = None, band_mask: Tensor | None = None) -> Tensor:
        """The release's ``all_tokens`` output: last block, no final norm, as (B, D, h, w)."""
        out: list[Tensor] = self.forward_intermediates(
            x, indices=[len(self.blocks) - 1], bands=bands, band_mask=band_mask, norm=False,
            output_fmt='NCHW', intermediates_only=True,
        )
        return out[0]

    def forward(  # type: ignore[override]
        self, x: Tensor, bands: Bands | None = None, band_mask: Tensor | None = None, **kwargs: Any
    ) -> Tensor:
        """Pooled features (B, D) — the CLS token after the final norm — or logits if ``num_classes > 0``."""
        with self._bound(bands, band_mask):
            out: Tensor = super().forward(x, **kwargs)
            return out

    @torch.jit.ignore  # type: ignore[untyped-decorator]
    def load_pretrained(self, checkpoint_path: str, prefix: str = '') -> None:
        """Load a release-format checkpoint strictly (used by timm's ``pretrained=True``)."""
        from .checkpoint import load_encoder_weights

        load_encoder_weights(self, checkpoint_path)

    def extra_repr(self) -> str:
        """Show the default band set and policy."""
        return f'bands={list(self.bands)}, interpolation={self.interpolation!r}'

