"""Queries for an :class:`~torchgeo_smarties.retrieval.EmbeddingIndex` and its results as GeoJSON / GeoParquet.

A query vector comes from a map point in an embedded scene (the cell containing the point), from a whole
embedding raster or pooled table (the mean of its valid vectors), from an image chip embedded on the fly
(:func:`~torchgeo_smarties.inference.embed_raster` + mean pooling), or is given directly.

.. versionadded:: 0.2
"""

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import EmbeddingFileError, IndexMismatchError, QueryError
from .embeddings import EmbeddingFile, inspect_embeddings, read_embeddings
from .index import EmbeddingIndex, SearchHits

__all__ = ('RESULT_SUFFIXES', 'PointQuery', 'check_results_path', 'hits_to_frame', 'parse_crs', 'parse_point',
           'query_from_image', 'query_from_point', 'query_from_raster', 'search_index', 'vector_at_point',
           'write_results')

#: Output formats of search results by suffix.
RESULT_SUFFIXES = {'.geojson': 'GeoJSON', '.json': 'GeoJSON', '.parquet': 'GeoParquet', '.geoparquet': 'GeoParquet'}


@dataclass
class PointQuery:
    """The vector at a map point and where it was found.

    Attributes:
        vector: (D,) float32.
        source: the embedding file.
        row: cell row (raster) or table row (pooled).
        col: cell column (raster; -1 for pooled).
        weights: the file's weights description (``''`` if unknown).
    """

    vector: np.ndarray
    source: Path
    row: int
    col: int
    weights: str


def parse_point(text: str | Sequence[float]) -> tuple[float, float]:
    """``'X,Y'`` (or a pair) → (x, y) floats.

    Raises:
        QueryError: not two finite numbers.
    """
    if isinstance(text, str):
        parts = [p.strip() for p in text.replace(' ', ',').split(',') if p.strip()]
    else:
        parts = list(text)  # type: ignore[arg-type]
    try:
        x, y = (float(p) for p in parts)
    except (TypeError, ValueError):
        raise QueryError(f'a point is "X,Y" (two numbers, e.g. --point 500120.5,4650230 --crs EPSG:32618), got '
                         f'{text!r}') from None
    if not (np.isfinite(x) and np.isfinite(y)):
        raise QueryError(f'point coordinates must be finite, got {text!r}')
    return x, y


def parse_crs(text: Any) -> Any:
    """A :class:`rasterio.crs.CRS` from ``'EPSG:4326'``, WKT, a PROJ string or a CRS object.

    Raises:
        QueryError: the CRS is unknown.
    """
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    if text is None or isinstance(text, CRS):
        return text
    try:
        return CRS.from_user_input(text)
    except (CRSError, ValueError, TypeError):
        raise QueryError(f'unknown CRS {text!r}; give an EPSG code such as EPSG:4326 or EPSG:32632, or WKT') from None


def _to_crs(x: float, y: float, src: Any, dst: Any) -> tuple[float, float]:
    if src is None or dst is None or src == dst:
        return x, y
    from rasterio.warp import transform

    xs, ys = transform(src, dst, [x], [y])
    return float(xs[0]), float(ys[0])


def vector_at_point(info: EmbeddingFile | str | os.PathLike[str], x: float, y: float, crs: Any = None
                    ) -> PointQuery | None:
    """The embedding of the cell (raster) or tile (pooled) containing the point, or None if outside.

    Args:
        info: an embedding file (or its :func:`inspect_embeddings` description).
        x: point x in *crs*.
        y: point y in *crs*.
        crs: the point's CRS (default: the file's own).

    Raises:
        QueryError: the cell is nodata, or the file has no CRS while *crs* is given.
    """
    if not isinstance(info, EmbeddingFile):
        info = inspect_embeddings(info)
    crs = parse_crs(crs)
    file_crs = parse_crs(info.crs) if info.crs else None
    if crs is not None and file_crs is None:
        raise QueryError(f'{info.path} has no CRS, so a point in {crs} cannot be placed in it; give the point in '
                         'its pixel-grid coordinates without --crs')
    px, py = _to_crs(x, y, crs, file_crs)
    if not (np.isfinite(px) and np.isfinite(py)):
        return None
    if info.kind == 'pooled':
        import shapely

        vec, meta = read_embeddings(info)
        geoms = shapely.from_wkb(meta['geometry'].to_numpy())
        hit = np.flatnonzero(shapely.covers(geoms, shapely.Point(px, py)))
        if not len(hit):
            return None
        i = int(hit[0])
        return PointQuery(vec[i], info.path, int(meta['row'].iloc[i]), int(meta['col'].iloc[i]), info.weights)
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(info.path) as ds:
        col_f, row_f = ~ds.transform @ (px, py)
        row, col = int(np.floor(row_f)), int(np.floor(col_f))
        if not (0 <= row < ds.height and 0 <= col < ds.width):
            return None
        v = ds.read(window=Window(col, row, 1, 1), out_dtype='float32')[:, 0, 0]
    if not np.isfinite(v).all():
        raise QueryError(f'the point ({x}, {y}) falls on a nodata cell (row {row}, col {col}) of {info.path.name}; '
                         'pick a point inside the valid part of the scene')
    return PointQuery(v, info.path, row, col, info.weights)


def query_from_point(point: str | Sequence[float], crs: Any = None, *,
                     embeddings: Sequence[str | os.PathLike[str]] | None = None,
                     index: EmbeddingIndex | None = None) -> PointQuery:
    """The query vector at a map point: in the given embedding files, else in the index's own sources.

    Raises:
        QueryError: the point lies outside every scene (or on nodata), or the CRS is unknown.
    """
    x, y = parse_point(point)
    crs = parse_crs(crs)
    if embeddings:
        files: list[EmbeddingFile | str | os.PathLike[str]] = list(embeddings)
    elif index is not None:
        files = [s['path'] for s in index.manifest.get('sources', []) if Path(s['path']).exists()]
        if not files:
            raise QueryError('the index sources are no longer on disk; give the scene with --embedding FILE')
    else:
        raise QueryError('give the embedded scene with --embedding FILE (or search an index built from it)')
    for f in files:
        hit = vector_at_point(f, x, y, crs)
        if hit is not None:
            return hit
    names = ', '.join(Path(str(f.path if isinstance(f, EmbeddingFile) else f)).name for f in files[:5])
    more = f' (+{len(files) - 5} more)' if len(files) > 5 else ''
    where = f' in {crs}' if crs else ''
    raise QueryError(f'the point ({x}, {y}){where} lies outside every scene ({names}{more}); '
                     'check the coordinates and --crs (x,y order: easting/longitude first)')


def query_from_raster(path: str | os.PathLike[str]) -> tuple[np.ndarray, str]:
    """The mean of the valid vectors of an embedding raster or pooled table, and its weights description."""
    info = inspect_embeddings(path)
    vec, _ = read_embeddings(info)
    if not len(vec):
        raise EmbeddingFileError(f'{path} holds no valid (non-NaN) vectors')
    return vec.mean(0), info.weights


def query_from_image(image: str | os.PathLike[str], *, bands: str | None = None, sensor: str | None = None,
                     weights: str | None = None, stats: str | os.PathLike[str] | None = None, norm: str | None = None,
                     model: Any = None, tile: int = 224, num_heads: int | None = None,
                     log: Callable[[str], None] = print) -> tuple[np.ndarray, str]:
    """Embed an image chip on the fly and mean-pool its valid patches; returns (vector, weights description).

    The chip goes through :func:`~torchgeo_smarties.inference.embed_raster` (one tile when it is at most *tile* px).
    """
    from ..inference import embed_raster

    if not Path(image).exists():
        raise QueryError(f'image {str(image)!r} does not exist')
    with tempfile.TemporaryDirectory(prefix='smarties-query-') as tmp:
        out = Path(tmp) / 'query_embeddings.tif'
        embed_raster(image, out, model=model, weights=weights, bands=bands, sensor=sensor, stats=stats, norm=norm,
                     tile=tile, overlap=0, num_workers=0, progress=False, num_heads=num_heads, log=lambda _: None)
        vec, wdesc = query_from_raster(out)
    log(f'query: {Path(image).name} embedded with {wdesc}')
    return vec, wdesc


def hits_to_frame(index: EmbeddingIndex, hits: SearchHits, query: int = 0, *, crs: Any = 'auto') -> Any:
    """One query's results as a GeoDataFrame: rank, score, id, source, sensor, bands, date, row, col, geometry.

    Geometries are reprojected from each source's CRS to *crs* (``'auto'``: the sources' CRS when they share one,
    else EPSG:4326).
    """
    import geopandas as gpd
    import shapely

    keep = hits.ids[query] >= 0
    ids = hits.ids[query][keep]
    meta = index.meta.iloc[ids].reset_index(drop=True)
    frame = pd.DataFrame({'rank': np.arange(1, len(ids) + 1), 'score': hits.scores[query][keep], 'id': ids})
    frame = pd.concat([frame, meta.drop(columns=['geometry'])], axis=1)
    crss = [c for c in meta['crs'].unique() if c]
    target = (crss[0] if len(crss) == 1 else 'EPSG:4326') if crs == 'auto' else crs
    if not crss:
        target = None
    geoms = np.empty(len(meta), dtype=object)
    for c in meta['crs'].unique():
        sel = (meta['crs'] == c).to_numpy()
        g = gpd.GeoSeries(shapely.from_wkb(meta['geometry'][sel].to_numpy()), crs=c or None)
        if c and target is not None and c != target:
            g = g.to_crs(target)
        elif not c and target is not None:
            g = gpd.GeoSeries([None] * int(sel.sum()))
        geoms[sel] = g.to_numpy()
    return gpd.GeoDataFrame(frame, geometry=list(geoms), crs=target)


def check_results_path(path: str | os.PathLike[str]) -> Path:
    """Validate a results file path before searching.

    Raises:
        QueryError: unsupported suffix or missing folder.
    """
    p = Path(path)
    if p.suffix.lower() not in RESULT_SUFFIXES:
        raise QueryError(f'results file {str(path)!r}: unsupported suffix {p.suffix!r}; use .geojson (GeoJSON, '
                         'EPSG:4326) or .parquet (GeoParquet)')
    if not p.resolve().parent.is_dir():
        raise QueryError(f'output folder {str(p.resolve().parent)!r} does not exist; create it first')
    if p.is_dir():
        raise QueryError(f'results file {str(path)!r} is a folder; give a file name ending in .geojson or .parquet')
    return p


def write_results(frame: Any, path: str | os.PathLike[str]) -> Path:
    """Write results as GeoJSON (always EPSG:4326, RFC 7946) or GeoParquet, by suffix (atomically)."""
    p = check_results_path(path)
    tmp = p.with_name(f'.{p.name}.partial')
    try:
        if RESULT_SUFFIXES[p.suffix.lower()] == 'GeoJSON':
            out = frame.to_crs('EPSG:4326') if frame.crs is not None else frame
            out.to_file(tmp, driver='GeoJSON', layer=p.stem)
        else:
            frame.to_parquet(tmp, index=False)
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)
    return p


def search_index(
    index: str | os.PathLike[str] | EmbeddingIndex,
    *,
    point: str | Sequence[float] | None = None,
    crs: Any = None,
    embedding: Sequence[str | os.PathLike[str]] | None = None,
    image: str | os.PathLike[str] | None = None,
    vector: np.ndarray | None = None,
    bands: str | None = None,
    image_sensor: str | None = None,
    weights: str | None = None,
    stats: str | os.PathLike[str] | None = None,
    norm: str | None = None,
    model: Any = None,
    k: int = 10,
    sensor: str | Sequence[str] | None = None,
    nprobe: int | None = None,
    output: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] = print,
) -> Any:
    """``smarties search``: the *k* nearest indexed vectors of one query, as a GeoDataFrame (and a file).

    Exactly one query: *point* (with *crs*, looked up in *embedding* files or the index's sources), *image* (a
    chip embedded on the fly with *weights*/*bands*), *embedding* alone (mean of its valid vectors) or *vector*.

    Raises:
        QueryError, IndexMismatchError, EmbeddingIndexError, EmbeddingFileError: on bad input, before searching.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise QueryError(f'k must be a positive integer, got {k!r}')
    given = [n for n, v in (('--point', point), ('--image', image), ('a vector', vector)) if v is not None]
    if not given and embedding:
        given = ['--embedding']
    if len(given) != 1:
        raise QueryError('give exactly one query: --point X,Y (with --embedding FILE or the index sources), '
                         f'--image FILE, or --embedding FILE; got {", ".join(given) or "none"}')
    if crs is not None and point is None:
        raise QueryError('--crs applies to --point; give --point X,Y')
    if output is not None:
        check_results_path(output)
    idx = index if isinstance(index, EmbeddingIndex) else EmbeddingIndex.load(index)
    idx.check_search_options(k, sensor, nprobe)
    qweights = ''
    if point is not None:
        parse_point(point)
        pq = query_from_point(point, crs, embeddings=embedding, index=idx)
        q, qweights = pq.vector, pq.weights
        log(f'query: {pq.source.name} row {pq.row} col {pq.col}')
    elif image is not None:
        q, qweights = query_from_image(image, bands=bands, sensor=image_sensor, weights=weights, stats=stats,
                                       norm=norm, model=model, log=log)
    elif vector is not None:
        q = np.asarray(vector, dtype=np.float32)
    else:
        assert embedding is not None
        if len(embedding) != 1:
            raise QueryError('give one --embedding FILE as the query (its valid vectors are averaged)')
        q, qweights = query_from_raster(embedding[0])
    if qweights and idx.weights and qweights != idx.weights:
        raise IndexMismatchError(f'the query was embedded with {qweights!r} but the index holds vectors of '
                                 f'{idx.weights!r}; use the same --weights')
    hits = idx.search(q, k, sensor=sensor, nprobe=nprobe)
    frame = hits_to_frame(idx, hits)
    if len(frame) < k:
        log(f'only {len(frame)} vectors match (asked for k={k})')
    if output is not None:
        write_results(frame, output)
        log(f'wrote {output} ({len(frame)} results)')
    return frame
