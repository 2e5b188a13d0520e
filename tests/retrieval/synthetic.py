"""Small synthetic embedding GeoTIFFs in the ``smarties embed`` format (shared with tests/robustness)."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

S2 = 'sentinel2:B02,sentinel2:B03,sentinel2:B04,sentinel2:B08'
S1 = 'sentinel1:VV,sentinel1:VH'
WEIGHTS = 'demo (test weights)'
#: origin of the synthetic scenes (EPSG:32618), 160 m cells (10 m pixels × 16)
X0, Y0, CELL = 500_000.0, 4_500_000.0, 160.0

WriteEmbedding = Callable[..., Path]


def write_embedding(path: Path, emb: np.ndarray, *, bands: str = S2, weights: str = WEIGHTS, crs: str = 'EPSG:32618',
                    x0: float = X0, y0: float = Y0, cell: float = CELL, tags: dict[str, str] | None = None) -> Path:
    """An embedding GeoTIFF like inference.embed writes: (D, H, W) float32, NaN nodata, SMARTIES tags."""
    d, h, w = emb.shape
    with rasterio.open(path, 'w', driver='GTiff', height=h, width=w, count=d, dtype='float32', crs=crs,
                       transform=from_origin(x0, y0, cell, cell), nodata=float('nan')) as ds:
        ds.write(emb.astype(np.float32))
        ds.update_tags(**({'SMARTIES_WEIGHTS': weights, 'SMARTIES_BANDS': bands, 'SMARTIES_LAYER': '-1',
                           'SMARTIES_FINAL_NORM': 'False', 'SMARTIES_PATCH_SIZE': '16'} | (tags or {})))
        for i in range(d):
            ds.set_band_description(i + 1, f'emb_{i:04d}')
    return path


def random_embedding(seed: int, d: int = 8, h: int = 5, w: int = 6, nan_cells: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((d, h, w)).astype(np.float32)
    flat = emb.reshape(d, -1)
    flat[:, rng.choice(h * w, nan_cells, replace=False)] = np.nan
    return emb


def cell_centre(row: int, col: int, x0: float = X0, y0: float = Y0, cell: float = CELL) -> tuple[float, float]:
    return x0 + (col + 0.5) * cell, y0 - (row + 0.5) * cell
