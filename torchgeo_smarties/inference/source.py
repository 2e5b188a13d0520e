"""Windowed raster reading for tiled inference: GeoTIFF/COG/VRT files or folders of single-band files.

A :class:`RasterSource` never reads a whole scene: :meth:`RasterSource.read` returns one window
(float32 values and a per-pixel validity mask), edge-padded when the window reaches past the raster
(rasters whose size is not a multiple of the patch size are padded and cropped back by the caller).
It holds only paths, so it can be pickled into DataLoader worker processes, each of which opens the
files itself.

.. versionadded:: 0.1
"""

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import MaskFlags
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from ..errors import BandCountError, InputError, SmartiesError
from ..spectrum import resolve_bands

__all__ = ('RASTER_SUFFIXES', 'RasterSource', 'open_source', 'resolve_source_bands')

#: File suffixes picked up when the input is a folder of single-band files.
RASTER_SUFFIXES = ('.tif', '.tiff', '.jp2', '.vrt', '.img')


@dataclass
class RasterSource:
    """A multi-band raster made of one multi-band file or several single-band files on one grid.

    Attributes:
        paths: the files; ``layers[c] = (file index, 1-based band index)`` gives channel *c*.
        layers: where each channel comes from.
        height: rows of the grid.
        width: columns of the grid.
        transform: the grid's affine transform.
        crs: the coordinate reference system (None if the raster has none).
        nodata: per channel nodata value (None if unset).
        descriptions: per channel description (band description, else the file stem for folders).
        dtype: the storage data type of the first channel.
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

    @property
    def count(self) -> int:
        """Number of channels."""
        return len(self.layers)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state['_handles'] = {}
        return state

    def _open(self, i: int) -> Any:
        key = (os.getpid() << 8) + i
        h = self._handles.get(key)
        if h is None:
            h = rasterio.open(self.paths[i])
            self._handles[key] = h
        return h

    def close(self) -> None:
        """Close the files opened by this process."""
        for h in self._handles.values():
            h.close()
        self._handles.clear()

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Read a window as float32 (C, h, w) plus a validity mask (C, h, w) (True = valid).

        Parts of *window* outside the raster are filled by replicating the nearest edge pixel
        (values and validity), so edge patches get real embeddings.
        """
        r0, c0 = int(window.row_off), int(window.col_off)
        h, w = int(window.height), int(window.width)
        ir0, ic0 = max(r0, 0), max(c0, 0)
        ir1, ic1 = min(r0 + h, self.height), min(c0 + w, self.width)
        if ir1 <= ir0 or ic1 <= ic0:
            raise InputError(f'window {window} lies outside the raster ({self.height}×{self.width})')
        inner = Window(ic0, ir0, ic1 - ic0, ir1 - ir0)
        vals = np.empty((self.count, ir1 - ir0, ic1 - ic0), dtype=np.float32)
        valid = np.empty(vals.shape, dtype=bool)
        # group channels by file so a multi-band file is read in one call
        by_file: dict[int, list[int]] = {}
        for c, (fi, _) in enumerate(self.layers):
            by_file.setdefault(fi, []).append(c)
        for fi, chans in by_file.items():
            src = self._open(fi)
            idx = [self.layers[c][1] for c in chans]
            arr = src.read(idx, window=inner)
            vals[chans] = arr
            for j, c in enumerate(chans):
                v = np.isfinite(vals[c]) if vals.dtype.kind == 'f' else np.ones(vals.shape[1:], bool)
                nd = self.nodata[c]
                if nd is not None and not np.isnan(nd):
                    v &= arr[j] != nd
                elif self._mask_from_dataset and self._mask_from_dataset[c]:
                    v &= src.read_masks(idx[j], window=inner) > 0
                valid[c] = v
        pad = ((0, 0), (ir0 - r0, r0 + h - ir1), (ic0 - c0, c0 + w - ic1))
        if any(p != (0, 0) for p in pad):
            vals = np.pad(vals, pad, mode='edge')
            valid = np.pad(valid, pad, mode='edge')
        return vals, valid

    def read_overview(self, channels: list[int], max_size: int = 1024) -> np.ndarray:
        """A decimated (C, h, w) float32 read of *channels* for previews (uses overviews when present)."""
        scale = max(1.0, max(self.height, self.width) / max_size)
        shape = (max(1, int(round(self.height / scale))), max(1, int(round(self.width / scale))))
        out = np.empty((len(channels), *shape), dtype=np.float32)
        for j, c in enumerate(channels):
            fi, bi = self.layers[c]
            out[j] = self._open(fi).read(bi, out_shape=shape).astype(np.float32)
            nd = self.nodata[c]
            if nd is not None:
                out[j][out[j] == nd] = np.nan
        return out


def _check_readable(path: Path) -> Any:
    try:
        return rasterio.open(path)
    except (RasterioIOError, OSError) as err:
        raise InputError(
            f'cannot read {str(path)!r} as a raster ({str(err)[:200]}); pass a GeoTIFF/COG/VRT file or a folder of '
            'single-band GeoTIFFs'
        ) from None


def open_source(path: str | os.PathLike[str], *, require_crs: bool = False) -> RasterSource:
    """Describe a raster input without reading pixels.

    Args:
        path: a GeoTIFF/COG/VRT (any GDAL raster) or a folder of single-band files on the same grid
            (sorted by file name; each file's band description or file stem names its band).
        require_crs: raise instead of warning when the raster has no CRS.

    Raises:
        InputError: if the path does not exist, is unreadable, or a folder's files are not on one grid.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f'input {str(p)!r} does not exist')
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in RASTER_SUFFIXES and f.is_file())
        if not files:
            raise InputError(f'folder {str(p)!r} holds no raster files ({", ".join(RASTER_SUFFIXES)})')
        paths, layers, nodata, desc, fromds = [], [], [], [], []
        ref: tuple[int, int, Affine, Any] | None = None
        dtype = 'float32'
        for i, f in enumerate(files):
            with _check_readable(f) as ds:
                grid = (ds.height, ds.width, ds.transform, ds.crs)
                if ref is None:
                    ref, dtype = grid, ds.dtypes[0]
                elif grid[:3] != ref[:3] or grid[3] != ref[3]:
                    raise InputError(
                        f'{f.name} is not on the grid of {files[0].name} (size/transform/CRS differ); resample the '
                        'files onto one grid first, e.g. gdalbuildvrt -separate -resolution highest stack.vrt *.tif'
                    )
                for b in range(1, ds.count + 1):
                    paths_idx = i
                    layers.append((paths_idx, b))
                    nodata.append(ds.nodatavals[b - 1])
                    d = ds.descriptions[b - 1]
                    desc.append(d or (f.stem if ds.count == 1 else f'{f.stem}:{b}'))
                    fromds.append(_masked_by_dataset(ds, b))
                paths.append(str(f))
        assert ref is not None
        src = RasterSource(tuple(paths), tuple(layers), ref[0], ref[1], ref[2], ref[3], tuple(nodata), tuple(desc),
                           dtype, tuple(fromds))
    else:
        with _check_readable(p) as ds:
            src = RasterSource(
                (str(p),), tuple((0, b) for b in range(1, ds.count + 1)), ds.height, ds.width, ds.transform, ds.crs,
                tuple(ds.nodatavals), tuple(ds.descriptions), ds.dtypes[0],
                tuple(_masked_by_dataset(ds, b) for b in range(1, ds.count + 1)),
            )
    if src.crs is None:
        if require_crs:
            raise InputError(f'{str(p)!r} has no CRS; assign one (e.g. gdal_edit.py -a_srs EPSG:XXXX) or drop '
                             '--require-crs to write outputs without a CRS')
        warnings.warn(f'{str(p)!r} has no CRS: the outputs will carry the pixel grid only (no CRS)', stacklevel=2)
    return src


def _masked_by_dataset(ds: Any, band: int) -> bool:
    flags = ds.mask_flag_enums[band - 1]
    return MaskFlags.all_valid not in flags and MaskFlags.nodata not in flags


def resolve_source_bands(source: RasterSource, bands: str | None = None, sensor: str | None = None) -> tuple[str, ...]:
    """Band ids for each channel of *source*, from *bands*, a *sensor* preset, or the band descriptions.

    Raises:
        BandCountError: if the number of bands given differs from the raster's channel count, or the raster's
            bands cannot be identified.
        UnknownPresetError, UnknownSensorError, UnknownBandError: for unknown names (from the spectrum registry).
    """
    if bands is not None and sensor is not None:
        raise InputError('give either --bands or --sensor, not both')
    spec = bands if bands is not None else sensor
    if spec is not None:
        resolved = resolve_bands(spec)
        if len(resolved) != source.count:
            what = f'--bands ({len(resolved)} bands)' if bands is not None else f'--sensor {sensor}'
            what += '' if bands is not None else f' ({len(resolved)} bands)'
            raise BandCountError(
                f'{what} but the raster has {source.count} bands; name one band per raster band in order, e.g. '
                f'--bands "{",".join(b.id for b in resolved[: min(3, len(resolved))])},..."'
            )
        return tuple(b.id for b in resolved)
    desc = source.descriptions
    if all(desc):
        try:
            resolved = resolve_bands([str(d) for d in desc])
        except SmartiesError as err:
            raise BandCountError(
                f'the raster band descriptions {list(desc)} do not name known bands ({err}); pass --bands '
                '"<sensor>:<band>,..." (one per raster band) or --sensor <preset> (see smarties bands)'
            ) from None
        return tuple(b.id for b in resolved)
    raise BandCountError(
        f'cannot tell which bands the raster\'s {source.count} channels are (no band descriptions); pass --bands '
        '"<sensor>:<band>,..." (one per raster band) or --sensor <preset>, e.g. --sensor sentinel2_l2a '
        '(run smarties bands for the list)'
    )
