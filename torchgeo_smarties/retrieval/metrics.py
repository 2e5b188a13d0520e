"""Multi-label retrieval metrics: mAP@k, precision@k, recall@k and graded nDCG@k (torchmetrics).

Relevance of a gallery item to a query: *binary* = the two share at least one label; *graded* = the Jaccard index
of their label sets (|A ∩ B| / |A ∪ B|), used by nDCG@k. The gallery is ranked by cosine similarity, ties broken
by gallery order (a stable sort), and that ranking is handed to torchmetrics as strictly decreasing positive scores,
so torchmetrics sees exactly this ranking (its metrics treat items with score ≤ 0 as irrelevant, and break ties by
``torch.topk``/``argsort`` order, which is not specified; cosine scores would hit both).

Definitions (torchmetrics 1.x, ``top_k=k``), per query, then averaged over the queries that have at least one
relevant gallery item (``empty_target_action='skip'``; the number skipped is reported):

- AP@k = mean over the relevant items *within the top k* of the precision at their rank (0 if none is in the top k):
  the denominator is the number of relevant items retrieved, not min(k, R).
- precision@k = relevant items in the top k / k.
- recall@k = relevant items in the top k / all relevant items in the gallery.
- nDCG@k = DCG@k / ideal DCG@k with gains = Jaccard relevance and discount 1 / log2(rank + 1).

.. versionadded:: 0.2
"""

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import InputError, QueryError

__all__ = ('jaccard_relevance', 'rank_scores', 'retrieval_metrics', 'shared_label_relevance')


def _labels(x: Any, name: str) -> Tensor:
    t = torch.as_tensor(np.asarray(x))
    if t.ndim != 2:
        raise InputError(f'{name} must be multi-hot (N, C), got shape {tuple(t.shape)}')
    return t.bool()


def shared_label_relevance(query_labels: Any, gallery_labels: Any) -> Tensor:
    """(Q, G) bool: query and gallery item share at least one label."""
    q, g = _labels(query_labels, 'query labels').float(), _labels(gallery_labels, 'gallery labels').float()
    return (q @ g.T) > 0


def jaccard_relevance(query_labels: Any, gallery_labels: Any) -> Tensor:
    """(Q, G) float: Jaccard index of the label sets (0 when both are empty)."""
    q, g = _labels(query_labels, 'query labels').float(), _labels(gallery_labels, 'gallery labels').float()
    inter = q @ g.T
    union = q.sum(1, keepdim=True) + g.sum(1)[None] - inter
    return torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(inter))


def rank_scores(similarity: Tensor) -> Tensor:
    """Strictly decreasing positive scores G, G-1, …, 1 in the order of a stable descending sort of each row."""
    n = similarity.shape[1]
    order = torch.sort(similarity, dim=1, descending=True, stable=True).indices
    scores = torch.empty_like(similarity, dtype=torch.float32)
    scores.scatter_(1, order, torch.arange(n, 0, -1, dtype=torch.float32).expand_as(similarity).contiguous())
    return scores


def retrieval_metrics(query: Any, query_labels: Any, gallery: Any, gallery_labels: Any, *, k: int = 10,
                      exclude_self: bool = False, chunk: int = 256) -> dict[str, float | int]:
    """Retrieval quality of *query* vectors against a *gallery* with multi-hot labels.

    Args:
        query: (Q, D) embeddings.
        query_labels: (Q, C) multi-hot labels.
        gallery: (G, D) embeddings.
        gallery_labels: (G, C) multi-hot labels.
        k: cut-off.
        exclude_self: query *i* and gallery item *i* are the same item; leave it out (single-sensor retrieval).
        chunk: queries scored at once (memory: chunk × G).

    Returns:
        ``{'mAP@k', 'precision@k', 'recall@k', 'nDCG@k', 'k', 'queries', 'gallery', 'skipped'}`` (metric names
        carry the value of k, e.g. ``'mAP@10'``).

    Raises:
        QueryError: k ≤ 0.
        InputError: shapes that do not fit.
    """
    from torchmetrics.retrieval import RetrievalMAP, RetrievalNormalizedDCG, RetrievalPrecision, RetrievalRecall

    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise QueryError(f'k must be a positive integer, got {k!r}')
    q = torch.as_tensor(np.asarray(query, dtype=np.float32))
    g = torch.as_tensor(np.asarray(gallery, dtype=np.float32))
    ql, gl = _labels(query_labels, 'query labels'), _labels(gallery_labels, 'gallery labels')
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise InputError(f'query and gallery must be (N, D) with the same D, got {tuple(q.shape)} and {tuple(g.shape)}')
    if len(q) != len(ql) or len(g) != len(gl) or ql.shape[1] != gl.shape[1]:
        raise InputError(f'embeddings and labels do not match: {len(q)} queries / {len(ql)} label rows, {len(g)} '
                         f'gallery items / {len(gl)} label rows, {ql.shape[1]} vs {gl.shape[1]} classes')
    if not len(q) or not len(g):
        raise InputError('query and gallery must not be empty')
    if exclude_self and len(q) != len(g):
        raise InputError('exclude_self needs the query set to be the gallery (same length)')
    qn = torch.nn.functional.normalize(q, dim=1)
    gn = torch.nn.functional.normalize(g, dim=1)
    totals = dict.fromkeys(('map', 'precision', 'recall', 'ndcg'), 0.0)
    counted = 0
    for s in range(0, len(q), chunk):
        e = min(s + chunk, len(q))
        sim = qn[s:e] @ gn.T
        rel = shared_label_relevance(ql[s:e], gl)
        grade = jaccard_relevance(ql[s:e], gl)
        if exclude_self:
            rows = torch.arange(e - s)
            sim[rows, rows + s] = -torch.inf  # ranked last ...
            rel[rows, rows + s] = False  # ... and never relevant: it is not in the gallery
            grade[rows, rows + s] = 0
        preds = rank_scores(sim)
        indexes = torch.arange(s, e)[:, None].expand_as(preds)
        n = int(rel.any(1).sum())
        if not n:
            continue
        metrics = {'map': RetrievalMAP(top_k=k, empty_target_action='skip'),
                   'precision': RetrievalPrecision(top_k=k, empty_target_action='skip'),
                   'recall': RetrievalRecall(top_k=k, empty_target_action='skip'),
                   'ndcg': RetrievalNormalizedDCG(top_k=k, empty_target_action='skip')}
        for name, m in metrics.items():
            target = grade if name == 'ndcg' else rel
            totals[name] += float(m(preds.flatten(), target.flatten(), indexes=indexes.flatten())) * n
        counted += n
    denom = max(counted, 1)
    return {f'mAP@{k}': totals['map'] / denom, f'precision@{k}': totals['precision'] / denom,
            f'recall@{k}': totals['recall'] / denom, f'nDCG@{k}': totals['ndcg'] / denom, 'k': k,
            'queries': len(q), 'gallery': len(g) - (1 if exclude_self else 0), 'skipped': len(q) - counted}
