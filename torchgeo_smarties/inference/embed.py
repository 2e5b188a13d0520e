"""Georeferenced embeddings of whole scenes: raster in, GeoTIFF (or GeoParquet) out.

.. versionadded:: 0.1
"""

import contextlib
import dataclasses
import functools
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Unpack

import numpy as np
import torch
from torch import Tensor

from ..errors import InputError, OptionError, SmartiesError
from ..models import SMARTIESViT, patch_validity
from ..spectrum import ProjectionPlan, plan_bands
from ..transforms import make_normalizer, normalization_preset, normalization_tags
from .engine import OutputSpec, TileDataset, TiledRun, run_tiled, state_fingerprint, tile_loader, unwrap_worker_error
from .job import (
    POOLS,
    VECTOR_SUFFIXES,
    DenseOptions,
    EmbedJob,
    EmbedKeywords,
    EncoderSpec,
    PoolKeywords,
    Precision,
    RasterOptions,
    TilingOptions,
    check_choice,
)
from .outputs import OutputLock, atomic_target, check_outputs
from .source import RasterSource
from .tiling import TileGrid

__all__ = (
    'EmbedResult',
    'Precision',
    'autocast',
    'check_vector_output',
    'default_num_workers',
    'dense_fingerprint',
    'dense_step',
    'embed_job',
    'embed_raster',
    'embedding_spec',
    'for_model',
    'make_normalizer',
    'normalization_preset',
    'pool_job',
    'pool_raster',
    'tile_footprints',
    'token_validity',
)

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


def dense_step(model: SMARTIESViT, plan: ProjectionPlan, device: torch.device, precision: Precision,
               block: int, final_norm: bool) -> Callable[[Tensor, Tensor | None], tuple[Tensor, Tensor]]:
    """The engine's model step for dense embeddings: tokens of block *block* (non-negative index) on the patch grid.

    Use :meth:`~torchgeo_smarties.inference.job.DenseOptions.block_index` to turn a user's ``layer`` into *block*.
    """
    if not 0 <= block < len(model.blocks):
        raise OptionError(f'block index {block} does not exist in a {len(model.blocks)}-block encoder')

    @torch.inference_mode()
    def fn(x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        valid = token_validity(mask, plan, tuple(x.shape), model.patch_size)
        x = x.to(device, non_blocking=True)
        m = mask.to(device, non_blocking=True) if mask is not None else None
        with autocast(device, precision):
            out = model.forward_intermediates(x, indices=[block], bands=plan, band_mask=m, norm=final_norm,
                                              output_fmt='NCHW', intermediates_only=True)[0]
        return out.float(), valid

    return fn


def dense_fingerprint(job: EmbedJob, weights_sha1: str, dense: DenseOptions, precision: Precision) -> dict[str, Any]:
    """What a resumed dense-embedding run must share with the interrupted one (before the tiling options)."""
    return {**job.fingerprint(), 'weights': weights_sha1,
            'options': {'layer': dense.layer, 'final_norm': dense.final_norm, 'precision': precision,
                        'stats': job.stats, 'norm': job.norm}}


def _render_rows(rows: np.ndarray, dtype: str) -> np.ndarray:
    return rows.astype(dtype, copy=False)  # (n, W, K): the embedding is the pixel-interleaved row itself


def provenance_tags(job: EmbedJob, weights_sha1: str) -> dict[str, str]:
    """Tags that make an embedding raster a product: the source id, the weights' hash and the normalisation used.

    ``SMARTIES_SOURCE`` is the input as given (path, URL or STAC item); ``SMARTIES_WEIGHTS_SHA1`` is
    :func:`~torchgeo_smarties.inference.engine.state_fingerprint` of the encoder; ``SMARTIES_NORM`` is what
    ``stats=<this output>`` reads back to reproduce the run.
    """
    return {'SMARTIES_SOURCE': job.input, 'SMARTIES_WEIGHTS_SHA1': weights_sha1, **normalization_tags(job.normalizer)}


def run_tags(model: SMARTIESViT, wdesc: str, band_ids: tuple[str, ...], tile: int) -> dict[str, str]:
    """The tags every embedding output carries: the weights, the band ids per channel, the tile and patch size."""
    return {'SMARTIES_WEIGHTS': wdesc, 'SMARTIES_BANDS': ','.join(band_ids), 'SMARTIES_TILE': str(tile),
            'SMARTIES_PATCH_SIZE': str(model.patch_size)}


def embedding_spec(out: Path, model: SMARTIESViT, wdesc: str, band_ids: tuple[str, ...], dtype: str, layer: int,
                   final_norm: bool, tile: int, overlap: int, extra_tags: dict[str, str] | None = None) -> OutputSpec:
    """The embedding GeoTIFF written by :func:`embed_raster`: one float band per channel, NaN nodata, run tags."""
    d = model.embed_dim
    tags = {**run_tags(model, wdesc, band_ids, tile), 'SMARTIES_LAYER': str(layer),
            'SMARTIES_FINAL_NORM': str(final_norm), 'SMARTIES_OVERLAP': str(overlap), **(extra_tags or {})}
    return OutputSpec(out, d, dtype, functools.partial(_render_rows, dtype=dtype), float('nan'),
                      [f'emb_{i:04d}' for i in range(d)], tags)


def for_model(job: EmbedJob, model: SMARTIESViT) -> EmbedJob:
    """*job* with its bands planned under *model*'s interpolation policy and out-of-range rule."""
    plan = plan_bands(job.band_ids, model.interpolation, model.out_of_range)
    return job if plan == job.plan else dataclasses.replace(job, plan=plan)


def _describe(job: EmbedJob, wdesc: str, log: Callable[[str], None]) -> None:
    src = job.source
    log(f'weights: {wdesc}')
    log(f'input: {job.input} ({src.count} bands, {src.height}×{src.width} px, CRS '
        f'{src.crs.to_string() if src.crs else "none"})')
    log('band mapping (channel  band -> learned projection):\n' + job.plan.describe())
    log(getattr(job.normalizer, 'describe', lambda: 'normalisation: none (input already normalised)')())


def embed_job(job: EmbedJob, output: str | os.PathLike[str], encoder: EncoderSpec, tiling: TilingOptions,
              dense: DenseOptions, *, preview: str | os.PathLike[str] | None = None, resume: bool = False,
              progress: bool = True, on_batch: Callable[[int, int], None] | None = None,
              log: Callable[[str], None] = print) -> EmbedResult:
    """:func:`embed_raster` on parameter objects (the options are validated when the objects are built).

    Every output path and option is checked before the first tile; the outputs are locked for the run
    (:class:`~torchgeo_smarties.inference.outputs.OutputLock`) and written atomically.

    Raises:
        OutputError, OutputLockedError, OptionError, ResumeError, DiskFullError, CheckpointError: see
            :func:`embed_raster`.
    """
    from .preview import check_preview_path

    out = Path(output)
    png = None if preview is None else Path(preview)
    if png is not None:
        check_preview_path(png)
    check_outputs([('output', out), *([('preview', png)] if png is not None else [])], job.input_files())
    model, wdesc = encoder.load()
    job = for_model(job, model)
    block = dense.block_index(len(model.blocks))
    dev = encoder.torch_device
    tiling = tiling.on(dev)
    model = model.to(dev).eval()
    src = job.source
    grid = TileGrid(src.height, src.width, tiling.tile, tiling.overlap, model.patch_size, model.patch_size)
    d = model.embed_dim
    hc, wc = grid.out_shape
    weights_sha1 = state_fingerprint(model)
    spec = embedding_spec(out, model, wdesc, job.band_ids, dense.dtype, dense.layer, dense.final_norm, tiling.tile,
                          tiling.overlap, provenance_tags(job, weights_sha1))
    fp = dense_fingerprint(job, weights_sha1, dense, encoder.precision)
    _describe(job, wdesc, log)
    log(f'output: {out} ({d} bands {dense.dtype}, {hc}×{wc} patches), {len(grid)} tiles of {grid.tile_hw[0]}×'
        f'{grid.tile_hw[1]} px, overlap {tiling.overlap} px, batch {tiling.batch_size}, {tiling.workers} workers, '
        f'{dev} {encoder.precision}')
    step = dense_step(model, job.plan, dev, encoder.precision, block, dense.final_norm)
    with OutputLock([out, *([png] if png is not None else [])]):
        run = run_tiled(src, grid, step, d, [spec], normalize=job.normalizer, tiling=tiling, resume=resume,
                        fingerprint=fp, progress=progress, on_batch=on_batch)
        if run.resumed_from:
            log(f'resumed at tile {run.resumed_from} of {run.tiles_total}')
        log(f'wrote {out} ({run.tiles_run} tiles in {run.seconds:.1f} s, '
            f'{run.tiles_run / max(run.seconds, 1e-9):.2f} tiles/s)')
        res = EmbedResult(out, job.band_ids, d, (d, hc, wc), run)
        if png is not None:
            from .preview import write_preview

            res.preview = write_preview(src, job.band_ids, out, png, title=f'{Path(job.input).name} — {wdesc}')
            log(f'wrote preview {res.preview}')
    return res


def embed_raster(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    model: SMARTIESViT | None = None,
    device: str | torch.device = 'cpu',
    resume: bool = False,
    preview: str | os.PathLike[str] | None = None,
    progress: bool = True,
    on_batch: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] = print,
    **options: Unpack[EmbedKeywords],
) -> EmbedResult:
    """Dense SMARTIES embeddings of a raster as a GeoTIFF on the 16-px patch grid.

    One band per embedding channel, one pixel per 16×16 patch; transform = input transform × 16,
    CRS copied, NaN (the nodata value) where the input has no valid band in the patch. Tiles of
    *tile* px overlapping by *overlap* px are blended with a linear ramp on the patch grid.

    A thin wrapper: :meth:`~torchgeo_smarties.inference.job.RasterOptions.from_keywords` builds the
    :class:`~torchgeo_smarties.inference.job.TilingOptions`, :class:`~torchgeo_smarties.inference.job.EncoderSpec`
    and :class:`~torchgeo_smarties.inference.job.DenseOptions`, an :class:`~torchgeo_smarties.inference.job.EmbedJob`
    is opened, and :func:`embed_job` runs them.

    Args:
        input: GeoTIFF/COG/VRT or a folder of single-band files.
        output: the GeoTIFF to write (replaced atomically when complete; never the input, never a device).
        model: an encoder (default: loaded from the ``weights`` option).
        device: torch device (``cpu``, ``cuda``, ``cuda:N``, ``mps``; checked for availability).
        resume: continue an interrupted run of the same command (byte-identical result); refused with a
            :class:`~torchgeo_smarties.errors.ResumeError` naming what changed if the input, normalisation,
            weights or options differ.
        preview: also write a PNG (true colour | PCA-RGB of the embeddings).
        progress: show a progress bar.
        on_batch: called with (tiles done, total) after each check-pointed batch.
        log: where messages go.
        **options: the keywords of :class:`~torchgeo_smarties.inference.job.EmbedKeywords`, each with its
            default: bands and normalisation (``bands``, ``sensor``, ``stats``, ``norm``, ``normalizer``,
            ``require_crs``: :class:`~torchgeo_smarties.inference.job.SourceKeywords`), weights (``weights``,
            ``num_heads``, ``precision``), tiling (``tile`` = 224, ``overlap`` = 32, ``batch_size`` = 8,
            ``num_workers``, ``compress`` = ``'zstd'``) and the dense output (``dtype`` = ``'float32'``,
            ``layer`` = -1, ``final_norm`` = False).

    Returns:
        An :class:`EmbedResult`.

    Raises:
        TypeError: for an unknown keyword.
        OptionError, DeviceError: for an invalid option (before anything is read).
        InputError, BandCountError, UnknownPresetError, UnknownBandError, CheckpointError: on bad input, before
            anything is written.
        OutputError: if the output is the input, a folder, a device/FIFO, or not writable.
        OutputLockedError: if another run is writing the same output.
        ResumeError: if ``resume`` finds a partial run of another input/normalisation/weights/options, or a corrupt
            one.
        DiskFullError: if the disk fills up while writing.
    """
    opts = RasterOptions.from_keywords(options, EmbedKeywords, caller='embed_raster', model=model, device=device)
    with opts.open(input) as job:
        return embed_job(job, output, opts.encoder, opts.tiling, opts.dense, preview=preview, resume=resume,
                         progress=progress, on_batch=on_batch, log=log)


def check_vector_output(path: Path) -> None:
    """Refuse a ``pool_raster`` output whose suffix is not GeoParquet or CSV."""
    if path.suffix.lower() not in VECTOR_SUFFIXES:
        raise OptionError(f'--pool writes one vector per tile as GeoParquet or CSV: give an output ending in '
                          f'{", ".join(VECTOR_SUFFIXES)}, not {path.name!r} (the dense raster is written without '
                          '--pool)')


def pool_job(job: EmbedJob, output: str | os.PathLike[str], encoder: EncoderSpec, tiling: TilingOptions,
             pool: str = 'mean', *, progress: bool = True, log: Callable[[str], None] = print) -> EmbedResult:
    """:func:`pool_raster` on parameter objects (tiles do not overlap: ``tiling.overlap`` must be 0)."""
    check_choice('pool', pool, POOLS)
    if tiling.overlap:
        raise OptionError('--pool embeds non-overlapping tiles: drop --overlap')
    out = Path(output)
    check_vector_output(out)
    sidecar = [('provenance', provenance_sidecar(out))] if out.suffix.lower() == '.csv' else []
    check_outputs([('output', out), *sidecar], job.input_files())
    model, wdesc = encoder.load()
    job = for_model(job, model)
    dev = encoder.torch_device
    tiling = tiling.on(dev)
    model = model.to(dev).eval()
    src, plan = job.source, job.plan
    grid = TileGrid(src.height, src.width, tiling.tile, 0, model.patch_size, model.patch_size)
    _describe(job, wdesc, log)
    loader = tile_loader(TileDataset(src, grid, job.normalizer), tiling)
    rows: list[tuple[int, int, int, int, int, np.ndarray]] = []
    th, tw = grid.tile_hw
    with OutputLock([out]):
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(grid), unit='tile', desc='tiles')
        try:
            with torch.inference_mode():
                for batch in loader:
                    x, idx, mask = batch.x, batch.tiles, batch.mask
                    valid = token_validity(mask, plan, tuple(x.shape), model.patch_size)
                    xd = x.to(dev)
                    md = mask.to(dev) if mask is not None else None
                    with autocast(dev, encoder.precision):
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
                        h, w = min(th, src.height - r0), min(tw, src.width - c0)
                        rows.append((i, r0, c0, h, w, vec[b].numpy()))
                    if bar is not None:
                        bar.update(len(idx))
        except SmartiesError as err:
            raise unwrap_worker_error(err) from None
        finally:
            if bar is not None:
                bar.close()
        tags = {**run_tags(model, wdesc, job.band_ids, tiling.tile), 'SMARTIES_POOL': pool,
                **provenance_tags(job, state_fingerprint(model))}
        _write_vectors(out, rows, src, pool, log, tags)
    return EmbedResult(out, job.band_ids, model.embed_dim, (len(rows), model.embed_dim))


def pool_raster(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    model: SMARTIESViT | None = None,
    device: str | torch.device = 'cpu',
    pool: Literal['mean', 'cls'] = 'mean',
    progress: bool = True,
    log: Callable[[str], None] = print,
    **options: Unpack[PoolKeywords],
) -> EmbedResult:
    """One embedding per non-overlapping tile, with its footprint polygon, as GeoParquet (or CSV).

    ``pool='mean'``: mean of the tile's valid patch tokens (last block, final norm applied — the release's
    ``global_pool=True`` feature); ``'cls'``: the CLS token after the final norm. The output format follows
    the suffix: ``.parquet``/``.geoparquet`` (GeoParquet via geopandas, geometry in the raster's CRS) or ``.csv``
    (WKT geometry); other suffixes are refused. Footprints are the tiles' four transformed corners (exact for
    rotated or sheared grids). GeoParquet falls back to CSV with a message when geopandas/pyarrow are missing.
    Tiles with no valid pixel are skipped. The output is locked for the run and written atomically.

    Args:
        input: see :func:`embed_raster`.
        output: the ``.parquet``/``.geoparquet`` or ``.csv`` file to write.
        model: an encoder (default: loaded from the ``weights`` option).
        device: torch device.
        pool: ``'mean'`` or ``'cls'``.
        progress: show a progress bar.
        log: where messages go.
        **options: the keywords of :class:`~torchgeo_smarties.inference.job.PoolKeywords`: those of
            :func:`embed_raster` but for ``overlap``, ``compress`` and the dense-output ones.

    Raises:
        TypeError: for an unknown keyword (``overlap``, ``dtype``, … do not apply to pooled vectors).
        OptionError: for an unknown *pool*, an output suffix other than GeoParquet/CSV, or another invalid option.
        OutputError, OutputLockedError: see :func:`embed_raster`.
    """
    check_choice('pool', pool, POOLS)
    opts = RasterOptions.from_keywords(options, PoolKeywords, caller='pool_raster', model=model, device=device,
                                       overlap=0)
    check_vector_output(Path(output))
    with opts.open(input) as job:
        return pool_job(job, output, opts.encoder, opts.tiling, pool, progress=progress, log=log)


def tile_footprints(source: RasterSource, windows: list[tuple[int, int, int, int]]) -> list[Any]:
    """Footprint polygons (in the raster's CRS) of pixel windows ``(row_off, col_off, height, width)``.

    The four corners are transformed, so footprints on rotated or sheared grids are exact, not bounding boxes.
    """
    from shapely.geometry import Polygon

    t = source.transform
    return [Polygon([t @ (c0, r0), t @ (c0 + w, r0), t @ (c0 + w, r0 + h), t @ (c0, r0 + h)])
            for r0, c0, h, w in windows]


#: GeoParquet schema-metadata key of a pooled output's ``SMARTIES_*`` tags (a JSON object).
PARQUET_TAGS_KEY = b'smarties'


def provenance_sidecar(path: Path) -> Path:
    """The JSON file beside a pooled CSV output that holds its ``SMARTIES_*`` tags and CRS (``tiles.csv.json``)."""
    return path.with_name(path.name + '.json')


def _write_vectors(out: Path, rows: list[tuple[int, int, int, int, int, np.ndarray]], source: RasterSource,
                   pool: str, log: Callable[[str], None], tags: dict[str, str]) -> None:
    geoms = tile_footprints(source, [(r[1], r[2], r[3], r[4]) for r in rows])
    emb = np.stack([r[5] for r in rows]).astype(np.float32) if rows else np.zeros((0, 0), np.float32)
    meta = {'tile': [r[0] for r in rows], 'row_off': [r[1] for r in rows], 'col_off': [r[2] for r in rows],
            'height': [r[3] for r in rows], 'width': [r[4] for r in rows]}
    d = emb.shape[1] if rows else 0
    if out.suffix.lower() in ('.parquet', '.geoparquet'):
        try:
            import geopandas as gpd
        except ImportError:
            out = out.with_suffix('.csv')
            log(f'geopandas is not installed: writing CSV instead ({out})')
        else:
            gdf = gpd.GeoDataFrame(meta, geometry=geoms, crs=source.crs.to_wkt() if source.crs else None)
            gdf['embedding'] = list(emb)
            gdf.attrs = {}
            import pyarrow.parquet as pq

            with atomic_target(out) as tmp:
                gdf.to_parquet(tmp, index=False, schema_version=None)
                table = pq.read_table(tmp)  # the provenance rides in the schema metadata, next to GeoParquet's 'geo'
                schema_meta: dict[bytes, bytes] = dict(table.schema.metadata or {})
                schema_meta[PARQUET_TAGS_KEY] = json.dumps(tags, sort_keys=True).encode()
                pq.write_table(table.replace_schema_metadata(schema_meta), tmp)
            log(f'wrote {out} ({len(rows)} tiles × {d}-d {pool} embeddings, GeoParquet)')
            return
    import csv

    # CSV has no metadata: the provenance and the geometry's CRS go to a sidecar, written first so that a CSV
    # never exists without it
    side = {**tags, 'SMARTIES_CRS': source.crs.to_wkt() if source.crs else ''}
    with atomic_target(provenance_sidecar(out)) as tmp:
        tmp.write_text(json.dumps(side, sort_keys=True, indent=1) + '\n', encoding='utf-8')
    with atomic_target(out) as tmp:
        with open(tmp, 'w', newline='') as f:
            wr = csv.writer(f)
            wr.writerow([*meta, 'geometry', *(f'emb_{i:04d}' for i in range(d))])
            for k, g in enumerate(geoms):
                wr.writerow([*(meta[c][k] for c in meta), g.wkt, *(f'{v:.7g}' for v in emb[k])])
    crs = source.crs.to_string() if source.crs else 'none'
    log(f'wrote {out} ({len(rows)} tiles × {d}-d {pool} embeddings, CSV, CRS {crs}; provenance in '
        f'{provenance_sidecar(out).name})')
