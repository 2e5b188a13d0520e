"""``smarties predict``: a fine-tuned model over a raster → class-id and probability GeoTIFFs.

.. versionadded:: 0.1
"""

import colorsys
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import CheckpointError, InputError
from ..models import SMARTIESViT, load_checkpoint
from .embed import Precision, _prepare, autocast, default_num_workers, make_normalizer, token_validity
from .engine import OutputSpec, TiledRun, run_tiled, state_fingerprint
from .tiling import TileGrid

__all__ = ('PredictResult', 'colour_table', 'load_head', 'predict_raster')

Mode = Literal['segmentation', 'classification']


@dataclass
class PredictResult:
    """What :func:`predict_raster` wrote: the class-id map and the probabilities."""

    classes: Path
    probabilities: Path
    num_classes: int
    shape: tuple[int, int]
    run: TiledRun


def colour_table(n: int) -> dict[int, tuple[int, int, int, int]]:
    """A deterministic, well-separated colour per class id (golden-angle hues); 255 (nodata) transparent."""
    table = {}
    for k in range(n):
        r, g, b = colorsys.hsv_to_rgb((k * 0.618033988749895) % 1.0, 0.65 + 0.35 * (k % 2), 0.95 - 0.25 * (k % 3 == 2))
        table[k] = (int(r * 255), int(g * 255), int(b * 255), 255)
    table[255] = (0, 0, 0, 0)
    return table


def load_head(path: str | os.PathLike[str]) -> nn.Linear:
    """A linear head from a file holding ``weight`` (K, D) and optionally ``bias`` (K) (any key prefix)."""
    sd = load_checkpoint(path)
    w = [k for k in sd if k.endswith('weight') and sd[k].ndim == 2]
    if len(w) != 1:
        raise CheckpointError(f'{path}: expected one 2-D "weight" tensor (K, D) for a linear head, found {w or "none"}')
    weight = sd[w[0]]
    bias = sd.get(w[0][: -len('weight')] + 'bias')
    head = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        head.weight.copy_(weight)
        if bias is not None:
            head.bias.copy_(bias)
    return head.eval()


def _load_task(checkpoint: str, band_ids: tuple[str, ...]) -> tuple[nn.Module, Mode]:
    try:
        from ..tasks import SMARTIESClassification, SMARTIESSemanticSegmentation
    except ImportError as err:
        raise CheckpointError(f'the tasks module is unavailable ({err}); use --weights with --head instead') from None
    from .weights import load_task_checkpoint

    # never cls.load_from_checkpoint: it unpickles URLs with weights_only=False (code execution)
    task = load_task_checkpoint(checkpoint, (SMARTIESSemanticSegmentation, SMARTIESClassification))
    mode: Mode = 'segmentation' if isinstance(task, SMARTIESSemanticSegmentation) else 'classification'
    for m in task.modules():
        if isinstance(m, SMARTIESViT):
            m.set_bands(list(band_ids))  # spectrum-aware: the raster's bands, whatever the training bands
    return task, mode


def predict_raster(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    model: nn.Module | None = None,
    checkpoint: str | None = None,
    head: str | nn.Module | None = None,
    weights: str | None = None,
    encoder: SMARTIESViT | None = None,
    mode: Mode | None = None,
    classes: Sequence[str] | None = None,
    bands: str | None = None,
    sensor: str | None = None,
    stats: str | os.PathLike[str] | None = None,
    norm: str | None = None,
    normalizer: Callable[[Tensor], Tensor] | None = None,
    tile: int = 224,
    overlap: int | None = None,
    batch_size: int = 8,
    num_workers: int | None = None,
    device: str | torch.device = 'cpu',
    precision: Precision = 'fp32',
    resume: bool = False,
    require_crs: bool = False,
    num_heads: int | None = None,
    compress: str = 'deflate',
    progress: bool = True,
    on_batch: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] = print,
) -> PredictResult:
    """Class ids (uint8 + colour table, nodata 255) and probabilities (float32) of a fine-tuned model.

    The model is one of:

    * *model*: any module mapping a normalised (B, C, H, W) tile to logits (B, K, H', W') (segmentation,
      H' = H or H/16) or (B, K) (classification: the tile's probabilities fill its footprint);
    * *checkpoint*: a Lightning checkpoint of :class:`~torchgeo_smarties.tasks.SMARTIESSemanticSegmentation`
      (pixel map) or :class:`~torchgeo_smarties.tasks.SMARTIESClassification` (one class per tile); the
      encoder is re-bound to the raster's bands;
    * *head* (a linear head file or module, (K, D)) on *encoder*/*weights*: segmentation applies it to every
      patch token (a map on the 16-px grid), classification to the CLS token.

    Probabilities (softmax) are blended across tile overlaps like embeddings; the class is their argmax.
    Writes ``OUTPUT`` (class ids) and ``<OUTPUT stem>_probs.tif``.

    Raises:
        InputError, CheckpointError, BandCountError: on bad input, before anything is written.
    """
    out = Path(output)
    probs_path = out.with_name(out.stem + '_probs' + (out.suffix or '.tif'))
    if sum(x is not None for x in (model, checkpoint, head)) != 1:
        raise InputError('give exactly one of --checkpoint (Lightning task) or --head (with --weights), or model=')
    enc_for_prepare = encoder
    if head is not None and encoder is None:
        from .weights import load_encoder

        enc_for_prepare, wdesc = load_encoder(weights, num_heads=num_heads)
        weights = wdesc
    dummy = enc_for_prepare or SMARTIESViT(embed_dim=16, depth=1, num_heads=1, img_size=16)
    source, band_ids, enc, wdesc, plan = _prepare(input, out, dummy, weights or 'fine-tuned model', bands, sensor,
                                                  require_crs, num_heads, log)
    check_dir = probs_path
    if check_dir.exists() and not os.access(check_dir, os.W_OK):
        raise InputError(f'{str(check_dir)!r} is not writable')
    if normalizer is None:
        normalizer = make_normalizer(band_ids, stats, norm)
    dev = torch.device(device)

    net: nn.Module
    if checkpoint is not None:
        net, ck_mode = _load_task(checkpoint, band_ids)
        mode = mode or ck_mode
        log(f'model: {checkpoint} ({type(net).__name__}, {mode})')
    elif head is not None:
        lin = load_head(head) if not isinstance(head, nn.Module) else head
        if getattr(lin, 'in_features', enc.embed_dim) != enc.embed_dim:
            raise CheckpointError(f'the head expects {lin.in_features}-d features but the encoder gives '
                                  f'{enc.embed_dim}-d')
        mode = mode or 'segmentation'
        net = _HeadModel(enc, lin, mode, plan)
        log(f'model: encoder + linear head {head if isinstance(head, str) else type(head).__name__} ({mode})')
    else:
        assert model is not None
        net = model
        mode = mode or 'segmentation'
    net = net.to(dev).eval()
    if overlap is None:
        overlap = 0 if mode == 'classification' else 32

    # probe the output resolution and class count on a dummy tile
    grid0 = TileGrid(source.height, source.width, tile, overlap)
    th, tw = grid0.tile_hw
    with torch.inference_mode():
        probe = _call(net, torch.zeros(1, len(band_ids), th, tw, device=dev), None)
    k = int(probe.shape[1])
    if probe.ndim == 4:
        scale = th // int(probe.shape[2])
        if scale not in (1, 16) or probe.shape[2] * scale != th:
            raise InputError(f'the model outputs {tuple(probe.shape)} for a {th}×{tw} tile; expected the input size '
                             'or 1/16 of it')
    else:
        scale = 16
    if k > 255:
        raise InputError(f'{k} classes do not fit a uint8 class map (max 255)')
    grid = TileGrid(source.height, source.width, tile, overlap, 16, scale)

    @torch.inference_mode()
    def fn(x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        xd = x.to(dev, non_blocking=True)
        md = mask.to(dev) if mask is not None else None
        with autocast(dev, precision):
            logits = _call(net, xd, md).float()
        p = logits.softmax(1)
        h, w = x.shape[-2] // scale, x.shape[-1] // scale
        if p.ndim == 2:
            p = p[:, :, None, None].expand(-1, -1, h, w)
        if scale == 16:
            valid = token_validity(mask, plan, tuple(x.shape))
        else:
            valid = mask.any(1) if mask is not None else torch.ones(x.shape[0], h, w, dtype=torch.bool)
        return p.cpu(), valid

    names = list(classes) if classes else [f'class_{i}' for i in range(k)]
    if len(names) != k:
        raise InputError(f'{len(names)} class names for a {k}-class model')
    tags = {'SMARTIES_MODEL': str(checkpoint or head or type(net).__name__), 'SMARTIES_BANDS': ','.join(band_ids),
            'SMARTIES_MODE': mode, 'SMARTIES_CLASSES': ','.join(names)}

    def render_classes(rows: np.ndarray) -> np.ndarray:
        ids = np.full(rows.shape[:2], 255, dtype=np.uint8)
        ok = np.isfinite(rows).all(-1)
        ids[ok] = rows[ok].argmax(-1).astype(np.uint8)
        return ids[None]

    specs = [
        OutputSpec(out, 1, 'uint8', render_classes, 255, ['class'], tags, colour_table(k)),
        OutputSpec(probs_path, k, 'float32', lambda rows: np.ascontiguousarray(rows.transpose(2, 0, 1)),
                   float('nan'), names, tags),
    ]
    fp = {'input': str(Path(input).resolve()), 'bands': band_ids, 'model': state_fingerprint(net), 'mode': mode,
          'precision': precision, 'stats': str(stats), 'norm': norm}
    nw = default_num_workers() if num_workers is None else num_workers
    hc, wc = grid.out_shape
    log(f'output: {out} (class ids, {k} classes, {hc}×{wc} cells of {scale} px) and {probs_path}; {len(grid)} tiles')
    run = run_tiled(source, grid, fn, k, specs, normalize=normalizer, batch_size=batch_size, num_workers=nw,
                    resume=resume, fingerprint=fp, progress=progress, on_batch=on_batch, compress=compress,
                    block_size=64 if scale == 16 else 256)
    log(f'wrote {out} and {probs_path} ({run.tiles_run} tiles in {run.seconds:.1f} s)')
    source.close()
    return PredictResult(out, probs_path, k, (hc, wc), run)


def _call(net: nn.Module, x: Tensor, mask: Tensor | None) -> Tensor:
    if isinstance(net, _HeadModel):
        return net(x, mask)
    out = net(x)
    if isinstance(out, dict):
        out = out.get('out', next(iter(out.values())))
    if not isinstance(out, Tensor) or out.ndim not in (2, 4):
        raise InputError('the model must return logits (B, K) or (B, K, H, W)')
    return out


class _HeadModel(nn.Module):
    """Encoder + linear head: per-patch logits (segmentation) or CLS logits (classification)."""

    def __init__(self, encoder: SMARTIESViT, head: nn.Module, mode: Mode, plan: Any) -> None:
        super().__init__()
        self.encoder, self.head, self.mode, self.plan = encoder, head, mode, plan

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if self.mode == 'classification':
            return self.head(self.encoder(x, bands=self.plan, band_mask=mask))  # type: ignore[no-any-return]
        dense = self.encoder.forward_dense(x, bands=self.plan, band_mask=mask)  # (B, D, h, w)
        return self.head(dense.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # type: ignore[no-any-return]
