"""STAC items as inference inputs: one channel per band asset, the sensor from the item's metadata.

A STAC item (a local JSON file or an ``https://`` URL, read with `pystac <https://pystac.readthedocs.io>`_) becomes a
:class:`~torchgeo_smarties.inference.RasterSource`:

* **bands**: each raster data asset's bands (``eo:bands``, or STAC 1.1 ``bands``) are matched to registry bands of
  the item's sensor by ``name``, then ``common_name`` (an asset without band metadata by its key, or its single
  ``sar:polarizations`` entry: Sentinel-1 ``vv``/``vh``); assets with the role ``visual``/``overview``/``thumbnail``
  and non-raster media types are skipped. A band offered by several assets is read from the single-band asset,
  GeoTIFF/COG preferred over JPEG2000. Channels follow the sensor's canonical band order.
* **sensor**: from ``constellation`` / ``platform`` (``sentinel-2a`` → ``sentinel2``, ``landsat-8`` →
  ``landsat8``, ...), HLS from the collection id (``HLSS30`` → ``hls_s30``).
* **values**: an asset's ``raster:bands`` ``scale``/``offset`` are honoured at read time, by converting the stored
  values into the sensor's native value convention (:data:`NATIVE_CONVENTIONS`, the one the default statistics
  assume): ``value = (stored · scale + offset − native_offset) / native_scale``. Sentinel-2 L2A items of processing
  baseline ≥ 04.00 (``offset −0.1``) thus read as ``DN − 1000``, i.e. the pre-baseline convention of the release's
  statistics; Landsat Collection 2 L2 items (``×0.0000275 − 0.2``) read unchanged. For a sensor without a native
  convention the physical values (``stored · scale + offset``) are read, with a warning.
* **resolution**: assets at several resolutions on one extent (Sentinel-2's 10/20/60 m bands) are resampled
  (bilinear) onto the finest grid.

Requires the ``stac`` extra: ``pip install 'torchgeo-smarties[stac]'``.

.. versionadded:: 0.2
"""

import json
import re
import warnings
from pathlib import Path
from typing import Any

from ..errors import MissingExtraError, SmartiesError, StacError
from ..spectrum import Band, get_sensor
from .source import SourceEntry, _band_under, gdal_path, is_remote

__all__ = ('NATIVE_CONVENTIONS', 'read_stac', 'stac_entries', 'stac_items', 'stac_sensor')

#: Per sensor, (scale, offset) from the stored values the default statistics assume to physical reflectance.
NATIVE_CONVENTIONS: dict[str, tuple[float, float]] = {
    'sentinel2': (1e-4, 0.0),
    'hls_s30': (1e-4, 0.0),
    'hls_l30': (1e-4, 0.0),
    'planetscope': (1e-4, 0.0),
    'superdove': (1e-4, 0.0),
    **{f'landsat{n}': (2.75e-5, -0.2) for n in (4, 5, 7, 8, 9)},
}
#: Thermal bands: Landsat Collection 2 surface temperature (K), HLS (°C).
_THERMAL: dict[str, tuple[float, float]] = {
    **{f'landsat{n}': (0.00341802, 149.0) for n in (4, 5, 7, 8, 9)},
    'hls_l30': (0.01, 0.0),
}
_SKIP_ROLES = {'visual', 'overview', 'thumbnail', 'metadata'}
_RASTER_TYPES = ('image/tiff', 'image/jp2', 'image/vnd.stac.geotiff', 'application/x-hdf', 'image/x.geotiff')


def _pystac() -> Any:
    try:
        import pystac
    except ImportError:
        raise MissingExtraError(
            "reading STAC items needs pystac: pip install 'torchgeo-smarties[stac]'"
        ) from None
    return pystac


def read_stac(href: str) -> dict[str, Any]:
    """The JSON document at *href* (local path or URL).

    Raises:
        StacError: if it cannot be read or is not JSON.
        MissingExtraError: without pystac.
    """
    pystac = _pystac()
    try:
        if is_remote(href):
            text = pystac.StacIO.default().read_text(href)
        else:
            text = Path(href).read_text(encoding='utf-8')
        doc = json.loads(text)
    except FileNotFoundError:
        raise StacError(f'STAC document {href!r} does not exist') from None
    except json.JSONDecodeError as err:
        raise StacError(f'{href!r} is not valid JSON ({err}); pass a STAC item (.json) or a raster') from None
    except Exception as err:  # urllib HTTPError / URLError, OSError
        raise StacError(f'cannot read STAC document {href!r} ({" ".join(str(err).split())[:200]}); check the URL '
                        'and the network') from None
    if not isinstance(doc, dict):
        raise StacError(f'{href!r} is not a STAC item (a JSON object with "type": "Feature")')
    return doc


def stac_items(href: str) -> list[Any]:
    """The ``pystac.Item`` objects of an item (one) or an item collection (all) at *href*.

    Raises:
        StacError: for other documents.
    """
    pystac = _pystac()
    doc = read_stac(href)
    kind = doc.get('type')
    try:
        if kind == 'Feature':
            return [pystac.Item.from_dict(doc, href=href)]
        if kind == 'FeatureCollection':
            return [pystac.Item.from_dict(f, href=href) for f in doc.get('features', [])]
    except Exception as err:
        raise StacError(f'{href!r} is not a valid STAC item ({" ".join(str(err).split())[:200]})') from None
    raise StacError(f'{href!r} is a {kind or "JSON document"!s}, not a STAC item or item collection; pass an '
                    'item (.json with "type": "Feature")')


def stac_sensor(item: Any) -> str | None:
    """The registry sensor an item's ``constellation`` / ``platform`` (or HLS collection id) names, if any."""
    coll = str(item.collection_id or '').lower()
    if 'hls' in coll:
        if 's30' in coll:
            return 'hls_s30'
        if 'l30' in coll:
            return 'hls_l30'
    props = item.properties
    for key in ('platform', 'constellation', 'instruments'):
        vals = props.get(key)
        for v in vals if isinstance(vals, list) else [vals]:
            if not isinstance(v, str) or not v:
                continue
            for cand in (v, re.sub(r'(\d)[a-d]$', r'\1', v.lower()), v.replace('.', '_')):
                try:
                    return get_sensor(cand).id
                except SmartiesError:
                    continue
    return None


def _asset_bands(asset: Any, item: Any) -> list[dict[str, Any]]:
    ef = asset.extra_fields
    bands = ef.get('bands') or ef.get('eo:bands') or []
    item_bands = item.properties.get('eo:bands') or []
    out = []
    for b in bands:
        if isinstance(b, int) and 0 <= b < len(item_bands):  # STAC 1.0-beta: indices into the item's eo:bands
            b = item_bands[b]
        out.append(b if isinstance(b, dict) else {})
    return out


def _raster_info(asset: Any, i: int, band: dict[str, Any]) -> tuple[float, float, float | None]:
    rb = asset.extra_fields.get('raster:bands') or []
    info = dict(rb[i]) if i < len(rb) and isinstance(rb[i], dict) else {}
    for k in ('scale', 'offset', 'nodata'):
        for key in (k, f'raster:{k}'):
            if key in band:
                info[k] = band[key]
    nodata = info.get('nodata', asset.extra_fields.get('nodata'))
    return float(info.get('scale', 1.0)), float(info.get('offset', 0.0)), None if nodata is None else float(nodata)


def _usable(key: str, asset: Any) -> bool:
    roles = set(asset.roles or [])
    if roles & _SKIP_ROLES or key.lower() in _SKIP_ROLES:
        return False
    mt = (asset.media_type or '').lower()
    return not mt or mt.startswith(_RASTER_TYPES)


def _native(band: Band) -> tuple[float, float] | None:
    if band.center_nm > 3000 and band.polarization is None:
        return _THERMAL.get(band.sensor)
    return NATIVE_CONVENTIONS.get(band.sensor)


def stac_entries(href: str, item: Any = None) -> tuple[list[SourceEntry], str | None]:
    """The channels of a STAC item (see the module docs) and its sensor.

    Args:
        href: the item's location (a local JSON file or a URL), ``...#<item id>`` for one item of a collection.
        item: an already-read ``pystac.Item`` (default: read *href*).

    Raises:
        StacError: if the document is not one item, or no asset has bands of a known sensor.
        MissingExtraError: without pystac.
    """
    if item is None:
        base, _, wanted = href.partition('#')
        items = stac_items(base)
        if wanted:
            hits = [it for it in items if it.id == wanted]
            if not hits:
                raise StacError(f'{base!r} has no item {wanted!r}; its items: {", ".join(it.id for it in items[:10])}'
                                + (', ...' if len(items) > 10 else ''))
            items = hits[:1]
        if len(items) != 1:
            raise StacError(f'{href!r} is an item collection of {len(items)} items; embed one item '
                            f'({href}#<item id>), or expand the collection with '
                            'torchgeo_smarties.inference.open_sources')
        item = items[0]
    sensor = stac_sensor(item)
    # (band id or name) -> (rank, order, SourceEntry)
    chosen: dict[str, tuple[tuple[int, int, int], SourceEntry, Band | None]] = {}
    seen: list[str] = []
    for order, (key, asset) in enumerate(item.assets.items()):
        seen.append(key)
        if not _usable(key, asset):
            continue
        bands = _asset_bands(asset, item)
        if not bands and sensor is not None:
            # no band metadata (Sentinel-1 RTC 'vv'/'vh', Planetary Computer 'B02'): the key or the single
            # polarisation names the band, if the sensor knows it
            pols = asset.extra_fields.get('sar:polarizations') or []
            bands = [{'name': key, **({'common_name': pols[0]} if len(pols) == 1 else {})}]
        if not bands:
            continue
        path = asset.get_absolute_href() or asset.href
        path = gdal_path(path) if is_remote(path) else path
        for i, b in enumerate(bands):
            names = [str(b[k]) for k in ('name', 'common_name', 'eo:common_name') if b.get(k)]
            reg = None
            if sensor is not None:
                reg = next((r for r in (_band_under(sensor, n) for n in names) if r is not None), None)
                if reg is None:
                    continue  # e.g. SCL, AOT, WVP: not a spectral band of the sensor
                label = reg.id
            elif names:
                label = names[0]
            else:
                continue
            scale, offset, nodata = _raster_info(asset, i, b)
            if reg is not None and (scale, offset) != (1.0, 0.0):
                native = _native(reg)
                if native is not None:
                    scale, offset = scale / native[0], (offset - native[1]) / native[0]
                else:
                    warnings.warn(f'{reg.id} has no native value convention: asset {key!r} is read in physical units '
                                  f'(× {scale} + {offset}); pass statistics in the same units (--stats)',
                                  stacklevel=3)
            mt = (asset.media_type or '').lower()
            rank = (0 if len(bands) == 1 else 1, 0 if 'tiff' in mt or not mt else 1, order)
            entry = SourceEntry(path, i + 1, label, nodata, scale, offset)
            if label not in chosen or rank < chosen[label][0]:
                chosen[label] = (rank, entry, reg)
    if not chosen:
        why = (f'the sensor {sensor!r} (from constellation/platform) has none of their bands' if sensor
               else 'and no constellation/platform naming a registered sensor')
        raise StacError(
            f'the STAC item {item.id!r} ({href}) has no usable band assets: none of {seen} is a raster data asset '
            f'with eo:bands / bands {why}; check the item, or download the bands and pass a folder with --bands'
        )
    picked = list(chosen.values())
    if sensor is not None:
        order_of = {b.id: k for k, b in enumerate(get_sensor(sensor).bands)}
        picked.sort(key=lambda t: order_of.get(t[1].name or '', 1 << 30))
    else:
        picked.sort(key=lambda t: t[0][2])
    return [e for _, e, _ in picked], sensor

