"""``smarties predict``: a fine-tuned model over a raster → class-id and probability GeoTIFFs.

.. versionadded:: 0.1
"""

import colorsys
import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Unpack

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import CheckpointError, InputError
from ..models import SMARTIESViT, load_checkpoint
from .embed import autocast, for_model, token_validity
from .engine import OutputSpec, TiledRun, run_tiled, state_fingerprint
from .job import EmbedJob, EncoderSpec, PredictKeywords, RasterOptions, TilingOptions, check_choice
from .outputs import OutputLock, check_outputs
from .tiling import TileGrid

__all__ = ('MODES', 'PredictResult', 'colour_table', 'load_head', 'predict_raster', 'probabilities_path')

Mode = Literal['segmentation', 'classification']
#: Output modes of :func:`predict_raster`.
MODES = ('segmentation', 'classification')


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
    encoder: SMARTIESViT | None = None,
    mode: Mode | None = None,
    classes: Sequence[str] | None = None,
    device: str | torch.device = 'cpu',
    resume: bool = False,
    progress: bool = True,
    on_batch: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] = print,
    **options: Unpack[PredictKeywords],
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
    Writes ``OUTPUT`` (class ids) and ``<OUTPUT stem>_probs.tif``, both locked for the run and moved into place
    atomically. A thin wrapper building the parameter objects of :mod:`~torchgeo_smarties.inference.job`.

    Args:
        input: see :func:`~torchgeo_smarties.inference.embed_raster`.
        output: the class-id GeoTIFF to write (the probabilities go next to it, :func:`probabilities_path`).
        model: a module mapping tiles to logits.
        checkpoint: a Lightning checkpoint of a segmentation or classification task.
        head: a linear head file or module applied to *encoder*'s tokens.
        encoder: the encoder of *head* (default: loaded from the ``weights`` option).
        mode: ``'segmentation'`` or ``'classification'`` (default: from the checkpoint, else segmentation).
        classes: class names (band descriptions and tags; default ``class_<k>``).
        device: torch device.
        resume: continue an interrupted run of the same command.
        progress: show a progress bar.
        on_batch: called with (tiles done, total) after each check-pointed batch.
        log: where messages go.
        **options: the keywords of :class:`~torchgeo_smarties.inference.job.PredictKeywords`: bands and
            normalisation, ``weights``/``num_heads``/``precision`` of *encoder*, and the tiling (``overlap``
            defaults to 0 for classification, else 32).

    Raises:
        TypeError: for an unknown keyword.
        OptionError, DeviceError: for an invalid option (before anything is read).
        InputError, CheckpointError, BandCountError: on bad input, before anything is written.
        OutputError, OutputLockedError, ResumeError, DiskFullError: see
            :func:`~torchgeo_smarties.inference.embed_raster`.
    """
    if sum(x is not None for x in (model, checkpoint, head)) != 1:
        raise InputError('give exactly one of --checkpoint (Lightning task) or --head (with --weights), or model=')
    if mode is not None:
        check_choice('mode', mode, MODES)
    # the overlap default depends on the mode, known once the model is loaded: validate with an explicit value
    opts = RasterOptions.from_keywords(options, PredictKeywords, caller='predict_raster', model=encoder,
                                       device=device, overlap=0)
    with opts.open(input) as job:
        return _predict(job, Path(output), _ModelChoice(model, checkpoint, head, mode, classes), opts.encoder,
                        opts.tiling, options.get('overlap') is None, resume=resume, progress=progress,
                        on_batch=on_batch, log=log)


@dataclass(frozen=True)
class _ModelChoice:
    """Which fine-tuned model :func:`predict_raster` runs (exactly one of model, checkpoint, head)."""

    model: nn.Module | None
    checkpoint: str | None
    head: str | nn.Module | None
    mode: Mode | None
    classes: Sequence[str] | None


def probabilities_path(out: Path) -> Path:
    """Where :func:`predict_raster` writes the probabilities of class map *out*: ``<stem>_probs<suffix>``."""
    return out.with_name(out.stem + '_probs' + (out.suffix or '.tif'))


def _predict(job: EmbedJob, out: Path, choice: _ModelChoice, spec: EncoderSpec, tiling: TilingOptions,
             default_overlap: bool, *, resume: bool, progress: bool, on_batch: Callable[[int, int], None] | None,
             log: Callable[[str], None]) -> PredictResult:
    probs_path = probabilities_path(out)
    check_outputs([('output', out), ('probabilities', probs_path)], job.input_files())
    dev = spec.torch_device
    tiling = tiling.on(dev)
    mode = choice.mode
    net: nn.Module
    wdesc = spec.weights or 'fine-tuned model'
    if choice.checkpoint is not None:
        net, ck_mode = _load_task(choice.checkpoint, job.band_ids)
        mode = mode or ck_mode
        log(f'model: {choice.checkpoint} ({type(net).__name__}, {mode})')
    elif choice.head is not None:
        enc, wdesc = spec.load()
        job = for_model(job, enc)
        lin = load_head(choice.head) if not isinstance(choice.head, nn.Module) else choice.head
        if getattr(lin, 'in_features', enc.embed_dim) != enc.embed_dim:
            raise CheckpointError(f'the head expects {lin.in_features}-d features but the encoder gives '
                                  f'{enc.embed_dim}-d')
        mode = mode or 'segmentation'
        net = _HeadModel(enc, lin, mode, job.plan)
        name = choice.head if isinstance(choice.head, str) else type(choice.head).__name__
        log(f'model: encoder + linear head {name} ({mode})')
    else:
        assert choice.model is not None
        net = choice.model
        mode = mode or 'segmentation'
    log(f'weights: {wdesc}')
    log('band mapping (channel  band -> learned projection):\n' + job.plan.describe())
    net = net.to(dev).eval()
    if default_overlap:
        tiling = dataclasses.replace(tiling, overlap=0 if mode == 'classification' else 32)
    src, plan = job.source, job.plan

    # probe the output resolution and class count on a dummy tile
    grid0 = TileGrid(src.height, src.width, tiling.tile, tiling.overlap)
    th, tw = grid0.tile_hw
    with torch.inference_mode():
        probe = _call(net, torch.zeros(1, len(job.band_ids), th, tw, device=dev), None)
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
    grid = TileGrid(src.height, src.width, tiling.tile, tiling.overlap, 16, scale)
    precision = spec.precision

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

    names = list(choice.classes) if choice.classes else [f'class_{i}' for i in range(k)]
    if len(names) != k:
        raise InputError(f'{len(names)} class names for a {k}-class model')
    label = str(choice.checkpoint or choice.head or type(net).__name__)
    tags = {'SMARTIES_MODEL': label, 'SMARTIES_BANDS': ','.join(job.band_ids), 'SMARTIES_MODE': mode,
            'SMARTIES_CLASSES': ','.join(names)}

    def render_classes(rows: np.ndarray) -> np.ndarray:
        ids = np.full(rows.shape[:2], 255, dtype=np.uint8)
        ok = np.isfinite(rows).all(-1)
        ids[ok] = rows[ok].argmax(-1).astype(np.uint8)
        return ids[..., None]

    specs = [
        OutputSpec(out, 1, 'uint8', render_classes, 255, ['class'], tags, colour_table(k)),
        OutputSpec(probs_path, k, 'float32', lambda rows: rows, float('nan'), names, tags),
    ]
    fp = {**job.fingerprint(), 'weights': state_fingerprint(net),
          'options': {'mode': mode, 'precision': precision, 'stats': job.stats, 'norm': job.norm, 'classes': names}}
    hc, wc = grid.out_shape
    log(f'output: {out} (class ids, {k} classes, {hc}×{wc} cells of {scale} px) and {probs_path}; {len(grid)} tiles')
    tiling = dataclasses.replace(tiling, block_size=64 if scale == 16 else 256)
    with OutputLock([out, probs_path]):
        run = run_tiled(src, grid, fn, k, specs, normalize=job.normalizer, tiling=tiling, resume=resume,
                        fingerprint=fp, progress=progress, on_batch=on_batch)
    log(f'wrote {out} and {probs_path} ({run.tiles_run} tiles in {run.seconds:.1f} s)')
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
