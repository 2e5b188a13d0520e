"""Windowed raster reading for tiled inference: files, folders, VRTs, remote COGs and STAC items.

A :class:`RasterSource` never reads a whole scene: :meth:`RasterSource.read` returns one window
(float32 values and a per-pixel validity mask), edge-padded when the window reaches past the raster
(rasters whose size is not a multiple of the patch size are padded and cropped back by the caller).
It holds only paths, so it can be pickled into DataLoader worker processes, each of which opens the
files itself.

:func:`open_source` accepts

* any GDAL raster file (GeoTIFF, COG, VRT, JPEG2000, ...);
* a folder of single-band (or multi-band) files, band names taken from the band descriptions or the file names
  (``B02.tif``, ``T32TQM_20230101_B02_10m.jp2``);
* a remote raster: ``https://``, ``http://``, ``s3://``, ``gs://`` URLs or a GDAL ``/vsi...`` path, read through
  GDAL's virtual file systems with :data:`REMOTE_GDAL_OPTIONS`;
* a STAC item (a local ``.json`` file or an ``https://`` URL), one channel per band asset
  (see :mod:`torchgeo_smarties.inference.stac`).

Files of one source may have different resolutions (Sentinel-2's 10/20/60 m bands): when they share the CRS
and the extent they are resampled (bilinear, GDAL warper) onto the finest grid; other differences are refused.

.. versionadded:: 0.1
.. versionchanged:: 0.2
   Remote rasters, STAC items, mixed-resolution folders, band names from file names, typed read errors.
"""

import contextlib
import dataclasses
import os
import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import MaskFlags, Resampling
from rasterio.errors import RasterioError
from rasterio.windows import Window

from ..errors import (
    AmbiguousBandError,
    BandCountError,
    BandMismatchError,
    InputError,
    OptionError,
    RasterReadError,
    SmartiesError,
    UnsupportedRasterError,
)
from ..spectrum import Band, get_band, get_sensor, list_presets, list_sensors, resolve_bands

__all__ = (
    'RASTER_SUFFIXES',
    'REMOTE_GDAL_OPTIONS',
    'RasterSource',
    'SourceEntry',
    'assemble_source',
    'bands_from_names',
    'gdal_path',
    'is_remote',
    'is_stac',
    'open_source',
    'resolve_source_bands',
    'same_band',
    'select_source_bands',
)

#: File suffixes picked up when the input is a folder of single-band files.
RASTER_SUFFIXES = ('.tif', '.tiff', '.jp2', '.vrt', '.img')

#: GDAL configuration applied while opening and reading remote rasters (keys already set in the environment win).
#: ``EMPTY_DIR`` stops GDAL from listing the remote "directory" for side-car files on open.
REMOTE_GDAL_OPTIONS: dict[str, str] = {
    'GDAL_DISABLE_READDIR_ON_OPEN': 'EMPTY_DIR',
    'GDAL_HTTP_MAX_RETRY': '3',
    'GDAL_HTTP_RETRY_DELAY': '1',
    'GDAL_HTTP_TIMEOUT': '60',
    'VSI_CACHE': 'TRUE',
}

_SCHEMES = {'http://': '/vsicurl/', 'https://': '/vsicurl/', 's3://': '/vsis3/', 'gs://': '/vsigs/',
            'az://': '/vsiaz/'}


def is_remote(path: str | os.PathLike[str]) -> bool:
    """Whether *path* is a URL (``http(s)://``, ``s3://``, ``gs://``, ``az://``) or a GDAL ``/vsi...`` path."""
    s = os.fspath(path)
    return s.lower().startswith(tuple(_SCHEMES)) or s.startswith('/vsi')


def gdal_path(path: str | os.PathLike[str]) -> str:
    """The GDAL name of *path*: ``s3://b/k`` → ``/vsis3/b/k``, ``https://h/x.tif`` → ``/vsicurl/https://h/x.tif``."""
    s = os.fspath(path)
    for scheme, vsi in _SCHEMES.items():
        if s.lower().startswith(scheme):
            return vsi + (s if vsi == '/vsicurl/' else s[len(scheme):])
    return s


def is_stac(path: str | os.PathLike[str]) -> bool:
    """Whether *path* looks like a STAC JSON document (a ``.json`` name, or a local file starting with ``{``).

    A ``#<item id>`` suffix (one item of an item collection) is allowed; a STAC API item URL
    (``.../collections/<id>/items/<id>``) is one too.
    """
    s = os.fspath(path)
    base = s.split('#', 1)[0].split('?', 1)[0]
    if base.lower().endswith(('.json', '.geojson')):
        return True
    if is_remote(s) and re.search(r'/collections/[^/]+/items/[^/]+/?$', base):
        return True
    p = Path(s)
    if is_remote(s) or not p.is_file():
        return False
    with p.open('rb') as f:
        return f.read(64).lstrip()[:1] == b'{'


def _remote_env() -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in REMOTE_GDAL_OPTIONS.items() if k not in os.environ)


@dataclass(frozen=True)
class SourceEntry:
    """One channel of a source: a band of a file, with optional metadata that overrides the file's.

    Attributes:
        path: file path, URL or GDAL path.
        band: 1-based band index in the file.
        name: the channel's band name (default: the file's band description, else the file name).
        nodata: nodata value (default: the file's).
        scale: multiply the stored values by this on read.
        offset: then add this.
    """

    path: str
    band: int = 1
    name: str | None = None
    nodata: float | None = None
    scale: float = 1.0
    offset: float = 0.0


@dataclass
class RasterSource:
    """A multi-band raster made of one multi-band file or several files on one grid.

    Attributes:
        paths: the files (GDAL names); ``layers[c] = (file index, 1-based band index)`` gives channel *c*.
        layers: where each channel comes from.
        height: rows of the grid.
        width: columns of the grid.
        transform: the grid's affine transform.
        crs: the coordinate reference system (None if the raster has none).
        nodata: per channel nodata value (None if unset).
        descriptions: per channel band name (band description, STAC band id, else the file stem for folders).
        dtype: the storage data type of the first channel.
        scales: per channel factor applied on read (empty: none). :meth:`read` returns
            ``stored * scales[c] + offsets[c]``; nodata is judged on the stored values.
        offsets: per channel offset applied on read (empty: none).
        sensor: the sensor the metadata names (a STAC item's ``constellation``/``platform``), used to resolve
            short band names such as ``B02``.
        label: what the user gave (path, URL), for messages.
        read_threads: GDAL threads that decode the blocks of one read (``GDAL_NUM_THREADS`` when a file is
            opened; see :meth:`with_read_threads`).
    """

    paths: tuple[str, ...]
    layers: tuple[tuple[int, int], ...]
    height: int
    width: int
    transform: Affine
    crs: Any
    nodata: tuple[float | None, ...]
    descriptions: tuple[str | None, ...]
    dtype: str
    _mask_from_dataset: tuple[bool, ...] = ()
    _handles: dict[int, Any] = field(default_factory=dict, repr=False, compare=False)
    scales: tuple[float, ...] = ()
    offsets: tuple[float, ...] = ()
    sensor: str | None = None
    label: str = ''
    _warp: tuple[bool, ...] = ()
    _gdal_env: tuple[tuple[str, str], ...] = ()
    read_threads: int = 1

    @property
    def count(self) -> int:
        """Number of channels."""
        return len(self.layers)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state['_handles'] = {}
        return state

    @contextlib.contextmanager
    def _env(self) -> Iterator[None]:
        if self._gdal_env:
            with rasterio.Env(**dict(self._gdal_env)):
                yield
        else:
            yield

    def _open(self, i: int) -> Any:
        key = (os.getpid() << 8) + i
        h = self._handles.get(key)
        if h is None:
            try:
                if self.read_threads > 1:  # GTiff decodes the blocks of one read in parallel (set at open)
                    with rasterio.Env(GDAL_NUM_THREADS=str(self.read_threads)):
                        ds = rasterio.open(self.paths[i])
                else:
                    ds = rasterio.open(self.paths[i])
            except (RasterioError, OSError) as err:
                raise RasterReadError(f'cannot reopen {self.paths[i]!r} ({_short(err)}); was it moved or deleted '
                                      'during the run?') from None
            if self._warp and self._warp[i]:
                from rasterio.vrt import WarpedVRT

                h = WarpedVRT(ds, crs=self.crs, transform=self.transform, width=self.width, height=self.height,
                              resampling=Resampling.bilinear)
                h._smarties_base = ds  # closed with the VRT
            else:
                h = ds
            self._handles[key] = h
        return h

    def select(self, channels: Sequence[int]) -> 'RasterSource':
        """A source of only *channels* (in that order), e.g. the RGB assets of a 12-band STAC item.

        Raises:
            InputError: for a channel index out of range.
        """
        bad = [c for c in channels if not 0 <= c < self.count]
        if bad or not channels:
            raise InputError(f'channels {list(channels)} are not a selection of the {self.count} channels')
        files = sorted({self.layers[c][0] for c in channels})
        remap = {f: i for i, f in enumerate(files)}

        def pick(values: tuple[Any, ...]) -> tuple[Any, ...]:
            return tuple(values[c] for c in channels) if values else ()

        warp = tuple(self._warp[f] for f in files) if self._warp else ()
        return RasterSource(
            tuple(self.paths[f] for f in files), tuple((remap[self.layers[c][0]], self.layers[c][1]) for c in channels),
            self.height, self.width, self.transform, self.crs, pick(self.nodata), pick(self.descriptions), self.dtype,
            pick(self._mask_from_dataset), scales=pick(self.scales), offsets=pick(self.offsets), sensor=self.sensor,
            label=self.label, _warp=warp if any(warp) else (),
            _gdal_env=self._gdal_env, read_threads=self.read_threads,
        )

    def with_read_threads(self, n: int) -> 'RasterSource':
        """This source with *n* decoding threads per read (files are reopened; this one is left as it is).

        The engine gives the reads of ``num_workers=0`` every core: they run between model steps, when the
        model's threads are idle.

        Raises:
            OptionError: unless *n* is an integer >= 1.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise OptionError(f'read threads must be an integer >= 1 (1 = no decoding threads); got {n!r}')
        return dataclasses.replace(self, read_threads=n, _handles={})

    def close(self) -> None:
        """Close the files opened by this process."""
        for h in self._handles.values():
            h.close()
            base = getattr(h, '_smarties_base', None)
            if base is not None:
                base.close()
        self._handles.clear()

    def read(self, window: Window,
             out: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Read a window as float32 (C, h, w) plus a validity mask (C, h, w) (True = valid).

        Parts of *window* outside the raster are filled by replicating the nearest edge pixel
        (values and validity), so edge patches get real embeddings.

        Args:
            window: the pixels to read (may reach past the raster's edges).
            out: C-contiguous float32 and bool arrays of shape (C, h, w) to read into (e.g. one tile of a batch
                buffer); returned as the result.

        Raises:
            InputError: if the window lies outside the raster.
            RasterReadError: if the data cannot be read (a truncated or corrupt file, a lost connection).
        """
        r0, c0 = int(window.row_off), int(window.col_off)
        h, w = int(window.height), int(window.width)
        ir0, ic0 = max(r0, 0), max(c0, 0)
        ir1, ic1 = min(r0 + h, self.height), min(c0 + w, self.width)
        if ir1 <= ir0 or ic1 <= ic0:
            raise InputError(f'window {window} lies outside the raster ({self.height}×{self.width})')
        inner = Window(ic0, ir0, ic1 - ic0, ir1 - ir0)
        pad = ((0, 0), (ir0 - r0, r0 + h - ir1), (ic0 - c0, c0 + w - ic1))
        padded = any(p != (0, 0) for p in pad)
        if out is not None and (out[0].shape != (self.count, h, w) or out[0].dtype != np.float32
                                or out[1].shape != out[0].shape or out[1].dtype != bool
                                or not (out[0].flags.c_contiguous and out[1].flags.c_contiguous)):
            raise InputError(f'out= must be C-contiguous float32 and bool arrays of shape {(self.count, h, w)}')
        if out is not None and not padded:
            vals, valid = out
        else:
            vals = np.empty((self.count, ir1 - ir0, ic1 - ic0), dtype=np.float32)
            valid = np.empty(vals.shape, dtype=bool)
        # group channels by file so a multi-band file is read in one call
        by_file: dict[int, list[int]] = {}
        for c, (fi, _) in enumerate(self.layers):
            by_file.setdefault(fi, []).append(c)
        with self._env():
            for fi, chans in by_file.items():
                try:
                    self._read_file(fi, chans, inner, vals, valid)
                except (RasterioError, OSError) as err:
                    raise RasterReadError(
                        f'cannot read window (col {ic0}, row {ir0}, {ic1 - ic0}×{ir1 - ir0} px) of '
                        f'{self.paths[fi]!r}: {_short(err)}; the file is probably truncated or corrupt (check it '
                        'with gdalinfo -checksum) or the connection was lost: download or rewrite it '
                        '(gdal_translate) and rerun'
                    ) from None
        if self.scales:
            for c, (s, o) in enumerate(zip(self.scales, self.offsets, strict=True)):
                if s != 1.0 or o != 0.0:
                    vals[c] = vals[c] * np.float32(s) + np.float32(o)
        if padded:
            vals = np.pad(vals, pad, mode='edge')
            valid = np.pad(valid, pad, mode='edge')
            if out is not None:
                out[0][...], out[1][...] = vals, valid
                return out
        return vals, valid

    def _read_file(self, fi: int, chans: list[int], inner: Window, vals: np.ndarray, valid: np.ndarray) -> None:
        src = self._open(fi)
        idx = [self.layers[c][1] for c in chans]
        kinds = {src.dtypes[i - 1] for i in idx}
        if kinds <= _EXACT_IN_FLOAT32 and chans == list(range(chans[0], chans[-1] + 1)):
            # GDAL converts straight into the float32 buffer (exact for these types): no second copy, and
            # nodata compares equal on the converted values
            arr = vals[chans[0]:chans[-1] + 1]
            src.read(idx, window=inner, out=arr)
        else:  # wider integers are compared with nodata before the (possibly rounding) conversion
            arr = src.read(idx, window=inner)
            vals[chans] = arr
        finite = not kinds & _FLOAT_TYPES  # integers are always finite: skip the check
        for j, c in enumerate(chans):
            v = valid[c]
            nd = self.nodata[c]
            if nd is not None and not np.isnan(nd):
                np.not_equal(arr[j], nd, out=v)
                if not finite:
                    v &= np.isfinite(vals[c])
            elif self._mask_from_dataset and self._mask_from_dataset[c]:
                np.greater(src.read_masks(idx[j], window=inner), 0, out=v)
                if not finite:
                    v &= np.isfinite(vals[c])
            elif finite:
                v.fill(True)
            else:
                np.isfinite(vals[c], out=v)

    def read_overview(self, channels: list[int], max_size: int = 1024) -> np.ndarray:
        """A decimated (C, h, w) float32 read of *channels* for previews (uses overviews when present)."""
        scale = max(1.0, max(self.height, self.width) / max_size)
        shape = (max(1, int(round(self.height / scale))), max(1, int(round(self.width / scale))))
        out = np.empty((len(channels), *shape), dtype=np.float32)
        with self._env():
            for j, c in enumerate(channels):
                fi, bi = self.layers[c]
                try:
                    out[j] = self._open(fi).read(bi, out_shape=shape).astype(np.float32)
                except (RasterioError, OSError) as err:
                    raise RasterReadError(f'cannot read an overview of {self.paths[fi]!r}: {_short(err)}') from None
                nd = self.nodata[c]
                if nd is not None:
                    out[j][out[j] == nd] = np.nan
                if self.scales:
                    out[j] = out[j] * self.scales[c] + self.offsets[c]
        return out


#: Storage types whose values float32 holds exactly (GDAL may convert them while reading).
_EXACT_IN_FLOAT32 = frozenset({'uint8', 'int8', 'uint16', 'int16', 'float32'})
_FLOAT_TYPES = frozenset({'float16', 'float32', 'float64', 'complex64', 'complex128'})


def _short(err: BaseException) -> str:
    msg = str(err)
    cause = err.__cause__ or err.__context__
    if cause is not None and 'previous exception' in msg:
        msg = str(cause)
    return ' '.join(msg.split())[:240]


def _open_dataset(path: str, env: tuple[tuple[str, str], ...]) -> Any:
    """Open one raster for metadata, turning GDAL errors into typed errors naming the fix."""
    try:
        if env:
            with rasterio.Env(**dict(env)):
                return rasterio.open(path)
        return rasterio.open(path)
    except (RasterioError, OSError) as err:
        msg = _short(err)
        if is_remote(path):
            code = re.search(r'HTTP (?:response )?code[: ]+(\d{3})', msg)
            if code:
                hint = {'404': 'not found: check the URL', '403': 'forbidden: check credentials, or signed URLs '
                        'that expired (for public S3 buckets set AWS_NO_SIGN_REQUEST=YES)',
                        '401': 'unauthorised: set the credentials GDAL needs'}.get(code.group(1), 'check the URL')
                raise RasterReadError(f'cannot open {path!r}: HTTP {code.group(1)} ({hint})') from None
            raise RasterReadError(f'cannot open remote raster {path!r} ({msg}); check the URL and the network, '
                                  'or download the file first') from None
        raise RasterReadError(
            f'cannot read {path!r} as a raster ({msg}); pass a GeoTIFF/COG/VRT file, a folder of single-band '
            'GeoTIFFs, a URL or a STAC item'
        ) from None


def _check_content(ds: Any, name: str) -> None:
    if ds.count == 0:
        raise UnsupportedRasterError(f'{name!r} has no raster bands (a container with subdatasets?); open one '
                                     'subdataset, e.g. gdal_translate SUBDATASET out.tif')
    cplx = sorted({d for d in ds.dtypes if d.startswith('complex')})
    if cplx:
        raise UnsupportedRasterError(
            f'{name!r} holds complex samples ({", ".join(cplx)}, e.g. SAR SLC): SMARTIES takes real-valued '
            'intensities; convert first, e.g. to σ0 in dB: 10·log10(|z|²) (gdal_calc.py --calc '
            '"10*log10(real(A)**2+imag(A)**2)"), or detect/calibrate with SNAP'
        )


def _masked_by_dataset(ds: Any, band: int) -> bool:
    flags = ds.mask_flag_enums[band - 1]
    return MaskFlags.all_valid not in flags and MaskFlags.nodata not in flags


def _vrt_source_names(path: str) -> list[str | None]:
    """Per band of a VRT, the stem of its single source file (gdalbuildvrt -separate), else None."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError):
        return []
    out: list[str | None] = []
    for band in root.iter('VRTRasterBand'):
        files = {e.text for e in band.iter('SourceFilename') if e.text}
        out.append(Path(files.pop()).stem if len(files) == 1 else None)
    return out


def assemble_source(entries: Sequence[SourceEntry], *, label: str, sensor: str | None = None,
                    require_crs: bool = False) -> RasterSource:
    """A :class:`RasterSource` from channels of one or more files (opened for metadata only).

    Files must share the CRS; files with the same extent but another resolution are resampled (bilinear) onto
    the finest grid.

    Raises:
        RasterReadError: if a file cannot be opened.
        UnsupportedRasterError: for complex samples, a missing band, or files on different CRSs / extents.
    """
    if not entries:
        raise UnsupportedRasterError(f'{label!r} yields no raster bands')
    files = list(dict.fromkeys(e.path for e in entries))
    env = _remote_env() if any(is_remote(f) for f in files) else ()
    meta: list[dict[str, Any]] = []
    for f in files:
        with _open_dataset(f, env) as ds:
            _check_content(ds, f)
            meta.append({'h': ds.height, 'w': ds.width, 't': ds.transform, 'crs': ds.crs, 'count': ds.count,
                         'dtypes': ds.dtypes, 'nodata': ds.nodatavals, 'desc': ds.descriptions,
                         'masked': [_masked_by_dataset(ds, b) for b in range(1, ds.count + 1)],
                         'bounds': tuple(ds.bounds)})
    crss = {str(m['crs']) for m in meta}
    if len(crss) > 1:
        raise UnsupportedRasterError(
            f'the files of {label!r} are on different CRSs ({", ".join(sorted(crss))}); reproject them onto one '
            'grid first, e.g. gdalwarp -t_srs EPSG:XXXX, or gdalbuildvrt -separate -resolution highest stack.vrt '
            '*.tif'
        )
    ref = min(range(len(meta)), key=lambda i: (abs(meta[i]['t'].a), i))
    r = meta[ref]
    warp = []
    for f, m in zip(files, meta, strict=True):
        same = (m['h'], m['w'], m['t']) == (r['h'], r['w'], r['t'])
        if not same:
            tol = max(abs(m['t'].a), abs(m['t'].e)) / 2
            rotated = any(abs(t.b) > 0 or abs(t.d) > 0 for t in (m['t'], r['t']))
            if rotated or max(abs(a - b) for a, b in zip(m['bounds'], r['bounds'], strict=True)) > tol:
                raise UnsupportedRasterError(
                    f'{Path(f).name} is not on the grid of {Path(files[ref]).name} (extent/transform differ, not '
                    'only the resolution); resample the files onto one grid first, e.g. gdalbuildvrt -separate '
                    '-resolution highest stack.vrt *.tif'
                )
        warp.append(not same)
    layers, nodata, desc, fromds, scales, offsets = [], [], [], [], [], []
    for e in entries:
        fi = files.index(e.path)
        m = meta[fi]
        if not 1 <= e.band <= m['count']:
            raise UnsupportedRasterError(f'{e.path!r} has {m["count"]} band(s), no band {e.band}')
        layers.append((fi, e.band))
        nodata.append(e.nodata if e.nodata is not None else m['nodata'][e.band - 1])
        desc.append(e.name or m['desc'][e.band - 1])
        fromds.append(m['masked'][e.band - 1] and e.nodata is None)
        scales.append(float(e.scale))
        offsets.append(float(e.offset))
    scaled = any(s != 1.0 or o != 0.0 for s, o in zip(scales, offsets, strict=True))
    src = RasterSource(
        tuple(files), tuple(layers), r['h'], r['w'], r['t'], r['crs'], tuple(nodata), tuple(desc),
        meta[layers[0][0]]['dtypes'][layers[0][1] - 1], tuple(fromds), scales=tuple(scales) if scaled else (),
        offsets=tuple(offsets) if scaled else (), sensor=sensor, label=label,
        _warp=tuple(warp) if any(warp) else (), _gdal_env=env,
    )
    if src.crs is None:
        if require_crs:
            raise InputError(f'{label!r} has no CRS; assign one (e.g. gdal_edit.py -a_srs EPSG:XXXX) or drop '
                             '--require-crs to write outputs without a CRS')
        warnings.warn(f'{label!r} has no CRS: the outputs will carry the pixel grid only (no CRS)', stacklevel=3)
    return src


def open_source(path: str | os.PathLike[str], *, require_crs: bool = False) -> RasterSource:
    """Describe a raster input without reading pixels.

    Args:
        path: a GDAL raster (GeoTIFF/COG/VRT, ...), a folder of files on one grid (sorted by file name; each
            file's band description or file name names its band), a URL (``https://``, ``s3://``, ...) or a
            STAC item (local ``.json`` or URL; ``collection.json#<item id>`` for one item of an item collection).
        require_crs: raise instead of warning when the raster has no CRS.

    Raises:
        InputError: if the path does not exist or has no CRS with *require_crs*.
        RasterReadError: if a file is unreadable or a URL cannot be opened (HTTP 404, ...).
        UnsupportedRasterError: for complex samples, an empty folder, files on different grids.
        StacError: for a STAC document without usable band assets.
        MissingExtraError: for a STAC item without ``pystac`` installed.
    """
    s = os.fspath(path)
    if is_stac(s):
        from .stac import stac_entries

        stac, sensor = stac_entries(s)
        return assemble_source(stac, label=s, sensor=sensor, require_crs=require_crs)
    if is_remote(s):
        return assemble_source(_file_entries(gdal_path(s), s), label=s, require_crs=require_crs)
    p = Path(s)
    if not p.exists():
        raise InputError(f'input {s!r} does not exist')
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in RASTER_SUFFIXES and f.is_file())
        if not files:
            raise UnsupportedRasterError(f'folder {s!r} holds no raster files ({", ".join(RASTER_SUFFIXES)}); '
                                         'pass a folder of per-band GeoTIFFs (B02.tif, B03.tif, ...)')
        entries: list[SourceEntry] = []
        for f in files:
            entries.extend(_file_entries(str(f), str(f), folder=True))
        return assemble_source(entries, label=s, require_crs=require_crs)
    return assemble_source(_file_entries(s, s), label=s, require_crs=require_crs)


def _file_entries(path: str, label: str, folder: bool = False) -> list[SourceEntry]:
    env = _remote_env() if is_remote(path) else ()
    with _open_dataset(path, env) as ds:
        _check_content(ds, label)
        count, desc = ds.count, ds.descriptions
    vrt = _vrt_source_names(path) if path.lower().endswith('.vrt') and not is_remote(path) else []
    stem = Path(path.split('?', 1)[0]).stem
    out = []
    for b in range(1, count + 1):
        name = desc[b - 1]
        if not name and b <= len(vrt):
            name = vrt[b - 1]
        if not name and folder:
            name = stem if count == 1 else f'{stem}:{b}'
        out.append(SourceEntry(path, b, name or None))
    return out


# ------------------------------------------------------------------------------------------- band names
def _name_candidates(name: str) -> list[str]:
    """The full name, then its tokens (split on ``_ . space``) from the end, tokens of 2+ characters."""
    toks = [t for t in re.split(r'[_.\s]+', name) if len(t) >= 2]
    return list(dict.fromkeys([name.strip(), *reversed(toks)]))


def _band_under(sensor: str, name: str) -> Band | None:
    for cand in _name_candidates(name):
        if ':' in cand:
            continue
        try:
            return get_band(f'{sensor}:{cand}')
        except SmartiesError:
            continue
    return None


def _qualified(name: str) -> Band | None:
    """A band from a name that names its sensor: ``'sentinel2:B02'``, ``'landsat8_B2'``, ``'S2B_..._B04_10m'``."""
    if ':' in name:
        try:
            return get_band(name.strip())
        except SmartiesError:
            return None
    toks = [t for t in re.split(r'[_.\s]+', name) if len(t) >= 2]
    for i, tok in enumerate(toks):
        for cand in dict.fromkeys((tok, re.sub(r'(\d)[a-dA-D]$', r'\1', tok))):
            if _is_sensor(cand):
                rest = '_'.join(toks[:i] + toks[i + 1:])
                band = _band_under(get_sensor(cand).id, rest) if rest else None
                if band is not None:
                    return band
    return None


def bands_from_names(names: Sequence[str | None], sensors: Sequence[str] = ()) -> tuple[Band, ...] | None:
    """Registry bands named by the data (band descriptions, STAC band names, file names), or None.

    Names that name their sensor (``'sentinel2:B02'``, ``'landsat8_B2'``, ``'S2B_T32TQM_20230601_B04_10m'``)
    resolve as they are; short names (``'B02'``, ``'red'``,
    ``'T32_B02_10m'``) resolve under the first of *sensors* that knows them all, or, without *sensors*, under
    the one registered sensor that knows them all.

    Returns:
        The bands, or None if some name is missing or no sensor knows all of them.

    Raises:
        AmbiguousBandError: if, without *sensors*, several sensors know all the names.
    """
    if not names or not all(names):
        return None
    strs = [str(n) for n in names]
    qualified = [_qualified(n) for n in strs]
    if all(b is not None for b in qualified):
        return tuple(b for b in qualified if b is not None)
    candidates = list(sensors) if sensors else [s.id for s in list_sensors()]
    hits: dict[str, tuple[Band, ...]] = {}
    for sid in candidates:
        got = [_band_under(sid, n) for n in strs]
        if all(b is not None for b in got):
            hits[sid] = tuple(b for b in got if b is not None)
            if sensors:
                return hits[sid]
    if not hits:
        return None
    if len(hits) == 1:
        return next(iter(hits.values()))
    first = next(iter(hits))
    raise AmbiguousBandError(
        f'the raster\'s band names {strs} fit several sensors ({", ".join(hits)}); name the sensor with --sensor '
        f'{first} (the band names give the order) or the bands with --bands '
        f'"{",".join(b.id for b in hits[first][:3])}{",..." if len(strs) > 3 else ""}"'
    )


def same_band(a: Band, b: Band) -> bool:
    """Whether two bands are the same channel: same id, or same polarisation and centre (HLS S30 vs S2 B02)."""
    if a.id == b.id:
        return True
    if a.polarization != b.polarization:
        return False
    tol = max(2.0, 0.25 * min(a.fwhm_nm, b.fwhm_nm))
    return abs(a.center_nm - b.center_nm) <= tol


def _short_ids(bands: Sequence[Band]) -> str:
    sensors = {b.sensor for b in bands}
    if len(sensors) == 1:
        return f'{bands[0].sensor}:' + ','.join(b.name for b in bands)
    return ','.join(b.id for b in bands)


def resolve_source_bands(source: RasterSource, bands: str | None = None, sensor: str | None = None) -> tuple[str, ...]:
    """Band ids for each channel of *source*, from *bands*, a *sensor* preset, or the data's own band names.

    The data's band names (GeoTIFF band descriptions, STAC band ids, file names) are used when they name known
    bands: *bands* is then optional, and a bare sensor id for *sensor* (``'sentinel2'``, not a preset) only
    says how to read short names such as ``B04``. When the data's names and *bands* / a *sensor* preset both
    give the bands and disagree, nothing is guessed.

    Raises:
        BandCountError: if the number of bands given differs from the raster's channel count, or the raster's
            bands cannot be identified.
        BandMismatchError: if the data's band names contradict *bands* / *sensor*.
        AmbiguousBandError: if the data's short band names fit several sensors and none is given.
        UnknownPresetError, UnknownSensorError, UnknownBandError: for unknown names (from the spectrum registry).
    """
    if bands is not None and sensor is not None:
        raise InputError('give either --bands or --sensor, not both')
    spec = bands if bands is not None else sensor
    desc = source.descriptions
    if spec is not None:
        resolved = resolve_bands(spec)
        hints = list(dict.fromkeys(b.sensor for b in resolved))
        if source.sensor and source.sensor not in hints:
            hints.append(source.sensor)
        try:
            data = bands_from_names(desc, hints)
        except AmbiguousBandError:
            data = None
        flag = '--bands' if bands is not None else f'--sensor {sensor}'
        if sensor is not None and data is not None and _is_sensor(sensor) and not _is_preset(sensor):
            return tuple(b.id for b in data)  # a bare sensor: the data names the bands, the sensor reads them
        if len(resolved) != source.count:
            if sensor is not None and data is not None and _is_sensor(sensor):
                return tuple(b.id for b in data)  # a bare sensor: the data names the bands, the sensor reads them
            what = f'--bands ({len(resolved)} bands)' if bands is not None else f'--sensor {sensor}'
            what += '' if bands is not None else f' ({len(resolved)} bands)'
            seen = f' (its band names say {_short_ids(data)})' if data is not None else ''
            raise BandCountError(
                f'{what} but the raster has {source.count} bands{seen}; name one band per raster band in order, '
                f'e.g. --bands "{",".join(b.id for b in resolved[: min(3, len(resolved))])},..."'
                + ('' if data is None else f', or drop {flag.split()[0]}: the raster names its bands')
            )
        if data is not None and not all(same_band(a, b) for a, b in zip(data, resolved, strict=True)):
            raise BandMismatchError(
                f'the raster\'s band names say {_short_ids(data)} but {flag} says {_short_ids(resolved)}; drop '
                f'{flag.split()[0]} to use the raster\'s names, or, if the names are wrong, fix them (e.g. '
                'rio edit-info --bidx N --description NAME) or reorder the raster\'s bands'
            )
        return tuple(b.id for b in resolved)
    hints = [source.sensor] if source.sensor else []
    data = bands_from_names(desc, hints)
    if data is not None:
        return tuple(b.id for b in data)
    if all(desc):
        raise BandCountError(
            f'the raster band names {list(desc)} do not name known bands; pass --bands '
            '"<sensor>:<band>,..." (one per raster band), --sensor <preset>, or --sensor <sensor> if the names are '
            'short band names of that sensor (see smarties bands)'
        )
    raise BandCountError(
        f'cannot tell which bands the raster\'s {source.count} channels are (no band descriptions); pass --bands '
        '"<sensor>:<band>,..." (one per raster band) or --sensor <preset>, e.g. --sensor sentinel2_l2a '
        '(run smarties bands for the list)'
    )


def select_source_bands(source: RasterSource, bands: str) -> RasterSource:
    """The channels of *source* whose data band names are *bands* (in that order), for sources that name their bands.

    Lets a caller embed a subset of a STAC item or a per-band folder (``--bands sentinel2:B04,B03,B02`` of a
    12-band item). Bands agree as in :func:`resolve_source_bands` (same id, or same centre and polarisation).

    Raises:
        BandCountError: if the source does not name its bands.
        BandMismatchError: if a requested band is not among them (naming the source's bands).
    """
    wanted = resolve_bands(bands)
    hints = list(dict.fromkeys([*(b.sensor for b in wanted), *([source.sensor] if source.sensor else [])]))
    try:
        data = bands_from_names(source.descriptions, hints)
    except AmbiguousBandError:
        data = None
    if data is None:
        raise BandCountError(f'{source.label or "the raster"!r} does not name its bands, so bands cannot be selected '
                             'by name; pass one band per raster band with --bands')
    chans = []
    for w in wanted:
        hit = next((c for c, d in enumerate(data) if same_band(d, w)), None)
        if hit is None:
            raise BandMismatchError(f'{w.id} is not a band of {source.label or "the raster"!r}; it has '
                                    f'{_short_ids(data)}')
        chans.append(hit)
    return source.select(chans)


def _is_sensor(name: str) -> bool:
    try:
        get_sensor(name)
    except SmartiesError:
        return False
    return True


def _is_preset(name: str) -> bool:
    return name.strip().lower().replace('-', '_') in list_presets()
