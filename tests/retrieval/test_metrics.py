"""Retrieval metrics (torchmetrics behind them), checked against hand computations."""

import numpy as np
import pytest
import torch

from torchgeo_smarties.retrieval import PairedEmbeddings, evaluate_pairs, jaccard_relevance, retrieval_metrics
from torchgeo_smarties.retrieval.metrics import rank_scores

# The 6-item toy set: classes A, B, C
LABELS = np.array([
    [1, 0, 0],  # 0 {A}
    [1, 1, 0],  # 1 {A, B}
    [0, 1, 0],  # 2 {B}
    [0, 0, 1],  # 3 {C}
    [1, 0, 1],  # 4 {A, C}
    [0, 1, 0],  # 5 {B}
], dtype=bool)
# The ranking of the S2 gallery for each S1 query (best first). The S2 gallery vectors are the one-hot e_j and the
# S1 query i is W[i] with W[i, ranking[p]] = 6 - p, so the cosine similarity to gallery j is W[i, j] / |W[i]| and
# the gallery is ranked exactly like this (all scores distinct).
RANKING = [
    [1, 2, 0, 3, 4, 5],
    [3, 1, 0, 2, 4, 5],
    [2, 5, 1, 0, 3, 4],
    [0, 1, 2, 3, 4, 5],
    [4, 5, 2, 3, 0, 1],
    [0, 3, 5, 1, 2, 4],
]


def toy_pairs() -> PairedEmbeddings:
    w = np.zeros((6, 6), np.float32)
    for i, r in enumerate(RANKING):
        w[i, r] = 6 - np.arange(6)
    return PairedEmbeddings({'s1': torch.from_numpy(w), 's2': torch.eye(6)}, torch.from_numpy(LABELS))


def test_cross_sensor_map_on_the_toy_set_equals_the_hand_computation() -> None:
    # Hand computation, S1 -> S2 at k = 3 (relevant = shares a label; the query's own S2 pair is in the gallery):
    #  q  labels  relevant gallery   top-3      hits  AP@3 (mean precision at relevant ranks)  P@3   R@3
    #  0  {A}     0, 1, 4     (R=3)  1, 2, 0    y n y  (1/1 + 2/3) / 2 = 5/6                    2/3   2/3
    #  1  {A,B}   0, 1, 2, 4, 5 (5)  3, 1, 0    n y y  (1/2 + 2/3) / 2 = 7/12                   2/3   2/5
    #  2  {B}     1, 2, 5     (3)    2, 5, 1    y y y  (1 + 1 + 1) / 3 = 1                      1     1
    #  3  {C}     3, 4        (2)    0, 1, 2    n n n  0                                        0     0
    #  4  {A,C}   0, 1, 3, 4  (4)    4, 5, 2    y n n  1 / 1 = 1                                1/3   1/4
    #  5  {B}     1, 2, 5     (3)    0, 3, 5    n n y  (1/3) / 1 = 1/3                          1/3   1/3
    # mAP@3 = (5/6 + 7/12 + 1 + 0 + 1 + 1/3) / 6 = (10 + 7 + 12 + 0 + 12 + 4) / 12 / 6 = 45 / 72 = 0.625
    # P@3   = (2/3 + 2/3 + 1 + 0 + 1/3 + 1/3) / 6 = 3 / 6 = 0.5
    # R@3   = (2/3 + 2/5 + 1 + 0 + 1/4 + 1/3) / 6 = 2.65 / 6
    (res,) = evaluate_pairs(toy_pairs(), k=[3], directions=['s1->s2'])
    assert res['direction'] == 's1->s2' and res['cross_sensor']
    # float32 scores and torchmetrics' float means: 1e-6 is far below the 1/72 granularity of the hand values
    assert res['mAP@3'] == pytest.approx(45 / 72, abs=1e-6)
    assert res['precision@3'] == pytest.approx(0.5, abs=1e-6)
    assert res['recall@3'] == pytest.approx(2.65 / 6, abs=1e-6)
    assert (res['queries'], res['gallery'], res['skipped']) == (6, 6, 0)


def test_exclude_pair_and_single_sensor_leave_the_item_out() -> None:
    # S1 -> S2 with the query's own counterpart removed: query 2's top-3 becomes 5, 1, 0 (y y n): AP = 1, P = 2/3
    res = retrieval_metrics(toy_pairs().vectors['s1'][2:3], LABELS[2:3], torch.eye(6)[[0, 1, 3, 4, 5]],
                            LABELS[[0, 1, 3, 4, 5]], k=3)
    pairs = evaluate_pairs(toy_pairs(), k=[3], directions=['s1->s2'], exclude_pair=True)[0]
    assert res['mAP@3'] == pytest.approx(1.0) and res['precision@3'] == pytest.approx(2 / 3)
    assert pairs['gallery'] == 5
    # single sensor (S2 -> S2, one-hot vectors): every other item scores 0, ties broken by gallery order; the
    # query itself is never returned, so the scores are below the with-self ones
    same = evaluate_pairs(toy_pairs(), k=[6], directions=['s2->s2'])[0]
    assert same['gallery'] == 5 and same['recall@6'] == pytest.approx(1.0)


def test_ties_are_broken_by_gallery_order() -> None:
    sim = torch.tensor([[0.5, 0.9, 0.5, -0.2]])
    np.testing.assert_array_equal(rank_scores(sim).numpy(), [[3, 4, 2, 1]])
    # negative cosine scores still rank (torchmetrics drops targets whose score is <= 0; ranks are positive)
    res = retrieval_metrics(np.array([[1.0, 0.0]]), [[1, 0]], np.array([[-1.0, 0.1], [-1.0, 0.0]]), [[1, 0], [0, 1]],
                            k=1)
    assert res['mAP@1'] == pytest.approx(1.0)


def test_graded_ndcg_uses_jaccard_relevance() -> None:
    rel = jaccard_relevance(LABELS[:2], LABELS)
    np.testing.assert_allclose(rel[1].numpy(), [1 / 2, 1, 1 / 2, 0, 1 / 3, 1 / 2])
    # query {A,B} against gallery 1 ({A,B}, grade 1) and 4 ({A,C}, grade 1/3): ranked 4 then 1 at k = 2:
    # DCG = 1/3 + 1/log2(3); ideal = 1 + (1/3)/log2(3)
    q = np.array([[1.0, 0.0]])
    g = np.array([[0.6, 0.8], [1.0, 0.0]])
    res = retrieval_metrics(q, LABELS[1:2], g, LABELS[[1, 4]], k=2)
    expected = (1 / 3 + 1 / np.log2(3)) / (1 + (1 / 3) / np.log2(3))
    assert res['nDCG@2'] == pytest.approx(expected, abs=1e-6)


def test_synthetic_pairs_with_known_labels() -> None:
    # S1 and S2 vectors are two different random linear maps of the label vector plus noise, so the cross-sensor
    # neighbours are not the same-sensor ones; a shared 'content' space is what a sensor-agnostic encoder gives
    rng = np.random.default_rng(0)
    labels = rng.random((60, 5)) < 0.3
    labels[labels.sum(1) == 0, 0] = True
    content = labels.astype(np.float32) @ rng.standard_normal((5, 16)).astype(np.float32)
    s1 = content + 0.3 * rng.standard_normal((60, 16)).astype(np.float32)
    s2 = content + 0.3 * rng.standard_normal((60, 16)).astype(np.float32)
    emb = PairedEmbeddings({'s1': torch.from_numpy(s1), 's2': torch.from_numpy(s2)}, torch.from_numpy(labels))
    results = {r['direction']: r for r in evaluate_pairs(emb, k=[5])}
    shuffled = PairedEmbeddings({'s1': torch.from_numpy(s1), 's2': torch.from_numpy(rng.permutation(s2))},
                                torch.from_numpy(labels))
    chance = evaluate_pairs(shuffled, k=[5], directions=['s1->s2'])[0]
    assert set(results) == {'s1->s2', 's2->s1', 's1->s1', 's2->s2'}
    for r in results.values():
        assert r['mAP@5'] > chance['mAP@5'] + 0.1
        assert 0 <= r['precision@5'] <= r['mAP@5'] <= 1 + 1e-6


def test_chunking_does_not_change_the_result() -> None:
    rng = np.random.default_rng(1)
    labels = rng.random((40, 4)) < 0.4
    x, y = rng.standard_normal((40, 8)), rng.standard_normal((40, 8))
    a = retrieval_metrics(x, labels, y, labels, k=5, chunk=7)
    b = retrieval_metrics(x, labels, y, labels, k=5, chunk=64)
    for key in a:
        assert a[key] == pytest.approx(b[key], abs=1e-6)  # same per-query values, summed in another order
