"""Pixel-interleaved GeoTIFF writes through GDAL's own dataset ``RasterIO``, on the library rasterio loaded.

Why: :meth:`rasterio.io.DatasetWriter.write` takes ``(bands, rows, cols)`` arrays and makes each one C-contiguous,
so pixel-interleaved rows ``(rows, cols, bands)`` — the layout the engine blends in and a multi-band
``INTERLEAVE=PIXEL`` GeoTIFF stores — are first transposed by numpy and then re-interleaved by GDAL, one strided
pass per band. With 768 embedding bands these two passes cost more than compressing the data (about 0.2 s per
45 MB on a 2-core CPU, against 0.05 s for the copy GDAL needs). GDAL's ``GDALDatasetRasterIOEx`` takes any pixel,
line and band spacing and, for whole blocks of a pixel-interleaved GTiff, copies the rows of the caller's buffer
straight into each tile before compressing it. rasterio does not expose that call, so :class:`PixelWriter` calls
it through :mod:`ctypes`, on the very ``libgdal`` rasterio has loaded (same drivers, configuration and error
handler); rasterio remains the reader of everything written here.

:func:`pixel_writer_supported` says whether a profile can take this path: a multi-band pixel-interleaved GTiff of
a plain numeric type (unsigned 8- to 32-bit or signed 16- and 32-bit integers, float32, float64) without a colour
table, on a platform where the loaded ``libgdal`` can be found (Linux, macOS) and reports rasterio's GDAL version.
Otherwise the engine writes through rasterio (the same file, slower).

.. versionadded:: 0.2
"""

import ctypes
import functools
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.dtypes import dtype_rev
from rasterio.errors import RasterioIOError

__all__ = ('PixelWriter', 'libgdal', 'pixel_writer_supported')

_VP = ctypes.c_void_p
_GF_WRITE = 1
_CE_FAILURE = 3
#: Data types written on this path (GDAL's own types; float16 is not one before GDAL 3.11).
_TYPES = frozenset({'uint8', 'uint16', 'int16', 'uint32', 'int32', 'float32', 'float64'})
#: Profile keys that are not GTiff creation options.
_NOT_OPTIONS = frozenset({'driver', 'width', 'height', 'count', 'dtype', 'crs', 'transform', 'nodata'})


def _loaded_paths() -> list[str]:
    """Paths of the shared libraries loaded in this process (Linux: /proc/self/maps; macOS: dyld)."""
    maps = Path('/proc/self/maps')
    if maps.is_file():
        fields = (line.split(None, 5) for line in maps.read_text().splitlines())
        return [f[5].strip() for f in fields if len(f) == 6]  # the 6th field is the mapped file's path
    if sys.platform == 'darwin':
        dyld = ctypes.CDLL(None)
        dyld._dyld_get_image_name.restype = ctypes.c_char_p
        names = (dyld._dyld_get_image_name(i) for i in range(dyld._dyld_image_count()))
        return [os.fsdecode(n) for n in names if n]
    return []


@functools.cache
def libgdal() -> Any | None:
    """The ``libgdal`` rasterio uses, with the prototypes this module calls; ``None`` where it cannot be found.

    Only a library that reports rasterio's GDAL version is taken, so the writer never runs on a second GDAL
    (``import rasterio`` has loaded it).
    """
    names = [p for p in _loaded_paths() if Path(p).name.startswith('libgdal') and Path(p).is_file()]
    for path in dict.fromkeys(names):
        try:
            lib = ctypes.CDLL(path)
            lib.GDALVersionInfo.restype = ctypes.c_char_p
            lib.GDALVersionInfo.argtypes = [ctypes.c_char_p]
            release = lib.GDALVersionInfo(b'RELEASE_NAME').decode()
        except (OSError, AttributeError):
            continue
        if release.split('dev')[0].rstrip('-') == rasterio.__gdal_version__.split('dev')[0].rstrip('-'):
            return _prototypes(lib, int(lib.GDALVersionInfo(b'VERSION_NUM')))
    return None


def _prototypes(lib: Any, version: int) -> Any:
    sig: dict[str, tuple[Any, list[Any]]] = {
        'GDALAllRegister': (None, []),
        'GDALGetDriverByName': (_VP, [ctypes.c_char_p]),
        'GDALCreate': (_VP, [_VP, ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, _VP]),
        'GDALSetGeoTransform': (ctypes.c_int, [_VP, ctypes.POINTER(ctypes.c_double)]),
        'GDALSetProjection': (ctypes.c_int, [_VP, ctypes.c_char_p]),
        'GDALGetRasterBand': (_VP, [_VP, ctypes.c_int]),
        'GDALSetRasterNoDataValue': (ctypes.c_int, [_VP, ctypes.c_double]),
        'GDALSetDescription': (None, [_VP, ctypes.c_char_p]),
        'GDALSetMetadataItem': (ctypes.c_int, [_VP, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]),
        'GDALDatasetRasterIOEx': (ctypes.c_int, [_VP, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                                 ctypes.c_int, _VP, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                                 ctypes.c_int, _VP, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                                                 _VP]),
        # CPLErr since GDAL 3.7 (void before: the result is then ignored)
        'GDALClose': (ctypes.c_int if version >= 3070000 else None, [_VP]),
        'CPLErrorReset': (None, []),
        'CPLGetLastErrorType': (ctypes.c_int, []),
        'CPLGetLastErrorMsg': (ctypes.c_char_p, []),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    lib.GDALAllRegister()
    return lib


def pixel_writer_supported(profile: dict[str, Any], colormap: object = None) -> bool:
    """Whether :class:`PixelWriter` can write *profile* (multi-band pixel-interleaved GTiff, no colour table)."""
    return (str(profile.get('driver', '')).lower() == 'gtiff' and int(profile.get('count', 1)) > 1
            and str(profile.get('interleave', 'pixel')).lower() == 'pixel' and colormap is None
            and np.dtype(profile['dtype']).name in _TYPES and libgdal() is not None)


def _option(key: str, value: Any) -> bytes:
    if isinstance(value, bool):
        value = 'YES' if value else 'NO'
    return f'{key.upper()}={value}'.encode()


class PixelWriter:
    """A GeoTIFF created with *profile* (rasterio's keys), written from pixel-interleaved ``(rows, cols, bands)``.

    Args:
        path: the file to create.
        profile: a rasterio profile (see :func:`pixel_writer_supported`); every key but the size, type, CRS,
            transform and nodata is a GTiff creation option, as in :func:`rasterio.open`.
        descriptions: per band description.
        tags: dataset metadata items.

    Raises:
        RasterioIOError: if GDAL cannot create the file or set its metadata (GDAL's message).
    """

    def __init__(self, path: Path, profile: dict[str, Any], descriptions: Any = (),
                 tags: dict[str, str] | None = None) -> None:
        lib = libgdal()
        if lib is None or not pixel_writer_supported(profile):
            raise ValueError('PixelWriter needs a profile pixel_writer_supported() accepts')
        self._lib = lib
        self.width, self.height, self.count = int(profile['width']), int(profile['height']), int(profile['count'])
        self.dtype = np.dtype(profile['dtype'])
        opts = [_option(k, v) for k, v in profile.items() if k.lower() not in _NOT_OPTIONS and v is not None]
        argv = (ctypes.c_char_p * (len(opts) + 1))(*opts, None)
        lib.CPLErrorReset()
        driver = lib.GDALGetDriverByName(b'GTiff')
        self._h = lib.GDALCreate(driver, os.fsencode(path), self.width, self.height, self.count,
                                 dtype_rev[self.dtype.name], argv) if driver else None
        if not self._h:
            raise RasterioIOError(f'cannot create {str(path)!r}: {self._error()}')
        try:
            self._metadata(profile, descriptions, tags or {})
        except BaseException:
            self.close()
            raise

    def _error(self) -> str:
        msg = self._lib.CPLGetLastErrorMsg()
        return msg.decode(errors='replace') if msg else 'GDAL reported no message'

    def _check(self, failed: bool, what: str) -> None:
        if failed:
            raise RasterioIOError(f'{what} failed: {self._error()}')

    def _metadata(self, profile: dict[str, Any], descriptions: Any, tags: dict[str, str]) -> None:
        lib, h = self._lib, self._h
        transform = profile.get('transform')
        if transform is not None:
            self._check(lib.GDALSetGeoTransform(h, (ctypes.c_double * 6)(*transform.to_gdal())) != 0,
                        'setting the geotransform')
        crs = profile.get('crs')
        if crs:
            self._check(lib.GDALSetProjection(h, CRS.from_user_input(crs).to_wkt().encode()) != 0,
                        'setting the CRS')
        nodata = profile.get('nodata')
        descriptions = list(descriptions)
        for i in range(1, self.count + 1):
            band = lib.GDALGetRasterBand(h, i)
            if nodata is not None:
                self._check(lib.GDALSetRasterNoDataValue(band, float(nodata)) != 0, 'setting nodata')
            if i <= len(descriptions) and descriptions[i - 1]:
                lib.GDALSetDescription(band, str(descriptions[i - 1]).encode())
        for k, v in tags.items():
            self._check(lib.GDALSetMetadataItem(h, str(k).encode(), str(v).encode(), None) != 0,
                        f'setting tag {k!r}')

    def write(self, y0: int, rows: np.ndarray) -> None:
        """Write *rows* ``(n, width, count)`` at row *y0*; any row stride, pixels and bands contiguous."""
        n, w, k = rows.shape
        isz = self.dtype.itemsize
        if (w, k) != (self.width, self.count) or rows.dtype != self.dtype or rows.strides[1:] != (k * isz, isz):
            rows = np.ascontiguousarray(rows, dtype=self.dtype)
            if rows.shape[1:] != (self.width, self.count):
                raise ValueError(f'rows of shape {rows.shape} for a {self.width}-column, {self.count}-band raster')
        if not 0 <= y0 <= self.height - n or math.prod(rows.shape) == 0:
            raise ValueError(f'rows {y0}..{y0 + n} outside the raster ({self.height} rows)')
        self._lib.CPLErrorReset()
        err = self._lib.GDALDatasetRasterIOEx(self._h, _GF_WRITE, 0, y0, w, n, rows.ctypes.data, w, n,
                                              dtype_rev[self.dtype.name], k, None, k * isz, rows.strides[0], isz,
                                              None)
        self._check(err != 0, f'writing rows {y0}..{y0 + n}')

    def close(self) -> None:
        """Flush and close the file (idempotent)."""
        h, self._h = self._h, None
        if h:
            self._lib.CPLErrorReset()
            err = self._lib.GDALClose(h) or 0
            self._check(err != 0 or self._lib.CPLGetLastErrorType() >= _CE_FAILURE, 'closing the file')
