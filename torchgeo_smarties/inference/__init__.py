"""Georeferenced inference: ``smarties embed`` / ``smarties predict`` from rasters to GeoTIFF.

Streaming sliding-window inference over scenes of any size (windows read with rasterio, never the
whole scene), overlap blending on the 16-px patch grid, nodata masked inside the tokenizer,
resumable byte-identical outputs (resume keyed on the input's content, the normalisation, the weights and the
options), exclusive locks and atomic writes for every output, PCA-RGB previews. The keyword entry points
(:func:`embed_raster`, :func:`pool_raster`, :func:`predict_raster`) are thin wrappers over parameter objects
(:class:`EmbedJob`, :class:`EncoderSpec`, :class:`TilingOptions`, :class:`DenseOptions`) that validate every option
when they are built; :class:`RasterOptions` builds them from the wrappers' keywords.

.. versionadded:: 0.1
"""

from .array import embed_array
from .embed import (
    EmbedResult,
    embed_job,
    embed_raster,
    make_normalizer,
    normalization_preset,
    pool_job,
    pool_raster,
    token_validity,
)
from .engine import BlendAccumulator, OutputSpec, TiledRun, run_tiled
from .job import DenseOptions, EmbedJob, EncoderSpec, RasterOptions, TilingOptions
from .outputs import OutputLock
from .predict import PredictResult, predict_raster
from .preview import pca_rgb, write_preview
from .scenes import SceneInput, open_sources
from .source import RasterSource, open_source, resolve_source_bands
from .tiling import TileGrid, ramp
from .weights import infer_architecture, load_encoder

__all__ = (
    'BlendAccumulator',
    'DenseOptions',
    'EmbedJob',
    'EmbedResult',
    'EncoderSpec',
    'OutputLock',
    'OutputSpec',
    'PredictResult',
    'RasterOptions',
    'RasterSource',
    'SceneInput',
    'TileGrid',
    'TiledRun',
    'TilingOptions',
    'embed_array',
    'embed_job',
    'embed_raster',
    'infer_architecture',
    'load_encoder',
    'make_normalizer',
    'normalization_preset',
    'open_source',
    'open_sources',
    'pca_rgb',
    'pool_job',
    'pool_raster',
    'predict_raster',
    'ramp',
    'resolve_source_bands',
    'run_tiled',
    'token_validity',
    'write_preview',
)
