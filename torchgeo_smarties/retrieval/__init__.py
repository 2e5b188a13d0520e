"""Search your embeddings: vector indexes, queries, similarity maps and retrieval metrics.

``smarties index`` builds a faiss index (exact, or IVF-PQ for large sets; cosine by default) with a metadata table
from embedding GeoTIFFs and pooled GeoParquet files; ``smarties search`` finds the patches most similar to a map
point, an image chip or a vector (optionally of one sensor only, e.g. Sentinel-1 → Sentinel-2);
``smarties similarity`` maps the cosine similarity of a whole scene to one patch; ``smarties eval retrieval``
scores single- and cross-sensor retrieval on BigEarthNetV2 or a folder of paired chips.

faiss is imported only when an index is built or searched (``pip install faiss-cpu``).

.. versionadded:: 0.2
"""

from .embeddings import EmbeddingFile, inspect_embeddings, read_embeddings, read_vectors
from .evaluation import (
    PairedChips,
    PairedEmbeddings,
    bigearthnet_v2_chips,
    embed_chips,
    embed_pairs,
    evaluate_pairs,
    read_paired_folder,
)
from .index import EmbeddingIndex, SearchHits, build_index, default_ivfpq_params, make_faiss_index
from .metrics import jaccard_relevance, retrieval_metrics, shared_label_relevance
from .query import (
    PointQuery,
    hits_to_frame,
    parse_crs,
    parse_point,
    query_from_image,
    query_from_point,
    query_from_raster,
    search_index,
    vector_at_point,
    write_results,
)
from .similarity import SimilarityResult, cosine_similarity_map, similarity_map

__all__ = (
    'EmbeddingFile',
    'EmbeddingIndex',
    'PairedChips',
    'PairedEmbeddings',
    'PointQuery',
    'SearchHits',
    'SimilarityResult',
    'bigearthnet_v2_chips',
    'build_index',
    'cosine_similarity_map',
    'default_ivfpq_params',
    'embed_chips',
    'embed_pairs',
    'evaluate_pairs',
    'hits_to_frame',
    'inspect_embeddings',
    'jaccard_relevance',
    'make_faiss_index',
    'parse_crs',
    'parse_point',
    'query_from_image',
    'query_from_point',
    'query_from_raster',
    'read_embeddings',
    'read_paired_folder',
    'read_vectors',
    'retrieval_metrics',
    'search_index',
    'shared_label_relevance',
    'similarity_map',
    'vector_at_point',
    'write_results',
)
