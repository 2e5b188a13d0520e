"""Spectrum-aware patch embedding, fused into one static projection per band plan.

The release embeds each band of a 16×16 patch with the ``Linear(256 → D)`` of its
spectral range and takes ``12 · mean`` over the bands. Because everything is
linear, that equals one strided projection of all bands at once:

    token = Σ_c (12/C)·W_k(c) x_c + (12/C)·Σ_c b_k(c)

:class:`SpectrumAwareProjection` holds the 17 learned ``Linear`` layers and builds the
fused weight for a :class:`~torchgeo_smarties.spectrum.ProjectionPlan`. In the encoder it is
the ``patch_embed`` (:class:`SpectrumPatchEmbed`, which adds timm's patch-embed geometry), so its
state-dict keys are ``patch_embed.spectrum_embeds.{k}.proj.*``; the release names them
``spectrum_projection.spectrum_embeds.{k}.proj.*``, mapped at the load/export boundary
(:mod:`torchgeo_smarties.models.checkpoint`):

* in inference (no grad) the fused weight is cached per (plan, device, dtype) and
  revalidated against the parameters' version counters, so it follows every
  in-place update (optimiser steps, ``load_state_dict``) and never goes stale;
* with grad enabled it is rebuilt each call (a C×17 by 17×D×256 contraction,
  negligible next to the ViT) so gradients reach each learned range;
* under ``torch.compile``/export it is built from constants and parameters only,
  so a fixed plan gives a static graph with no breaks.

An optional validity mask (``band_mask``) makes each token ``12 ×`` the mean over
the bands that are valid *for that patch*, exactly (masked einsum). A band counts
as valid in a patch only if all its pixels there are valid; a patch with no valid
band gets an all-zero embedding (before the position embedding) — downstream code
(e.g. ``smarties embed``) reports such patches as nodata.
"""

import math
from typing import Any, NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import BandCountError, ImageSizeError, InputError
from ..ops import patch_validity, patchify
from ..spectrum import NUM_LEARNED_RANGES, PROJECTION_SCALER, ProjectionPlan

__all__ = (
    'SpectrumAwareProjection', 'SpectrumPatchEmbed', 'SpectrumRangeProjection', 'patch_validity', 'validate_image',
)


class _RangeLinear(nn.Linear):
    """``nn.Linear`` that also reports ``in_channels`` (torchgeo's weight loader reads it)."""

    @property
    def in_channels(self) -> int:
        """Number of inputs (S·S pixels), for torchgeo's ``load_state_dict`` helper."""
        return self.in_features


class SpectrumRangeProjection(nn.Module):
    """One learned spectral range: ``Linear(S·S → D)`` on a row-major flattened band patch."""

    def __init__(
        self, patch_size: int, embed_dim: int, device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        """Initialize a new SpectrumRangeProjection instance.

        Args:
            patch_size: patch side S.
            embed_dim: token width D.
            device: device of the parameters (timm's factory argument).
            dtype: dtype of the parameters (timm's factory argument).
        """
        super().__init__()
        self.proj = _RangeLinear(patch_size * patch_size, embed_dim, bias=True, device=device, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        """Project flattened band patches (..., S·S) to (..., D)."""
        out: Tensor = self.proj(x)
        return out


def validate_image(x: Tensor, num_bands: int, patch_size: int, check_finite: bool = True) -> None:
    """Check an image batch against a plan; raise a typed error naming the fix.

    Raises:
        InputError: wrong rank or dtype, an empty batch, or NaN/inf values (when *check_finite*).
        BandCountError: channel count differs from the plan's band count.
        ImageSizeError: an empty image, or height or width not a multiple of the patch size.
    """
    if not isinstance(x, Tensor):
        raise InputError(f'expected a torch.Tensor image batch (B, C, H, W), got {type(x).__name__}')
    if x.ndim != 4:
        raise InputError(
            f'expected a 4-D image batch (B, C, H, W), got shape {tuple(x.shape)}; add a batch dimension '
            'with x[None] for a single image'
        )
    if not x.is_floating_point():
        raise InputError(
            f'expected a floating-point image, got {x.dtype}; normalise it first (e.g. SmartiesNormalize) '
            'or call x.float()'
        )
    if x.shape[0] == 0:
        raise InputError(f'the image batch is empty (shape {tuple(x.shape)}); pass at least one image')
    if x.shape[1] != num_bands:
        raise BandCountError(
            f'the image has {x.shape[1]} channels but the band set has {num_bands} bands; pass bands=[...] '
            'with one "<sensor>:<band>" per channel, in channel order'
        )
    h, w = x.shape[-2:]
    if h == 0 or w == 0:
        raise ImageSizeError(
            f'the image is empty ({h}×{w} pixels); pass at least one {patch_size}×{patch_size} patch'
        )
    if h % patch_size or w % patch_size:
        raise ImageSizeError(
            f'image size {h}×{w} is not a multiple of the patch size {patch_size}; pad or crop to '
            f'{math.ceil(h / patch_size) * patch_size}×{math.ceil(w / patch_size) * patch_size} '
            f'or {h // patch_size * patch_size}×{w // patch_size * patch_size}'
        )
    if check_finite and not x.is_meta and not torch.compiler.is_compiling() and not _all_finite(x):
        raise InputError(
            'the image contains NaN or infinite values; pass band_mask= (False where data is missing) '
            'so those pixels are masked inside the tokenizer, or fill them'
        )


def _all_finite(x: Tensor) -> bool:
    """Whether every value of *x* is finite, cheaply.

    A NaN/inf makes the sum non-finite, so a finite sum (one reduction) proves it; only a non-finite sum
    (NaN/inf, or an overflow of huge values) needs the elementwise check.
    """
    return bool(torch.isfinite(x.sum())) or bool(torch.isfinite(x).all())


#: Inference processes at most this many input elements per patchify copy (4 Mi floats = 16 MiB in float32).
_CHUNK_ELEMENTS = 4 * 1024 * 1024


def _is_tracing() -> bool:
    """True under ``torch.fx`` symbolic tracing, ``torch.compile``/export or TorchScript scripting."""
    return torch.fx._symbolic_trace.is_fx_symbolic_tracing() or torch.compiler.is_compiling()


class _Fused(NamedTuple):
    """A plan's projection, in one of two equal forms (see :meth:`SpectrumAwareProjection.mixes_first`).

    Attributes:
        w_c: fused form: per-channel weights W_c = Σ_k A[c,k] W_k, (C·S·S, D), unscaled; None when mixing first.
        b_c: per-channel biases Σ_k A[c,k] b_k, (C, D), unscaled.
        weight: fused form: ``w_c · 12/C``; mix-first form: the stacked ranges (K·S·S, D), unscaled.
        bias: ``12/C · Σ_c b_c`` (D,).
        mix: mix-first form: the mixing matrix A (C, K), unscaled; None in the fused form.
    """

    w_c: Tensor | None
    b_c: Tensor
    weight: Tensor
    bias: Tensor
    mix: Tensor | None


class SpectrumAwareProjection(nn.Module):
    """The 17 learned per-range projections and the fused, cached patch embedding.

    Stateless per call: the plan and the mask are arguments, so one instance serves concurrent calls
    with different band sets. The only shared state is the inference cache of fused weights, whose entries
    are immutable and keyed on (plan, device, dtype) and the parameters' versions.
    """

    #: Python-only state TorchScript must not try to compile.
    __jit_ignored_attributes__ = ('_cache',)

    def __init__(
        self, patch_size: int = 16, embed_dim: int = 768, num_ranges: int = NUM_LEARNED_RANGES,
        scaler: float = PROJECTION_SCALER, device: torch.device | str | None = None, dtype: torch.dtype | None = None,
    ) -> None:
        """Initialize a new SpectrumAwareProjection instance.

        Args:
            patch_size: patch side S (16 in the release).
            embed_dim: token width D.
            num_ranges: number of learned spectral ranges (17 in the release).
            scaler: the release's ``projection_scaler`` (12).
            device: device of the parameters (timm's factory argument).
            dtype: dtype of the parameters (timm's factory argument).
        """
        super().__init__()
        self.scaler = float(scaler)
        self.embed_dim = embed_dim
        self.patch_side = patch_size
        self.spectrum_embeds = nn.ModuleList(
            SpectrumRangeProjection(patch_size, embed_dim, device=device, dtype=dtype) for _ in range(num_ranges)
        )
        self._cache: dict[tuple[Any, ...], tuple[tuple[tuple[int, int], ...], _Fused]] = {}

    # -- weights ---------------------------------------------------------------------------------------------------
    def _linears(self) -> list[nn.Linear]:
        return [cast(SpectrumRangeProjection, m).proj for m in self.spectrum_embeds]

    def _params(self) -> list[Tensor]:
        return [t for lin in self._linears() for t in (lin.weight, lin.bias)]

    def _apply(self, *args: Any, **kwargs: Any) -> 'SpectrumAwareProjection':
        self._cache.clear()
        return super()._apply(*args, **kwargs)  # type: ignore[no-any-return]

    def stacked(self) -> tuple[Tensor, Tensor]:
        """The learned ranges stacked: weights (K, D, S·S) and biases (K, D), with autograd."""
        linears = self._linears()
        return torch.stack([lin.weight for lin in linears]), torch.stack([lin.bias for lin in linears])

    def mixes_first(self, plan: ProjectionPlan) -> bool:
        """Whether *plan* is cheaper to project by mixing its C channels into the K ranges first.

        The token is linear in the image, so ``Σ_c A[c,k] x_c`` (a C → K channel mix, C·K multiply-adds per
        pixel) followed by the K stacked range projections (K·D per pixel) equals the fused C-channel
        projection (C·D per pixel). Mixing first is chosen when it needs fewer operations:
        ``C·(D − K) > K·D``, i.e. C ≥ 18 bands for ViT-B/L (K = 17): hyperspectral inputs cost about as much
        as 17 bands instead of growing with C.
        """
        k, d = len(self.spectrum_embeds), self.embed_dim
        return plan.num_bands * (d - k) > k * d

    def _build(self, plan: ProjectionPlan, device: torch.device, dtype: torch.dtype) -> _Fused:
        """The projection of *plan* in its cheaper form (see :class:`_Fused`)."""
        weight, bias = self.stacked()  # (K, D, P), (K, D)
        k, d, p = len(self.spectrum_embeds), self.embed_dim, self.patch_side**2  # (static, also under torch.fx)
        rows = plan.matrix()
        if len(rows[0]) != k:
            raise ValueError(f'plan mixes {len(rows[0])} ranges but the model has {k}')
        mix = torch.tensor(rows, dtype=torch.float64).to(weight)  # (C, K)
        c = len(rows)
        scale = self.scaler / plan.num_active
        b_c = (mix @ bias).to(device=device, dtype=dtype)  # (C, D)
        if self.mixes_first(plan):
            w_k = weight.permute(0, 2, 1).reshape(k * p, d).to(device=device, dtype=dtype)  # row k·P + p
            return _Fused(None, b_c, w_k, b_c.sum(0) * scale, mix.to(device=device, dtype=dtype))
        # (C, K) @ (K, D·P) → (C, D, P) → (C, P, D): a patch row (c·P + p) multiplies it directly
        w_c = (mix @ weight.reshape(k, d * p)).reshape(c, d, p).permute(0, 2, 1).reshape(c * p, d)
        w_c = w_c.to(device=device, dtype=dtype)
        return _Fused(w_c, b_c, w_c * scale, b_c.sum(0) * scale, None)

    def fused_parts(self, plan: ProjectionPlan, device: torch.device, dtype: torch.dtype) -> _Fused:
        """The fused projection of *plan* (see :class:`_Fused`); scale 12/C folded into ``weight``/``bias``.

        Cached per (plan, device, dtype) outside autograd; rebuilt under grad, tracing or compile.
        """
        if torch.is_grad_enabled() or _is_tracing():
            return self._build(plan, device, dtype)
        key = (plan, device, dtype)
        versions = tuple((t._version, t.data_ptr()) for t in self._params())
        hit = self._cache.get(key)
        if hit is not None and hit[0] == versions:
            return hit[1]
        with torch.no_grad():
            parts = self._build(plan, device, dtype)
        if len(self._cache) > 64:
            self._cache.clear()
        self._cache[key] = (versions, parts)
        return parts

    def fused(self, plan: ProjectionPlan, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """The fused projection of *plan*: weight (C·S·S, D) and bias (D,), scale 12/C folded in.

        Always the fused form (for inspection and export), also for plans the forward pass mixes first.
        """
        parts = self.fused_parts(plan, device, dtype)
        if parts.mix is None:
            return parts.weight, parts.bias
        k, d, p = len(self.spectrum_embeds), self.embed_dim, self.patch_side**2
        w_c = (parts.mix @ parts.weight.reshape(k, p * d)).reshape(-1, d)  # rows c·P + p
        return w_c * (self.scaler / plan.num_active), parts.bias

    # -- forward ---------------------------------------------------------------------------------------------------
    # (TorchScript cannot take a plan: it calls forward_default)
    @torch.jit.ignore  # type: ignore[untyped-decorator]
    def forward(self, x: Tensor, plan: ProjectionPlan, band_mask: Tensor | None = None) -> Tensor:
        """Embed an image batch into patch tokens.

        Args:
            x: (B, C, H, W) floating image; channels in the order of *plan*.
            plan: the band plan (see :func:`torchgeo_smarties.spectrum.plan_bands`).
            band_mask: optional validity mask, True = valid: (B, C) per band, (B, C, h, w) per
                patch, or (B, C, H, W) per pixel. Invalid values (even NaN) are ignored exactly.

        Returns:
            Tokens of shape (B, h, w, D), with h = H/S and w = W/S.
        """
        if band_mask is None:
            return self._unmasked(x, plan)
        b, c, h, w = x.shape
        valid = patch_validity(band_mask.to(x.device), (b, c, h, w), self.patch_side)  # (B, C, gh, gw) bool
        active = torch.tensor(plan.active, device=x.device)[None, :, None, None]
        if not torch.compiler.is_compiling() and bool((valid | ~active).all()):
            # every active band is valid in every patch: this *is* the unmasked computation, so take its path
            return self._unmasked(x, plan)
        return self._masked(x, plan, valid & active)

    def _unmasked(self, x: Tensor, plan: ProjectionPlan) -> Tensor:
        s = self.patch_side
        parts = self.fused_parts(plan, x.device, x.dtype)
        weight, bias = parts.weight, parts.bias
        channels = plan.num_bands
        if parts.mix is not None:  # mix the C channels into the K ranges first (scale 12/C folded into the mix)
            x = F.conv2d(x, (parts.mix * (self.scaler / plan.num_active)).t()[:, :, None, None])
            channels = len(self.spectrum_embeds)
        if _is_tracing() or x.is_cuda:
            # one strided convolution: no Python shape arithmetic (traceable by torch.fx, static under compile)
            kernel = weight.reshape(channels, s, s, self.embed_dim).permute(3, 0, 1, 2)
            return F.conv2d(x, kernel, bias, stride=s).permute(0, 2, 3, 1)
        b, _, h, w = x.shape
        gh, gw = h // s, w // s
        if torch.is_grad_enabled() or torch.is_autocast_enabled(x.device.type):
            tokens = torch.addmm(bias, patchify(x, s), weight)
            return tokens.reshape(b, gh, gw, -1)
        # inference: patchify in chunks of samples so the re-laid-out copy of the input stays small
        # (bounded memory whatever the number of bands); each chunk is still one large matmul
        out = x.new_empty(b, gh * gw, weight.shape[1])
        step = max(1, _CHUNK_ELEMENTS // max(1, x[0].numel()))
        for i in range(0, b, step):
            chunk = x[i : i + step]
            torch.addmm(bias, patchify(chunk, s), weight, out=out[i : i + step].view(-1, weight.shape[1]))
        return out.reshape(b, gh, gw, -1)

    def _masked(self, x: Tensor, plan: ProjectionPlan, valid: Tensor) -> Tensor:
        """Tokens as 12 × the mean over the bands valid in each patch; *valid* (B, C, h, w) excludes ignored bands."""
        b, c, h, w = x.shape
        s = self.patch_side
        gh, gw = h // s, w // s
        vpix = valid.repeat_interleave(s, dim=2).repeat_interleave(s, dim=3)
        x = torch.where(vpix, x, torch.zeros((), dtype=x.dtype, device=x.device))
        parts = self.fused_parts(plan, x.device, x.dtype)
        weight = parts.w_c
        if parts.mix is not None:  # mix the (masked) channels first; the per-patch scale applies after
            x = F.conv2d(x, parts.mix.t()[:, :, None, None])
            weight = parts.weight
        assert weight is not None
        v = valid.permute(0, 2, 3, 1).reshape(b * gh * gw, c).to(x.dtype)  # (N, C)
        scale = self.scaler / v.sum(1, keepdim=True).clamp_min(1.0)  # 12 / (valid bands per patch)
        tokens = torch.addmm((v * scale) @ parts.b_c, patchify(x, s) * scale, weight)
        return tokens.reshape(b, gh, gw, -1)

    def forward_default(self, x: Tensor, mix: Tensor, scale: float) -> Tensor:
        """Scriptable tokenizer for a fixed mixing matrix *mix* (C, K) and scale 12/C: (B, h, w, D).

        Used by TorchScript (``torch.jit.script(model)``), which cannot take a band plan; the result equals
        ``forward(x, plan)`` for the plan the matrix came from.
        """
        ws: list[Tensor] = []
        bs: list[Tensor] = []
        for m in self.spectrum_embeds:
            ws.append(m.proj.weight)  # type: ignore
            bs.append(m.proj.bias)  # type: ignore
        weight = torch.stack(ws)
        k, d, p = weight.shape
        c = mix.shape[0]
        s = self.patch_side
        mix = mix.to(weight.dtype)
        kernel = (mix @ weight.reshape(k, d * p)).reshape(c, d, s, s).permute(1, 0, 2, 3) * scale
        bias = (mix @ torch.stack(bs)).sum(0) * scale
        return F.conv2d(x, kernel.to(x.dtype), bias.to(x.dtype), stride=s).permute(0, 2, 3, 1)


class SpectrumPatchEmbed(SpectrumAwareProjection):
    """The encoder's ``patch_embed``: the 17 learned per-range projections plus timm's patch-embed geometry.

    It is a :class:`SpectrumAwareProjection` (state-dict keys ``patch_embed.spectrum_embeds.{k}.proj.*`` in the
    encoder; the release's ``spectrum_projection.*`` names are mapped at load/export, see
    :mod:`torchgeo_smarties.models.checkpoint`) that also provides what timm's ``VisionTransformer`` expects of
    ``patch_embed`` — ``img_size``, ``patch_size``, ``grid_size``, ``num_patches``, ``feat_ratio``,
    ``dynamic_feat_size``, ``set_input_size`` and the output format. Being the encoder's first child, its first
    learned range ``spectrum_embeds.0.proj`` is the input layer torchgeo's ``load_state_dict`` finds
    (``in_channels`` 256). The band plan and mask are arguments of :meth:`forward`; this module never holds either.
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int | tuple[int, int] = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        output_fmt: str | None = None,
        strict_img_size: bool = True,
        num_ranges: int = NUM_LEARNED_RANGES,
        scaler: float = PROJECTION_SCALER,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **_: Any,
    ) -> None:
        """Initialize a new SpectrumPatchEmbed instance (arguments as timm's ``PatchEmbed``, plus the projection's)."""
        ps = patch_size if isinstance(patch_size, int) else patch_size[0]
        if not isinstance(patch_size, int) and patch_size[0] != patch_size[1]:
            raise ImageSizeError(f'only square patches are supported, got {patch_size}')
        super().__init__(ps, embed_dim, num_ranges, scaler, device=device, dtype=dtype)
        self.patch_size = (ps, ps)
        self.in_chans = in_chans
        self.output_fmt = output_fmt or 'NLC'
        self.flatten = self.output_fmt == 'NLC'
        self.strict_img_size = strict_img_size
        self.dynamic_img_pad = False
        self.img_size = (0, 0)
        self.grid_size = (0, 0)
        self.num_patches = 0
        self.set_input_size(img_size)

    def set_input_size(
        self, img_size: int | tuple[int, int] | None = None, patch_size: int | tuple[int, int] | None = None
    ) -> None:
        """Set the nominal image size (the grid of the stored position embedding)."""
        if patch_size is not None and patch_size not in (self.patch_size[0], self.patch_size):
            raise ImageSizeError('the patch size of SMARTIES is fixed by its learned projections (16)')
        if img_size is not None:
            size = (img_size, img_size) if isinstance(img_size, int) else (int(img_size[0]), int(img_size[1]))
            if size[0] % self.patch_size[0] or size[1] % self.patch_size[1]:
                raise ImageSizeError(f'img_size {size} is not a multiple of the patch size {self.patch_size[0]}')
            self.img_size = size
            self.grid_size = (size[0] // self.patch_size[0], size[1] // self.patch_size[1])
            self.num_patches = self.grid_size[0] * self.grid_size[1]

    @torch.jit.ignore  # type: ignore[untyped-decorator]
    def feat_ratio(self, as_scalar: bool = True) -> int | tuple[int, int]:
        """Downsampling ratio of the token grid."""
        return self.patch_size[0] if as_scalar else self.patch_size

    def dynamic_feat_size(self, img_size: tuple[int, int]) -> tuple[int, int]:
        """Token grid for an image of *img_size*."""
        return img_size[0] // self.patch_size[0], img_size[1] // self.patch_size[1]
