"""Embeddings as products: a STAC ItemCollection and a GeoParquet patch index next to the embedding rasters.

:func:`write_catalogue` reads the embedding GeoTIFFs written by ``smarties embed`` (their grid, CRS and
``SMARTIES_*`` tags, never their pixel values) and writes, into the output folder:

* ``catalogue.json`` — a STAC ItemCollection, one Item per embedding raster: footprint in EPSG:4326,
  the raster as the ``embeddings`` asset, every ``SMARTIES_*`` tag as a ``smarties:<name>`` property
  (model, weights hash, bands, normalisation, layer, source id), the grid as ``smarties:crs`` /
  ``smarties:transform`` / ``smarties:shape``;
* ``patches.parquet`` — a GeoParquet index with one row per embedding cell (one 16×16 input patch):
  ``item``, ``path``, ``row``, ``col``, the cell polygon in EPSG:4326 (``geometry``) and in the raster's
  own CRS (``geometry_src``, WKB, with the CRS in ``crs``).

.. versionadded:: 0.2
"""

import datetime as dt
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from ..errors import InputError

__all__ = ('Catalogue', 'embedding_item', 'patch_index', 'write_catalogue')

#: STAC property prefix for the ``SMARTIES_*`` tags of an embedding raster.
PREFIX = 'smarties:'


@dataclass(frozen=True)
class Catalogue:
    """The catalogue files :func:`write_catalogue` wrote."""

    stac: Path
    index: Path
    items: int
    patches: int


def _grid_xy(transform: Any, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map coordinates of grid positions (fractional rows/cols allowed); exact for rotated grids."""
    return (transform.a * cols + transform.b * rows + transform.c,
            transform.d * cols + transform.e * rows + transform.f)


def _cell_corners(transform: Any, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x, y of the 4 corners (+ closing point) of cells (rows, cols): arrays (N, 5)."""
    return _grid_xy(transform, rows[:, None] + np.array([0, 0, 1, 1, 0])[None],
                    cols[:, None] + np.array([0, 1, 1, 0, 0])[None])


def _to_wgs84(crs: Any, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from pyproj import Transformer

    if crs is None:
        raise InputError('an embedding raster has no CRS, so it cannot be catalogued in EPSG:4326; embed a '
                         'georeferenced input (or assign a CRS with gdal_edit.py -a_srs)')
    tr = Transformer.from_crs(crs.to_wkt(), 'EPSG:4326', always_xy=True)
    lon, lat = tr.transform(x.ravel(), y.ravel())
    return np.asarray(lon).reshape(x.shape), np.asarray(lat).reshape(y.shape)


def _read_meta(path: Path) -> tuple[dict[str, str], Any, Any, tuple[int, int]]:
    try:
        with rasterio.open(path) as ds:
            return ds.tags(), ds.crs, ds.transform, (ds.height, ds.width)
    except rasterio.errors.RasterioIOError as err:
        raise InputError(f'cannot read embedding raster {str(path)!r}: {err}') from None


def embedding_item(path: str | os.PathLike[str], href: str | None = None) -> Any:
    """A ``pystac.Item`` describing one embedding raster (footprint in EPSG:4326, ``smarties:*`` properties).

    ``datetime`` is the source's acquisition time when its tags carry one (``SMARTIES_DATETIME``), else the
    time the raster was written (and ``smarties:datetime_is_acquisition`` is False).
    """
    import pystac
    from shapely.geometry import Polygon, mapping

    p = Path(path)
    tags, crs, transform, (h, w) = _read_meta(p)
    if 'SMARTIES_BANDS' not in tags:
        raise InputError(f'{str(p)!r} is not a SMARTIES embedding raster (no SMARTIES_BANDS tag); catalogue only '
                         'outputs of smarties embed')
    # the footprint: the raster's 4 corners (exact for rotated grids), edges densified so that the polygon
    # follows the grid's outline after reprojection to EPSG:4326
    t = np.linspace(0.0, 1.0, 9)[:-1]
    rows = np.concatenate([0 * t, t * h, h + 0 * t, (1 - t) * h, [0.0]])
    cols = np.concatenate([t * w, w + 0 * t, (1 - t) * w, 0 * t, [0.0]])
    lon, lat = _to_wgs84(crs, *_grid_xy(transform, rows, cols))
    poly = Polygon(list(zip(lon.tolist(), lat.tolist())))
    acq = tags.get('SMARTIES_DATETIME')
    when = dt.datetime.fromisoformat(acq) if acq else dt.datetime.fromtimestamp(p.stat().st_mtime, dt.UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    props: dict[str, Any] = {PREFIX + k[len('SMARTIES_'):].lower(): v for k, v in tags.items()
                             if k.startswith('SMARTIES_')}
    props.update({
        PREFIX + 'crs': crs.to_string(), PREFIX + 'transform': list(transform)[:6], PREFIX + 'shape': [h, w],
        PREFIX + 'datetime_is_acquisition': bool(acq),
    })
    item = pystac.Item(id=p.stem, geometry=mapping(poly), bbox=list(poly.bounds), datetime=when, properties=props)
    item.add_asset('embeddings', pystac.Asset(href=href or p.name, media_type=pystac.MediaType.COG,
                                              roles=['data'], title='SMARTIES embeddings'))
    return item


def patch_index(paths: Sequence[Path]) -> Any:
    """A GeoDataFrame with one row per embedding cell of *paths* (geometry in EPSG:4326, source CRS in WKB)."""
    import geopandas as gpd
    import pandas as pd
    import shapely

    frames = []
    for p in paths:
        _, crs, transform, (h, w) = _read_meta(p)
        rows, cols = np.divmod(np.arange(h * w), w)
        x, y = _cell_corners(transform, rows, cols)
        lon, lat = _to_wgs84(crs, x, y)
        frames.append(gpd.GeoDataFrame({
            'item': p.stem, 'path': p.name, 'row': rows.astype(np.int32), 'col': cols.astype(np.int32),
            'crs': crs.to_string(),
            'geometry_src': shapely.to_wkb(shapely.polygons(np.stack([x, y], axis=-1))),
        }, geometry=shapely.polygons(np.stack([lon, lat], axis=-1)), crs='EPSG:4326'))
    if not frames:
        return gpd.GeoDataFrame({'item': [], 'path': [], 'row': [], 'col': [], 'crs': [], 'geometry_src': []},
                                geometry=[], crs='EPSG:4326')
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs='EPSG:4326')


def write_catalogue(rasters: Sequence[str | os.PathLike[str]], folder: str | os.PathLike[str]) -> Catalogue:
    """Write ``catalogue.json`` (STAC ItemCollection) and ``patches.parquet`` (GeoParquet) into *folder*.

    Asset hrefs are relative to *folder* when the rasters lie inside it. Both files are written to a
    temporary name and renamed, so a reader never sees half a catalogue.

    Raises:
        InputError: if a raster is unreadable, has no CRS, or is not a SMARTIES embedding raster.
    """
    import pystac

    out = Path(folder)
    paths = sorted(Path(r) for r in rasters)
    items = []
    for p in paths:
        try:
            href = os.path.relpath(p.resolve(), out.resolve())
        except ValueError:  # another drive on Windows
            href = str(p.resolve())
        items.append(embedding_item(p, href))
    stac = out / 'catalogue.json'
    tmp = out / 'catalogue.json.tmp'
    tmp.write_text(json.dumps(pystac.ItemCollection(items).to_dict(), indent=1))
    os.replace(tmp, stac)
    gdf = patch_index(paths)
    index = out / 'patches.parquet'
    tmpi = out / 'patches.parquet.tmp'
    gdf.to_parquet(tmpi, index=False)
    os.replace(tmpi, index)
    return Catalogue(stac, index, len(items), len(gdf))
