"""SMARTIES masked-autoencoder pretraining model with cross-sensor token mixup (paper §3.2–3.3, Eq. 1–3).

:class:`SMARTIESMAE` wraps the encoder :class:`~torchgeo_smarties.models.SMARTIESViT` with the
release's MAE decoder (``decoder_embed``, learnable ``mask_token``, fixed sin-cos
``decoder_pos_embed``, timm blocks, ``decoder_norm``) and the 17 spectrum-aware
reprojection heads ``decoder_preds.{k} = Linear(decoder_dim → 16·16)``, one per learned
spectral range. Each decoded token is reconstructed into *every* band of its patch
through the head of that band's range; a band interpolated between ranges (e.g. Landsat
B2) uses the same mix of heads as its projection (``plan.matrix()``); ignored bands
(S2 B10) have no target.

The state dict has exactly the release's key names (318 keys for ViT-B), so release
pretraining checkpoints load into it and :meth:`SMARTIESMAE.export_encoder` writes an
encoder file that :func:`~torchgeo_smarties.models.smarties_vitb` loads.

Cross-sensor mixup happens in token space (``mix_tokens``): view a′ takes sensor a's
token where the assignment is True and sensor b's elsewhere. A masked token is
reconstructed into the bands of the sensor it *came from* (no band crossing): the
loss is computed per token for each sensor with that sensor's targets and heads and
combined with the assignment.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from ..errors import ImageSizeError, InputError
from ..ops import (
    MixupMode,
    check_mixup_mode,
    mix_tokens,
    patch_validity,
    patchify_bands,
    random_assignment,
    random_ranks,
)
from ..spectrum import ProjectionPlan
from .checkpoint import to_release_keys, to_release_state_dict
from .pos_embed import get_2d_sincos_pos_embed, resample_pos_embed
from .vit import Bands, SMARTIESViT, check_architecture, release_init_

__all__ = (
    'SMARTIESMAE',
    'MAEOutput',
    'MixupMode',
    'masked_reconstruction_errors',
    'patchify_bands',
    'random_token_mask',
)

def random_token_mask(
    batch: int, num_tokens: int, ratio: float = 0.75, *, generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """The release's random masking: per-sample argsort of uniform noise, ``len_keep = int(L·(1 − ratio))``.

    Returns:
        A bool tensor (B, N), True = masked (removed from the encoder input).
    """
    if not 0.0 <= ratio < 1.0:
        raise InputError(f'mask ratio must be in [0, 1), got {ratio}')
    len_keep = int(num_tokens * (1 - ratio))
    return random_ranks(batch, num_tokens, generator=generator, device=device) >= len_keep


@dataclass
class MAEOutput:
    """Result of a :class:`SMARTIESMAE` pass.

    Attributes:
        loss: the total loss (what to back-propagate).
        view_losses: loss of each view (a′, and b′ for a pair), each the mean over masked tokens.
        token_mask: (B, N) bool, True = masked (the same for both views).
        assign: (B, h, w) bool, True = view a′ shows sensor a there (None for a single sensor).
        token_losses: per view, (B, N) per-token reconstruction error of the masked tokens (0 at visible
            tokens, which are not reconstructed; every token with ``return_preds=True``).
        preds: per view and sensor, the reconstructions (B, N, C_active, S·S), zero at tokens of the other
            sensor (only with ``return_preds=True``).
    """

    loss: Tensor
    view_losses: list[Tensor]
    token_mask: Tensor
    assign: Tensor | None
    token_losses: list[Tensor] = field(default_factory=list)
    preds: list[dict[str, Tensor]] = field(default_factory=list)


class SMARTIESMAE(nn.Module):
    """SMARTIES MAE: spectrum-aware encoder + MAE decoder + spectrum-aware reprojection heads.

    The encoder is a :class:`SMARTIESViT` registered as the submodule :attr:`encoder` (so ``.eval()``,
    ``.to()`` and ``.half()`` reach it); state-dict hooks keep the release's flat key names
    (``cls_token``, ``pos_embed``, ``spectrum_projection.*``, ``blocks.*``, ``norm.*`` next to the decoder's
    ``mask_token``/``decoder_*``: 318 keys for ViT-B; the encoder's ``patch_embed.*`` is written as the release's
    ``spectrum_projection.*``), and flat or ``encoder.``-nested keys, in either naming, all load.
    ``cls_token``, ``pos_embed``, ``spectrum_projection`` (the encoder's ``patch_embed``), ``blocks`` and ``norm``
    are read-only views of the encoder's.

    Reference implementation: https://github.com/gsumbul/SMARTIES (``models_smarties.py``)

    If you use this model in your research, please cite the following paper:

    * https://arxiv.org/abs/2506.19585

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        *,
        bands: Bands | None = 'sentinel2_l1c',
        img_size: int = 224,
        patch_size: int = 16,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        decoder_embed_dim: int = 512,
        decoder_depth: int = 8,
        decoder_num_heads: int = 16,
        mask_ratio: float = 0.75,
        mixup_ratio: float = 0.5,
        mixup: MixupMode = 'complementary',
        norm_pix_loss: bool = True,
        interpolation: Any = 'linear',
        encoder: SMARTIESViT | None = None,
    ) -> None:
        """Initialize a new SMARTIESMAE instance.

        Args:
            bands: default band set of sensor a (a preset name, band ids or a plan).
            img_size: nominal image size (grid of the position embeddings); other multiples of 16 work.
            patch_size: patch size (16 for the released weights).
            embed_dim: encoder width (768 for ViT-B, 1024 for ViT-L).
            depth: encoder blocks.
            num_heads: encoder attention heads.
            mlp_ratio: MLP expansion of encoder and decoder blocks.
            decoder_embed_dim: decoder width (512 in the release).
            decoder_depth: decoder blocks (8 in the release).
            decoder_num_heads: decoder attention heads (16 in the release).
            mask_ratio: fraction of tokens masked (0.75).
            mixup_ratio: fraction of view a′'s tokens taken from sensor a (0.5).
            mixup: ``'complementary'`` (paper), ``'release'`` (official code, view b′ unmixed) or ``'none'``.
            norm_pix_loss: normalise each target token over all its bands × pixels jointly (mean/var, var + 1e-6).
            interpolation: band interpolation policy of the encoder
                (see :func:`~torchgeo_smarties.spectrum.plan_bands`).
            encoder: an existing encoder to pretrain (e.g. loaded with released weights); its size
                overrides *img_size*, *embed_dim*, *depth*, *num_heads*.

        Raises:
            InputError: for an unknown *mixup* mode or ratios out of range.
            ModelConfigError: for an invalid encoder or decoder size.
        """
        super().__init__()
        mixup = check_mixup_mode(mixup)
        if not 0.0 <= mask_ratio < 1.0:
            raise InputError(f'mask_ratio must be in [0, 1), got {mask_ratio}')
        if not 0.0 <= mixup_ratio <= 1.0:
            raise InputError(f'mixup_ratio must be in [0, 1], got {mixup_ratio}')
        check_architecture(decoder_embed_dim, decoder_depth, decoder_num_heads, what='decoder')
        if encoder is None:
            encoder = SMARTIESViT(
                bands=bands, interpolation=interpolation, img_size=img_size, patch_size=patch_size,
                embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio, num_classes=0,
            )
        self.mask_ratio = mask_ratio
        self.mixup_ratio = mixup_ratio
        self.mixup: MixupMode = mixup
        self.norm_pix_loss = norm_pix_loss
        self.patch_size = encoder.patch_size
        self.encoder = encoder  # a real submodule: .eval(), .to(), .half() reach it
        # decoder
        d, dd = encoder.embed_dim, decoder_embed_dim
        grid = tuple(encoder.patch_embed.grid_size)
        self.decoder_embed = nn.Linear(d, dd, bias=True)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
        self.register_buffer('decoder_pos_embed', get_2d_sincos_pos_embed(dd, grid, cls_token=True))
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        self.decoder_blocks = nn.ModuleList(
            Block(dd, decoder_num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm_layer)  # type: ignore[arg-type]
            for _ in range(decoder_depth)
        )
        self.decoder_norm = norm_layer(dd)
        num_ranges = len(encoder.patch_embed.spectrum_embeds)
        self.decoder_preds = nn.ModuleList(
            nn.Linear(dd, self.patch_size**2, bias=True) for _ in range(num_ranges)
        )
        self._init_decoder()
        # the release's key names: the encoder's keys sit at the top level of the state dict (no 'encoder.')
        self.register_state_dict_post_hook(_flatten_encoder_keys)
        self.register_load_state_dict_pre_hook(_nest_encoder_keys)

    # -- construction ---------------------------------------------------------------------------------------------
    def _init_decoder(self) -> None:
        """Release init for the decoder: xavier_uniform Linear, zero bias, LayerNorm 1/0, mask token N(0, 0.02)."""
        nn.init.normal_(self.mask_token, std=0.02)
        release_init_(m for name, m in self.named_modules() if name.startswith('decoder_'))

    # the encoder's tensors under their release names (read-only views of self.encoder)
    @property
    def cls_token(self) -> Tensor:
        """The encoder's CLS token."""
        return self.encoder.cls_token  # type: ignore[return-value]

    @property
    def pos_embed(self) -> Tensor:
        """The encoder's fixed position embedding (a buffer)."""
        return self.encoder.pos_embed  # type: ignore[return-value]

    @property
    def spectrum_projection(self) -> nn.Module:
        """The encoder's spectrum-aware projection (its ``patch_embed``)."""
        return self.encoder.patch_embed

    @property
    def blocks(self) -> nn.Sequential:
        """The encoder's blocks."""
        return self.encoder.blocks  # type: ignore[return-value]

    @property
    def norm(self) -> nn.Module:
        """The encoder's final norm."""
        return self.encoder.norm

    @property
    def grid_size(self) -> tuple[int, int]:
        """Nominal token grid (rows, cols)."""
        return tuple(self.encoder.patch_embed.grid_size)  # type: ignore[return-value]

    def encoder_state_dict(self) -> dict[str, Tensor]:
        """The encoder's weights in the release's key format (no decoder keys)."""
        return to_release_state_dict(self.encoder)

    def export_encoder(self, path: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None) -> str:
        """Write the encoder in the release's key format (``.safetensors``, or ``.pth`` by suffix).

        The file loads with ``smarties_vitb(weights=path)`` (ViT-B) or
        ``load_encoder_weights(SMARTIESViT(...), path)`` for other sizes.

        Args:
            path: output file.
            metadata: extra string metadata stored in the safetensors header.

        Returns:
            The path written.
        """
        path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        sd = {k: v.detach().float().cpu().contiguous() for k, v in self.encoder_state_dict().items()}
        if path.endswith('.safetensors'):
            from safetensors.torch import save_file

            enc = self.encoder
            meta = {
                'format': 'pt', 'embed_dim': str(enc.embed_dim), 'depth': str(len(enc.blocks)),
                'num_heads': str(enc.blocks[0].attn.num_heads),  # type: ignore[union-attr]
                'img_size': str(enc.patch_embed.img_size[0]),
                'patch_size': str(self.patch_size),
            }
            meta.update({str(k): str(v) for k, v in (metadata or {}).items()})
            save_file(sd, path, metadata=meta)
        else:
            torch.save(sd, path)
        return path

    # -- pieces ---------------------------------------------------------------------------------------------------
    def _grid_pos(self, pos: Tensor, grid: tuple[int, int]) -> Tensor:
        return resample_pos_embed(pos, grid, self.grid_size, 1)

    def forward_encoder(self, tokens: Tensor, token_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Encode the visible tokens.

        Args:
            tokens: (B, h, w, D) patch tokens (mixed or not).
            token_mask: (B, N) bool, True = masked; every sample must mask the same number of tokens.

        Returns:
            ``(latent, ids_keep)``: normed latent (B, 1 + N_keep, D) and the kept indices (B, N_keep).
        """
        b, h, w, d = tokens.shape
        pos = self._grid_pos(self.pos_embed, (h, w)).to(tokens.dtype)  # type: ignore[arg-type]
        x = tokens.reshape(b, h * w, d) + pos[:, 1:]
        num_masked = token_mask.sum(1)
        n_keep = h * w - int(num_masked[0])
        # stable sort: kept tokens first, in raster order
        ids_keep = torch.argsort(token_mask.to(torch.int8), dim=1, stable=True)[:, :n_keep]
        x = torch.gather(x, 1, ids_keep[..., None].expand(-1, -1, d))
        cls = (self.cls_token + pos[:, :1]).expand(b, -1, -1).to(x.dtype)  # type: ignore[operator]
        x = torch.cat([cls, x], dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x), ids_keep

    def forward_decoder(self, latent: Tensor, ids_keep: Tensor, grid: tuple[int, int]) -> Tensor:
        """Decode: embed, fill masked positions with the mask token, add position, blocks, norm.

        Returns:
            Decoded patch tokens (B, N, decoder_dim) (CLS dropped).
        """
        x = self.decoder_embed(latent)
        b, _, dd = x.shape
        n = grid[0] * grid[1]
        full = self.mask_token.to(x.dtype).expand(b, n, dd).clone()
        full = full.scatter(1, ids_keep[..., None].expand(-1, -1, dd), x[:, 1:])
        x = torch.cat([x[:, :1], full], dim=1)
        x = x + self._grid_pos(self.decoder_pos_embed, grid).to(x.dtype)  # type: ignore[arg-type]
        for blk in self.decoder_blocks:
            x = blk(x)
        x = self.decoder_norm(x)
        return x[:, 1:]

    def band_heads(self, plan: ProjectionPlan, dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor]:
        """Per-band reprojection heads of *plan*'s active bands: weight (C_active, S·S, Dd), bias (C_active, S·S).

        Band c uses ``Σ_k A[c, k] · decoder_preds[k]`` with A = ``plan.matrix()`` (a learned band: one head).
        """
        heads: list[nn.Linear] = list(self.decoder_preds)  # type: ignore[arg-type]
        weight = torch.stack([m.weight for m in heads])  # (K, P, Dd)
        bias = torch.stack([m.bias for m in heads])  # (K, P)
        active = [i for i, a in enumerate(plan.active) if a]
        mix = torch.tensor([plan.matrix()[i] for i in active], dtype=weight.dtype, device=weight.device)
        w = torch.einsum('ck,kpd->cpd', mix, weight)
        bb = mix @ bias
        if dtype is not None:
            w, bb = w.to(dtype), bb.to(dtype)
        return w, bb

    def band_validity(self, x: Tensor, plan: ProjectionPlan, band_mask: Tensor | None) -> Tensor | None:
        """Per-(token, active band) validity (B, N, C_active) of *band_mask* (any encoder form), or None.

        None when there is no mask or every band is valid in every patch (the unmasked path is then used,
        so an all-True mask gives bit-identical results).

        .. versionadded:: 0.1
        """
        if band_mask is None:
            return None
        valid = patch_validity(band_mask.to(x.device), tuple(x.shape), self.patch_size)  # (B, C, h, w)
        active = [i for i, a in enumerate(plan.active) if a]
        if len(active) != plan.num_bands:
            valid = valid[:, active]
        if bool(valid.all()):
            return None
        b, c, h, w = valid.shape
        return valid.permute(0, 2, 3, 1).reshape(b, h * w, c)

    def targets(self, x: Tensor, plan: ProjectionPlan, valid: Tensor | None = None) -> Tensor:
        """Reconstruction targets (B, N, C_active, S·S): each active band's own pixels, optionally normalised.

        With *valid* (B, N, C_active) (see :meth:`band_validity`), invalid (band, patch) targets are set to 0
        before any arithmetic (NaN there never propagates) and the ``norm_pix_loss`` statistics of a token are
        computed over its valid bands × pixels only.
        """
        active = [i for i, a in enumerate(plan.active) if a]
        if len(active) != plan.num_bands:
            x = x[:, active]
        t = patchify_bands(x.float(), self.patch_size)
        if valid is not None:
            v = valid[..., None]  # (B, N, C, 1)
            t = torch.where(v, t, torch.zeros((), dtype=t.dtype, device=t.device))
            if self.norm_pix_loss:
                vf = v.to(t.dtype).expand_as(t)
                count = vf.sum(dim=(2, 3), keepdim=True)  # valid bands × pixels per token
                mean = t.sum(dim=(2, 3), keepdim=True) / count.clamp_min(1.0)
                dev = (t - mean) * vf
                var = dev.pow(2).sum(dim=(2, 3), keepdim=True) / (count - 1.0).clamp_min(1.0)  # unbiased, as var()
                t = torch.where(v, (t - mean) / (var + 1.0e-6) ** 0.5, torch.zeros((), dtype=t.dtype, device=t.device))
            return t
        if self.norm_pix_loss:
            b, n, c, p = t.shape
            flat = t.reshape(b, n, c * p)
            mean = flat.mean(dim=-1, keepdim=True)
            var = flat.var(dim=-1, keepdim=True)
            t = ((flat - mean) / (var + 1.0e-6) ** 0.5).reshape(b, n, c, p)
        return t

    def reconstruct(self, decoded: Tensor, plan: ProjectionPlan) -> Tensor:
        """Reproject decoded tokens (B, N, Dd) into every active band of *plan*: (B, N, C_active, S·S)."""
        w, b = self.band_heads(plan, decoded.dtype)
        return torch.einsum('bnd,cpd->bncp', decoded, w) + b

    # -- forward --------------------------------------------------------------------------------------------------
    def draw_masks(
        self, batch: int, grid: tuple[int, int], pair: bool, generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Draw a random token mask (B, N) and, for a pair, a mixup assignment (B, h, w)."""
        token_mask = random_token_mask(batch, grid[0] * grid[1], self.mask_ratio, generator=generator, device=device)
        assign = None
        if pair:
            assign = random_assignment(batch, grid, self.mixup_ratio, generator=generator, device=device)
        return token_mask, assign

    def forward(
        self,
        x_a: Tensor,
        bands_a: Bands | None = None,
        x_b: Tensor | None = None,
        bands_b: Bands | None = None,
        *,
        token_mask: Tensor | None = None,
        assign: Tensor | None = None,
        generator: torch.Generator | None = None,
        return_preds: bool = False,
        band_mask_a: Tensor | None = None,
        band_mask_b: Tensor | None = None,
    ) -> MAEOutput:
        """Masked reconstruction of a (mixed) pair, or of one image when *x_b* is None.

        The steps: tokenize each sensor (:meth:`_sensors`), draw or check the masks (:meth:`_masks`),
        build the views (:meth:`_views`), then encode, decode and score each view (:meth:`_view_loss`).

        Args:
            x_a: sensor a, (B, Ca, H, W), normalised.
            bands_a: band set of *x_a* (default: the model's bands).
            x_b: sensor b, (B, Cb, H, W) on the same footprint and pixel grid, or None (single sensor).
            bands_b: band set of *x_b* (required with *x_b*).
            token_mask: optional (B, N) bool, True = masked, the same count per sample; drawn when None.
            assign: optional (B, h, w) bool mixup assignment, True = view a′ shows sensor a; drawn when None.
            generator: RNG for the masks drawn here.
            return_preds: also return the reconstructions per view and sensor.
            band_mask_a: optional validity of *x_a* (bool, True = valid), any form the encoder's ``band_mask``
                takes: (B, Ca), (B, Ca, h, w) per patch or (B, Ca, H, W) per pixel. Tokens use the masked
                tokenizer; invalid (band, patch) targets are left out of the loss (a token's error is the mean over
                its valid bands × pixels; tokens with no valid band are left out of the mean). NaN is allowed
                under an invalid mask.
            band_mask_b: the same for *x_b*.

        Returns:
            An :class:`MAEOutput`.

        Raises:
            InputError: bad masks, or *x_b* without *bands_b*.
            ImageSizeError: the pair differs in batch or spatial size.
            BandCountError: channels do not match a band set.
        """
        sensors = self._sensors(x_a, bands_a, x_b, bands_b, band_mask_a, band_mask_b)
        b, h, w, _ = sensors['a'].tokens.shape
        token_mask, assign = self._masks(sensors, token_mask, assign, generator)
        view_losses: list[Tensor] = []
        token_losses: list[Tensor] = []
        preds: list[dict[str, Tensor]] = []
        for tokens, source in self._views(sensors, assign):
            loss, per_tok, view_preds = self._view_loss(sensors, tokens, source.reshape(b, h * w), token_mask,
                                                        return_preds)
            view_losses.append(loss)
            token_losses.append(per_tok)
            preds.append(view_preds)
        total = view_losses[0] if len(view_losses) == 1 else view_losses[0] + view_losses[1]
        if self.mixup == 'release' and len(view_losses) == 2:
            total = 0.5 * total
        return MAEOutput(total, view_losses, token_mask, assign, token_losses, preds)

    # -- forward steps ----------------------------------------------------------------------------------------------
    def _sensors(
        self, x_a: Tensor, bands_a: Bands | None, x_b: Tensor | None, bands_b: Bands | None,
        band_mask_a: Tensor | None, band_mask_b: Tensor | None,
    ) -> dict[str, '_Sensor']:
        """Check the inputs and tokenize each sensor ('a', and 'b' for a pair); targets and heads per sensor."""
        enc = self.encoder
        if x_b is None and band_mask_b is not None:
            raise InputError('band_mask_b was given without x_b; pass the second sensor or drop its mask')
        inputs: dict[str, tuple[Tensor, ProjectionPlan, Tensor | None]] = {
            'a': (x_a, enc.plan_for(bands_a), band_mask_a)
        }
        if x_b is not None:
            if bands_b is None:
                raise InputError('x_b was given without bands_b; pass the band set of the second sensor')
            ok = isinstance(x_b, Tensor) and isinstance(x_a, Tensor) and x_b.ndim == 4 and x_a.ndim == 4
            if not ok or x_b.shape[0] != x_a.shape[0] or x_b.shape[-2:] != x_a.shape[-2:]:
                shape_b = tuple(x_b.shape) if isinstance(x_b, Tensor) else type(x_b).__name__
                shape_a = tuple(x_a.shape) if isinstance(x_a, Tensor) else type(x_a).__name__
                raise ImageSizeError(
                    f'the pair must have the same batch and spatial size, got {shape_a} and {shape_b}; '
                    'crop both sensors to the same footprint and resample them to the same size (PairedRasterDataset)'
                )
            inputs['b'] = (x_b, enc.plan_for(bands_b), band_mask_b)
        sensors: dict[str, _Sensor] = {}
        for name, (x, plan, band_mask) in inputs.items():
            tokens = enc.patch_tokens(x, plan, band_mask)
            valid = self.band_validity(x, plan, band_mask)
            sensors[name] = _Sensor(plan, tokens, self.targets(x, plan, valid), valid, self.band_heads(plan))
        return sensors

    def _masks(
        self, sensors: dict[str, '_Sensor'], token_mask: Tensor | None, assign: Tensor | None,
        generator: torch.Generator | None,
    ) -> tuple[Tensor, Tensor | None]:
        """The token mask (B, N) and, for a pair, the mixup assignment (B, h, w): given ones checked, others drawn."""
        tokens = sensors['a'].tokens
        b, h, w, _ = tokens.shape
        pair = 'b' in sensors
        if token_mask is None or (pair and assign is None):
            tm, asg = self.draw_masks(b, (h, w), pair, generator, tokens.device)
            token_mask = tm if token_mask is None else token_mask
            assign = asg if assign is None else assign
        token_mask = self._check_mask(token_mask, b, h * w, tokens.device)
        if not pair:
            return token_mask, None
        assert assign is not None
        if tuple(assign.shape) != (b, h, w):
            raise InputError(f'assign must have shape (B, h, w) = {(b, h, w)}, got {tuple(assign.shape)}')
        return token_mask, assign.to(device=tokens.device, dtype=torch.bool)

    def _views(self, sensors: dict[str, '_Sensor'], assign: Tensor | None) -> list[tuple[Tensor, Tensor]]:
        """The views as (tokens (B, h, w, D), source (B, h, w): True = token from sensor a), per the mixup mode."""
        tok_a = sensors['a'].tokens
        ones = torch.ones(tok_a.shape[:3], dtype=torch.bool, device=tok_a.device)
        if 'b' not in sensors:
            return [(tok_a, ones)]
        tok_b = sensors['b'].tokens
        assert assign is not None
        if self.mixup == 'none':
            return [(tok_a, ones), (tok_b, ~ones)]
        if self.mixup == 'release':
            return [(mix_tokens(tok_a, tok_b, assign), assign), (tok_b, ~ones)]
        return [(mix_tokens(tok_a, tok_b, assign), assign), (mix_tokens(tok_a, tok_b, ~assign), ~assign)]

    def _view_loss(
        self, sensors: dict[str, '_Sensor'], tokens: Tensor, src: Tensor, token_mask: Tensor, return_preds: bool,
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Encode the visible tokens of a view, decode, reconstruct each token into its sensor's bands, score.

        Returns:
            ``(loss, per_token_error (B, N), preds per sensor)``.
        """
        b, h, w, _ = tokens.shape
        n = h * w
        latent, ids_keep = self.forward_encoder(tokens, token_mask)
        decoded = self.forward_decoder(latent, ids_keep, (h, w))
        per_tok = torch.zeros(b, n, dtype=torch.float32, device=tokens.device)
        view_preds: dict[str, Tensor] = {}
        for name, sensor in sensors.items():
            used = src if name == 'a' else ~src
            # reconstruct only the tokens that count: masked ones from this sensor (all of them for return_preds)
            sel = used if return_preds else used & token_mask
            if not bool(sel.any()):
                continue
            head_w, head_b = sensor.heads
            pred = torch.einsum('md,cpd->mcp', decoded[sel], head_w.to(decoded.dtype)) + head_b.to(decoded.dtype)
            per_tok = per_tok.index_put((sel,), _token_errors(pred, sensor.targets[sel], sensor.valid, sel))
            if return_preds:
                full = torch.zeros(b, n, *pred.shape[1:], dtype=pred.dtype, device=pred.device)
                view_preds[name] = full.index_put((sel,), pred)
        weight = token_mask.to(torch.float32)
        if any(sensor.valid is not None for sensor in sensors.values()):
            # leave tokens without any valid band out of the mean (numerator and denominator)
            ok = {name: sensor.has_valid(b, n) for name, sensor in sensors.items()}
            tok_ok = torch.where(src, ok['a'], ok['b']) if 'b' in ok else ok['a']
            weight = weight * tok_ok.to(torch.float32)
        loss = (per_tok * weight).sum() / weight.sum().clamp_min(1.0)
        return loss, per_tok, view_preds

    @staticmethod
    def _check_mask(token_mask: Tensor, b: int, n: int, device: torch.device) -> Tensor:
        if tuple(token_mask.shape) != (b, n):
            raise InputError(f'token_mask must have shape (B, N) = {(b, n)}, got {tuple(token_mask.shape)}')
        m = token_mask.to(device=device, dtype=torch.bool)
        counts = m.sum(1)
        if bool((counts != counts[0]).any()):
            raise InputError('token_mask must mask the same number of tokens in every sample (as random masking does)')
        if int(counts[0]) >= n:
            raise InputError('token_mask masks every token; keep at least one visible')
        return m


@dataclass
class _Sensor:
    """One sensor of a forward pass: its plan, tokens (B, h, w, D), targets, validity and reprojection heads."""

    plan: ProjectionPlan
    tokens: Tensor
    targets: Tensor
    valid: Tensor | None
    heads: tuple[Tensor, Tensor]

    def has_valid(self, b: int, n: int) -> Tensor:
        """(B, N) bool: tokens with at least one valid band."""
        if self.valid is None:
            return torch.ones(b, n, dtype=torch.bool, device=self.tokens.device)
        return self.valid.any(dim=2)


def _token_errors(pred: Tensor, target: Tensor, valid: Tensor | None, sel: Tensor) -> Tensor:
    """Per selected token: the MSE over its bands × pixels (over its valid bands only with *valid*; 0 if none)."""
    if valid is None:
        return (pred.float() - target).pow(2).mean(dim=(1, 2))
    vf = valid[sel].to(torch.float32)[..., None]  # (M, C, 1)
    sq = (pred.float() - target).pow(2) * vf
    count = vf.sum(dim=(1, 2)) * sq.shape[-1]
    return sq.sum(dim=(1, 2)) / count.clamp_min(1.0)


def _flatten_encoder_keys(module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    """State-dict post-hook: ``encoder.<key>`` → ``<key>`` and ``patch_embed.*`` → ``spectrum_projection.*``.

    The release's flat key names; the dict keeps its order (encoder keys first, as in the release).
    """
    nested = prefix + 'encoder.'
    renamed = to_release_keys({prefix + k[len(nested):] if k.startswith(nested) else k: v
                               for k, v in state_dict.items()}, prefix)
    state_dict.clear()
    state_dict.update(renamed)


def _nest_encoder_keys(module: nn.Module, state_dict: dict[str, Any], prefix: str, *_: Any) -> None:
    """Load pre-hook: the release's flat encoder keys → ``encoder.<key>`` (already nested keys pass through)."""
    for key in list(state_dict):
        if not key.startswith(prefix):
            continue
        local = key[len(prefix):]
        if local.startswith(('encoder.', *_DECODER_KEYS)):
            continue
        state_dict[prefix + 'encoder.' + local] = state_dict.pop(key)


#: Top-level keys of the MAE's own (decoder) tensors; every other key belongs to the encoder.
_DECODER_KEYS = ('mask_token', 'decoder_')


@torch.no_grad()
def masked_reconstruction_errors(
    model: SMARTIESMAE,
    x_a: Tensor,
    bands_a: Bands | None = None,
    x_b: Tensor | None = None,
    bands_b: Bands | None = None,
    *,
    token_mask: Tensor,
    assign: Tensor | None = None,
) -> dict[str, float]:
    """Masked-reconstruction MSE of *model* and of the trivial mean-of-visible-patches baseline.

    Both are measured in the model's target space (normalised pixels; per-token normalised
    with ``norm_pix_loss``) on the masked tokens of every view, each token against the bands of
    the sensor it came from. The baseline predicts each band of a masked patch as the mean of
    that band over the *visible* patches of the same sensor in the same view (all visible
    patches of that sensor's image when the view shows none of them).

    Returns:
        ``{'model_mse', 'baseline_mse', 'num_tokens'}``.
    """
    was_training = model.training
    model.eval()
    out = model(x_a, bands_a, x_b, bands_b, token_mask=token_mask, assign=assign, return_preds=True)
    model.train(was_training)
    enc = model.encoder
    plans = {'a': enc.plan_for(bands_a)}
    images = {'a': x_a}
    if x_b is not None:
        plans['b'] = enc.plan_for(bands_b)
        images['b'] = x_b
    b, n = out.token_mask.shape
    masked = out.token_mask
    visible = ~masked
    # sources per view, exactly as in forward
    ones = torch.ones(b, n, dtype=torch.bool, device=x_a.device)
    if x_b is None:
        sources = [ones]
    else:
        asg = out.assign.reshape(b, n) if out.assign is not None else ones
        if model.mixup == 'none':
            sources = [ones, ~ones]
        elif model.mixup == 'release':
            sources = [asg, ~ones]
        else:
            sources = [asg, ~asg]
    model_err, base_err, count = 0.0, 0.0, 0
    for vi, src in enumerate(sources):
        for s in plans:
            used = src if s == 'a' else ~src
            sel = used & masked
            if not bool(sel.any()):
                continue
            target = model.targets(images[s], plans[s])  # (B, N, C, P)
            vis = (used & visible).float()
            fallback = visible.float()
            per_band = target.mean(dim=3)  # (B, N, C): band mean of each patch
            w = torch.where(vis.sum(1, keepdim=True) > 0, vis, fallback)
            mean = (per_band * w[..., None]).sum(1) / w.sum(1)[..., None]  # (B, C)
            base = (target - mean[:, None, :, None]).pow(2).mean(dim=(2, 3))  # (B, N)
            # model predictions for this view/sensor
            pred = out.preds[vi][s]
            err = (pred - target).pow(2).mean(dim=(2, 3))
            model_err += float(err[sel].sum())
            base_err += float(base[sel].sum())
            count += int(sel.sum())
    return {'model_mse': model_err / max(count, 1), 'baseline_mse': base_err / max(count, 1), 'num_tokens': count}
