"""``smarties embed --devices N [--num-nodes M]``: dense embeddings on several GPUs/nodes with Lightning DDP.

The tiles of the single-process path (:func:`~torchgeo_smarties.inference.embed_raster`: same
:class:`~torchgeo_smarties.inference.engine.TileDataset`, normalisation, encoder step and blending
weights) are split into *contiguous* row-major ranges, one per rank
(:class:`ContiguousDistributedSampler`: no shuffling, no padded duplicates, ranges differ by at most
one tile). Each rank runs :meth:`lightning.Trainer.predict` on its range and accumulates the blended
sums ``Σ w·out`` and weights ``Σ w`` of its tiles in a raw float32 file covering only the output rows
its tiles touch (``<output>.ddp-partial/rank-<r>-of-<n>.f32``, memory-mapped: RAM stays bounded).
After a barrier, rank 0 adds the per-rank sums row block by row block, divides, and writes the
GeoTIFF inside the work folder, then moves it into place and removes the folder. Because the
ranges are contiguous and in row-major order, every output cell is summed in the same order as in
the single-process run: the result equals :func:`embed_raster`'s (to float32 rounding of the
batched model calls), with the same CRS, transform, nodata, tags and block layout.

Requirements and limits: the output folder must be on a filesystem shared by all nodes; ``resume``
is not supported (an interrupted run starts over); ``--pool`` is single-process only.

.. versionadded:: 0.1
"""

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..errors import InputError
from ..models import SMARTIESViT
from ..spectrum import ProjectionPlan
from ..transforms import normalization_tags
from .embed import EmbedResult, Precision, _dense_fn, _prepare, default_num_workers, embedding_spec, make_normalizer
from .engine import (
    OutputSpec,
    TileDataset,
    TiledRun,
    _BlockWriter,
    _worker_init,
    block_rows,
    output_profile,
    tile_contribution,
)
from .source import RasterSource
from .tiling import TileGrid

__all__ = ('ContiguousDistributedSampler', 'embed_raster_distributed', 'rank_row_span', 'split_range')


def split_range(n: int, parts: int) -> list[tuple[int, int]]:
    """Split ``range(n)`` into *parts* contiguous ``(start, stop)`` ranges whose sizes differ by at most one."""
    return [(r * n // parts, (r + 1) * n // parts) for r in range(parts)]


class ContiguousDistributedSampler(DistributedSampler):  # type: ignore[type-arg]
    """A :class:`~torch.utils.data.DistributedSampler` giving each rank one contiguous block of indices.

    No shuffling and no padding: every index is yielded by exactly one rank, in increasing order
    (uneven splits give some ranks one index more; with fewer indices than ranks some ranks get none).
    """

    def __init__(self, dataset: Dataset, num_replicas: int | None = None,  # type: ignore[type-arg]
                 rank: int | None = None) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.start, self.stop = split_range(len(dataset), self.num_replicas)[self.rank]  # type: ignore[arg-type]
        self.num_samples = self.stop - self.start
        self.total_size = len(dataset)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.num_samples


def rank_row_span(grid: TileGrid, start: int, stop: int) -> tuple[int, int]:
    """Output rows ``[y0, y1)`` (padded grid) touched by tiles ``start..stop-1``; ``(0, 0)`` if none."""
    if stop <= start:
        return 0, 0
    s, th = grid.out_scale, grid.tile_hw[0]
    y0 = grid.row_origins[grid.tile_row(start)] // s
    y1 = grid.row_origins[grid.tile_row(stop - 1)] // s + th // s
    return y0, y1


def _rank_file(work: Path, rank: int, world: int) -> Path:
    return work / f'rank-{rank}-of-{world}.f32'


class _EmbedPredictModule(L.LightningModule):
    """Runs the encoder on this rank's tiles and accumulates blended sums and weights in a memory-mapped file."""

    def __init__(self, encoder: SMARTIESViT, plan: ProjectionPlan, precision: Precision, layer: int,
                 final_norm: bool, source: RasterSource, grid: TileGrid, normalize: Callable[[Tensor], Tensor] | None,
                 batch_size: int, num_workers: int, spec: OutputSpec, work: Path, compress: str) -> None:
        super().__init__()
        self.encoder = encoder
        self.plan, self.precision_name, self.layer, self.final_norm = plan, precision, layer, final_norm
        self.source, self.grid, self.normalize = source, grid, normalize
        self.batch_size, self.num_workers = batch_size, num_workers
        self.spec, self.work, self.compress = spec, work, compress
        self._fn: Callable[[Tensor, Tensor | None], tuple[Tensor, Tensor]] | None = None
        self._acc: np.memmap | None = None  # type: ignore[type-arg]
        self._y0 = 0
        self._cache: dict[tuple[bool, ...], np.ndarray] = {}

    def predict_dataloader(self) -> DataLoader:  # type: ignore[type-arg]
        ds = TileDataset(self.source, self.grid, self.normalize)
        sampler = ContiguousDistributedSampler(ds, num_replicas=self.trainer.world_size, rank=self.trainer.global_rank)
        nw = self.num_workers
        return DataLoader(ds, batch_size=self.batch_size, sampler=sampler, num_workers=nw,
                          worker_init_fn=_worker_init if nw else None, prefetch_factor=2 if nw else None,
                          persistent_workers=bool(nw))

    def on_predict_start(self) -> None:
        self.encoder.eval()
        self._fn = _dense_fn(self.encoder, self.plan, self.device, self.precision_name, self.layer,
                             self.final_norm)
        world, rank = self.trainer.world_size, self.trainer.global_rank
        start, stop = split_range(len(self.grid), world)[rank]
        y0, y1 = rank_row_span(self.grid, start, stop)
        self.work.mkdir(parents=True, exist_ok=True)
        self._y0 = y0
        if y1 > y0:
            wp = self.grid.padded_out_shape[1]
            self._acc = np.memmap(_rank_file(self.work, rank, world), dtype=np.float32, mode='w+',
                                  shape=(y1 - y0, wp, self.spec.count + 1))

    def predict_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> int:
        x, m, idx = batch
        assert self._fn is not None and self._acc is not None
        mask = None if bool(m.all()) else m
        out_t, valid_t = self._fn(x, mask)
        out = out_t.detach().float().cpu().numpy().transpose(0, 2, 3, 1)  # (B, h, w, K)
        valid = valid_t.detach().cpu().numpy()
        k = self.spec.count
        for b, i in enumerate(idx.tolist()):
            y0, x0, wv = tile_contribution(self.grid, i, valid[b], self._cache)
            h, w = wv.shape
            a = self._acc[y0 - self._y0:y0 - self._y0 + h, x0:x0 + w]
            a[..., :k] += wv[..., None] * out[b]
            a[..., k] += wv
        return len(idx)  # the tiles themselves are written to the rank's file

    def on_predict_end(self) -> None:
        if self._acc is not None:
            self._acc.flush()
            self._acc = None  # unmaps the file
        self.trainer.strategy.barrier('smarties-embed-merge')
        if self.trainer.is_global_zero:
            merge_rank_sums(self.work, self.grid, self.source, self.spec, self.trainer.world_size, self.compress)


def merge_rank_sums(work: Path, grid: TileGrid, source: RasterSource, spec: OutputSpec, world: int,
                    compress: str = 'deflate', block_size: int = 64) -> Path:
    """Add the per-rank sums, divide by the summed weights, write *spec* atomically, and remove *work*.

    Raises:
        InputError: if a rank's file is missing (the output folder is not shared by all nodes).
    """
    hc, wc = grid.out_shape
    wp = grid.padded_out_shape[1]
    k = spec.count
    parts: list[tuple[int, int, np.ndarray]] = []
    for r, (start, stop) in enumerate(split_range(len(grid), world)):
        y0, y1 = rank_row_span(grid, start, stop)
        if y1 <= y0:
            continue
        f = _rank_file(work, r, world)
        if not f.is_file() or f.stat().st_size != (y1 - y0) * wp * (k + 1) * 4:
            raise InputError(f'the partial sums of rank {r} ({str(f)!r}) are missing or incomplete: the output folder '
                             'must be on a filesystem shared by all nodes (choose such a location with -o)')
        parts.append((y0, y1, np.memmap(f, dtype=np.float32, mode='r', shape=(y1 - y0, wp, k + 1))))
    bs = block_rows(grid, block_size)
    writer = _BlockWriter(spec, work / spec.path.name, output_profile(spec, source, grid, bs, compress))
    try:
        for y in range(0, hc, bs):
            n = min(bs, hc - y)
            acc = np.zeros((n, wp, k + 1), np.float32)
            for y0, y1, a in parts:  # rank order = the single-process summation order
                lo, hi = max(y, y0), min(y + n, y1)
                if lo < hi:
                    acc[lo - y:hi - y] += a[lo - y0:hi - y0]
            wsum = acc[..., k]
            with np.errstate(invalid='ignore', divide='ignore'):
                vals = acc[..., :k] / wsum[..., None]
            vals[wsum == 0] = np.nan
            writer.add(vals[:, :wc])
    finally:
        writer.close()
    del parts
    os.replace(work / spec.path.name, spec.path)
    shutil.rmtree(work, ignore_errors=True)
    return spec.path


def _rank_zero() -> bool:
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, 'rank', 0) == 0


def embed_raster_distributed(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    devices: int | str | list[int] = 'auto',
    num_nodes: int = 1,
    strategy: str = 'ddp',
    accelerator: str = 'auto',
    model: SMARTIESViT | None = None,
    weights: str | None = None,
    bands: str | None = None,
    sensor: str | None = None,
    stats: str | os.PathLike[str] | None = None,
    norm: str | None = None,
    normalizer: Callable[[Tensor], Tensor] | None = None,
    tile: int = 224,
    overlap: int = 32,
    batch_size: int = 8,
    num_workers: int | None = None,
    precision: Precision = 'fp32',
    dtype: Literal['float32', 'float16'] = 'float32',
    layer: int = -1,
    final_norm: bool = False,
    resume: bool = False,
    require_crs: bool = False,
    preview: str | os.PathLike[str] | None = None,
    num_heads: int | None = None,
    compress: str = 'deflate',
    progress: bool = True,
    trainer_kwargs: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> EmbedResult:
    """:func:`~torchgeo_smarties.inference.embed_raster` on several devices/nodes with Lightning's predict and DDP.

    Every process of the job calls this function (``torchrun``, SLURM ``srun``, or Lightning's own
    launcher for ``strategy='ddp'`` on one node; ``'ddp_spawn'`` spawns from one process). The output
    equals the single-process one (see the module docstring); only rank 0 logs and writes the file.

    Args:
        input: see :func:`embed_raster` (as are *model* … *compress* and *progress*).
        output: the GeoTIFF to write, on a filesystem shared by all nodes.
        devices: devices per node (``lightning.Trainer(devices=...)``).
        num_nodes: number of nodes.
        strategy: ``'ddp'`` (default), ``'ddp_spawn'`` or another Lightning DDP strategy name.
        accelerator: ``'auto'``, ``'gpu'``, ``'cpu'``, ...
        model: an encoder (default: loaded from *weights*).
        weights: see :func:`~torchgeo_smarties.inference.weights.load_encoder`.
        bands: band ids per channel.
        sensor: a preset naming the channels.
        stats: a statistics file.
        norm: statistics preset, or ``'none'``.
        normalizer: a picklable callable (1, C, h, w) → (1, C, h, w) used instead of *stats*/*norm*.
        tile: tile size in px (multiple of 16).
        overlap: overlap in px (multiple of 16).
        batch_size: tiles per forward pass on each device.
        num_workers: DataLoader workers per rank.
        precision: ``'fp32'``, ``'bf16'`` or ``'fp16'`` autocast.
        dtype: output data type.
        layer: block whose output is written.
        final_norm: apply the encoder's final LayerNorm.
        resume: not supported here (raises :class:`InputError`).
        require_crs: refuse rasters without a CRS.
        preview: also write a PNG (rank 0).
        num_heads: heads of a custom-size checkpoint.
        compress: GeoTIFF compression.
        progress: show Lightning's progress bar.
        trainer_kwargs: extra ``lightning.Trainer`` arguments.
        log: where rank 0's messages go.

    Returns:
        An :class:`~torchgeo_smarties.inference.EmbedResult` (its ``run`` counts all ranks' tiles).

    Raises:
        InputError: with ``resume=True``, or on bad input (before anything is written).
    """
    if resume:
        raise InputError('--resume is not supported with --devices/--num-nodes (multi-process runs start over); '
                         'rerun without --resume, or resume a single-process run without --devices')
    say = log if _rank_zero() else (lambda _msg: None)
    out = Path(output)
    source, band_ids, model, wdesc, plan = _prepare(input, out, model, weights, bands, sensor, require_crs,
                                                    num_heads, say)
    if normalizer is None:
        normalizer = make_normalizer(band_ids, stats, norm, source)
    model = model.eval()
    grid = TileGrid(source.height, source.width, tile, overlap, model.patch_size, model.patch_size)
    d = model.embed_dim
    hc, wc = grid.out_shape
    spec = embedding_spec(out, model, wdesc, band_ids, dtype, layer, final_norm, tile, overlap,
                          normalization_tags(normalizer))
    work = out.with_name(out.name + '.ddp-partial')
    nw = default_num_workers() if num_workers is None else num_workers
    module = _EmbedPredictModule(model, plan, precision, layer, final_norm, source, grid, normalizer, batch_size, nw,
                                 spec, work, compress)
    trainer = L.Trainer(
        accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy, logger=False,
        enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=progress,
        use_distributed_sampler=False, **(trainer_kwargs or {}),
    )
    say(f'output: {out} ({d} bands {dtype}, {hc}×{wc} patches), {len(grid)} tiles of {grid.tile_hw[0]}×'
        f'{grid.tile_hw[1]} px, overlap {overlap} px, batch {batch_size}, {nw} workers per rank, '
        f'{trainer.world_size} ranks ({num_nodes} node(s) × {devices} {accelerator} device(s), {strategy}) '
        f'{precision}')
    t0 = time.perf_counter()
    trainer.predict(module, return_predictions=False)
    secs = time.perf_counter() - t0
    run = TiledRun(len(grid), len(grid), secs, [out])
    res = EmbedResult(out, band_ids, d, (d, hc, wc), run)
    if trainer.is_global_zero:
        say(f'wrote {out} ({len(grid)} tiles in {secs:.1f} s, {len(grid) / max(secs, 1e-9):.2f} tiles/s)')
        if preview is not None:
            from .preview import write_preview

            res.preview = write_preview(source, band_ids, out, Path(preview), title=f'{Path(input).name} — {wdesc}')
            say(f'wrote preview {res.preview}')
    source.close()
    return res
