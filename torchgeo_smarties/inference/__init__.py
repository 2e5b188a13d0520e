"""Georeferenced inference: ``smarties embed`` / ``smarties predict`` from rasters to GeoTIFF.

Streaming sliding-window inference over scenes of any size (windows read with rasterio, never the
whole scene), overlap blending on the 16-px patch grid, nodata masked inside the tokenizer,
resumable byte-identical outputs, PCA-RGB previews.

.. versionadded:: 0.1
"""

from .array import embed_array
from .embed import EmbedResult, embed_raster, make_normalizer, normalization_preset, pool_raster, token_validity
from .engine import OutputSpec, TiledRun, run_tiled
from .predict import PredictResult, predict_raster
from .preview import pca_rgb, write_preview
from .scenes import SceneInput, open_sources
from .source import RasterSource, open_source, resolve_source_bands
from .tiling import TileGrid, ramp
from .weights import infer_architecture, load_encoder

__all__ = (
    'EmbedResult',
    'OutputSpec',
    'PredictResult',
    'RasterSource',
    'SceneInput',
    'TileGrid',
    'TiledRun',
    'embed_array',
    'embed_raster',
    'infer_architecture',
    'load_encoder',
    'make_normalizer',
    'normalization_preset',
    'open_source',
    'open_sources',
    'pca_rgb',
    'pool_raster',
    'predict_raster',
    'ramp',
    'resolve_source_bands',
    'run_tiled',
    'token_validity',
    'write_preview',
)
