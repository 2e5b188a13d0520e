"""The sliding-window tile grid on the 16-px patch grid, and the blending ramp.

Tiles are squares of ``tile`` pixels whose origins lie on the patch grid, stepping by
``tile - overlap`` pixels; the last row/column of tiles is shifted back so it ends at the
(padded) raster edge. Each tile's output is weighted by a linear ramp that falls off over the
``overlap`` cells next to an edge shared with a neighbour (weights ``k/(o+1)``), so two tiles'
weights sum to 1 across a regular overlap and a cell covered by a single tile keeps the tile's
output exactly.

.. versionadded:: 0.1
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..errors import InputError

__all__ = ('TileGrid', 'ramp')


def ramp(n: int, overlap: int, lead: bool, trail: bool) -> np.ndarray:
    """1-D blending weights of length *n*: ``k/(overlap+1)`` over *overlap* cells at a shared edge, else 1."""
    w = np.ones(n, dtype=np.float32)
    if overlap > 0:
        k = np.arange(1, overlap + 1, dtype=np.float32) / (overlap + 1)
        m = min(overlap, n)
        if lead:
            w[:m] = np.minimum(w[:m], k[:m])
        if trail:
            w[n - m:] = np.minimum(w[n - m:], k[:m][::-1])
    return w


@dataclass(frozen=True)
class TileGrid:
    """Tile layout over a raster of ``height`` × ``width`` pixels.

    Attributes:
        height: raster rows (pixels).
        width: raster columns (pixels).
        tile: tile size in pixels (a multiple of ``patch``; shrunk to the padded raster if larger).
        overlap: overlap between neighbouring tiles in pixels (a multiple of ``patch``, < tile).
        patch: the encoder's patch size (tiles are aligned to it).
        out_scale: input pixels per output cell (16 for embeddings, 1 for pixel maps).
    """

    height: int
    width: int
    tile: int = 224
    overlap: int = 32
    patch: int = 16
    out_scale: int = 16

    def __post_init__(self) -> None:
        p = self.patch
        if self.tile <= 0 or self.tile % p:
            raise InputError(f'tile size {self.tile} must be a positive multiple of the patch size {p}')
        if self.overlap < 0 or self.overlap % p or self.overlap >= self.tile:
            raise InputError(f'overlap {self.overlap} must be a multiple of {p} in [0, tile size {self.tile})')
        if p % self.out_scale:
            raise InputError(f'out_scale {self.out_scale} must divide the patch size {p}')
        if self.height <= 0 or self.width <= 0:
            raise InputError(f'empty raster ({self.height}×{self.width})')

    @property
    def padded(self) -> tuple[int, int]:
        """The raster size rounded up to the patch grid (pixels)."""
        p = self.patch
        return math.ceil(self.height / p) * p, math.ceil(self.width / p) * p

    @property
    def tile_hw(self) -> tuple[int, int]:
        """Actual tile height and width in pixels (the tile, or the padded raster if smaller)."""
        ph, pw = self.padded
        return min(self.tile, ph), min(self.tile, pw)

    @property
    def out_shape(self) -> tuple[int, int]:
        """Output cells ``(ceil(H/s), ceil(W/s))`` for out_scale s (the padded grid cropped back)."""
        s = self.out_scale
        return math.ceil(self.height / s), math.ceil(self.width / s)

    @property
    def padded_out_shape(self) -> tuple[int, int]:
        """Output cells of the padded raster."""
        ph, pw = self.padded
        return ph // self.out_scale, pw // self.out_scale

    @staticmethod
    def _origins(size: int, tile: int, stride: int, p: int) -> list[int]:
        if size <= tile:
            return [0]
        out = list(range(0, size - tile, stride))
        last = size - tile  # multiple of p because size and tile are
        if not out or out[-1] != last:
            out.append(last)
        assert all(o % p == 0 for o in out)
        return out

    @cached_property
    def row_origins(self) -> list[int]:
        """Tile origins along rows (pixels)."""
        th, _ = self.tile_hw
        return self._origins(self.padded[0], th, self.tile - self.overlap, self.patch)

    @cached_property
    def col_origins(self) -> list[int]:
        """Tile origins along columns (pixels)."""
        _, tw = self.tile_hw
        return self._origins(self.padded[1], tw, self.tile - self.overlap, self.patch)

    def __len__(self) -> int:
        return len(self.row_origins) * len(self.col_origins)

    def origin(self, i: int) -> tuple[int, int]:
        """Pixel origin (row, col) of tile *i* (row-major order)."""
        n = len(self.col_origins)
        return self.row_origins[i // n], self.col_origins[i % n]

    def tile_row(self, i: int) -> int:
        """The row of tiles tile *i* belongs to."""
        return i // len(self.col_origins)

    def runs(self, tiles: Sequence[int],
             max_width: int | None = None) -> list[tuple[int, int, int, list[tuple[int, int]]]]:
        """Group *tiles* into horizontal runs that one read covers: ``(row, col, width, [(position, col offset)])``.

        A run is a window of tile height from pixel ``(row, col)``, *width* px wide, holding the tiles of one tile
        row whose windows overlap or touch; ``position`` is the tile's index in *tiles* and ``col offset`` where
        its window starts in the run. Reading a run once instead of each tile decodes every block once, in one
        call that GDAL can spread over its threads, and reads the overlaps once. A run grows to at most
        *max_width* px (it always holds one tile), which bounds the read buffer of rasters with many bands.
        """
        tw = self.tile_hw[1]
        by_row: dict[int, list[tuple[int, int]]] = {}
        for j, i in enumerate(tiles):
            r0, c0 = self.origin(i)
            by_row.setdefault(r0, []).append((c0, j))
        runs: list[tuple[int, int, int, list[tuple[int, int]]]] = []
        for r0, members in by_row.items():
            members.sort()
            start, end, cur = members[0][0], members[0][0] + tw, [(members[0][1], 0)]
            for c0, j in members[1:]:
                if c0 > end or (max_width is not None and c0 + tw - start > max_width):  # a gap, or too wide
                    runs.append((r0, start, end - start, cur))
                    start, end, cur = c0, c0, []
                cur.append((j, c0 - start))
                end = c0 + tw
            runs.append((r0, start, end - start, cur))
        return runs

    def first_tile_of_row(self, r: int) -> int:
        """Index of the first tile in tile row *r*."""
        return r * len(self.col_origins)

    def weights(self, i: int) -> np.ndarray:
        """Blending weights (h, w) of tile *i* on the output grid."""
        s = self.out_scale
        th, tw = self.tile_hw
        rows, cols = self.row_origins, self.col_origins
        n = len(cols)
        r, c = i // n, i % n
        o = self.overlap // s
        wy = ramp(th // s, o, r > 0, r < len(rows) - 1)
        wx = ramp(tw // s, o, c > 0, c < len(cols) - 1)
        return wy[:, None] * wx[None, :]
