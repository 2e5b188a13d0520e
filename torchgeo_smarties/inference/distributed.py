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
is not supported (the rank files hold sums that an interrupted run cannot continue, so it starts over):
:class:`~torchgeo_smarties.errors.UnsupportedResumeError` is raised before anything is read, naming the resumable
alternatives (:doc:`/scale`: a multi-scene job split across ranks resumes per scene and tile); ``--pool`` is
single-process only.

.. versionadded:: 0.1
"""

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Unpack

import lightning as L
import numpy as np
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..errors import InputError, OptionError, SmartiesError, UnsupportedResumeError
from ..models import SMARTIESViT
from ..spectrum import ProjectionPlan
from .embed import EmbedResult, dense_step, embedding_spec, for_model, provenance_tags
from .engine import (
    BlendAccumulator,
    BlockWriter,
    OutputSpec,
    TileBatch,
    TileDataset,
    TiledRun,
    block_rows,
    output_profile,
    state_fingerprint,
    tile_loader,
    unwrap_worker_error,
)
from .job import (
    ACCELERATORS,
    DEFAULT_CODEC,
    EmbedJob,
    EmbedKeywords,
    Precision,
    RasterOptions,
    TilingOptions,
    check_choice,
)
from .outputs import OutputLock, atomic_target, check_outputs
from .source import RasterSource
from .tiling import TileGrid

__all__ = ('RESUME_FIX', 'ContiguousDistributedSampler', 'embed_raster_distributed', 'rank_row_span', 'split_range')

#: Why ``resume`` is refused on the DDP path, and the resumable alternatives (the message of its error).
RESUME_FIX = ('--resume is not supported with --devices/--num-nodes: the ranks sum their tiles into shared partial '
              'files that an interrupted run cannot continue, so it starts over. To resume, split the work by scene '
              'instead: give the scenes as a list file, a glob or several inputs and launch one process per device '
              '(torchrun --nproc-per-node N -m torchgeo_smarties.cli embed scenes.txt -o out/ --device cuda '
              '--resume), resumable per scene and tile; or embed one scene in a single process '
              '(drop --devices) with --resume')


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

    def __init__(self, encoder: SMARTIESViT, plan: ProjectionPlan, precision: Precision, block: int,
                 final_norm: bool, job: EmbedJob, grid: TileGrid, tiling: TilingOptions, spec: OutputSpec,
                 work: Path) -> None:
        super().__init__()
        self.encoder = encoder
        self.plan, self.precision_name, self.block, self.final_norm = plan, precision, block, final_norm
        self.source, self.grid, self.normalize = job.source, grid, job.normalizer
        self.tiling, self.spec, self.work = tiling, spec, work
        self._fn: Callable[[Tensor, Tensor | None], tuple[Tensor, Tensor]] | None = None
        self._acc: BlendAccumulator | None = None
        self._mm: np.memmap | None = None  # type: ignore[type-arg]

    def predict_dataloader(self) -> DataLoader:  # type: ignore[type-arg]
        ds = TileDataset(self.source, self.grid, self.normalize)
        sampler = ContiguousDistributedSampler(ds, num_replicas=self.trainer.world_size, rank=self.trainer.global_rank)
        return tile_loader(ds, self.tiling, sampler, persistent=True)

    def on_predict_start(self) -> None:
        self.encoder.eval()
        self._fn = dense_step(self.encoder, self.plan, self.device, self.precision_name, self.block, self.final_norm)
        world, rank = self.trainer.world_size, self.trainer.global_rank
        start, stop = split_range(len(self.grid), world)[rank]
        y0, y1 = rank_row_span(self.grid, start, stop)
        self.work.mkdir(parents=True, exist_ok=True)
        if y1 > y0:
            self._mm = _rank_memmap(self.work, rank, world, y1 - y0, self.grid.padded_out_shape[1], self.spec.count,
                                    'w+')
            self._acc = _as_accumulator(self._mm, y0)

    def predict_step(self, batch: TileBatch, batch_idx: int) -> int:
        idx = batch.tiles
        assert self._fn is not None and self._acc is not None
        out_t, valid_t = self._fn(batch.x, batch.mask)
        out = out_t.detach().float().cpu().numpy().transpose(0, 2, 3, 1)  # (B, h, w, K)
        self._acc.add_tiles(self.grid, idx.tolist(), out, valid_t.detach().cpu().numpy())
        return len(idx)  # the tiles themselves are written to the rank's file

    def on_predict_end(self) -> None:
        if self._mm is not None:
            self._mm.flush()
            self._acc = self._mm = None  # unmaps the file
        self.trainer.strategy.barrier('smarties-embed-merge')
        if self.trainer.is_global_zero:
            merge_rank_sums(self.work, self.grid, self.source, self.spec, self.trainer.world_size,
                            self.tiling.compress, self.tiling.block_size)


def _rank_memmap(work: Path, rank: int, world: int, rows: int, width: int, k: int,
                 mode: str) -> np.memmap:  # type: ignore[type-arg]
    return np.memmap(_rank_file(work, rank, world), dtype=np.float32, mode=mode,  # type: ignore[call-overload]
                     shape=(rows, width, k + 1))


def _as_accumulator(mm: np.ndarray, y0: int) -> BlendAccumulator:
    """A :class:`BlendAccumulator` over a rank file: channels ``:K`` hold ``Σ w·out``, channel ``K`` holds ``Σ w``."""
    k = mm.shape[-1] - 1
    return BlendAccumulator(mm[..., :k], mm[..., k], y0)


def merge_rank_sums(work: Path, grid: TileGrid, source: RasterSource, spec: OutputSpec, world: int,
                    compress: str = DEFAULT_CODEC, block_size: int = 64) -> Path:
    """Add the per-rank sums, divide by the summed weights, write *spec* atomically, and remove *work*.

    Raises:
        InputError: if a rank's file is missing (the output folder is not shared by all nodes).
    """
    hc, wc = grid.out_shape
    wp = grid.padded_out_shape[1]
    k = spec.count
    parts: list[BlendAccumulator] = []
    for r, (start, stop) in enumerate(split_range(len(grid), world)):
        y0, y1 = rank_row_span(grid, start, stop)
        if y1 <= y0:
            continue
        f = _rank_file(work, r, world)
        if not f.is_file() or f.stat().st_size != (y1 - y0) * wp * (k + 1) * 4:
            raise InputError(f'the partial sums of rank {r} ({str(f)!r}) are missing or incomplete: the output folder '
                             'must be on a filesystem shared by all nodes (choose such a location with -o)')
        parts.append(_as_accumulator(_rank_memmap(work, r, world, y1 - y0, wp, k, 'r'), y0))
    bs = block_rows(grid, block_size)
    with atomic_target(spec.path) as tmp:
        writer = BlockWriter(spec, tmp, output_profile(spec, source, grid, bs, compress))
        try:
            for y in range(0, hc, bs):
                n = min(bs, hc - y)
                total = BlendAccumulator.zeros(n, wp, k, y)
                for part in parts:  # rank order = the single-process summation order
                    total.merge(part)
                writer.add(total.blended(y, y + n)[:, :wc])
        finally:
            writer.close()
    del parts
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
    resume: bool = False,
    preview: str | os.PathLike[str] | None = None,
    progress: bool = True,
    trainer_kwargs: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
    **options: Unpack[EmbedKeywords],
) -> EmbedResult:
    """:func:`~torchgeo_smarties.inference.embed_raster` on several devices/nodes with Lightning's predict and DDP.

    Every process of the job calls this function (``torchrun``, SLURM ``srun``, or Lightning's own
    launcher for ``strategy='ddp'`` on one node; ``'ddp_spawn'`` spawns from one process). The output
    equals the single-process one (see the module docstring); only rank 0 logs and writes the file.

    Args:
        input: see :func:`~torchgeo_smarties.inference.embed_raster`.
        output: the GeoTIFF to write, on a filesystem shared by all nodes.
        devices: devices per node (``lightning.Trainer(devices=...)``).
        num_nodes: number of nodes.
        strategy: ``'ddp'`` (default), ``'ddp_spawn'`` or another Lightning DDP strategy name.
        accelerator: ``'auto'``, ``'gpu'``, ``'cpu'``, ...
        model: an encoder (default: loaded from the ``weights`` option).
        resume: not supported here: raises :class:`~torchgeo_smarties.errors.UnsupportedResumeError` naming the
            resumable alternatives (a multi-scene job split across ranks, or one process).
        preview: also write a PNG (rank 0).
        progress: show Lightning's progress bar.
        trainer_kwargs: extra ``lightning.Trainer`` arguments.
        log: where rank 0's messages go.
        **options: the keywords of :func:`~torchgeo_smarties.inference.embed_raster`
            (:class:`~torchgeo_smarties.inference.job.EmbedKeywords`; ``batch_size`` and ``num_workers`` are per
            device, a ``normalizer`` must be picklable).

    Returns:
        An :class:`~torchgeo_smarties.inference.EmbedResult` (its ``run`` counts all ranks' tiles).

    Raises:
        UnsupportedResumeError: with ``resume=True``, before anything is read.
        TypeError: for an unknown keyword.
        OptionError, InputError: on a bad option or input (before anything is written).
    """
    if resume:
        raise UnsupportedResumeError(RESUME_FIX)
    check_choice('accelerator', accelerator, ACCELERATORS)
    if not isinstance(strategy, str) or not strategy.startswith('ddp'):
        raise OptionError(f'strategy must be a Lightning DDP strategy (ddp, ddp_spawn, ddp_fork, ...); '
                          f'got {strategy!r}')
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 1:
        raise OptionError(f'number of nodes must be an integer >= 1; got {num_nodes!r}')
    if isinstance(devices, int) and not isinstance(devices, bool) and devices < 1 and devices != -1:
        raise OptionError(f'devices must be >= 1 (or -1 for all); got {devices!r}')
    opts = RasterOptions.from_keywords(options, EmbedKeywords, caller='embed_raster_distributed', model=model)
    tiling, encoder, dense, precision = opts.tiling, opts.encoder, opts.dense, opts.encoder.precision
    say = log if _rank_zero() else (lambda _msg: None)
    out = Path(output)
    png = None if preview is None else Path(preview)
    if png is not None:
        from .preview import check_preview_path

        check_preview_path(png)
    with opts.open(input) as job:
        check_outputs([('output', out), *([('preview', png)] if png is not None else [])], job.input_files())
        enc, wdesc = encoder.load()
        job = for_model(job, enc)
        block = dense.block_index(len(enc.blocks))
        enc = enc.eval()
        src = job.source
        grid = TileGrid(src.height, src.width, tiling.tile, tiling.overlap, enc.patch_size, enc.patch_size)
        d = enc.embed_dim
        hc, wc = grid.out_shape
        spec = embedding_spec(out, enc, wdesc, job.band_ids, dense.dtype, dense.layer, dense.final_norm,
                              tiling.tile, tiling.overlap, provenance_tags(job, state_fingerprint(enc)))
        work = out.with_name(out.name + '.ddp-partial')
        module = _EmbedPredictModule(enc, job.plan, precision, block, dense.final_norm, job, grid, tiling, spec, work)
        say(f'weights: {wdesc}')
        say('band mapping (channel  band -> learned projection):\n' + job.plan.describe())
        trainer = L.Trainer(
            accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy, logger=False,
            enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=progress,
            use_distributed_sampler=False, **(trainer_kwargs or {}),
        )
        say(f'output: {out} ({d} bands {dense.dtype}, {hc}×{wc} patches), {len(grid)} tiles of {grid.tile_hw[0]}×'
            f'{grid.tile_hw[1]} px, overlap {tiling.overlap} px, batch {tiling.batch_size}, {tiling.workers} workers '
            f'per rank, {trainer.world_size} ranks ({num_nodes} node(s) × {devices} {accelerator} device(s), '
            f'{strategy}) {precision}')
        lock = OutputLock([out, *([png] if png is not None else [])]) if _rank_zero() else None
        if lock is not None:
            lock.acquire()
        try:
            t0 = time.perf_counter()
            try:
                trainer.predict(module, return_predictions=False)
            except SmartiesError as err:
                raise unwrap_worker_error(err) from None
            secs = time.perf_counter() - t0
            run = TiledRun(len(grid), len(grid), secs, [out])
            res = EmbedResult(out, job.band_ids, d, (d, hc, wc), run)
            if trainer.is_global_zero:
                say(f'wrote {out} ({len(grid)} tiles in {secs:.1f} s, {len(grid) / max(secs, 1e-9):.2f} tiles/s)')
                if png is not None:
                    from .preview import write_preview

                    res.preview = write_preview(src, job.band_ids, out, png, title=f'{Path(input).name} — {wdesc}')
                    say(f'wrote preview {res.preview}')
        finally:
            if lock is not None:
                lock.release()
    return res
