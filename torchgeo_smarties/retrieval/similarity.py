"""``smarties similarity``: a map of cosine similarity to one patch ("find more like this").

.. versionadded:: 0.2
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EmbeddingFileError, QueryError
from .embeddings import inspect_embeddings
from .query import parse_crs, parse_point, vector_at_point

__all__ = ('SimilarityResult', 'cosine_similarity_map', 'similarity_map', 'write_similarity_preview')


@dataclass
class SimilarityResult:
    """What :func:`similarity_map` wrote.

    Attributes:
        output: the similarity GeoTIFF.
        preview: the PNG (None if not asked for).
        row: query cell row.
        col: query cell column.
        valid: number of valid (non-NaN) cells.
        range: (min, max) similarity over valid cells.
    """

    output: Path
    preview: Path | None
    row: int
    col: int
    valid: int
    range: tuple[float, float]


def cosine_similarity_map(emb: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """(D, H, W) embeddings · (D,) query → (H, W) cosine similarity, NaN where any channel is NaN."""
    d, h, w = emb.shape
    x = emb.reshape(d, -1).astype(np.float32)
    v = np.asarray(vector, np.float32) / max(float(np.linalg.norm(vector)), 1e-12)
    ok = np.isfinite(x).all(0)
    x = np.where(ok[None], x, 0)
    sim = (v @ x) / np.maximum(np.linalg.norm(x, axis=0), 1e-12)
    return np.where(ok, sim, np.nan).reshape(h, w).astype(np.float32)


def similarity_map(
    embedding: str | os.PathLike[str],
    point: str | tuple[float, float],
    output: str | os.PathLike[str],
    *,
    crs: Any = None,
    preview: str | os.PathLike[str] | None = None,
    block_rows: int = 256,
    log: Callable[[str], None] = print,
) -> SimilarityResult:
    """Cosine similarity of every cell of an embedding GeoTIFF to the cell containing *point*.

    The output is a one-band float32 GeoTIFF on the same grid and CRS, NaN (nodata) where the embeddings are NaN,
    written atomically; rasters are read in blocks of *block_rows* rows.

    Args:
        embedding: a dense embedding GeoTIFF from ``smarties embed``.
        point: ``'X,Y'`` in *crs* (default: the raster's CRS).
        output: the similarity GeoTIFF (``.tif``).
        crs: the point's CRS (``'EPSG:4326'``, ...).
        preview: also write a PNG with a colour bar and the query marked.
        block_rows: rows read per block.
        log: where messages go.

    Raises:
        EmbeddingFileError, QueryError, InputError: on bad input, before anything is written.
    """
    import rasterio
    from rasterio.windows import Window

    from ..inference.engine import check_writable

    out = Path(output)
    if out.suffix.lower() not in ('.tif', '.tiff'):
        raise QueryError(f'similarity output {str(output)!r} must be a GeoTIFF (.tif)')
    png = Path(preview) if preview is not None else None
    if png is not None and png.suffix.lower() != '.png':
        raise QueryError(f'preview {str(preview)!r} must be a .png file')
    info = inspect_embeddings(embedding)
    if info.kind != 'raster':
        raise EmbeddingFileError(f'{embedding}: a similarity map needs a dense embedding GeoTIFF (smarties embed '
                                 'without --pool)')
    for p in (out, png):
        if p is None:
            continue
        check_writable(p)
        if p.exists() and p.resolve() == info.path:
            raise QueryError(f'output {str(p)!r} is the input embedding file; choose another -o')
    x, y = parse_point(point)
    crs = parse_crs(crs)
    hit = vector_at_point(info, x, y, crs)
    if hit is None:
        raise QueryError(f'the point ({x}, {y}) lies outside {info.path.name}; check the coordinates and --crs '
                         '(x,y order: easting/longitude first)')
    tmp = out.with_name(f'.{out.name}.partial')
    lo, hi, valid = np.inf, -np.inf, 0
    try:
        with rasterio.open(info.path) as ds:
            profile = {'driver': 'GTiff', 'height': ds.height, 'width': ds.width, 'count': 1, 'dtype': 'float32',
                       'crs': ds.crs, 'transform': ds.transform, 'nodata': float('nan'), 'compress': 'deflate'}
            if ds.height >= 256 and ds.width >= 256:
                profile.update(tiled=True, blockxsize=256, blockysize=256)
            with rasterio.open(tmp, 'w', **profile) as dst:
                dst.update_tags(**{k: v for k, v in ds.tags().items() if k.startswith('SMARTIES_')},
                                SMARTIES_SIMILARITY_POINT=f'{x},{y}', SMARTIES_SIMILARITY_CRS=str(crs or ds.crs or ''),
                                SMARTIES_SIMILARITY_CELL=f'{hit.row},{hit.col}')
                dst.set_band_description(1, 'cosine_similarity')
                for r0 in range(0, ds.height, block_rows):
                    nr = min(block_rows, ds.height - r0)
                    sim = cosine_similarity_map(ds.read(window=Window(0, r0, ds.width, nr), out_dtype='float32'),
                                                hit.vector)
                    ok = np.isfinite(sim)
                    if ok.any():
                        lo, hi = min(lo, float(sim[ok].min())), max(hi, float(sim[ok].max()))
                        valid += int(ok.sum())
                    dst.write(sim, 1, window=Window(0, r0, ds.width, nr))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    log(f'wrote {out} (cosine similarity to row {hit.row}, col {hit.col}; {valid} valid cells, range '
        f'{lo:.3f} … {hi:.3f})')
    res = SimilarityResult(out, None, hit.row, hit.col, valid, (lo, hi))
    if png is not None:
        res.preview = write_similarity_preview(out, png, (hit.row, hit.col), title=f'{info.path.name}: similarity '
                                               f'to ({x:.10g}, {y:.10g})')
        log(f'wrote preview {png}')
    return res


def write_similarity_preview(similarity: str | os.PathLike[str], png: str | os.PathLike[str],
                             cell: tuple[int, int] | None = None, *, title: str = '', max_size: int = 1024,
                             dpi: int = 100) -> Path:
    """A PNG of a similarity GeoTIFF (read at most *max_size* px a side) with a colour bar and the query cell."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import rasterio

    with rasterio.open(similarity) as ds:
        f = max(1, int(np.ceil(max(ds.height, ds.width) / max_size)))
        sim = ds.read(1, out_shape=(max(1, ds.height // f), max(1, ds.width // f)), masked=False)
    fig, ax = plt.subplots(figsize=(5.2, 4.4), dpi=dpi)
    im = ax.imshow(np.ma.masked_invalid(sim), cmap='magma', vmin=float(np.nanmin(sim)) if np.isfinite(sim).any()
                   else -1, vmax=1.0, interpolation='nearest')
    cmap = im.get_cmap()
    cmap.set_bad('#bbbbbb')
    if cell is not None:
        ax.plot(cell[1] / f, cell[0] / f, marker='+', color='cyan', markersize=14, markeredgewidth=2)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label='cosine similarity')
    ax.set_title(title, fontsize=9)
    ax.set_xlabel('column (16-px patch)')
    ax.set_ylabel('row (16-px patch)')
    fig.tight_layout()
    out = Path(png)
    fig.savefig(out)
    plt.close(fig)
    return out
