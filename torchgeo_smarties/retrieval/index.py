"""A faiss vector index of SMARTIES embeddings with a metadata table, on disk as a folder.

Layout of an index folder::

    INDEX/
      index.faiss    the faiss index (exact IndexFlatIP/L2, or IVF-PQ with a trained coarse quantiser)
      meta.parquet   one row per vector, row number = faiss id (source, sensor, bands, weights, date, crs,
                     row, col, geometry as WKB in the source's CRS)
      index.json     manifest: format, dim, metric, index type, count, weights, feature tags, sources

Cosine similarity (the default metric) is the inner product of L2-normalised vectors. Indexes are appendable
(same dim, metric, weights and feature tags) and loaded memory-mapped (``faiss.IO_FLAG_MMAP``) for search.

.. versionadded:: 0.2
"""

import datetime as _dt
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import pandas as pd

from ..errors import EmbeddingFileError, EmbeddingIndexError, IndexMismatchError, QueryError
from ._deps import import_faiss
from .embeddings import META_COLUMNS, EmbeddingFile, inspect_embeddings, read_vectors

__all__ = ('FORMAT', 'INDEX_TYPES', 'IVF_THRESHOLD', 'METRICS', 'EmbeddingIndex', 'IndexType', 'Metric',
           'SearchHits', 'build_index', 'default_ivfpq_params', 'make_faiss_index')

Metric = Literal['cosine', 'ip', 'l2']
IndexType = Literal['auto', 'flat', 'ivfpq']
METRICS: Final = ('cosine', 'ip', 'l2')
INDEX_TYPES: Final = ('auto', 'flat', 'ivfpq')
FORMAT: Final = 'smarties-index'
#: ``index_type='auto'`` builds IVF-PQ from this many vectors on, an exact flat index below.
IVF_THRESHOLD: Final = 100_000
_FEATURE_TAGS = ('SMARTIES_LAYER', 'SMARTIES_FINAL_NORM', 'SMARTIES_PATCH_SIZE')
_FILES = ('index.faiss', 'meta.parquet', 'index.json')


@dataclass
class SearchHits:
    """Nearest neighbours of a batch of queries.

    Attributes:
        ids: (Q, k) int64 row numbers of the metadata table; -1 where fewer than k candidates exist.
        scores: (Q, k) float32; cosine similarity / inner product (higher is closer), or minus the squared L2
            distance for ``metric='l2'``.
    """

    ids: np.ndarray
    scores: np.ndarray


def default_ivfpq_params(n: int, dim: int) -> tuple[int, int]:
    """Default (nlist, pq_m) of IVF-PQ for *n* vectors of *dim*.

    nlist = the power of two nearest √n (16 … 65536); pq_m = the largest divisor of *dim* not above dim / 8
    (sub-vectors of about 8 dimensions, 8 bits each).
    """
    nlist = int(min(65536, max(16, 2 ** round(math.log2(max(1.0, math.sqrt(n)))))))
    m = max(d for d in range(1, max(1, dim // 8) + 1) if dim % d == 0)
    return nlist, m


def make_faiss_index(dim: int, metric: Metric, index_type: Literal['flat', 'ivfpq'], nlist: int = 0, pq_m: int = 0
                     ) -> Any:
    """An empty (untrained for IVF-PQ) faiss index."""
    faiss = import_faiss()
    fm = faiss.METRIC_L2 if metric == 'l2' else faiss.METRIC_INNER_PRODUCT
    if index_type == 'flat':
        return faiss.IndexFlatL2(dim) if metric == 'l2' else faiss.IndexFlatIP(dim)
    # 'np': no polysemous training (the factory's default for PQ; slow and unused by IVF-PQ search)
    return faiss.index_factory(dim, f'IVF{nlist},PQ{pq_m}x8np', fm)


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')


def _features(info: EmbeddingFile) -> dict[str, str]:
    return {k: info.tags[k] for k in _FEATURE_TAGS if k in info.tags}


class EmbeddingIndex:
    """Vectors (faiss) plus one metadata row per vector.

    Build with :meth:`from_vectors` or :func:`build_index`, persist with :meth:`save`, reopen with :meth:`load`.
    """

    def __init__(self, index: Any, meta: pd.DataFrame, manifest: dict[str, Any], path: Path | None = None) -> None:
        self.index = index
        self.meta = meta
        self.manifest = manifest
        self.path = path

    # ------------------------------------------------------------------ properties
    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.manifest['dim'])

    @property
    def metric(self) -> Metric:
        """``'cosine'``, ``'ip'`` or ``'l2'``."""
        return self.manifest['metric']  # type: ignore[no-any-return]

    @property
    def weights(self) -> str:
        """The weights description the vectors were computed with (``''`` if unknown)."""
        return str(self.manifest.get('weights', ''))

    @property
    def sensors(self) -> dict[str, int]:
        """Vectors per sensor label."""
        return {str(k): int(v) for k, v in self.meta['sensor'].value_counts().sort_index().items()}

    def __len__(self) -> int:
        return int(self.index.ntotal)

    # ------------------------------------------------------------------ building
    @classmethod
    def from_vectors(cls, vectors: np.ndarray, meta: pd.DataFrame | None = None, *, metric: Metric = 'cosine',
                     index_type: IndexType = 'auto', nlist: int | None = None, pq_m: int | None = None,
                     weights: str = '', features: dict[str, str] | None = None, train_size: int = 262_144,
                     seed: int = 0) -> 'EmbeddingIndex':
        """A new index of *vectors* (N, D) with their metadata rows.

        Args:
            vectors: float array (N, D), no NaN.
            meta: N rows with (a subset of) :data:`~torchgeo_smarties.retrieval.embeddings.META_COLUMNS`.
            metric: ``'cosine'`` (vectors L2-normalised, inner product), ``'ip'`` or ``'l2'``.
            index_type: ``'flat'`` (exact), ``'ivfpq'`` (approximate), or ``'auto'`` (IVF-PQ from
                :data:`IVF_THRESHOLD` vectors on).
            nlist: IVF lists (default :func:`default_ivfpq_params`).
            pq_m: PQ sub-quantisers, a divisor of D (default :func:`default_ivfpq_params`).
            weights: weights description stored in the manifest.
            features: feature tags (layer, final norm) stored in the manifest.
            train_size: at most this many vectors (random sample) train the IVF-PQ quantisers.
            seed: sampling seed of the training set.

        Raises:
            EmbeddingIndexError: invalid option, or too few vectors to train IVF-PQ.
        """
        vectors = _as_matrix(vectors)
        n, dim = vectors.shape
        if metric not in METRICS:
            raise EmbeddingIndexError(f'metric must be one of {", ".join(METRICS)}, got {metric!r}')
        if index_type not in INDEX_TYPES:
            raise EmbeddingIndexError(f'index type must be one of {", ".join(INDEX_TYPES)}, got {index_type!r}')
        kind: Literal['flat', 'ivfpq'] = (
            ('ivfpq' if n >= IVF_THRESHOLD else 'flat') if index_type == 'auto' else index_type
        )
        manifest: dict[str, Any] = {'format': FORMAT, 'version': 1, 'dim': dim, 'metric': metric,
                                    'index_type': kind, 'count': 0, 'weights': weights,
                                    'features': dict(features or {}), 'sources': [], 'created': _now()}
        if kind == 'ivfpq':
            d_nlist, d_m = default_ivfpq_params(n, dim)
            nlist, pq_m = nlist or d_nlist, pq_m or d_m
            if nlist <= 0 or pq_m <= 0 or dim % pq_m:
                raise EmbeddingIndexError(f'IVF-PQ needs nlist > 0 and pq_m > 0 dividing the dimension {dim}; got '
                                          f'nlist={nlist}, pq_m={pq_m}')
            need = max(nlist, 256)
            if n < need:
                raise EmbeddingIndexError(f'IVF-PQ with nlist={nlist} needs at least {need} vectors to train, got {n}; '
                                          'use --index-type flat (exact) for small sets')
            index = make_faiss_index(dim, metric, 'ivfpq', nlist, pq_m)
            rng = np.random.default_rng(seed)
            sample = vectors if n <= train_size else vectors[np.sort(rng.choice(n, train_size, replace=False))]
            index.train(_prepare(sample, metric))
            manifest.update(nlist=nlist, pq_m=pq_m, nprobe=max(1, nlist // 32))
        else:
            index = make_faiss_index(dim, metric, 'flat')
        out = cls(index, _empty_meta(), manifest)
        out._add(vectors, meta)
        return out

    def add(self, vectors: np.ndarray, meta: pd.DataFrame | None = None, *, weights: str = '',
            features: dict[str, str] | None = None) -> None:
        """Append vectors (same dimension, weights and feature tags; IVF-PQ reuses its trained quantiser).

        Raises:
            IndexMismatchError: the vectors do not match the index.
        """
        vectors = _as_matrix(vectors)
        self.check_compatible(vectors.shape[1], weights=weights, features=features)
        self._add(vectors, meta)

    def check_compatible(self, dim: int, *, metric: str | None = None, weights: str = '',
                         features: dict[str, str] | None = None) -> None:
        """Raise :class:`IndexMismatchError` unless vectors of this kind can join (or query) the index."""
        where = f'index {self.path}' if self.path else 'the index'
        if dim != self.dim:
            raise IndexMismatchError(f'vectors are {dim}-d but {where} holds {self.dim}-d vectors; embed with the '
                                     'same model or build a new index')
        if metric is not None and metric != self.metric:
            raise IndexMismatchError(f'metric {metric!r} differs from the metric of {where} ({self.metric!r}); '
                                     f'drop --metric or use --metric {self.metric}')
        if weights and self.weights and weights != self.weights:
            raise IndexMismatchError(f'vectors were computed with weights {weights!r} but {where} holds vectors of '
                                     f'{self.weights!r}; embeddings of different weights are not comparable: '
                                     'build a separate index')
        mine = self.manifest.get('features', {})
        for k, v in (features or {}).items():
            if k in mine and mine[k] != v:
                raise IndexMismatchError(f'vectors have {k}={v} but {where} has {k}={mine[k]}; embed with the same '
                                         'options or build a separate index')

    def _add(self, vectors: np.ndarray, meta: pd.DataFrame | None) -> None:
        if meta is None:
            meta = pd.DataFrame(index=range(len(vectors)))
        if len(meta) != len(vectors):
            raise EmbeddingIndexError(f'{len(vectors)} vectors but {len(meta)} metadata rows')
        if not np.isfinite(vectors).all():
            raise EmbeddingFileError('vectors contain NaN or inf; drop nodata cells before indexing')
        self.index.add(_prepare(vectors, self.metric))
        meta = meta.reset_index(drop=True).reindex(columns=list(META_COLUMNS))
        for c in META_COLUMNS:
            if c in ('row', 'col'):
                meta[c] = meta[c].fillna(-1).astype(np.int64)
            elif c != 'geometry':
                meta[c] = meta[c].fillna('').astype(str)
        self.meta = pd.concat([self.meta, meta], ignore_index=True) if len(self.meta) else meta
        self.manifest['count'] = int(self.index.ntotal)
        self.manifest['sensors'] = self.sensors

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the folder (each file replaced atomically, the manifest last)."""
        faiss = import_faiss()
        folder = Path(path) if path is not None else self.path
        if folder is None:
            raise EmbeddingIndexError('give a folder to save the index to')
        folder.mkdir(parents=True, exist_ok=True)
        self.manifest['updated'] = _now()
        tmp = {name: folder / f'.{name}.partial' for name in _FILES}
        try:
            faiss.write_index(self.index, str(tmp['index.faiss']))
            self.meta.to_parquet(tmp['meta.parquet'], index=False)
            tmp['index.json'].write_text(json.dumps(self.manifest, indent=2) + '\n')
            for name in _FILES:
                os.replace(tmp[name], folder / name)
        finally:
            for t in tmp.values():
                t.unlink(missing_ok=True)
        self.path = folder
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, mmap: bool = True) -> 'EmbeddingIndex':
        """Open an index folder; the faiss index is memory-mapped where faiss supports it (``mmap=True``).

        Raises:
            EmbeddingIndexError: the folder is missing, incomplete or inconsistent.
        """
        folder = Path(path)
        if not folder.is_dir():
            raise EmbeddingIndexError(f'index {str(path)!r} does not exist; build it with: smarties index '
                                      f'EMBEDDINGS.tif -o {path}')
        missing = [n for n in _FILES if not (folder / n).is_file()]
        if missing:
            raise EmbeddingIndexError(f'{path} is not a complete index folder (missing {", ".join(missing)}); '
                                      f'rebuild it with: smarties index EMBEDDINGS.tif -o {path}')
        try:
            manifest = json.loads((folder / 'index.json').read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise EmbeddingIndexError(f'{folder / "index.json"} is unreadable ({err}); rebuild the index') from None
        if not isinstance(manifest, dict) or manifest.get('format') != FORMAT:
            raise EmbeddingIndexError(f'{folder / "index.json"} is not a {FORMAT} manifest; rebuild the index')
        faiss = import_faiss()
        try:
            index = faiss.read_index(str(folder / 'index.faiss'), faiss.IO_FLAG_MMAP if mmap else 0)
        except RuntimeError:
            try:
                index = faiss.read_index(str(folder / 'index.faiss'))
            except RuntimeError as err:
                raise EmbeddingIndexError(f'{folder / "index.faiss"} is corrupt ({str(err).splitlines()[0]}); '
                                          'rebuild the index') from None
        meta = pd.read_parquet(folder / 'meta.parquet')
        if not (index.ntotal == len(meta) == manifest.get('count')) or index.d != manifest.get('dim'):
            raise EmbeddingIndexError(f'{path} is inconsistent (faiss {index.ntotal}×{index.d}, {len(meta)} metadata '
                                      f'rows, manifest {manifest.get("count")}×{manifest.get("dim")}); rebuild it')
        return cls(index, meta, manifest, folder)

    # ------------------------------------------------------------------ search
    def check_search_options(self, k: int, sensor: str | Sequence[str] | None = None, nprobe: int | None = None
                             ) -> list[str] | None:
        """Validate search options (before a query is computed); returns the sensor list (None: all).

        Raises:
            QueryError: k ≤ 0, an unknown sensor, nprobe ≤ 0.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
            raise QueryError(f'k must be a positive integer, got {k!r}')
        if nprobe is not None and nprobe <= 0:
            raise QueryError(f'nprobe must be positive, got {nprobe}')
        if sensor is None:
            return None
        wanted = [sensor] if isinstance(sensor, str) else list(sensor)
        known = self.sensors
        unknown = [s for s in wanted if s not in known]
        if unknown:
            raise QueryError(f'no vectors of sensor {", ".join(map(repr, unknown))} in the index; choose from: '
                             f'{", ".join(repr(s) for s in known) or "(none)"}')
        return wanted

    def search(self, queries: np.ndarray, k: int = 10, *, sensor: str | Sequence[str] | None = None,
               nprobe: int | None = None) -> SearchHits:
        """The *k* nearest vectors of each query, optionally among one sensor's vectors only.

        The sensor filter is applied inside faiss (an ``IDSelectorBatch``), so *k* results of that sensor come
        back whenever the index holds that many (IVF-PQ: that many in the *nprobe* lists visited).

        Raises:
            QueryError: k ≤ 0, a NaN query, an unknown sensor, nprobe ≤ 0.
            IndexMismatchError: the query dimension differs from the index.
        """
        faiss = import_faiss()
        wanted = self.check_search_options(k, sensor, nprobe)
        q = _as_matrix(queries, what='query')
        if q.shape[1] != self.dim:
            raise IndexMismatchError(f'the query is {q.shape[1]}-d but the index holds {self.dim}-d vectors; query '
                                     'with embeddings of the same model')
        if not np.isfinite(q).all():
            raise QueryError('the query vector contains NaN (nodata); pick a point with valid embeddings')
        params: dict[str, Any] = {}
        if wanted is not None:
            ids = np.flatnonzero(self.meta['sensor'].isin(wanted).to_numpy()).astype(np.int64)
            params['sel'] = faiss.IDSelectorBatch(ids)
        is_ivf = self.manifest.get('index_type') == 'ivfpq'
        if is_ivf:
            params['nprobe'] = int(nprobe or self.manifest.get('nprobe', 1))
        sp = (faiss.SearchParametersIVF if is_ivf else faiss.SearchParameters)(**params) if params else None
        dist, ids = self.index.search(_prepare(q, self.metric), int(k), params=sp)
        scores = -dist if self.metric == 'l2' else dist
        scores = np.where(ids < 0, np.nan, scores).astype(np.float32)
        return SearchHits(ids.astype(np.int64), scores)


def _empty_meta() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=np.int64 if c in ('row', 'col') else object) for c in META_COLUMNS})


def _as_matrix(x: np.ndarray, what: str = 'vectors') -> np.ndarray:
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[1] == 0:
        raise EmbeddingFileError(f'{what} must be a (N, D) array, got shape {tuple(np.shape(x))}')
    return a


def _prepare(x: np.ndarray, metric: str) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if metric == 'cosine':
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.maximum(norm, 1e-12)
    return np.ascontiguousarray(x)


def build_index(
    embeddings: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    append: bool = False,
    metric: Metric | None = None,
    index_type: IndexType = 'auto',
    nlist: int | None = None,
    pq_m: int | None = None,
    sensor: str | None = None,
    bands: str | None = None,
    weights: str | None = None,
    log: Callable[[str], None] = print,
) -> EmbeddingIndex:
    """``smarties index``: index embedding GeoTIFFs and pooled GeoParquet files into the folder *output*.

    Every input is checked (readable, same dimension, same weights and feature tags, not indexed twice) before
    any vector is read. NaN (nodata) cells are skipped.

    Args:
        embeddings: embedding GeoTIFFs (``smarties embed``) and/or pooled GeoParquet files (``--pool``).
        output: the index folder (must not exist unless *append*).
        append: add to the existing index at *output*.
        metric: ``'cosine'`` (default for a new index), ``'ip'`` or ``'l2'``; with *append* it must match.
        index_type: ``'auto'``, ``'flat'`` or ``'ivfpq'`` (new index only).
        nlist: IVF lists (IVF-PQ only).
        pq_m: PQ sub-quantisers (IVF-PQ only).
        sensor: sensor label for files without band tags (e.g. pooled GeoParquet).
        bands: band ids for files without a ``SMARTIES_BANDS`` tag.
        weights: weights label for files without a ``SMARTIES_WEIGHTS`` tag.
        log: where messages go.

    Raises:
        EmbeddingFileError, EmbeddingIndexError, IndexMismatchError: on bad input, before anything is written.
    """
    if not embeddings:
        raise EmbeddingFileError('no embedding files given; pass embedding GeoTIFFs or pooled GeoParquet files')
    out = Path(output)
    if metric is not None and metric not in METRICS:
        raise EmbeddingIndexError(f'metric must be one of {", ".join(METRICS)}, got {metric!r}')
    if index_type not in INDEX_TYPES:
        raise EmbeddingIndexError(f'index type must be one of {", ".join(INDEX_TYPES)}, got {index_type!r}')
    for name, value in (('nlist', nlist), ('pq_m', pq_m)):
        if value is not None and value <= 0:
            raise EmbeddingIndexError(f'{name} must be positive, got {value}')
    existing: EmbeddingIndex | None = None
    if append:
        existing = EmbeddingIndex.load(out, mmap=False)
        if index_type != 'auto' and index_type != existing.manifest['index_type']:
            raise IndexMismatchError(f'--index-type {index_type} differs from the index '
                                     f'({existing.manifest["index_type"]}); drop --index-type when appending')
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EmbeddingIndexError(f'{out} already exists; pass --append to add to it, or choose another -o')
    elif not out.resolve().parent.is_dir():
        raise EmbeddingIndexError(f'output folder {str(out.resolve().parent)!r} does not exist; create it first')
    infos = [inspect_embeddings(p, sensor=sensor, bands=bands, weights=weights) for p in embeddings]
    seen: set[str] = {s['path'] for s in existing.manifest.get('sources', [])} if existing else set()
    for info in infos:
        if str(info.path) in seen:
            raise EmbeddingFileError(f'{info.path} is given twice or already indexed; drop the duplicate')
        seen.add(str(info.path))
    dims = {i.dim for i in infos}
    if len(dims) > 1:
        raise IndexMismatchError(f'the inputs have different dimensions ({sorted(dims)}): '
                                 + ', '.join(f'{i.path.name}: {i.dim}' for i in infos) + '; index them separately')
    wset = {i.weights for i in infos if i.weights}
    if len(wset) > 1:
        raise IndexMismatchError(f'the inputs were computed with different weights ({sorted(wset)}); embeddings of '
                                 'different weights are not comparable: index them separately')
    features: dict[str, str] = {}
    for info in infos:
        for k, v in _features(info).items():
            if features.setdefault(k, v) != v:
                raise IndexMismatchError(f'the inputs differ in {k} ({features[k]} vs {v} in {info.path.name}); '
                                         'embed them with the same options or index them separately')
    wdesc = next(iter(wset), '')
    if existing is not None:
        existing.check_compatible(dims.pop(), metric=metric, weights=wdesc, features=features)
    parts: list[np.ndarray] = []
    metas: list[pd.DataFrame] = []
    sources = []
    for info in infos:
        n0 = sum(len(p) for p in parts)
        for vec, meta in read_vectors(info):
            parts.append(vec)
            metas.append(meta)
        count = sum(len(p) for p in parts) - n0
        sources.append({'path': str(info.path), 'kind': info.kind, 'sensor': info.sensor, 'count': count,
                        'skipped_nodata': info.size - count})
        log(f'{info.path.name}: {count} vectors ({info.kind}, {info.dim}-d, sensor {info.sensor or "unknown"}, '
            f'{info.size - count} nodata skipped)')
    vectors = np.concatenate(parts) if parts else np.zeros((0, infos[0].dim), np.float32)
    if not len(vectors):
        raise EmbeddingFileError('the inputs hold no valid (non-NaN) vectors; check the embedded scenes')
    meta = pd.concat(metas, ignore_index=True)
    if existing is None:
        index = EmbeddingIndex.from_vectors(vectors, meta, metric=metric or 'cosine', index_type=index_type,
                                            nlist=nlist, pq_m=pq_m, weights=wdesc, features=features)
    else:
        index = existing
        index.add(vectors, meta, weights=wdesc, features=features)
        if wdesc and not index.manifest.get('weights'):
            index.manifest['weights'] = wdesc
        index.manifest.setdefault('features', {}).update(features)
    index.manifest['sources'] = list(index.manifest.get('sources', [])) + sources
    index.save(out)
    log(f'wrote {out} ({len(index)} vectors, {index.dim}-d, {index.metric}, {index.manifest["index_type"]})')
    return index
