"""In-memory inputs: embed a numpy array or an ``xarray.DataArray`` and get an ``xarray.DataArray`` back.

Requires the ``xarray`` extra: ``pip install 'torchgeo-smarties[xarray]'`` (xarray + rioxarray).

.. versionadded:: 0.2
"""

import math
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine

from ..errors import InputError, MissingExtraError

__all__ = ('embed_array',)


def _xarray() -> Any:
    try:
        import rioxarray  # noqa: F401 (registers the .rio accessor)
        import xarray
    except ImportError:
        raise MissingExtraError(
            "embed_array needs xarray and rioxarray: pip install 'torchgeo-smarties[xarray]'"
        ) from None
    return xarray


def _names_from_dataarray(da: Any) -> list[str] | None:
    if 'band' in da.coords:
        vals = [v.item() if hasattr(v, 'item') else v for v in da.coords['band'].values]
        if all(isinstance(v, str) and v for v in vals):
            return [str(v) for v in vals]
    ln = da.attrs.get('long_name')
    if isinstance(ln, str) and da.shape[0] == 1:
        ln = [ln]
    if isinstance(ln, (list, tuple)) and len(ln) == da.shape[0] and all(isinstance(v, str) and v for v in ln):
        return [str(v) for v in ln]
    return None


def embed_array(
    data: Any,
    bands: str | Sequence[str] | None = None,
    *,
    weights: str | None = None,
    transform: Affine | Sequence[float] | None = None,
    crs: Any = None,
    nodata: float | None = None,
    **embed_options: Any,
) -> Any:
    """Dense SMARTIES embeddings of an in-memory image, as an ``xarray.DataArray`` on the 16-px patch grid.

    The array is written to a temporary GeoTIFF and run through :func:`~torchgeo_smarties.inference.embed_raster`
    (same tiling, blending, nodata handling and normalisation as ``smarties embed``), then read back.

    Args:
        data: a numpy array (C, H, W), or an ``xarray.DataArray`` with dims (band, y, x) carrying rioxarray
            metadata (transform, CRS, nodata); its band names come from the ``band`` coordinate (when it holds
            strings) or the ``long_name`` attribute.
        bands: band ids per channel (``'sentinel2:B04,...'``, a list, or a preset); optional when the
            DataArray names its bands.
        weights: see :func:`~torchgeo_smarties.inference.weights.load_encoder`.
        transform: the affine transform of a numpy *data* (default: the DataArray's, else the identity).
        crs: the CRS of a numpy *data* (anything rasterio accepts; default: the DataArray's, else none).
        nodata: the nodata value (default: the DataArray's, else none; NaN is always nodata).
        **embed_options: passed to :func:`~torchgeo_smarties.inference.embed_raster` (``model``, ``tile``,
            ``overlap``, ``norm``, ``stats``, ``sensor``, ``layer``, ``device``, ...); ``progress`` defaults to
            False and ``log`` to silence.

    Returns:
        An ``xarray.DataArray`` (band, y, x) of float embeddings: ``band`` = ``emb_0000``..., ``y``/``x`` = the
        patch-cell centres (the input transform × 16), the CRS set (``rio.write_crs``), NaN where the input had
        no valid band, and the run's tags (``SMARTIES_WEIGHTS``, ``SMARTIES_BANDS``, ...) in ``attrs``.

    Raises:
        MissingExtraError: without xarray/rioxarray.
        InputError: if *data* is not 3-D or conflicting metadata is given.
        BandCountError, BandMismatchError, ...: as :func:`~torchgeo_smarties.inference.embed_raster`.
    """
    xr = _xarray()
    from .embed import embed_raster

    names: list[str] | None = None
    if isinstance(data, xr.DataArray):
        if data.ndim != 3:
            raise InputError(f'embed_array takes a (band, y, x) DataArray, got dims {data.dims}')
        if transform is not None or crs is not None:
            raise InputError('the DataArray carries its own transform and CRS; drop transform=/crs= (or set them '
                             'with da.rio.write_transform / da.rio.write_crs)')
        names = _names_from_dataarray(data)
        try:
            tr = data.rio.transform(recalc=False)
        except Exception:  # no spatial dims / coordinates
            tr = Affine.identity()
        the_crs = data.rio.crs
        nd = data.rio.nodata if nodata is None else nodata
        values = np.asarray(data.values)
    else:
        values = np.asarray(data)
        if values.ndim != 3:
            raise InputError(f'embed_array takes a (C, H, W) array, got shape {values.shape}; add a band axis '
                             '(data[None]) for one band')
        tr = Affine.identity() if transform is None else (
            transform if isinstance(transform, Affine) else Affine(*list(transform)[:6]))
        the_crs, nd = crs, nodata
    if values.dtype == np.float64 or values.dtype == np.float16 or values.dtype == bool:
        values = values.astype(np.float32)
    spec = bands if bands is None or isinstance(bands, str) else ','.join(bands)
    embed_options.setdefault('progress', False)
    embed_options.setdefault('log', lambda s: None)
    c, h, w = values.shape
    with tempfile.TemporaryDirectory(prefix='smarties_array_') as tmp:
        inp, out = Path(tmp) / 'input.tif', Path(tmp) / 'embeddings.tif'
        profile = {'driver': 'GTiff', 'width': w, 'height': h, 'count': c, 'dtype': values.dtype.name,
                   'transform': tr, 'crs': the_crs, 'tiled': True, 'blockxsize': 256, 'blockysize': 256}
        if nd is not None and not math.isnan(float(nd)):
            profile['nodata'] = nd
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(inp, 'w', **profile) as dst:
                dst.write(values)
                if names:
                    dst.descriptions = tuple(names)
        embed_raster(inp, out, bands=spec, weights=weights, **embed_options)
        with rasterio.open(out) as ds:
            emb = ds.read()
            otr, ocrs, tags, desc = ds.transform, ds.crs, ds.tags(), ds.descriptions
    ys = otr.f + (np.arange(emb.shape[1]) + 0.5) * otr.e
    xs = otr.c + (np.arange(emb.shape[2]) + 0.5) * otr.a
    da = xr.DataArray(emb, dims=('band', 'y', 'x'), coords={'band': list(desc), 'y': ys, 'x': xs}, attrs=tags)
    da = da.rio.write_transform(otr)
    if ocrs is not None:
        da = da.rio.write_crs(ocrs)
    return da.rio.write_nodata(np.nan, encoded=False)
