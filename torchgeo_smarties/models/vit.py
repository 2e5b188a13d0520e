"""The SMARTIES encoder: a timm ``VisionTransformer`` with a spectrum-aware patch embedding."""

from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any, Literal, Optional

import torch
from timm.layers import resample_abs_pos_embed
from timm.models._features import feature_take_indices
from timm.models._manipulate import checkpoint_seq
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from ..errors import BandCountError, ImageSizeError, ModelConfigError
from ..spectrum import InterpolationPolicy, OutOfRange, ProjectionPlan, plan_bands
from ..spectrum.registry import BandSpec
from .checkpoint import release_keys_pre_hook
from .pos_embed import get_2d_sincos_pos_embed, resample_pos_embed
from .tokenizer import SpectrumPatchEmbed, validate_image

__all__ = ('DEFAULT_PRESETS', 'Bands', 'SMARTIESViT', 'check_architecture', 'default_bands_for', 'release_init_')

# torch.fx: keep the position-table resampling a leaf call (it depends on the traced input size) for every tracer
torch.fx.wrap('resample_abs_pos_embed')

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


def check_architecture(embed_dim: Any, depth: Any, num_heads: Any, *, what: str = 'encoder') -> None:
    """Check a transformer's size before any layer is built; raise a typed error naming the fix.

    Every builder (``smarties_vitb``, the timm entrypoints, checkpoint metadata, pretraining configs,
    ``--num-heads``) reaches this through :class:`SMARTIESViT` / :class:`~torchgeo_smarties.models.SMARTIESMAE`.

    Raises:
        ModelConfigError: a non-integer or non-positive size, ``embed_dim`` not divisible by ``num_heads``, or
            ``embed_dim`` not divisible by 4 (the 2-D sin-cos position embedding).
    """
    for name, value in (('embed_dim', embed_dim), ('depth', depth), ('num_heads', num_heads)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ModelConfigError(f'{what} {name} must be a positive integer, got {value!r}')
    if embed_dim % num_heads:
        divisors = [h for h in range(1, min(embed_dim, 64) + 1) if embed_dim % h == 0]
        raise ModelConfigError(
            f'{what} embed_dim={embed_dim} is not divisible by num_heads={num_heads}; pick num_heads among '
            f'{divisors[-6:]} (ViT-B: 768/12, ViT-L: 1024/16)'
        )
    if embed_dim % 4:
        raise ModelConfigError(
            f'{what} embed_dim={embed_dim} must be divisible by 4 for the 2-D sin-cos position embedding'
        )


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
    The band plan and mask travel as arguments down to the tokenizer (as timm passes ``attn_mask``):
    no submodule is modified during a call, so one instance may serve concurrent calls with different
    band sets from several threads.

    ``pos_embed`` is the release's fixed sin-cos table, a persistent buffer (state-dict key ``pos_embed``).
    The 17 learned per-range projections live in ``patch_embed`` (a :class:`SpectrumPatchEmbed`, timm's first
    child): module names and state-dict keys are ``patch_embed.spectrum_embeds.{k}.proj.*``. The release's
    ``spectrum_projection.*`` keys are mapped when loading (``load_state_dict`` accepts both namings) and by
    :func:`~torchgeo_smarties.models.to_release_state_dict` for export.
    ``torch.jit.script`` and ``torch.fx`` tracing see ``forward(x)`` with the default band set.

    Reference implementation: https://github.com/gsumbul/SMARTIES

    If you use this model in your research, please cite the following paper:

    * https://arxiv.org/abs/2506.19585

    .. versionadded:: 0.1
    """

    default_mix: Tensor
    #: Python-only attributes TorchScript must not try to compile (the scripted forward uses ``default_mix``).
    __jit_ignored_attributes__ = ('default_plan',)
    __jit_unused_properties__ = ('bands', 'spectrum_projection')

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
            ModelConfigError: for an invalid size (see :func:`check_architecture`).
        """
        check_architecture(embed_dim, depth, num_heads)
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
        # the fixed sin-cos table: a persistent buffer under the release's key (no gradient, not trained)
        # timm's device=/dtype= factory arguments: our tensors follow cls_token
        dev, dt = self.cls_token.device, self.cls_token.dtype  # type: ignore[union-attr]
        del self.pos_embed
        n_pos = 1 + self.patch_embed.num_patches
        self.register_buffer('pos_embed', torch.zeros(1, n_pos, embed_dim, device=dev, dtype=dt))
        self.default_plan = plan
        # the default plan as tensors, for TorchScript (which cannot take a plan): not saved
        self.register_buffer('default_mix', torch.tensor(plan.matrix(), device=dev, dtype=dt), persistent=False)
        self.default_scale = self.patch_embed.scaler / plan.num_active
        # the release's key names (spectrum_projection.*) load too: mapped to patch_embed.* before loading
        self.register_load_state_dict_pre_hook(release_keys_pre_hook)
        self.init_weights()

    # -- init --------------------------------------------------------------------------------------------------------
    def init_weights(self, mode: str = '', needs_reset: bool = True) -> None:
        """Initialise like the release: fixed sin-cos pos-embed, CLS N(0, 0.02), xavier Linear, zero bias."""
        with torch.no_grad():
            pe = get_2d_sincos_pos_embed(self.embed_dim, self.patch_embed.grid_size, cls_token=True)
            self.pos_embed.copy_(pe.to(self.pos_embed))  # type: ignore[union-attr]
            nn.init.normal_(self.cls_token, std=0.02)  # type: ignore[arg-type]
            release_init_(self.modules())

    # -- bands -------------------------------------------------------------------------------------------------------
    @property
    def bands(self) -> tuple[str, ...]:
        """The default band set (band ids in channel order)."""
        return self.default_plan.bands

    @torch.jit.unused  # type: ignore[untyped-decorator]
    def plan_for(self, bands: Any) -> ProjectionPlan:
        """Resolve *bands* (a :data:`Bands`) with this model's interpolation policy (None → the default plan)."""
        if bands is None:
            return self.default_plan
        return plan_bands(bands, self.interpolation, self.out_of_range)

    def set_bands(self, bands: Bands) -> None:
        """Change the default band set (what ``model(x)`` uses without ``bands=``); not for use during calls."""
        plan = self.plan_for(bands)
        self.default_plan = plan
        self.in_chans = plan.num_bands
        self.default_mix = torch.tensor(plan.matrix(), dtype=self.default_mix.dtype, device=self.default_mix.device)
        self.default_scale = self.patch_embed.scaler / plan.num_active

    @property
    def spectrum_projection(self) -> SpectrumPatchEmbed:
        """The spectral projection (the 17 learned ranges): :attr:`patch_embed` itself, under the release's name."""
        return self.patch_embed  # type: ignore[return-value]

    # -- tokens ------------------------------------------------------------------------------------------------------
    @torch.jit.unused  # type: ignore[untyped-decorator]
    def patch_tokens(self, x: Tensor, bands: Any = None, band_mask: Optional[Tensor] = None) -> Tensor:  # noqa: UP045
        """The tokenizer's output (B, h, w, D): 12 × the mean band embedding, before CLS and position.

        This is the token space in which cross-sensor mixup is defined.

        Args:
            x: (B, C, H, W) floating-point image batch; cast to the model's dtype (outside ``torch.autocast``).
            bands: a :data:`Bands` (default: the model's band set).
            band_mask: optional validity mask (see :class:`~torchgeo_smarties.models.SpectrumAwareProjection`).
        """
        if torch.fx._symbolic_trace.is_fx_symbolic_tracing():
            # torch.fx makes every forward argument a Proxy; a band plan is resolved in Python, so a traced
            # graph is for the default band set without a mask (pass concrete_args to trace another plan)
            bands = None if isinstance(bands, torch.fx.Proxy) else bands
            band_mask = None if isinstance(band_mask, torch.fx.Proxy) else band_mask
            plan = self.plan_for(bands)
        else:
            plan = self.plan_for(bands)
            validate_image(x, plan.num_bands, self.patch_size, band_mask is None)
            if self.patch_embed.strict_img_size and tuple(x.shape[-2:]) != tuple(self.patch_embed.img_size):
                raise ImageSizeError(
                    f'input size {tuple(x.shape[-2:])} differs from the model size {self.patch_embed.img_size}; '
                    'build the model with dynamic_img_size=True (the default) to accept any size'
                )
            dtype = self.cls_token.dtype  # type: ignore[union-attr]
            if x.dtype != dtype and not torch.is_autocast_enabled(x.device.type):
                # cast policy: the image takes the model's dtype (float16/bfloat16/float64 into a float32 model,
                # float32 into a .half() model); under torch.autocast the input is left to autocast
                x = x.to(dtype)
        out: Tensor = self.patch_embed(x, plan, band_mask)
        return out

    def _tokens(self, x: Tensor, bands: Any, band_mask: Optional[Tensor]) -> Tensor:  # noqa: UP045
        if torch.jit.is_scripting():
            return self.patch_embed.forward_default(x, self.default_mix, self.default_scale)  # type: ignore[operator]
        return self.patch_tokens(x, bands, band_mask)

    # -- timm overrides -----------------------------------------------------------------------------------------------
    def _pos_embed(self, x: Tensor) -> Tensor:
        """(B, h, w, D) tokens → prepend CLS and add the position embedding, resampled like the release."""
        h, w = x.shape[1], x.shape[2]
        grid = self.patch_embed.grid_size
        pos_embed = resample_abs_pos_embed(
            self.pos_embed, new_size=[h, w], old_size=[grid[0], grid[1]], num_prefix_tokens=1, antialias=False
        )
        x = x.flatten(1, 2)
        assert self.cls_token is not None
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        x = x + pos_embed.to(x.dtype)
        out: Tensor = self.pos_drop(x)
        return out

    def _embed(self, x: Tensor, bands: Any, band_mask: Optional[Tensor]) -> Tensor:  # noqa: UP045
        """Tokens with CLS and position, after patch dropout and the pre-norm: the input of block 0."""
        x = self._pos_embed(self._tokens(x, bands, band_mask))
        x = self.patch_drop(x)
        out: Tensor = self.norm_pre(x)
        return out

    def set_input_size(
        self, img_size: tuple[int, int] | None = None, patch_size: tuple[int, int] | None = None
    ) -> None:
        """Change the nominal image size; the position embedding is resampled the release's way."""
        old = self.patch_embed.grid_size
        self.patch_embed.set_input_size(img_size=img_size, patch_size=patch_size)
        new = self.patch_embed.grid_size
        if new != old:
            self.pos_embed = resample_pos_embed(self.pos_embed, new, old, self.num_prefix_tokens)  # type: ignore[arg-type,assignment]

    def forward_features(  # type: ignore[override]
        self,
        x: Tensor,
        bands: Any = None,
        band_mask: Optional[Tensor] = None,  # noqa: UP045
        attn_mask: Optional[Tensor] = None,  # noqa: UP045
        is_causal: bool = False,
    ) -> Tensor:
        """Normed tokens (B, 1 + N, D) for *x* with band set *bands* (default: the model's)."""
        x = self._embed(x, bands, band_mask)
        if attn_mask is not None or is_causal:
            for blk in self.blocks:
                x = blk(x, attn_mask=attn_mask, is_causal=is_causal)
        elif self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.blocks, x)
        else:
            x = self.blocks(x)
        out: Tensor = self.norm(x)
        return out

    @torch.jit.unused  # type: ignore[untyped-decorator]
    def forward_intermediates(  # type: ignore[override]
        self,
        x: Tensor,
        indices: int | list[int] | None = None,
        return_prefix_tokens: bool = False,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = 'NCHW',
        intermediates_only: bool = False,
        output_dict: bool = False,
        attn_mask: Tensor | None = None,
        is_causal: bool = False,
        bands: Bands | None = None,
        band_mask: Tensor | None = None,
    ) -> Any:
        """timm's ``forward_intermediates`` with ``bands=``/``band_mask=``; maps are (B, D, h, w) for ``'NCHW'``.

        The release's dense output is the last block without the final norm:
        ``forward_intermediates(x, indices=[depth - 1], norm=False, intermediates_only=True)[0]``
        (also available as :meth:`forward_dense`).
        """
        if output_fmt not in ('NCHW', 'NLC'):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}")
        take_indices, max_index = feature_take_indices(len(self.blocks), indices)
        b, _, height, width = x.shape
        x = self._embed(x, bands, band_mask)
        blocks = list(self.blocks)[: max_index + 1] if stop_early else list(self.blocks)
        intermediates = []
        for i, blk in enumerate(blocks):
            x = blk(x, attn_mask=attn_mask, is_causal=is_causal) if attn_mask is not None or is_causal else blk(x)
            if i in take_indices:
                intermediates.append(self.norm(x) if norm else x)
        prefix = [y[:, : self.num_prefix_tokens] for y in intermediates]
        intermediates = [y[:, self.num_prefix_tokens :] for y in intermediates]
        if output_fmt == 'NCHW':
            h, w = self.patch_embed.dynamic_feat_size((height, width))
            intermediates = [y.reshape(b, h, w, -1).permute(0, 3, 1, 2).contiguous() for y in intermediates]
        if output_dict:
            result: dict[str, Any] = {'image_intermediates': intermediates}
            if return_prefix_tokens:
                result['image_intermediates_prefix'] = prefix
            if not intermediates_only:
                result['image_features'] = self.norm(x)
            return result
        out: Any = list(zip(intermediates, prefix)) if return_prefix_tokens else intermediates
        if intermediates_only:
            return out
        return self.norm(x), out

    @torch.jit.unused  # type: ignore[untyped-decorator]
    def forward_dense(self, x: Tensor, bands: Bands | None = None, band_mask: Tensor | None = None) -> Tensor:
        """The release's ``all_tokens`` output: last block, no final norm, as (B, D, h, w)."""
        out: list[Tensor] = self.forward_intermediates(
            x, indices=[len(self.blocks) - 1], bands=bands, band_mask=band_mask, norm=False,
            output_fmt='NCHW', intermediates_only=True,
        )
        return out[0]

    def forward(  # type: ignore[override]
        self,
        x: Tensor,
        bands: Any = None,
        band_mask: Optional[Tensor] = None,  # noqa: UP045
        attn_mask: Optional[Tensor] = None,  # noqa: UP045
        is_causal: bool = False,
    ) -> Tensor:
        """Pooled features (B, D) — the CLS token after the final norm — or logits if ``num_classes > 0``.

        Args:
            x: (B, C, H, W) image batch, channels in the order of *bands*.
            bands: the band set of *x* (a :data:`Bands`); default: the model's (:attr:`bands`).
            band_mask: optional validity mask, True = valid: (B, C), (B, C, h, w) or (B, C, H, W).
            attn_mask: optional attention mask, passed to every block (as in timm).
            is_causal: causal attention (as in timm).
        """
        x = self.forward_features(x, bands, band_mask, attn_mask, is_causal)
        out: Tensor = self.forward_head(x)
        return out

    @torch.jit.ignore  # type: ignore[untyped-decorator]
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """timm's ViT parameter groups, except that the spectral projection is not in the stem.

        As in the release's layer-wise lr decay (where it is ``spectrum_projection``, not ``patch_embed``), the 17
        learned ranges sit on top with the head (scale 1.0); the stem is ``cls_token``/``pos_embed``/``norm_pre``.
        """
        return {'stem': r'^cls_token|^pos_embed|^norm_pre', 'blocks': [(r'^blocks\.(\d+)', None), (r'^norm', (99999,))]}

    @torch.jit.ignore  # type: ignore[untyped-decorator]
    def no_weight_decay(self) -> set[str]:
        """Parameters without weight decay: the CLS token (the fixed ``pos_embed`` is a buffer, not trained)."""
        return {'cls_token'}

    @torch.jit.ignore  # type: ignore[untyped-decorator]
    def load_pretrained(self, checkpoint_path: str, prefix: str = '') -> None:
        """Load a release-format checkpoint strictly (used by timm's ``pretrained=True``)."""
        from .checkpoint import load_encoder_weights

        load_encoder_weights(self, checkpoint_path)

    def extra_repr(self) -> str:
        """Show the default band set and policy."""
        return f'bands={list(self.bands)}, interpolation={self.interpolation!r}'

