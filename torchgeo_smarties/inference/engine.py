"""Streaming, resumable sliding-window inference from a raster to GeoTIFF outputs.

The engine reads tiles in row-major order through a :class:`torch.utils.data.DataLoader`
(workers read and normalise the next tiles while the model runs), blends each tile's output
into a :class:`BlendAccumulator` of pending output rows, and streams finished rows out:

* to a raw row-major store ``<output>.partial/data.f32`` (``(rows, cols, bands)`` float32), and
* to the GeoTIFF(s), one complete block row at a time (so GDAL's writes are the same whatever the
  history of the run), pixel-interleaved through :class:`~torchgeo_smarties.inference.gtiff.PixelWriter` where
  it applies; blocks hold at most :data:`BLOCK_BYTES` (:func:`block_rows`).

After a batch that finishes output rows, the accumulator and the position are check-pointed
(``progress.json`` + ``carry-<tile>.npz``), at most every ``TilingOptions.checkpoint_seconds`` (default 10 s: an
interrupted run loses at most that much work, and a fast accelerator is not held up by a checkpoint per tile row;
0 checkpoints after every finished tile row). ``resume=True``
restarts from that point: finished rows are replayed from the raw store, the batches keep the same composition,
and the result is byte-identical to an uninterrupted run. ``progress.json`` records a fingerprint of the run (the
input files' size, mtime and sampled-content hash, the normalisation, the weights and every option,
see :func:`compare_fingerprints`); a resume whose fingerprint differs is refused with a
:class:`~torchgeo_smarties.errors.ResumeError` naming what changed. Outputs are written inside
``<output>.partial/`` and moved into place only when complete; the folder is removed on success.

Memory: the prefetched batches (``batch_size × (workers + 1) × prefetch``), the model, and the
pending accumulator ``(tile + tile - overlap) / out_scale`` rows × output width × bands.

.. versionadded:: 0.1
"""

import hashlib
import json
import math
import os
import queue
import shutil
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import rasterio
import torch
from affine import Affine
from rasterio.errors import RasterioError
from rasterio.windows import Window
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import InputError, ResumeError, SmartiesError
from ..transforms.normalize import SmartiesNormalize
from .gtiff import PixelWriter, pixel_writer_supported
from .job import TilingOptions
from .outputs import check_outputs, disk_full_error, is_disk_full
from .source import RasterSource
from .tiling import TileGrid

__all__ = (
    'BLOCK_BYTES',
    'FINGERPRINT_VERSION',
    'RUN_BYTES',
    'BlendAccumulator',
    'BlockWriter',
    'OutputSpec',
    'TileBatch',
    'TileDataset',
    'TiledRun',
    'block_rows',
    'check_partial',
    'check_writable',
    'compare_fingerprints',
    'corrupt_partial',
    'output_block',
    'output_profile',
    'run_fingerprint',
    'run_tiled',
    'state_fingerprint',
    'tile_contribution',
    'tile_loader',
    'unwrap_worker_error',
    'worker_init',
)

#: A model step: (x (B, C, h, w) normalised, mask (B, C, h, w) bool or None) -> (out (B, K, h', w'), valid (B, h', w')).
ModelFn = Callable[[Tensor, Tensor | None], tuple[Tensor, Tensor]]
Normalizer = Callable[[Tensor], Tensor]
#: Version of the ``progress.json`` layout; partial runs of other versions are refused.
FINGERPRINT_VERSION = 2


@dataclass
class OutputSpec:
    """One GeoTIFF written from the blended values.

    Attributes:
        path: final path of the file.
        count: number of bands.
        dtype: GDAL/numpy data type name.
        render: maps finished rows (n, W, K) float32 (NaN = no data) to pixel-interleaved (n, W, count) in *dtype*
            (any row stride; a view of the rows is fine: it is written before they change).
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
    """Raise :class:`~torchgeo_smarties.errors.OutputError` unless a file can be created at *path*."""
    check_outputs([('output', path)])


class TileBatch(NamedTuple):
    """A batch of tiles as :func:`tile_loader` yields it.

    Attributes:
        x: (B, C, h, w) normalised float32, invalid pixels 0.
        valid: (B, C, h, w) bool, the reader's validity (nodata, masks, NaN).
        tiles: (B,) int64 tile indices of the grid.
        all_valid: every pixel of the batch is valid (found once by the loader, so consumers need not scan).
    """

    x: Tensor
    valid: Tensor
    tiles: Tensor
    all_valid: bool

    @property
    def mask(self) -> Tensor | None:
        """The validity to hand the model: ``None`` when every pixel is valid (the encoder's unmasked path)."""
        return None if self.all_valid else self.valid


class TileDataset(Dataset):  # type: ignore[type-arg]
    """Tiles ``start..`` of a :class:`TileGrid`: normalised float32 (C, h, w), validity (C, h, w), index.

    A :class:`~torch.utils.data.DataLoader` fetches whole batches through :meth:`__getitems__` (use
    :func:`tile_loader`): the overlapping tiles of one tile row are read as one window (:meth:`TileGrid.runs`) and
    cut into one float32 batch buffer (a lone tile is read straight into it), which is normalised in place: no
    per-tile tensors, no collation copy, every input block decoded once.
    """

    def __init__(self, source: RasterSource, grid: TileGrid, normalize: Normalizer | None, start: int = 0) -> None:
        self.source, self.grid, self.normalize, self.start = source, grid, normalize, start

    def __len__(self) -> int:
        return len(self.grid) - self.start

    def __getitem__(self, k: int) -> tuple[Tensor, Tensor, int]:
        b = self.__getitems__([k])
        return b.x[0], b.valid[0], int(b.tiles[0])

    def __getitems__(self, ks: Sequence[int]) -> TileBatch:
        """The batch of tiles ``start + k`` for *ks* (what the DataLoader's fetcher calls for a batch)."""
        th, tw = self.grid.tile_hw
        tiles = [self.start + int(k) for k in ks]
        vals = np.empty((len(tiles), self.source.count, th, tw), np.float32)
        valid = np.empty(vals.shape, bool)
        # a run's buffer (values + validity) stays under RUN_BYTES: hyperspectral rasters read tile by tile
        max_width = RUN_BYTES // max(1, self.source.count * th * 5)
        for r0, c0, width, members in self.grid.runs(tiles, max_width):
            if len(members) == 1:  # read straight into the batch buffer
                j = members[0][0]
                self._read(r0, c0, width, tiles, members, out=(vals[j], valid[j]))
                continue
            # one read of the run (each block decoded once, by every GDAL thread), then the tiles are cut from it
            run_vals, run_valid = self._read(r0, c0, width, tiles, members)
            for j, off in members:
                vals[j] = run_vals[:, :, off:off + tw]
                valid[j] = run_valid[:, :, off:off + tw]
        x, m = torch.from_numpy(vals), torch.from_numpy(valid)
        index = torch.tensor(tiles, dtype=torch.int64)
        all_valid = bool(valid.all())
        norm = self.normalize
        if isinstance(norm, SmartiesNormalize):
            # the reader already knows which pixels are valid: one pass per step, invalid pixels -> 0, in place
            return TileBatch(norm.normalize(x, valid=m, inplace=True), m, index, all_valid)
        if norm is not None:
            x = norm(x)
        x = torch.where(m, x, torch.zeros((), dtype=x.dtype))  # no NaN/garbage reaches the model
        return TileBatch(x.float().contiguous(), m, index, all_valid)

    def _read(self, r0: int, c0: int, width: int, tiles: list[int], members: list[tuple[int, int]],
              out: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        th = self.grid.tile_hw[0]
        try:
            return self.source.read(Window(c0, r0, width, th), out=out)
        except (RasterioError, OSError) as err:  # the reader's typed errors pass through unchanged
            names = ', '.join(str(tiles[j]) for j, _ in members)
            raise InputError(
                f'cannot read tile{"s" if len(members) > 1 else ""} {names} (rows {r0}-{r0 + th}, cols '
                f'{c0}-{c0 + width}) of {", ".join(self.source.paths)}: {" ".join(str(err).split())[:200]}; the '
                'file may be truncated or corrupt (check it with gdalinfo -checksum)'
            ) from None


def _as_batch(batch: Any) -> Any:
    """``collate_fn`` of :func:`tile_loader`: :meth:`TileDataset.__getitems__` already returns the batch."""
    return batch


def tile_loader(dataset: TileDataset, tiling: TilingOptions, sampler: Sampler[int] | None = None,
                persistent: bool = False) -> 'DataLoader[TileBatch]':
    """The DataLoader of *dataset* with *tiling*'s batch size and workers: it yields :class:`TileBatch` es."""
    nw = tiling.workers
    return DataLoader(dataset, batch_size=tiling.batch_size, sampler=sampler, num_workers=nw, collate_fn=_as_batch,
                      worker_init_fn=worker_init if nw else None, prefetch_factor=2 if nw else None,
                      persistent_workers=persistent and bool(nw))


def worker_init(_: int) -> None:
    """DataLoader ``worker_init_fn``: one intra-op thread per worker (the model's threads stay in the main process)."""
    torch.set_num_threads(1)


def unwrap_worker_error(err: SmartiesError) -> SmartiesError:
    """The typed error raised in a DataLoader worker, without the worker's traceback that PyTorch adds to it.

    PyTorch re-raises a worker's exception in the main process as ``type(err)(<header + formatted traceback>)``;
    this returns ``type(err)(<original message>)`` so the CLI prints one line.
    """
    text = str(err)
    if 'Original Traceback' not in text:
        return err
    cls = type(err)
    marker = f'{cls.__module__}.{cls.__qualname__}: '
    msg = text[text.rfind(marker) + len(marker):] if marker in text else text.strip().splitlines()[-1]
    return cls(' '.join(msg.split()))


_STATE_HASHES: 'weakref.WeakKeyDictionary[torch.nn.Module, tuple[tuple[Any, ...], str]]' = weakref.WeakKeyDictionary()


def state_fingerprint(model: torch.nn.Module | None) -> str:
    """SHA-1 of a model's state dict (names, shapes, bytes): guards ``--resume`` against changed weights.

    The hash of a model is remembered while none of its tensors is replaced or modified in place (their storage
    and version counters are the key), so a job over many scenes hashes a ViT-B's 330 MB once, not per scene.
    """
    if model is None:
        return hashlib.sha1().hexdigest()
    state = model.state_dict(keep_vars=True)
    key = tuple((k, v.data_ptr(), v._version, tuple(v.shape), v.dtype, v.device) for k, v in state.items())
    cached = _STATE_HASHES.get(model)
    if cached is not None and cached[0] == key:
        return cached[1]
    h = hashlib.sha1()
    for k, v in state.items():
        h.update(k.encode())
        h.update(str(tuple(v.shape)).encode())
        h.update(v.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes() if v.numel() else b'')
    _STATE_HASHES[model] = (key, h.hexdigest())
    return h.hexdigest()


class BlockWriter:
    """Buffers finished rows until a whole GeoTIFF block row is complete, then writes it.

    Multi-band outputs go through :class:`~torchgeo_smarties.inference.gtiff.PixelWriter` (GDAL copies the
    pixel-interleaved rows straight into its tiles) where
    :func:`~torchgeo_smarties.inference.gtiff.pixel_writer_supported` says so, through rasterio otherwise; both
    write the same file.
    """

    def __init__(self, spec: OutputSpec, tmp: Path, profile: dict[str, Any]) -> None:
        self.spec, self.tmp = spec, tmp
        self.block = int(profile['blockysize'])  # rows per write: whole block rows
        self.height, self.width = int(profile['height']), int(profile['width'])
        self.pixels: PixelWriter | None = None
        self.ds: Any = None
        if pixel_writer_supported(profile, spec.colormap):
            self.pixels = PixelWriter(tmp, profile, spec.descriptions, spec.tags)
        else:
            # rasterio's writes cost GDAL a pass per band and call: write at least 64 rows at a time
            self.block *= math.ceil(64 / self.block)
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
        """Append finished rows (n, W, K); writes every block row that is complete."""
        self.buf.append(rows)
        n = sum(len(b) for b in self.buf)
        end = self.y0 + n
        while n >= self.block or (end >= self.height and n):
            allrows = np.concatenate(self.buf) if len(self.buf) > 1 else self.buf[0]
            take = min(self.block, n)
            out = self.spec.render(allrows[:take])  # (take, W, count)
            if self.pixels is not None:
                self.pixels.write(self.y0, out)
            else:
                self.ds.write(np.ascontiguousarray(out.transpose(2, 0, 1)), window=Window(0, self.y0, self.width, take))
            self.y0 += take
            rest = allrows[take:]
            self.buf = [rest] if len(rest) else []
            n -= take

    def close(self) -> None:
        """Close the dataset (flushes GDAL's cache)."""
        if self.pixels is not None:
            self.pixels.close()
        if self.ds is not None:
            self.ds.close()


#: Most bytes of one run read by :class:`TileDataset` (float32 values + bool validity, see :meth:`TileGrid.runs`).
RUN_BYTES = 64 << 20
#: Most uncompressed bytes in one GeoTIFF block of an output with many bands (see :func:`block_rows`).
BLOCK_BYTES = 1 << 20


def block_rows(grid: TileGrid, block_size: int = 64, cell_bytes: int = 0) -> int:
    """GeoTIFF block side (cells) of an output of *grid* whose cells hold *cell_bytes* bytes (bands × item size).

    *block_size*, halved (down to 16) while a block would hold more than :data:`BLOCK_BYTES` uncompressed, then
    shrunk to the output for small outputs. A 768-band float32 embedding gets 16 × 16 blocks (768 KiB): one pixel's
    vector costs one such block to read instead of 12 MiB at 64 × 64, and the writer hands GDAL a block row every
    16 rows, so writes are small and spread over the run.
    """
    side = block_size
    while side > 16 and side * side * cell_bytes > BLOCK_BYTES:
        side = max(16, 16 * math.ceil(side / 32))
    hc, wc = grid.out_shape
    return max(16, min(side, 16 * math.ceil(max(hc, wc) / 16)))


def output_block(o: 'OutputSpec', grid: TileGrid, block_size: int) -> int:
    """:func:`block_rows` for output *o*."""
    return block_rows(grid, block_size, o.count * np.dtype(o.dtype).itemsize)


def output_profile(o: OutputSpec, source: RasterSource, grid: TileGrid, block: int, compress: str) -> dict[str, Any]:
    """The rasterio profile of output *o*: tiled GeoTIFF on the grid of ``out_scale``, CRS copied, transform × s."""
    hc, wc = grid.out_shape
    profile: dict[str, Any] = {
        'driver': 'GTiff', 'width': wc, 'height': hc, 'count': o.count, 'dtype': o.dtype, 'crs': source.crs,
        'transform': source.transform @ Affine.scale(grid.out_scale), 'nodata': o.nodata, 'tiled': True,
        'blockxsize': block, 'blockysize': block, 'compress': compress,
        'interleave': 'pixel' if o.count > 1 else 'band', 'BIGTIFF': 'IF_SAFER',
    }
    if compress.lower() in ('deflate', 'lzw', 'zstd', 'lzma'):
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


class BlendAccumulator:
    """Blending sums of the output rows ``[y0, y0 + rows)``: ``acc = Σ w·out`` (rows, W, K), ``wsum = Σ w`` (rows, W).

    One implementation for the single-process engine (a window of pending rows that slides down the raster:
    :meth:`pop`) and the DDP path (each rank's span of rows, memory-mapped: pass the arrays). Additions are
    vectorised per tile, in float32, in tile order, so equal tile sequences give equal bits.

    Args:
        acc: ``(rows, W, K)`` float32 sums (may be a view of a memory map).
        wsum: ``(rows, W)`` float32 weight sums.
        y0: the output row of ``acc[0]``.
    """

    def __init__(self, acc: np.ndarray, wsum: np.ndarray, y0: int = 0) -> None:
        self.acc, self.wsum, self.y0 = acc, wsum, y0
        self._cache: dict[tuple[bool, ...], np.ndarray] = {}
        # buffers this accumulator grew into: ``acc``/``wsum`` are views of their first rows, so the sliding
        # window reuses them (no allocation, page faults or zero-filled copy per tile row)
        self._base: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def zeros(cls, rows: int, width: int, channels: int, y0: int = 0) -> 'BlendAccumulator':
        """An empty accumulator of *rows* × *width* cells with *channels* values each."""
        return cls(np.zeros((rows, width, channels), np.float32), np.zeros((rows, width), np.float32), y0)

    @property
    def rows(self) -> int:
        """Number of rows held."""
        return int(self.acc.shape[0])

    def _ensure(self, end: int) -> None:
        rows, need = self.rows, end - self.y0
        if need <= rows:
            return
        if self._base is None or need > len(self._base[0]):
            _, w, k = self.acc.shape
            acc, wsum = np.zeros((need, w, k), np.float32), np.zeros((need, w), np.float32)
            acc[:rows], wsum[:rows] = self.acc, self.wsum
            self._base = acc, wsum
        else:  # the rows past the window hold old sums
            self._base[0][rows:need] = 0.0
            self._base[1][rows:need] = 0.0
        self.acc, self.wsum = self._base[0][:need], self._base[1][:need]

    def add(self, y: int, x: int, out: np.ndarray, weights: np.ndarray) -> None:
        """Add one tile: *out* (h, w, K) with *weights* (h, w) at output row *y*, column *x*."""
        h, w = weights.shape
        self._ensure(y + h)
        r = y - self.y0
        self.acc[r:r + h, x:x + w] += weights[..., None] * out
        self.wsum[r:r + h, x:x + w] += weights

    def add_tiles(self, grid: TileGrid, tiles: Sequence[int], out: np.ndarray, valid: np.ndarray) -> None:
        """Add a batch of tiles of *grid*: *out* (B, h, w, K), output validity *valid* (B, h, w)."""
        for b, i in enumerate(tiles):
            y, x, wv = tile_contribution(grid, i, valid[b], self._cache)
            self.add(y, x, out[b], wv)

    def blended(self, lo: int, hi: int) -> np.ndarray:
        """Blended values (hi - lo, W, K) of rows ``[lo, hi)``: ``acc / wsum``, NaN where no tile has weight."""
        a, ws = self.acc[lo - self.y0:hi - self.y0], self.wsum[lo - self.y0:hi - self.y0]
        with np.errstate(invalid='ignore', divide='ignore'):
            vals = a / ws[..., None]
        vals[ws == 0] = np.nan
        return vals

    def merge(self, other: 'BlendAccumulator') -> None:
        """Add the sums of *other* on the rows both hold."""
        lo, hi = max(self.y0, other.y0), min(self.y0 + self.rows, other.y0 + other.rows)
        if lo < hi:
            self.acc[lo - self.y0:hi - self.y0] += other.acc[lo - other.y0:hi - other.y0]
            self.wsum[lo - self.y0:hi - self.y0] += other.wsum[lo - other.y0:hi - other.y0]

    def pop(self, limit: int) -> np.ndarray:
        """Blended values of rows ``[y0, limit)``, which are then dropped (the window starts at *limit*)."""
        limit = max(limit, self.y0)
        self._ensure(limit)
        vals = self.blended(self.y0, limit)
        n = limit - self.y0
        if self._base is None:
            self.acc, self.wsum = self.acc[n:], self.wsum[n:]
        else:  # move the rows still pending (the overlap) to the front of the buffers
            live = self.rows - n
            acc, wsum = self._base
            acc[:live], wsum[:live] = self.acc[n:], self.wsum[n:]
            self.acc, self.wsum = acc[:live], wsum[:live]
        self.y0 = limit
        return vals

    def save(self, path: Path) -> None:
        """Write the accumulator to an ``.npz`` file (see :meth:`load`)."""
        np.savez(path, y0=np.int64(self.y0), acc=self.acc, w=self.wsum)

    @classmethod
    def load(cls, path: Path) -> 'BlendAccumulator':
        """Read an accumulator written by :meth:`save`."""
        with np.load(path) as z:
            return cls(z['acc'].astype(np.float32, copy=True), z['w'].astype(np.float32, copy=True), int(z['y0']))


@dataclass
class TiledRun:
    """What :func:`run_tiled` did: tiles processed now / in total, seconds, the outputs written."""

    tiles_run: int
    tiles_total: int
    seconds: float
    outputs: list[Path]
    resumed_from: int = 0


def compare_fingerprints(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """What differs between a partial run's fingerprint *old* and this run's *new*, in words (None if equal)."""
    if old == new:
        return None
    oi, ni = old.get('input'), new.get('input')
    if oi != ni:
        if not isinstance(oi, list) or not isinstance(ni, list) or len(oi) != len(ni) \
                or [f.get('file') for f in oi] != [f.get('file') for f in ni]:
            return 'the input is another file (or other files) than in the partial run'
        for a, b in zip(oi, ni):
            if a == b:
                continue
            name = b['file']
            if a.get('size') != b.get('size'):
                return (f'the input file {name!r} changed since the partial run (size {a.get("size")} → '
                        f'{b["size"]} bytes)')
            if a.get('sha1') != b.get('sha1'):
                return f'the input file {name!r} changed since the partial run (its content differs)'
            return (f'the input file {name!r} changed since the partial run (modified: mtime_ns {a.get("mtime_ns")} → '
                    f'{b["mtime_ns"]})')
    labels = {'bands': 'the band list', 'normalization': 'the normalisation (statistics)',
              'weights': 'the model weights'}
    for key, label in labels.items():
        if old.get(key) != new.get(key):
            a, b = old.get(key), new.get(key)
            if key == 'weights':
                return f'{label} changed since the partial run (state hash {str(a)[:12]}… → {str(b)[:12]}…)'
            if key == 'bands':
                return f'{label} changed since the partial run ({a} → {b})'
            return f'{label} changed since the partial run'
    oo, no = old.get('options', {}), new.get('options', {})
    diffs = [f'{k} {oo.get(k)!r} → {no.get(k)!r}' for k in sorted(set(oo) | set(no)) if oo.get(k) != no.get(k)]
    if diffs:
        return 'options changed since the partial run: ' + ', '.join(diffs)
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return f'the run differs from the partial run ({", ".join(keys)})'


def corrupt_partial(work: Path, detail: str) -> ResumeError:
    """The error for an unreadable or inconsistent partial run in *work* (*detail* says what is wrong)."""
    return ResumeError(f'the partial run in {str(work)!r} is corrupt ({detail}); remove it with '
                       f'rm -r {str(work)!r} and rerun without --resume')


def check_partial(work: Path, state: dict[str, Any], fingerprint: dict[str, Any]) -> None:
    """Refuse to resume from the check-point record *state* of *work* unless it matches *fingerprint*.

    Raises:
        ResumeError: if *state* was written by another version or by a run whose input, normalisation, weights or
            options differ (the message names what changed).
    """
    old = state.get('fingerprint')
    if state.get('version') != FINGERPRINT_VERSION or not isinstance(old, dict):
        raise ResumeError(f'the partial run in {str(work)!r} was written by another version of '
                          'torchgeo_smarties; rerun without --resume to start over')
    what = compare_fingerprints(old, fingerprint)
    if what is not None:
        raise ResumeError(f'cannot resume from {str(work)!r}: {what}; rerun with the same input and options, '
                          f'or without --resume to start over (or rm -r {str(work)!r})')


class _Store:
    """The work folder of a run: raw row store, checkpoints, the GeoTIFFs being written."""

    def __init__(self, work: Path, grid: TileGrid, channels: int, fingerprint: dict[str, Any]) -> None:
        self.work, self.grid, self.channels, self.fp = work, grid, channels, fingerprint
        self.row_bytes = grid.out_shape[1] * channels * 4
        self.fd = -1
        self.checkpoints = 0

    def start(self, resume: bool) -> tuple[int, int, BlendAccumulator]:
        """Open (resume) or create the work folder: ``(next tile, rows done, accumulator)``."""
        wp = self.grid.padded_out_shape[1]
        prog = self.work / 'progress.json'
        if resume and prog.is_file():
            start, rows_done, acc = self._load(prog)
        else:
            if self.work.exists():
                shutil.rmtree(self.work) if self.work.is_dir() else self.work.unlink()
            self.work.mkdir(parents=True)
            start, rows_done, acc = 0, 0, BlendAccumulator.zeros(0, wp, self.channels)
        self.fd = os.open(self.work / 'data.f32', os.O_RDWR | os.O_CREAT, 0o644)
        return start, rows_done, acc

    def _corrupt(self, detail: str) -> ResumeError:
        return corrupt_partial(self.work, detail)

    def _load(self, prog: Path) -> tuple[int, int, BlendAccumulator]:
        try:
            state = json.loads(prog.read_text())
            state['fingerprint']  # a record without one is corrupt (KeyError)
            start, rows_done, carry = int(state['next_tile']), int(state['rows_done']), str(state['carry'])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise self._corrupt(f'unreadable progress.json: {type(err).__name__}: {err}') from None
        check_partial(self.work, state, self.fp)
        raw = self.work / 'data.f32'
        if not 0 <= start <= len(self.grid) or not 0 <= rows_done <= self.grid.out_shape[0]:
            raise self._corrupt(f'position {start}/{rows_done} out of range')
        if not raw.is_file() or raw.stat().st_size < rows_done * self.row_bytes:
            raise self._corrupt(f'{raw.name} is missing or shorter than the {rows_done} rows it should hold')
        try:
            acc = BlendAccumulator.load(self.work / carry)
        except Exception as err:  # numpy raises OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError...
            raise self._corrupt(f'unreadable carry file {carry!r}: {type(err).__name__}') from None
        if acc.acc.ndim != 3 or acc.acc.shape[1:] != (self.grid.padded_out_shape[1], self.channels):
            raise self._corrupt(f'carry file {carry!r} has the wrong shape {acc.acc.shape}')
        return start, rows_done, acc

    def write_rows(self, y0: int, rows: np.ndarray) -> None:
        """Store finished rows at row *y0* of the raw store (no copy of a contiguous float32 block)."""
        buf = memoryview(np.ascontiguousarray(rows, dtype=np.float32)).cast('B')
        off = y0 * self.row_bytes
        while len(buf):  # pwrite may write less than asked
            n = os.pwrite(self.fd, buf, off)
            buf, off = buf[n:], off + n

    def read_rows(self, y0: int, n: int) -> np.ndarray:
        """Rows ``[y0, y0 + n)`` of the raw store."""
        buf = os.pread(self.fd, n * self.row_bytes, y0 * self.row_bytes)
        return np.frombuffer(buf, dtype=np.float32).reshape(n, self.grid.out_shape[1], self.channels)

    def checkpoint(self, next_tile: int, rows_done: int, acc: BlendAccumulator) -> None:
        """Make the state after tile *next_tile* - 1 durable (raw store synced, carry, then progress.json)."""
        os.fsync(self.fd)
        name = f'carry-{next_tile}.npz'
        tmp = self.work / (name + '.tmp.npz')
        acc.save(tmp)
        os.replace(tmp, self.work / name)
        ptmp = self.work / 'progress.json.tmp'
        ptmp.write_text(json.dumps({'version': FINGERPRINT_VERSION, 'fingerprint': self.fp, 'next_tile': next_tile,
                                    'rows_done': rows_done, 'carry': name}, default=str))
        os.replace(ptmp, self.work / 'progress.json')
        for old in self.work.glob('carry-*.npz'):
            if old.name != name:
                old.unlink(missing_ok=True)
        self.checkpoints += 1

    def close(self) -> None:
        """Close the raw store."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def run_fingerprint(fingerprint: dict[str, Any] | None, grid: TileGrid, channels: int, tiling: TilingOptions,
                    outputs: Sequence[OutputSpec]) -> dict[str, Any]:
    """The fingerprint a resume must match: *fingerprint* plus the tiling and output options.

    See :func:`compare_fingerprints`; the result is normalised as it reads back from JSON.
    """
    fp = dict(fingerprint or {})
    opts = dict(fp.pop('options', {}))
    opts.update({'raster': [grid.height, grid.width], 'tile': grid.tile, 'overlap': grid.overlap,
                 'patch': grid.patch, 'out_scale': grid.out_scale,
                 'channels': channels, 'batch_size': tiling.batch_size, 'compress': tiling.compress,
                 'block': tiling.block_size, 'outputs': [str(o.path) for o in outputs],
                 'dtypes': [o.dtype for o in outputs]})
    fp['options'] = opts
    return json.loads(json.dumps(fp, sort_keys=True, default=str))  # as it reads back from progress.json


def _check_space(work: Path, grid: TileGrid, channels: int, outputs: Sequence[OutputSpec], check: bool = True) -> int:
    """Bytes the run writes at most (raw store + uncompressed outputs); refuses if the raw store cannot fit."""
    hc, wc = grid.out_shape
    raw = hc * wc * channels * 4
    total = raw + sum(hc * wc * o.count * np.dtype(o.dtype).itemsize for o in outputs)
    try:
        free = shutil.disk_usage(work.absolute().parent).free
    except OSError:
        return total
    if check and free < raw:
        raise disk_full_error(outputs[0].path, total)
    return total


def run_tiled(
    source: RasterSource,
    grid: TileGrid,
    model_fn: ModelFn,
    channels: int,
    outputs: Sequence[OutputSpec],
    *,
    normalize: Normalizer | None = None,
    tiling: TilingOptions | None = None,
    resume: bool = False,
    fingerprint: dict[str, Any] | None = None,
    progress: bool = True,
    on_batch: Callable[[int, int], None] | None = None,
    workdir: Path | None = None,
) -> TiledRun:
    """Run *model_fn* over every tile of *grid* and write blended outputs.

    The caller validates the outputs and holds their locks (:class:`~torchgeo_smarties.inference.outputs.OutputLock`).

    Args:
        source: the input raster.
        grid: tile layout (its ``out_scale`` is the input pixels per output cell).
        model_fn: the model step (see ``ModelFn``); outputs must be on the grid of ``out_scale``.
        channels: number of values per output cell (K).
        outputs: the GeoTIFFs to write (all rendered from the same blended values).
        normalize: applied to each (1, C, h, w) float32 tile in the loader (workers).
        tiling: batch size, workers, compression and block size (tile and overlap are *grid*'s).
        resume: continue from ``<first output>.partial/`` if it holds a compatible run.
        fingerprint: what must match for ``resume``: ``input``, ``bands``, ``normalization``, ``weights`` and
            ``options`` (see :func:`compare_fingerprints`); the tiling options are added.
        progress: show a tqdm progress bar.
        on_batch: called after every check-point with (tiles done, tiles total), once it is durable.
        workdir: where partial results live (default ``<first output>.partial``).

    Returns:
        A :class:`TiledRun`.

    Raises:
        ResumeError: if ``resume`` finds an incompatible or corrupt partial run.
        DiskFullError: if the disk fills up (or cannot hold the raw store).
        InputError: if a tile cannot be read.
    """
    tiling = tiling or TilingOptions(grid.tile, grid.overlap)
    main = outputs[0].path
    work = workdir or main.with_name(main.name + '.partial')
    fp = run_fingerprint(fingerprint, grid, channels, tiling, outputs)
    store = _Store(work, grid, channels, fp)
    had_partial = resume and (work / 'progress.json').is_file()
    needed = _check_space(work, grid, channels, outputs, check=not had_partial)
    start, rows_done, acc = store.start(resume)
    t0 = time.perf_counter()
    writers: list[BlockWriter] = []
    finished = False
    try:
        writers = [BlockWriter(o, work / o.path.name,
                               output_profile(o, source, grid, output_block(o, grid, tiling.block_size),
                                              tiling.compress))
                   for o in outputs]
        _replay(store, writers, rows_done, block_rows(grid, tiling.block_size))
        done = _loop(store, writers, source, grid, model_fn, normalize, tiling, start, rows_done, acc, progress,
                     on_batch)
        for wr in writers:
            wr.close()
        writers = []
        for o in outputs:
            os.replace(work / o.path.name, o.path)
        finished = True
    except SmartiesError as err:
        raise unwrap_worker_error(err) from None
    except Exception as err:
        if is_disk_full(err):
            raise disk_full_error(main, needed) from None
        raise
    finally:
        for wr in writers:
            wr.close()
        store.close()
        if finished or (not had_partial and store.checkpoints == 0):
            shutil.rmtree(work, ignore_errors=True)  # done, or failed before anything worth resuming
    return TiledRun(done - start, len(grid), time.perf_counter() - t0, [o.path for o in outputs], start)


def _replay(store: _Store, writers: Sequence[BlockWriter], rows_done: int, chunk: int) -> None:
    """Feed the rows finished by an interrupted run to the writers again (same block-row writes as the first time)."""
    for y in range(0, rows_done, chunk):
        rows = store.read_rows(y, min(chunk, rows_done - y))
        for wr in writers:
            wr.add(rows)


class _Sink:
    """Writes finished rows and checkpoints in a background thread, in submission order, behind a bounded queue.

    GDAL's compression and the raw-store writes release the GIL, so they overlap with the reads and (with
    ``hold=False``) the model. With ``hold=True`` the caller calls :meth:`hold` before each model step, which waits
    until the queue is empty: the writes then share the cores with the reads of the next batch only, and never
    pre-empt the threads of a model that uses every core. An error in the thread is re-raised in the caller at the
    next :meth:`put`, :meth:`hold`, :meth:`flush` or :meth:`close`.
    """

    def __init__(self, maxsize: int = 2, hold: bool = False) -> None:
        self._q: queue.Queue[tuple[Callable[..., None], tuple[Any, ...]] | None] = queue.Queue(maxsize)
        self._err: BaseException | None = None
        self._hold = hold
        self._thread = threading.Thread(target=self._run, name='smarties-writer', daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._q.get()
            try:
                if item is None:
                    return
                if self._err is None:
                    item[0](*item[1])
            except BaseException as err:  # re-raised in the caller's thread
                self._err = err
            finally:
                self._q.task_done()

    def _raise(self) -> None:
        if self._err is not None:
            err, self._err = self._err, None
            raise err

    def put(self, fn: Callable[..., None], *args: Any) -> None:
        """Queue ``fn(*args)`` (blocks while the queue is full)."""
        self._raise()
        self._q.put((fn, args))

    def hold(self) -> None:
        """Before a model step: with ``hold=True`` wait for the queued work; otherwise only re-raise an error."""
        if self._hold:
            self._q.join()
        self._raise()

    def flush(self) -> None:
        """Wait until everything queued is done."""
        self._q.join()
        self._raise()

    def close(self) -> None:
        """Finish the queued work and stop the thread."""
        if self._thread.is_alive():
            self._q.put(None)
            self._thread.join()
        self._raise()


def _emit(store: '_Store', writers: Sequence[BlockWriter], y0: int, rows: np.ndarray) -> None:
    store.write_rows(y0, rows)
    for wr in writers:
        wr.add(rows)


def _loop(store: _Store, writers: Sequence[BlockWriter], source: RasterSource, grid: TileGrid, model_fn: ModelFn,
          normalize: Normalizer | None, tiling: TilingOptions, start: int, rows_done: int, acc: BlendAccumulator,
          progress: bool, on_batch: Callable[[int, int], None] | None) -> int:
    """Run the model on tiles ``start..``, blend, stream finished rows out, checkpoint; returns the tiles done."""
    hc, wc = grid.out_shape
    hp = grid.padded_out_shape[0]
    s, total = grid.out_scale, len(grid)
    nw = tiling.workers
    # without workers the reads run between model steps, on cores the model leaves idle: decode with all of them
    reader = source if nw else source.with_read_threads(torch.get_num_threads())
    loader = tile_loader(TileDataset(reader, grid, normalize, start), tiling)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=start, unit='tile', desc='tiles', dynamic_ncols=True)
    done = start
    every = tiling.checkpoint_seconds
    last_checkpoint = time.perf_counter()
    batches = iter(loader)  # forks the workers before the writer thread exists (fork with threads can deadlock)
    # With workers, reads and writes overlap the model. Without (the CPU default: the model uses every core), the
    # writer compresses the rows of batch k while the main thread reads batch k + 1 (GDAL decoding with every
    # core), and the model step waits for both: nothing pre-empts the model's threads.
    sink = _Sink(hold=not nw)
    try:
        for batch in batches:
            sink.hold()
            out_t, valid_t = model_fn(batch.x, batch.mask)
            idx = batch.tiles
            out = out_t.detach().float().cpu().numpy().transpose(0, 2, 3, 1)  # (B, h, w, K)
            acc.add_tiles(grid, idx.tolist(), out, valid_t.detach().cpu().numpy())
            done = int(idx[-1]) + 1
            limit = hp if done >= total else grid.row_origins[grid.tile_row(done)] // s
            if limit > acc.y0:
                y_first = acc.y0
                vals = acc.pop(limit)  # a new array: safe to hand to the writer thread
                n = min(limit, hc) - y_first
                if n > 0:
                    sink.put(_emit, store, writers, y_first, vals[:n, :wc])
                rows_done = min(hc, limit)
                now = time.perf_counter()
                if now - last_checkpoint >= every:
                    last_checkpoint = now
                    snapshot = BlendAccumulator(acc.acc.copy(), acc.wsum.copy(), acc.y0)  # later tiles add to acc
                    sink.put(store.checkpoint, done, rows_done, snapshot)
                    if on_batch is not None:
                        sink.flush()  # the callback sees a durable checkpoint
                        on_batch(done, total)
            if bar is not None:
                bar.update(len(idx))
        sink.close()
    finally:
        sink.close()  # an interrupted run still completes the writes and checkpoints already queued
        if reader is not source:
            reader.close()
        if bar is not None:
            bar.close()
    return done
