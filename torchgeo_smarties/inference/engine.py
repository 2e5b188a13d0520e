"""Streaming, resumable sliding-window inference from a raster to GeoTIFF outputs.

The engine reads tiles in row-major order through a :class:`torch.utils.data.DataLoader`
(workers read and normalise the next tiles while the model runs), blends each tile's output
into a small accumulator of pending output rows, and streams finished rows out:

* to a raw row-major store ``<output>.partial/data.f32`` (``(rows, cols, bands)`` float32), and
* to the GeoTIFF(s), one complete block row at a time (so GDAL's writes are the same whatever the
  history of the run).

After each batch that finishes output rows, the accumulator and the position are check-pointed
(``progress.json`` + ``carry-<tile>.npz``). ``resume=True`` restarts from that point: finished
rows are replayed from the raw store, the batches keep the same composition, and the result is
byte-identical to an uninterrupted run. Outputs are written inside ``<output>.partial/`` and
moved into place only when complete; the folder is removed on success.

Memory: the prefetched batches (``batch_size × (workers + 1) × prefetch``), the model, and the
pending accumulator ``(tile + tile - overlap) / out_scale`` rows × output width × bands.

.. versionadded:: 0.1
"""

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from affine import Affine
from rasterio.windows import Window
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..errors import InputError
from .source import RasterSource
from .tiling import TileGrid

__all__ = ('OutputSpec', 'TileDataset', 'TiledRun', 'block_rows', 'check_writable', 'output_profile', 'run_tiled',
           'state_fingerprint', 'tile_contribution')

#: A model step: (x (B, C, h, w) normalised, mask (B, C, h, w) bool or None) -> (out (B, K, h', w'), valid (B, h', w')).
ModelFn = Callable[[Tensor, Tensor | None], tuple[Tensor, Tensor]]
Normalizer = Callable[[Tensor], Tensor]


@dataclass
class OutputSpec:
    """One GeoTIFF written from the blended values.

    Attributes:
        path: final path of the file.
        count: number of bands.
        dtype: GDAL/numpy data type name.
        render: maps finished rows (n, W, K) float32 (NaN = no data) to (count, n, W) in *dtype*.
        nodata: nodata value (NaN allowed for float types).
        descriptions: per band description.
        tags: dataset tags.
        colormap: optional colour table for band 1 ({value: (r, g, b, a)}).
    """

    path: Path
    count: int
    dtype: str
    render: Callable[[np.ndarray], np.ndarray]
    nodata: float | None = float('nan')
    descriptions: Sequence[str] = ()
    tags: dict[str, str] = field(default_factory=dict)
    colormap: dict[int, tuple[int, int, int, int]] | None = None


def check_writable(path: Path) -> None:
    """Raise :class:`InputError` unless a file can be created at *path* (checked before any work)."""
    parent = path.resolve().parent
    if path.is_dir():
        raise InputError(f'output {str(path)!r} is a folder; give a file name such as {str(path / "out.tif")!r}')
    if not parent.is_dir():
        raise InputError(f'output folder {str(parent)!r} does not exist; create it first')
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise InputError(f'output {str(path)!r} is not writable; choose another location with -o')


class TileDataset(Dataset):  # type: ignore[type-arg]
    """Tiles ``start..`` of a :class:`TileGrid`: normalised float32 (C, h, w), validity (C, h, w), index."""

    def __init__(self, source: RasterSource, grid: TileGrid, normalize: Normalizer | None, start: int = 0) -> None:
        self.source, self.grid, self.normalize, self.start = source, grid, normalize, start

    def __len__(self) -> int:
        return len(self.grid) - self.start

    def __getitem__(self, k: int) -> tuple[Tensor, Tensor, int]:
        i = self.start + k
        r0, c0 = self.grid.origin(i)
        th, tw = self.grid.tile_hw
        vals, valid = self.source.read(Window(c0, r0, tw, th))
        x = torch.from_numpy(vals)
        m = torch.from_numpy(valid)
        if self.normalize is not None:
            x = self.normalize(x[None])[0]
        x = torch.where(m, x, torch.zeros((), dtype=x.dtype))  # no NaN/garbage reaches the model
        return x.float().contiguous(), m, i


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def state_fingerprint(model: torch.nn.Module | None) -> str:
    """SHA-1 of a model's state dict (names, shapes, bytes): guards ``--resume`` against changed weights."""
    h = hashlib.sha1()
    if model is not None:
        for k, v in model.state_dict().items():
            h.update(k.encode())
            h.update(str(tuple(v.shape)).encode())
            h.update(v.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes()
                     if v.numel() else b'')
    return h.hexdigest()


class _BlockWriter:
    """Buffers finished rows until a whole GeoTIFF block row is complete, then writes it."""

    def __init__(self, spec: OutputSpec, tmp: Path, profile: dict[str, Any]) -> None:
        self.spec, self.tmp = spec, tmp
        self.block = int(profile['blockysize'])
        self.height, self.width = int(profile['height']), int(profile['width'])
        self.ds = rasterio.open(tmp, 'w', **profile)
        for i, d in enumerate(spec.descriptions, start=1):
            self.ds.set_band_description(i, d)
        if spec.tags:
            self.ds.update_tags(**spec.tags)
        if spec.colormap:
            self.ds.write_colormap(1, spec.colormap)
        self.buf: list[np.ndarray] = []
        self.y0 = 0

    def add(self, rows: np.ndarray) -> None:
        self.buf.append(rows)
        n = sum(len(b) for b in self.buf)
        end = self.y0 + n
        while n >= self.block or (end >= self.height and n):
            allrows = np.concatenate(self.buf) if len(self.buf) > 1 else self.buf[0]
            take = min(self.block, n)
            out = self.spec.render(allrows[:take])
            self.ds.write(out, window=Window(0, self.y0, self.width, take))
            self.y0 += take
            rest = allrows[take:]
            self.buf = [rest] if len(rest) else []
            n -= take

    def close(self) -> None:
        self.ds.close()


def block_rows(grid: TileGrid, block_size: int = 64) -> int:
    """GeoTIFF block size (cells) used for an output of *grid*: *block_size*, shrunk for small outputs."""
    hc, wc = grid.out_shape
    return max(16, min(block_size, 16 * math.ceil(max(hc, wc) / 16)))


def output_profile(o: OutputSpec, source: RasterSource, grid: TileGrid, block: int, compress: str) -> dict[str, Any]:
    """The rasterio profile of output *o*: tiled GeoTIFF on the grid of ``out_scale``, CRS copied, transform × s."""
    hc, wc = grid.out_shape
    profile: dict[str, Any] = {
        'driver': 'GTiff', 'width': wc, 'height': hc, 'count': o.count, 'dtype': o.dtype, 'crs': source.crs,
        'transform': source.transform @ Affine.scale(grid.out_scale), 'nodata': o.nodata, 'tiled': True,
        'blockxsize': block, 'blockysize': block, 'compress': compress,
        'interleave': 'pixel' if o.count > 1 else 'band', 'BIGTIFF': 'IF_SAFER',
    }
    if compress.lower() in ('deflate', 'lzw', 'zstd'):
        kind = np.dtype(o.dtype)
        if kind.kind in 'iu':
            profile['predictor'] = 2
        elif kind in (np.float32, np.float64):
            profile['predictor'] = 3
    # Fast compression levels: at the defaults GDAL's deflate on a 768-band float32 output costs ~20 ms per tile
    # on a 2-core CPU, a noticeable share of the encoder's time; level 1 is ~3× faster for a few % more bytes.
    if compress.lower() == 'deflate':
        profile['zlevel'] = 1
    elif compress.lower() == 'zstd':
        profile['zstd_level'] = 1
    return profile


def tile_contribution(grid: TileGrid, i: int, valid: np.ndarray,
                      cache: dict[tuple[bool, ...], np.ndarray] | None = None) -> tuple[int, int, np.ndarray]:
    """Where tile *i* lands on the output grid and its blending weights: ``(y0, x0, weights (h, w))``.

    The weights are the tile's ramp (:meth:`TileGrid.weights`) times its output validity *valid* (h, w).
    The blended value of a cell is ``sum(weights * out) / sum(weights)`` over the tiles covering it.
    """
    nrows, ncols = len(grid.row_origins), len(grid.col_origins)
    tr, tc = i // ncols, i % ncols
    key = (tr > 0, tr < nrows - 1, tc > 0, tc < ncols - 1)
    wt = cache.get(key) if cache is not None else None
    if wt is None:
        wt = grid.weights(i)
        if cache is not None:
            cache[key] = wt
    r0, c0 = grid.origin(i)
    s = grid.out_scale
    return r0 // s, c0 // s, wt * valid


@dataclass
class TiledRun:
    """What :func:`run_tiled` did: tiles processed now / in total, seconds, the outputs written."""

    tiles_run: int
    tiles_total: int
    seconds: float
    outputs: list[Path]
    resumed_from: int = 0


def run_tiled(
    source: RasterSource,
    grid: TileGrid,
    model_fn: ModelFn,
    channels: int,
    outputs: Sequence[OutputSpec],
    *,
    normalize: Normalizer | None = None,
    batch_size: int = 8,
    num_workers: int = 0,
    resume: bool = False,
    fingerprint: dict[str, Any] | None = None,
    progress: bool = True,
    on_batch: Callable[[int, int], None] | None = None,
    block_size: int = 64,
    compress: str = 'deflate',
    workdir: Path | None = None,
) -> TiledRun:
    """Run *model_fn* over every tile of *grid* and write blended outputs.

    Args:
        source: the input raster.
        grid: tile layout (its ``out_scale`` is the input pixels per output cell).
        model_fn: the model step (see ``ModelFn``); outputs must be on the grid of ``out_scale``.
        channels: number of values per output cell (K).
        outputs: the GeoTIFFs to write (all rendered from the same blended values).
        normalize: applied to each (1, C, h, w) float32 tile in the loader (workers).
        batch_size: tiles per model call.
        num_workers: DataLoader worker processes (0 = read in the main process).
        resume: continue from ``<first output>.partial/`` if it holds a compatible run.
        fingerprint: settings that must match for ``resume`` (input, bands, model, …).
        progress: show a tqdm progress bar.
        on_batch: called after every check-pointed batch with (tiles done, tiles total).
        block_size: GeoTIFF block size in cells (multiple of 16).
        compress: GeoTIFF compression.
        workdir: where partial results live (default ``<first output>.partial``).

    Returns:
        A :class:`TiledRun`.

    Raises:
        InputError: if ``resume`` finds an incompatible partial run.
    """
    main = outputs[0].path
    work = workdir or main.with_name(main.name + '.partial')
    hc, wc = grid.out_shape
    hp, wp = grid.padded_out_shape
    s = grid.out_scale
    fp = json.dumps(
        {**(fingerprint or {}), 'grid': [grid.height, grid.width, grid.tile, grid.overlap, grid.patch, s],
         'channels': channels, 'batch_size': batch_size, 'outputs': [str(o.path) for o in outputs],
         'dtypes': [o.dtype for o in outputs], 'compress': compress, 'block': block_size},
        sort_keys=True, default=str,
    )
    start, rows_done, pending = 0, 0, {}
    prog_file = work / 'progress.json'
    if resume and prog_file.is_file():
        state = json.loads(prog_file.read_text())
        if state.get('fingerprint') != fp:
            raise InputError(
                f'the partial run in {str(work)!r} was started with other settings (input, bands, model, tiling or '
                'outputs differ); rerun with the same options, or without --resume to start over'
            )
        start, rows_done = int(state['next_tile']), int(state['rows_done'])
        with np.load(work / state['carry']) as z:
            for r, a, w in zip(z['rows'], z['acc'], z['w']):
                pending[int(r)] = (a.copy(), w.copy())
    else:
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
    raw_path = work / 'data.f32'
    row_bytes = wc * channels * 4
    raw_fd = os.open(raw_path, os.O_RDWR | os.O_CREAT, 0o644)

    bs = block_rows(grid, block_size)
    writers = [_BlockWriter(o, work / o.path.name, output_profile(o, source, grid, bs, compress)) for o in outputs]

    def emit(y0: int, rows: np.ndarray, to_raw: bool) -> None:
        if to_raw:
            os.pwrite(raw_fd, np.ascontiguousarray(rows, dtype=np.float32).tobytes(), y0 * row_bytes)
        for wr in writers:
            wr.add(rows)

    # replay rows already finished in the interrupted run (same block-row writes as the first time)
    chunk = max(1, bs)
    for y in range(0, rows_done, chunk):
        n = min(chunk, rows_done - y)
        buf = os.pread(raw_fd, n * row_bytes, y * row_bytes)
        emit(y, np.frombuffer(buf, dtype=np.float32).reshape(n, wc, channels), False)

    total = len(grid)
    t0 = time.perf_counter()
    loader = DataLoader(
        TileDataset(source, grid, normalize, start), batch_size=batch_size, num_workers=num_workers,
        worker_init_fn=_worker_init if num_workers else None, persistent_workers=False,
        prefetch_factor=2 if num_workers else None,
    )
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=start, unit='tile', desc='tiles', dynamic_ncols=True)
    weights_cache: dict[tuple[bool, ...], np.ndarray] = {}
    done = start
    try:
        for x, m, idx in loader:
            mask = None if bool(m.all()) else m
            out_t, valid_t = model_fn(x, mask)
            out = out_t.detach().float().cpu().numpy().transpose(0, 2, 3, 1)  # (B, h, w, K)
            valid = valid_t.detach().cpu().numpy()
            for b, i in enumerate(idx.tolist()):
                y0, x0, wv = tile_contribution(grid, i, valid[b], weights_cache)
                h, w = wv.shape
                for r in range(h):
                    a = pending.get(y0 + r)
                    if a is None:
                        a = pending[y0 + r] = (np.zeros((wp, channels), np.float32), np.zeros(wp, np.float32))
                    a[0][x0:x0 + w] += wv[r][:, None] * out[b, r]
                    a[1][x0:x0 + w] += wv[r]
            done = int(idx[-1]) + 1
            limit = hp if done >= total else grid.row_origins[grid.tile_row(done)] // s
            finished = sorted(y for y in pending if y < limit)
            if finished:
                assert finished[0] == rows_done or rows_done == hc, 'rows must finish in order'
                acc = np.stack([pending[y][0] for y in finished])
                wsum = np.stack([pending[y][1] for y in finished])
                for y in finished:
                    del pending[y]
                with np.errstate(invalid='ignore', divide='ignore'):
                    vals = acc / wsum[..., None]
                vals[wsum == 0] = np.nan
                keep = [k for k, y in enumerate(finished) if y < hc]
                if keep:
                    emit(finished[keep[0]], vals[keep[0]:keep[-1] + 1, :wc], True)
                rows_done = min(hc, finished[-1] + 1)
                _checkpoint(work, fp, done, rows_done, pending, raw_fd)
                if on_batch is not None:
                    on_batch(done, total)
            if bar is not None:
                bar.update(len(idx))
    except BaseException:
        for wr in writers:
            wr.close()
        os.close(raw_fd)
        raise
    finally:
        if bar is not None:
            bar.close()
    for wr in writers:
        wr.close()
    os.close(raw_fd)
    for o in outputs:
        os.replace(work / o.path.name, o.path)
    shutil.rmtree(work, ignore_errors=True)
    return TiledRun(done - start, total, time.perf_counter() - t0, [o.path for o in outputs], start)


def _checkpoint(work: Path, fp: str, next_tile: int, rows_done: int,
                pending: dict[int, tuple[np.ndarray, np.ndarray]], raw_fd: int) -> None:
    os.fsync(raw_fd)
    rows = sorted(pending)
    name = f'carry-{next_tile}.npz'
    tmp = work / (name + '.tmp.npz')
    wp = next(iter(pending.values()))[0].shape if pending else (0, 0)
    np.savez(
        tmp, rows=np.asarray(rows, dtype=np.int64),
        acc=np.stack([pending[r][0] for r in rows]) if rows else np.zeros((0, *wp), np.float32),
        w=np.stack([pending[r][1] for r in rows]) if rows else np.zeros((0, wp[0]), np.float32),
    )
    os.replace(tmp, work / name)
    ptmp = work / 'progress.json.tmp'
    ptmp.write_text(json.dumps({'fingerprint': fp, 'next_tile': next_tile, 'rows_done': rows_done, 'carry': name}))
    os.replace(ptmp, work / 'progress.json')
    for old in work.glob('carry-*.npz'):
        if old.name != name:
            old.unlink(missing_ok=True)
