"""Reading SMARTIES embeddings from disk: dense GeoTIFFs (``smarties embed``) and pooled GeoParquet (``--pool``).

A dense embedding GeoTIFF has one float band per channel, one pixel per 16×16 patch, NaN where the input had no
valid band, and the run's tags (``SMARTIES_BANDS``, ``SMARTIES_WEIGHTS``, ...). A pooled GeoParquet has one row per
tile with its footprint polygon and an ``embedding`` list column. Both are read here into float32 vectors plus one
metadata row per vector (source, sensor, bands, weights, date, CRS, row/col, footprint as WKB).

.. versionadded:: 0.2
"""

import datetime as _dt
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..errors import EmbeddingFileError

__all__ = ('META_COLUMNS', 'RASTER_SUFFIXES', 'TABLE_SUFFIXES', 'EmbeddingFile', 'inspect_embeddings',
           'read_embeddings', 'read_vectors', 'sensor_of_bands')

RASTER_SUFFIXES = ('.tif', '.tiff')
TABLE_SUFFIXES = ('.parquet', '.geoparquet')
#: Columns of the metadata table, one row per vector.
META_COLUMNS = ('source', 'kind', 'sensor', 'bands', 'weights', 'date', 'crs', 'row', 'col', 'geometry')
_DATE_TAGS = ('SMARTIES_DATE', 'DATE_ACQUIRED', 'ACQUISITION_DATE', 'DATETIME', 'datetime', 'TIFFTAG_DATETIME')
_DATE_RE = re.compile(r'(?<!\d)((?:19|20)\d{2})-?(\d{2})-?(\d{2})(?=T\d{6}|[^\d]|$)')


@dataclass(frozen=True)
class EmbeddingFile:
    """What :func:`inspect_embeddings` found in one file (read from its header only).

    Attributes:
        path: the file (resolved).
        kind: ``'raster'`` (dense GeoTIFF, one vector per cell) or ``'pooled'`` (GeoParquet, one per tile).
        dim: embedding dimension.
        size: number of cells (raster, NaN cells included) or rows (pooled).
        sensor: sensor id(s) of the embedded bands (``'sentinel2'``; several joined by ``+``; ``''`` if unknown).
        bands: comma-separated band ids (``''`` if unknown).
        weights: the ``SMARTIES_WEIGHTS`` description (``''`` if unknown).
        date: ISO date from the tags or the file name (``''`` if unknown).
        crs: CRS as ``'EPSG:…'`` where possible, else WKT (``''`` if none).
        tags: all ``SMARTIES_*`` tags.
    """

    path: Path
    kind: Literal['raster', 'pooled']
    dim: int
    size: int
    sensor: str
    bands: str
    weights: str
    date: str
    crs: str
    tags: dict[str, str] = field(default_factory=dict)


def sensor_of_bands(bands: str) -> str:
    """``'sentinel1:VV,sentinel1:VH'`` → ``'sentinel1'``; several sensors are joined with ``+`` (sorted)."""
    sensors = sorted({b.split(':', 1)[0].strip() for b in bands.split(',') if ':' in b})
    return '+'.join(sensors)


def _date_from(tags: dict[str, str], name: str) -> str:
    for key in _DATE_TAGS:
        value = tags.get(key)
        if value:
            m = _DATE_RE.search(value.replace(':', '-', 2) if key == 'TIFFTAG_DATETIME' else value)
            if m:
                iso = _valid_date(*m.groups())
                if iso:
                    return iso
    for m in _DATE_RE.finditer(name):
        iso = _valid_date(*m.groups())
        if iso:
            return iso
    return ''


def _valid_date(y: str, m: str, d: str) -> str:
    try:
        return _dt.date(int(y), int(m), int(d)).isoformat()
    except ValueError:
        return ''


def _crs_string(crs: Any) -> str:
    if crs is None:
        return ''
    epsg = crs.to_epsg() if hasattr(crs, 'to_epsg') else None
    if epsg:
        return f'EPSG:{epsg}'
    return str(crs.to_wkt())


def _fill(path: Path, tags: dict[str, str], sensor: str | None, bands: str | None, weights: str | None
          ) -> tuple[str, str, str]:
    """Band, sensor and weights labels: the file's tags, else the caller's; a contradiction is an error."""
    tag_bands = tags.get('SMARTIES_BANDS', '')
    tag_weights = tags.get('SMARTIES_WEIGHTS', '')
    if bands and tag_bands and bands != tag_bands:
        raise EmbeddingFileError(f'{path}: --bands {bands!r} contradicts the file tag SMARTIES_BANDS={tag_bands!r}; '
                                 'drop --bands')
    out_bands = tag_bands or bands or ''
    out_sensor = sensor_of_bands(out_bands)
    if sensor and out_sensor and sensor != out_sensor:
        raise EmbeddingFileError(f'{path}: --sensor {sensor!r} contradicts the bands of the file '
                                 f'({out_bands!r} → {out_sensor!r}); drop --sensor')
    if weights and tag_weights and weights != tag_weights:
        raise EmbeddingFileError(f'{path}: --weights-tag {weights!r} contradicts the file tag SMARTIES_WEIGHTS='
                                 f'{tag_weights!r}; drop --weights-tag')
    return out_bands, out_sensor or sensor or '', tag_weights or weights or ''


def _inspect_raster(path: Path, sensor: str | None, bands: str | None, weights: str | None) -> EmbeddingFile:
    import rasterio
    from rasterio.errors import RasterioIOError

    try:
        with rasterio.open(path) as ds:
            tags = {str(k): str(v) for k, v in ds.tags().items()}
            descriptions = ds.descriptions
            dtype, count, h, w, crs = ds.dtypes[0], ds.count, ds.height, ds.width, ds.crs
    except RasterioIOError as err:
        raise EmbeddingFileError(f'cannot read {str(path)!r} as a raster ({str(err).splitlines()[0]})') from None
    smarties_tags = {k: v for k, v in tags.items() if k.startswith('SMARTIES_')}
    if not np.issubdtype(np.dtype(dtype), np.floating):
        raise EmbeddingFileError(f'{path} has {dtype} pixels, not float embeddings; embed it first: '
                                 f'smarties embed {path} -o EMBEDDINGS.tif')
    named = all(d is not None and d.startswith('emb_') for d in descriptions)
    if 'SMARTIES_BANDS' not in smarties_tags and not named:
        raise EmbeddingFileError(f'{path} is not a SMARTIES embedding raster (no SMARTIES_BANDS tag, bands not named '
                                 f'emb_0000...); embed it first: smarties embed {path} -o EMBEDDINGS.tif')
    if h * w == 0:
        raise EmbeddingFileError(f'{path} has no cells ({h}×{w})')
    b, s, wt = _fill(path, smarties_tags, sensor, bands, weights)
    return EmbeddingFile(path, 'raster', count, h * w, s, b, wt, _date_from(tags, path.name), _crs_string(crs),
                         smarties_tags)


def _inspect_table(path: Path, sensor: str | None, bands: str | None, weights: str | None) -> EmbeddingFile:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several unrelated types for bad files
        raise EmbeddingFileError(f'cannot read {str(path)!r} as Parquet ({err})') from None
    names = set(pf.schema_arrow.names)
    missing = {'embedding', 'geometry'} - names
    if missing:
        raise EmbeddingFileError(f'{path} has no {" / ".join(sorted(missing))} column; give a pooled GeoParquet from '
                                 f'smarties embed --pool mean -o {path.stem}.parquet')
    meta = {k.decode(): v.decode() for k, v in (pf.schema_arrow.metadata or {}).items()}
    tags = {k: v for k, v in meta.items() if k.startswith('SMARTIES_')}
    n = pf.metadata.num_rows
    if n == 0:
        raise EmbeddingFileError(f'{path} has no rows (the embedded scene had no valid tile)')
    first = pf.read_row_group(0, columns=['embedding']).column('embedding')[0].as_py()
    if not first:
        raise EmbeddingFileError(f'{path}: the embedding column is empty')
    crs = ''
    if 'geo' in meta:
        import json

        geo = json.loads(meta['geo'])
        col = geo.get('columns', {}).get(geo.get('primary_column', 'geometry'), {})
        if col.get('crs') is not None:
            from pyproj import CRS

            crs = _crs_string(CRS.from_user_input(col['crs']))
    b, s, wt = _fill(path, tags, sensor, bands, weights)
    return EmbeddingFile(path, 'pooled', len(first), n, s, b, wt, _date_from(meta, path.name), crs, tags)


def inspect_embeddings(path: str | os.PathLike[str], *, sensor: str | None = None, bands: str | None = None,
                       weights: str | None = None) -> EmbeddingFile:
    """Check one embedding file from its header and describe it.

    Args:
        path: a dense embedding GeoTIFF or a pooled GeoParquet.
        sensor: sensor label for files without band tags (an error if it contradicts them).
        bands: band ids for files without a ``SMARTIES_BANDS`` tag.
        weights: weights label for files without a ``SMARTIES_WEIGHTS`` tag.

    Raises:
        EmbeddingFileError: the file is missing, unreadable, empty or not SMARTIES embeddings.
    """
    p = Path(path)
    if not p.exists():
        raise EmbeddingFileError(f'embedding file {str(path)!r} does not exist')
    if p.is_dir():
        raise EmbeddingFileError(f'{str(path)!r} is a folder; give the embedding files (e.g. {path}/*.tif)')
    suffix = p.suffix.lower()
    if suffix in RASTER_SUFFIXES:
        return _inspect_raster(p.resolve(), sensor, bands, weights)
    if suffix in TABLE_SUFFIXES:
        return _inspect_table(p.resolve(), sensor, bands, weights)
    raise EmbeddingFileError(f'{path}: unsupported embedding file type {suffix!r}; give embedding GeoTIFFs (.tif) '
                             'from smarties embed or pooled GeoParquet (.parquet) from smarties embed --pool')


def cell_polygons(transform: Any, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Footprints of raster cells (rotation-aware: four transformed corners) as shapely polygons."""
    import shapely

    r = rows.astype(np.float64)[:, None] + np.array([0, 0, 1, 1, 0])[None]
    c = cols.astype(np.float64)[:, None] + np.array([0, 1, 1, 0, 0])[None]
    x = transform.a * c + transform.b * r + transform.c
    y = transform.d * c + transform.e * r + transform.f
    return np.asarray(shapely.polygons(np.stack([x, y], -1)), dtype=object)


def _frame(info: EmbeddingFile, rows: np.ndarray, cols: np.ndarray, wkb: np.ndarray) -> pd.DataFrame:
    n = len(rows)
    return pd.DataFrame({
        'source': [str(info.path)] * n, 'kind': [info.kind] * n, 'sensor': [info.sensor] * n,
        'bands': [info.bands] * n, 'weights': [info.weights] * n, 'date': [info.date] * n, 'crs': [info.crs] * n,
        'row': rows.astype(np.int64), 'col': cols.astype(np.int64), 'geometry': wkb,
    }, columns=list(META_COLUMNS))


def read_vectors(info: EmbeddingFile, *, block_rows: int = 256) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
    """Stream (vectors (n, D) float32, metadata) blocks of one file; NaN/nodata cells are skipped.

    Rasters are read in windows of *block_rows* rows, never whole.
    """
    import shapely

    if info.kind == 'pooled':
        import geopandas as gpd

        gdf = gpd.read_parquet(info.path)
        vec = np.asarray(np.stack([np.asarray(v, dtype=np.float32) for v in gdf['embedding']]), dtype=np.float32)
        ok = np.isfinite(vec).all(1)
        rows = np.asarray(gdf['row_off'] if 'row_off' in gdf else np.zeros(len(gdf)), dtype=np.int64)
        cols = np.asarray(gdf['col_off'] if 'col_off' in gdf else np.zeros(len(gdf)), dtype=np.int64)
        wkb = shapely.to_wkb(np.asarray(gdf.geometry.values))
        yield vec[ok], _frame(info, rows[ok], cols[ok], wkb[ok])
        return
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(info.path) as ds:
        nodata = ds.nodata
        for r0 in range(0, ds.height, block_rows):
            nr = min(block_rows, ds.height - r0)
            a = ds.read(window=Window(0, r0, ds.width, nr), out_dtype='float32')  # (D, nr, W)
            vec = a.reshape(a.shape[0], -1).T
            ok = np.isfinite(vec).all(1)
            if nodata is not None and np.isfinite(nodata):
                ok &= ~(vec == np.float32(nodata)).all(1)
            idx = np.flatnonzero(ok)
            if not len(idx):
                continue
            rows, cols = r0 + idx // ds.width, idx % ds.width
            wkb = shapely.to_wkb(cell_polygons(ds.transform, rows, cols))
            yield np.ascontiguousarray(vec[idx]), _frame(info, rows, cols, wkb)


def read_embeddings(info: EmbeddingFile) -> tuple[np.ndarray, pd.DataFrame]:
    """All valid vectors of one file with their metadata (see :func:`read_vectors`)."""
    parts = list(read_vectors(info))
    if not parts:
        return np.zeros((0, info.dim), np.float32), _frame(info, np.zeros(0), np.zeros(0), np.zeros(0, object))
    return np.concatenate([p[0] for p in parts]), pd.concat([p[1] for p in parts], ignore_index=True)
