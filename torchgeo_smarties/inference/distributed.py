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

Resume: each rank check-points its own range (after a batch, at most every ``TilingOptions.checkpoint_seconds``):
the rank file is flushed, the rows its next tiles will add to are copied to ``rank-<r>-of-<n>.carry-<tile>.npy``,
and ``rank-<r>-of-<n>.json`` records the next tile, that file and the run's fingerprint (the same as the
single-process run's, see :func:`~torchgeo_smarties.inference.engine.compare_fingerprints`). With
``resume=True`` a rank whose record matches restores those rows, zeroes the rows after them (sums a killed run
added after its last check-point) and continues at the recorded tile; the result equals an uninterrupted run. A
resume must use the same number of ranks (another number starts over); a changed input, normalisation, weights or
option is a :class:`~torchgeo_smarties.errors.ResumeError` naming what changed.

Requirements and limits: the output folder must be on a filesystem shared by all nodes; ``--pool`` is
single-process only.

.. versionadded:: 0.1
"""

import json
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

from ..errors import InputError, OptionError, SmartiesError
from ..models import SMARTIESViT
from ..spectrum import ProjectionPlan
from .embed import EmbedResult, dense_fingerprint, dense_step, embedding_spec, for_model, provenance_tags
from .engine import (
    FINGERPRINT_VERSION,
    BlendAccumulator,
    BlockWriter,
    OutputSpec,
    TileBatch,
    TileDataset,
    TiledRun,
    check_partial,
    corrupt_partial,
    output_block,
    output_profile,
    run_fingerprint,
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

__all__ = ('ContiguousDistributedSampler', 'embed_raster_distributed', 'rank_row_span', 'split_range')

def split_range(n: int, parts: int) -> list[tuple[int, int]]:
    """Split ``range(n)`` into *parts* contiguous ``(start, stop)`` ranges whose sizes differ by at most one."""
    return [(r * n // parts, (r + 1) * n // parts) for r in range(parts)]


class ContiguousDistributedSampler(DistributedSampler):  # type: ignore[type-arg]
    """A :class:`~torch.utils.data.DistributedSampler` giving each rank one contiguous block of indices.

    No shuffling and no padding: every index is yielded by exactly one rank, in increasing order
    (uneven splits give some ranks one index more; with fewer indices than ranks some ranks get none).
    *first* starts the rank's block later (a resumed rank); a rank that had finished yields its last index again,
    so every rank runs the same hooks, and the caller skips it.
    """

    def __init__(self, dataset: Dataset, num_replicas: int | None = None,  # type: ignore[type-arg]
                 rank: int | None = None, first: int | None = None) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.start, self.stop = split_range(len(dataset), self.num_replicas)[self.rank]  # type: ignore[arg-type]
        if first is not None:  # a resumed rank: from its next tile (its last one again if it had finished)
            self.start = min(max(first, self.start), max(self.stop - 1, self.start))
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
                 work: Path, fingerprint: dict[str, Any], resume: bool = False) -> None:
        super().__init__()
        self.encoder = encoder
        self.plan, self.precision_name, self.block, self.final_norm = plan, precision, block, final_norm
        self.source, self.grid, self.normalize = job.source, grid, job.normalizer
        self.tiling, self.spec, self.work = tiling, spec, work
        self.fingerprint, self.resume = fingerprint, resume
        self._fn: Callable[[Tensor, Tensor | None], tuple[Tensor, Tensor]] | None = None
        self._acc: BlendAccumulator | None = None
        self._mm: np.memmap | None = None  # type: ignore[type-arg]
        self._next: int | None = None  # the first tile this rank still has to add
        self._carry: tuple[int, np.ndarray] | None = None  # (first row, rows) restored on resume
        self._last_checkpoint = 0.0

    def _span(self) -> tuple[int, int, int, int]:
        world, rank = self.trainer.world_size, self.trainer.global_rank
        start, stop = split_range(len(self.grid), world)[rank]
        return (start, stop, *rank_row_span(self.grid, start, stop))

    def _files(self) -> list[Path]:
        """This rank's check-point files: the record and its carry files."""
        prog = _progress_file(self.work, self.trainer.global_rank, self.trainer.world_size)
        return [prog, *self.work.glob(prog.stem + '.carry-*.npy')]

    def _load(self) -> None:
        """This rank's starting point: its first tile, or the check-point of an interrupted run (``resume``)."""
        start, _, _, _ = self._span()
        self._next, self._carry = start, None
        if self.resume:
            state = load_rank_progress(self.work, self.grid, self.trainer.global_rank, self.trainer.world_size,
                                       self.fingerprint)
            if state is not None:
                self._next, lo, rows = state
                self._carry = lo, rows

    def predict_dataloader(self) -> DataLoader:  # type: ignore[type-arg]
        self._load()  # the dataloader is built before on_predict_start
        ds = TileDataset(self.source, self.grid, self.normalize)
        sampler = ContiguousDistributedSampler(ds, num_replicas=self.trainer.world_size, rank=self.trainer.global_rank,
                                               first=self._next)
        return tile_loader(ds, self.tiling, sampler, persistent=True)

    def on_predict_start(self) -> None:
        self.encoder.eval()
        self._fn = dense_step(self.encoder, self.plan, self.device, self.precision_name, self.block, self.final_norm)
        world, rank = self.trainer.world_size, self.trainer.global_rank
        _, _, y0, y1 = self._span()
        self.work.mkdir(parents=True, exist_ok=True)
        if self._carry is None:
            for f in self._files():
                f.unlink(missing_ok=True)
        if y1 > y0:
            self._mm = _rank_memmap(self.work, rank, world, y1 - y0, self.grid.padded_out_shape[1], self.spec.count,
                                    'w+' if self._carry is None else 'r+')
            if self._carry is not None:  # sums added after the last check-point are discarded
                lo, rows = self._carry
                self._mm[lo - y0:lo - y0 + len(rows)] = rows
                self._mm[lo - y0 + len(rows):] = 0.0
            self._acc = _as_accumulator(self._mm, y0)
        self._last_checkpoint = time.perf_counter()

    def predict_step(self, batch: TileBatch, batch_idx: int) -> int:
        assert self._fn is not None and self._acc is not None and self._next is not None
        keep = batch.tiles >= self._next  # a finished rank's repeated last tile
        if not bool(keep.any()):
            return 0
        idx = batch.tiles
        out_t, valid_t = self._fn(batch.x, batch.mask)
        out = out_t.detach().float().cpu().numpy().transpose(0, 2, 3, 1)  # (B, h, w, K)
        self._acc.add_tiles(self.grid, idx.tolist(), out, valid_t.detach().cpu().numpy())
        self._next = done = int(idx[-1]) + 1
        now = time.perf_counter()
        if now - self._last_checkpoint >= self.tiling.checkpoint_seconds:
            self._last_checkpoint = now
            self._checkpoint(done)
        return len(idx)  # the tiles themselves are written to the rank's file

    def _checkpoint(self, done: int) -> None:
        """Make the rank's sums up to tile *done* - 1 durable, with the rows later tiles may still change."""
        assert self._mm is not None
        _, stop, y0, y1 = self._span()
        g, s = self.grid, self.grid.out_scale
        lo = y1 if done >= stop else g.row_origins[g.tile_row(done)] // s  # later tiles add to rows >= lo only
        hi = min(y1, g.row_origins[g.tile_row(done - 1)] // s + g.tile_hw[0] // s)  # earlier tiles end before hi
        self._mm.flush()
        old = self._files()
        prog = old[0]
        carry = prog.with_name(f'{prog.stem}.carry-{done}.npy')  # a new name: the record switches to it atomically
        tmp = carry.with_name(carry.stem + '.tmp.npy')
        np.save(tmp, np.asarray(self._mm[lo - y0:max(lo, hi) - y0]))
        os.replace(tmp, carry)
        ptmp = prog.with_name(prog.name + '.tmp')
        ptmp.write_text(json.dumps({'version': FINGERPRINT_VERSION, 'fingerprint': self.fingerprint,
                                    'next_tile': done, 'carry_row': lo, 'carry': carry.name}, default=str))
        os.replace(ptmp, prog)
        for f in old[1:]:
            if f != carry:
                f.unlink(missing_ok=True)

    def on_predict_end(self) -> None:
        if self._mm is not None:
            self._mm.flush()
            self._acc = self._mm = None  # unmaps the file
        self.trainer.strategy.barrier('smarties-embed-merge')
        if self.trainer.is_global_zero:
            merge_rank_sums(self.work, self.grid, self.source, self.spec, self.trainer.world_size,
                            self.tiling.compress, self.tiling.block_size)


def _progress_file(work: Path, rank: int, world: int) -> Path:
    """A rank's check-point record (it names the carry file ``rank-<r>-of-<n>.carry-<tile>.npy`` it goes with)."""
    return _rank_file(work, rank, world).with_suffix('.json')


def load_rank_progress(work: Path, grid: TileGrid, rank: int, world: int,
                       fingerprint: dict[str, Any]) -> tuple[int, int, np.ndarray] | None:
    """The check-point of rank *rank* of *world* in *work*: ``(next tile, first carry row, carry rows)``.

    ``None`` when the rank has none (it starts from its first tile).

    Raises:
        ResumeError: if the check-point is corrupt, from another version, or of a run whose input, normalisation,
            weights or options differ from *fingerprint* (the message names what changed).
    """
    prog = _progress_file(work, rank, world)
    if not (prog.is_file() and _rank_file(work, rank, world).is_file()):
        return None
    try:
        state = json.loads(prog.read_text())
        state['fingerprint']  # a record without one is corrupt (KeyError)
        nxt, lo = int(state['next_tile']), int(state['carry_row'])
        rows = np.load(work / Path(str(state['carry'])).name)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise corrupt_partial(work, f'rank {rank}: {type(err).__name__}') from None
    check_partial(work, state, fingerprint)
    start, stop = split_range(len(grid), world)[rank]
    y0, y1 = rank_row_span(grid, start, stop)
    if not start <= nxt <= stop or not y0 <= lo <= lo + len(rows) <= y1:
        raise corrupt_partial(work, f'rank {rank}: position {nxt} out of range')
    return nxt, lo, rows


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
    bs = output_block(spec, grid, block_size)
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
        resume: continue an interrupted run of the same number of ranks from each rank's last check-point
            (``<output>.ddp-partial/``; see the module docstring).
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
        ResumeError: with ``resume=True``, if a rank's partial run is corrupt or was made with another input,
            normalisation, weights or options.
        TypeError: for an unknown keyword.
        OptionError, InputError: on a bad option or input (before anything is written).
    """
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
        fp = run_fingerprint(dense_fingerprint(job, state_fingerprint(enc), dense, precision), grid, d, tiling, [spec])
        module = _EmbedPredictModule(enc, job.plan, precision, block, dense.final_norm, job, grid, tiling, spec, work,
                                     fp, resume)
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
        if resume:  # refuse an incompatible partial run here, before the ranks start
            for r in range(trainer.world_size):
                load_rank_progress(work, grid, r, trainer.world_size, fp)
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
