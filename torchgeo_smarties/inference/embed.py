"""Georeferenced embeddings of whole scenes: raster in, GeoTIFF (or GeoParquet) out.

.. versionadded:: 0.1
"""

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from ..errors import InputError
from ..models import SMARTIESViT, patch_validity
from ..spectrum import ProjectionPlan
from ..transforms import make_normalizer, normalization_preset, normalization_tags
from .engine import OutputSpec, TiledRun, check_writable, run_tiled, state_fingerprint
from .source import RasterSource, open_source, resolve_source_bands
from .tiling import TileGrid

__all__ = ('EmbedResult', 'Precision', 'autocast', 'default_num_workers', 'embed_raster', 'embedding_spec',
           'make_normalizer', 'normalization_preset', 'pool_raster', 'token_validity')

Precision = Literal['fp32', 'bf16', 'fp16']
_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


@dataclass
class EmbedResult:
    """What :func:`embed_raster` / :func:`pool_raster` wrote."""

    output: Path
    bands: tuple[str, ...]
    embed_dim: int
    shape: tuple[int, ...]
    run: TiledRun | None = None
    preview: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def default_num_workers() -> int:
    """DataLoader workers: one fewer than the CPU cores (at most 4), 0 on a single core."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1)
    return max(0, min(4, n - 1))


@contextlib.contextmanager
def autocast(device: torch.device, precision: Precision) -> Iterator[None]:
    """``torch.autocast`` for bf16/fp16, nothing for fp32."""
    if precision == 'fp32':
        yield
        return
    if precision not in _DTYPES:
        raise InputError(f'precision must be fp32, bf16 or fp16, got {precision!r}')
    with torch.autocast(device.type, dtype=_DTYPES[precision]):
        yield


def token_validity(mask: Tensor | None, plan: ProjectionPlan, shape: tuple[int, ...], patch: int = 16) -> Tensor:
    """(B, h, w) bool: the patch has at least one valid, projected band."""
    b, _, h, w = shape
    if mask is None:
        return torch.ones(b, h // patch, w // patch, dtype=torch.bool)
    v = patch_validity(mask, shape, patch) & torch.tensor(plan.active, device=mask.device)[None, :, None, None]
    return v.any(1)


def _dense_fn(model: SMARTIESViT, plan: ProjectionPlan, device: torch.device, precision: Precision,
              layer: int, final_norm: bool) -> Callable[[Tensor, Tensor | None], tuple[Tensor, Tensor]]:
    idx = layer % len(model.blocks)

    @torch.inference_mode()
    def fn(x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        valid = token_validity(mask, plan, tuple(x.shape), model.patch_size)
        x = x.to(device, non_blocking=True)
        m = mask.to(device, non_blocking=True) if mask is not None else None
        with autocast(device, precision):
            out = model.forward_intermediates(x, indices=[idx], bands=plan, band_mask=m, norm=final_norm,
                                              output_fmt='NCHW', intermediates_only=True)[0]
        return out.float(), valid

    return fn


def _render_rows(rows: np.ndarray, dtype: str) -> np.ndarray:
    return np.ascontiguousarray(rows.transpose(2, 0, 1), dtype=dtype)


def embedding_spec(out: Path, model: SMARTIESViT, wdesc: str, band_ids: tuple[str, ...], dtype: str, layer: int,
                   final_norm: bool, tile: int, overlap: int, norm_tags: dict[str, str] | None = None) -> OutputSpec:
    """The embedding GeoTIFF written by :func:`embed_raster`: one float band per channel, NaN nodata, run tags."""
    d = model.embed_dim
    tags = {'SMARTIES_WEIGHTS': wdesc, 'SMARTIES_BANDS': ','.join(band_ids), 'SMARTIES_LAYER': str(layer),
            'SMARTIES_FINAL_NORM': str(final_norm), 'SMARTIES_TILE': str(tile), 'SMARTIES_OVERLAP': str(overlap),
            'SMARTIES_PATCH_SIZE': str(model.patch_size), **(norm_tags or {})}
    return OutputSpec(out, d, dtype, functools.partial(_render_rows, dtype=dtype), float('nan'),
                      [f'emb_{i:04d}' for i in range(d)], tags)


def _prepare(input: str | os.PathLike[str], output: Path, model: SMARTIESViT | None, weights: str | None,
             bands: str | None, sensor: str | None, require_crs: bool, num_heads: int | None,
             log: Callable[[str], None]) -> tuple[RasterSource, tuple[str, ...], SMARTIESViT, str, ProjectionPlan]:
    source = open_source(input, require_crs=require_crs)
    band_ids = resolve_source_bands(source, bands, sensor)
    check_writable(output)
    if model is None:
        from .weights import load_encoder

        model, wdesc = load_encoder(weights, num_heads=num_heads)
    else:
        wdesc = weights or f'in-memory model ({type(model).__name__}, embed_dim {model.embed_dim})'
    log(f'weights: {wdesc}')
    plan = model.plan_for(band_ids)
    log(f'input: {input} ({source.count} bands, {source.height}×{source.width} px, CRS '
        f'{source.crs.to_string() if source.crs else "none"})')
    log('band mapping (channel  band -> learned projection):\n' + plan.describe())
    return source, band_ids, model, wdesc, plan


def embed_raster(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
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
    device: str | torch.device = 'cpu',
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
    on_batch: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] = print,
) -> EmbedResult:
    """Dense SMARTIES embeddings of a raster as a GeoTIFF on the 16-px patch grid.

    One band per embedding channel, one pixel per 16×16 patch; transform = input transform × 16,
    CRS copied, NaN (the nodata value) where the input has no valid band in the patch. Tiles of
    *tile* px overlapping by *overlap* px are blended with a linear ramp on the patch grid.

    Args:
        input: GeoTIFF/COG/VRT or a folder of single-band files.
        output: the GeoTIFF to write (replaced atomically when complete).
        model: an encoder (default: loaded from *weights*).
        weights: see :func:`~torchgeo_smarties.inference.weights.load_encoder` (ignored with *model*, except as
            its label).
        bands: band ids per channel (``'sentinel2:B02,...'`` or a preset name).
        sensor: a preset naming the channels (``'sentinel2_l2a'``).
        stats: a statistics file (:func:`~torchgeo_smarties.transforms.compute_statistics`).
        norm: statistics preset, or ``'none'`` for already-normalised input (default: from the bands).
        normalizer: a callable (1, C, h, w) → (1, C, h, w) used instead of *stats*/*norm*.
        tile: tile size in px (multiple of 16).
        overlap: overlap in px (multiple of 16).
        batch_size: tiles per forward pass.
        num_workers: DataLoader workers (default :func:`default_num_workers`).
        device: torch device.
        precision: ``'fp32'``, ``'bf16'`` or ``'fp16'`` autocast.
        dtype: output data type.
        layer: block whose output is written (default the last; negative counts from the end).
        final_norm: apply the encoder's final LayerNorm (default False, the release's ``all_tokens``).
        resume: continue an interrupted run of the same command (byte-identical result).
        require_crs: refuse rasters without a CRS (default: warn).
        preview: also write a PNG (true colour | PCA-RGB of the embeddings).
        num_heads: heads of a custom-size checkpoint.
        compress: GeoTIFF compression (deflate, zstd, lzw, none).
        progress: show a progress bar.
        on_batch: called with (tiles done, total) after each check-pointed batch.
        log: where messages go.

    Returns:
        An :class:`EmbedResult`.

    Raises:
        InputError, BandCountError, UnknownPresetError, UnknownBandError, CheckpointError: on bad input, before
            anything is written.
    """
    out = Path(output)
    source, band_ids, model, wdesc, plan = _prepare(input, out, model, weights, bands, sensor, require_crs,
                                                    num_heads, log)
    if normalizer is None:
        normalizer = make_normalizer(band_ids, stats, norm, source)
        log(getattr(normalizer, 'describe', lambda: 'normalisation: none (input already normalised)')())
    dev = torch.device(device)
    model = model.to(dev).eval()
    grid = TileGrid(source.height, source.width, tile, overlap, model.patch_size, model.patch_size)
    d = model.embed_dim
    hc, wc = grid.out_shape
    spec = embedding_spec(out, model, wdesc, band_ids, dtype, layer, final_norm, tile, overlap,
                          normalization_tags(normalizer))
    fp = {'input': str(Path(input).resolve()), 'bands': band_ids, 'model': state_fingerprint(model),
          'layer': layer, 'final_norm': final_norm, 'precision': precision, 'stats': str(stats), 'norm': norm}
    nw = default_num_workers() if num_workers is None else num_workers
    log(f'output: {out} ({d} bands {dtype}, {hc}×{wc} patches), {len(grid)} tiles of {grid.tile_hw[0]}×'
        f'{grid.tile_hw[1]} px, overlap {overlap} px, batch {batch_size}, {nw} workers, {dev} {precision}')
    run = run_tiled(source, grid, _dense_fn(model, plan, dev, precision, layer, final_norm), d, [spec],
                    normalize=normalizer, batch_size=batch_size, num_workers=nw, resume=resume, fingerprint=fp,
                    progress=progress, on_batch=on_batch, compress=compress)
    if run.resumed_from:
        log(f'resumed at tile {run.resumed_from} of {run.tiles_total}')
    log(f'wrote {out} ({run.tiles_run} tiles in {run.seconds:.1f} s, {run.tiles_run / max(run.seconds, 1e-9):.2f} '
        'tiles/s)')
    res = EmbedResult(out, band_ids, d, (d, hc, wc), run)
    if preview is not None:
        from .preview import write_preview

        res.preview = write_preview(source, band_ids, out, Path(preview), title=f'{Path(input).name} — {wdesc}')
        log(f'wrote preview {res.preview}')
    source.close()
    return res


def pool_raster(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    model: SMARTIESViT | None = None,
    weights: str | None = None,
    bands: str | None = None,
    sensor: str | None = None,
    stats: str | os.PathLike[str] | None = None,
    norm: str | None = None,
    normalizer: Callable[[Tensor], Tensor] | None = None,
    tile: int = 224,
    pool: Literal['mean', 'cls'] = 'mean',
    batch_size: int = 8,
    num_workers: int | None = None,
    device: str | torch.device = 'cpu',
    precision: Precision = 'fp32',
    require_crs: bool = False,
    num_heads: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> EmbedResult:
    """One embedding per non-overlapping tile, with its footprint polygon, as GeoParquet (or CSV).

    ``pool='mean'``: mean of the tile's valid patch tokens (last block, final norm applied — the release's
    ``global_pool=True`` feature); ``'cls'``: the CLS token after the final norm. The output format follows
    the suffix: ``.parquet`` (GeoParquet via geopandas, geometry in the raster's CRS) or ``.csv`` (WKT
    geometry); GeoParquet falls back to CSV with a message when geopandas/pyarrow are missing. Tiles with no
    valid pixel are skipped.
    """
    from torch.utils.data import DataLoader

    from .engine import TileDataset

    out = Path(output)
    source, band_ids, model, wdesc, plan = _prepare(input, out, model, weights, bands, sensor, require_crs,
                                                    num_heads, log)
    if normalizer is None:
        normalizer = make_normalizer(band_ids, stats, norm, source)
    dev = torch.device(device)
    model = model.to(dev).eval()
    grid = TileGrid(source.height, source.width, tile, 0, model.patch_size, model.patch_size)
    nw = default_num_workers() if num_workers is None else num_workers
    loader = DataLoader(TileDataset(source, grid, normalizer), batch_size=batch_size, num_workers=nw)
    rows: list[tuple[int, int, int, int, int, np.ndarray]] = []
    th, tw = grid.tile_hw
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(grid), unit='tile', desc='tiles')
    with torch.inference_mode():
        for x, m, idx in loader:
            mask = None if bool(m.all()) else m
            valid = token_validity(mask, plan, tuple(x.shape), model.patch_size)
            xd = x.to(dev)
            md = mask.to(dev) if mask is not None else None
            with autocast(dev, precision):
                feats = model.forward_features(xd, bands=plan, band_mask=md).float().cpu()
            if pool == 'cls':
                vec = feats[:, 0]
            else:
                tok = feats[:, 1:]
                v = valid.reshape(len(x), -1, 1).float()
                vec = (tok * v).sum(1) / v.sum(1).clamp_min(1)
            for b, i in enumerate(idx.tolist()):
                if not bool(valid[b].any()):
                    continue
                r0, c0 = grid.origin(i)
                h, w = min(th, source.height - r0), min(tw, source.width - c0)
                rows.append((i, r0, c0, h, w, vec[b].numpy()))
            if bar is not None:
                bar.update(len(idx))
    if bar is not None:
        bar.close()
    _write_vectors(out, rows, source, band_ids, wdesc, pool, log)
    source.close()
    return EmbedResult(out, band_ids, model.embed_dim, (len(rows), model.embed_dim))


def _write_vectors(out: Path, rows: list[tuple[int, int, int, int, int, np.ndarray]], source: RasterSource,
                   band_ids: tuple[str, ...], wdesc: str, pool: str, log: Callable[[str], None]) -> None:
    from shapely.geometry import box

    t = source.transform
    geoms = []
    for _, r0, c0, h, w, _v in rows:
        x0, y0 = t @ (c0, r0)
        x1, y1 = t @ (c0 + w, r0 + h)
        geoms.append(box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
    tmp = out.with_name(out.name + '.partial')
    emb = np.stack([r[5] for r in rows]).astype(np.float32) if rows else np.zeros((0, 0), np.float32)
    meta = {'tile': [r[0] for r in rows], 'row_off': [r[1] for r in rows], 'col_off': [r[2] for r in rows],
            'height': [r[3] for r in rows], 'width': [r[4] for r in rows]}
    try:
        if out.suffix.lower() in ('.parquet', '.geoparquet'):
            try:
                import geopandas as gpd
            except ImportError:
                out = out.with_suffix('.csv')
                tmp = out.with_name(out.name + '.partial')
                log(f'geopandas is not installed: writing CSV instead ({out})')
            else:
                gdf = gpd.GeoDataFrame(meta, geometry=geoms, crs=source.crs.to_wkt() if source.crs else None)
                gdf['embedding'] = list(emb)
                gdf.attrs = {}
                gdf.to_parquet(tmp, index=False, schema_version=None)
                os.replace(tmp, out)
                log(f'wrote {out} ({len(rows)} tiles × {emb.shape[1] if rows else 0}-d {pool} embeddings, GeoParquet)')
                return
        import csv

        with open(tmp, 'w', newline='') as f:
            wr = csv.writer(f)
            d = emb.shape[1] if rows else 0
            wr.writerow([*meta, 'geometry', *(f'emb_{i:04d}' for i in range(d))])
            for k, g in enumerate(geoms):
                wr.writerow([*(meta[c][k] for c in meta), g.wkt, *(f'{v:.7g}' for v in emb[k])])
        os.replace(tmp, out)
        crs = source.crs.to_string() if source.crs else 'none'
        log(f'wrote {out} ({len(rows)} tiles × {emb.shape[1] if rows else 0}-d {pool} embeddings, CSV, CRS {crs})')
    finally:
        if tmp.exists():
            tmp.unlink()
