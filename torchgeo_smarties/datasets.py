"""torchgeo datasets over SMARTIES products: train on embeddings instead of pixels.

:class:`SMARTIESEmbeddings` is a :class:`torchgeo.datasets.RasterDataset` over the embedding GeoTIFFs that
``smarties embed`` writes (one band per embedding channel, NaN where the input had no data, the 16-px patch
grid of the source). Combine it with a label dataset by intersection (``embeddings & labels``) and any
torchgeo sampler, exactly like a pixel dataset; its "pixels" are 16×16-patch embeddings.

.. versionadded:: 0.2
"""

import glob
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import rasterio
from torchgeo.datasets import RasterDataset

from .errors import InputError

__all__ = ('SMARTIESEmbeddings',)


def _find_files(paths: Path | str | Iterable[Path | str], pattern: str) -> list[str]:
    roots = [paths] if isinstance(paths, str | Path) else list(paths)
    found: list[str] = []
    for root in roots:
        r = os.fspath(root)
        if os.path.isdir(r):
            found.extend(sorted(glob.glob(os.path.join(r, '**', pattern), recursive=True)))
        elif os.path.isfile(r):
            found.append(r)
    return found


class SMARTIESEmbeddings(RasterDataset):
    """Embedding rasters written by ``smarties embed`` (``*_embeddings.tif``), as a torchgeo ``RasterDataset``.

    ``all_bands`` are the embedding channels (``emb_0000`` …) read from the first file; all files must have
    the same channels and the same SMARTIES model (``SMARTIES_WEIGHTS`` tag), or the dataset refuses them.
    Samples hold ``image`` (D, h, w) float32 with NaN where the source had no data.

    .. versionadded:: 0.2
    """

    filename_glob = '*_embeddings.tif'
    is_image = True
    separate_files = False

    def __init__(
        self,
        paths: Path | str | Iterable[Path | str] = 'data',
        crs: Any = None,
        res: float | tuple[float, float] | None = None,
        bands: Sequence[str] | None = None,
        transforms: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        cache: bool = True,
    ) -> None:
        """Initialize a new SMARTIESEmbeddings instance.

        Args:
            paths: folders to search (recursively, for ``filename_glob``) or files.
            crs: CRS to warp to (default: the first file's).
            res: resolution in CRS units (default: the first file's, i.e. 16 × the source's pixel size).
            bands: embedding channels to return (default: all).
            transforms: applied to each sample.
            cache: cache file handles.

        Raises:
            InputError: if no embedding raster is found, a file is not a SMARTIES embedding raster, or files
                disagree on channels or model.
        """
        files = _find_files(paths, self.filename_glob)
        if not files:
            raise InputError(f'no SMARTIES embedding rasters ({self.filename_glob}) found in {paths!r}; write them '
                             'with smarties embed, or pass the files themselves')
        ref: tuple[tuple[str, ...], str] | None = None
        for f in files:
            with rasterio.open(f) as ds:
                tags = ds.tags()
                if 'SMARTIES_BANDS' not in tags:
                    raise InputError(f'{f!r} is not a SMARTIES embedding raster (no SMARTIES_BANDS tag)')
                key = (tuple(d or f'band_{i}' for i, d in enumerate(ds.descriptions, 1)),
                       tags.get('SMARTIES_WEIGHTS', ''))
            if ref is None:
                ref = key
            elif key != ref:
                raise InputError(
                    f'{f!r} has other embedding channels or another model ({key[1]!r}) than the first file '
                    f'({ref[1]!r}); keep one model per dataset'
                )
        assert ref is not None
        self.all_bands = ref[0]
        self.model = ref[1]
        if bands is not None:
            unknown = [b for b in bands if b not in self.all_bands]
            if unknown:
                raise InputError(f'unknown embedding channels {unknown[:5]}; valid: {self.all_bands[0]} … '
                                 f'{self.all_bands[-1]}')
        super().__init__(files, crs, res, bands, transforms, cache)  # type: ignore[arg-type]
