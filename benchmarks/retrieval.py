"""IVF-PQ search at scale: latency per query and recall@10 against exact search, on clustered synthetic vectors.

Usage::

    python benchmarks/retrieval.py                    # 1 M × 768-d (the issue's size)
    python benchmarks/retrieval.py --n 200000         # smaller

The database is generated in float32 chunks from a seed (cluster centres + isotropic noise, L2-normalised, the
index's cosine metric), so peak memory stays at one chunk plus the compressed index: the exact top-10 of every
query is accumulated chunk by chunk while the same chunk is added to the IVF-PQ index
(``torchgeo_smarties.retrieval.make_faiss_index``, the index ``smarties index`` builds). Queries are fresh samples
of the same distribution (not in the database).
"""

import argparse
import platform
import resource
import statistics
import sys
import time

import numpy as np

from torchgeo_smarties.retrieval.index import _prepare, default_ivfpq_params, make_faiss_index


def chunk(i: int, size: int, centres: np.ndarray, basis: np.ndarray, noise: float, seed: int) -> np.ndarray:
    """Chunk *i*: cluster centre + noise in a low-dimensional latent space, mapped to D dims, L2-normalised."""
    rng = np.random.default_rng([seed, i])
    c = rng.integers(len(centres), size=size)
    z = centres[c] + rng.standard_normal((size, centres.shape[1]), dtype=np.float32) * np.float32(noise)
    x = z @ basis + rng.standard_normal((size, basis.shape[1]), dtype=np.float32) * np.float32(0.02)
    return _prepare(x, 'cosine')


def merge_topk(d0: np.ndarray, i0: np.ndarray, d1: np.ndarray, i1: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    d, i = np.concatenate([d0, d1], 1), np.concatenate([i0, i1], 1)
    top = np.argsort(-d, axis=1, kind='stable')[:, :k]
    return np.take_along_axis(d, top, 1), np.take_along_axis(i, top, 1)


def main() -> int:
    import faiss

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--n', type=int, default=1_000_000)
    p.add_argument('--dim', type=int, default=768)
    p.add_argument('--clusters', type=int, default=1000)
    p.add_argument('--latent', type=int, default=64, help='intrinsic dimension of the data')
    p.add_argument('--noise', type=float, default=0.5, help='within-cluster std relative to the unit-variance centres')
    p.add_argument('--queries', type=int, default=1000)
    p.add_argument('--single', type=int, default=200, help='queries timed one at a time')
    p.add_argument('--chunk', type=int, default=50_000)
    p.add_argument('--train', type=int, default=65_536, help='training vectors for the quantisers')
    p.add_argument('--nlist', type=int, default=0, help='IVF lists (default: the power of two nearest sqrt(n))')
    p.add_argument('--pq-m', type=int, default=0)
    p.add_argument('--nprobe', type=int, nargs='+', default=[8, 16, 32, 64, 128])
    p.add_argument('--threads', type=int, default=1,
                   help='faiss OpenMP threads (default 1: on a shared box, spinning OpenMP threads slow down badly)')
    p.add_argument('--seed', type=int, default=0)
    a = p.parse_args()
    faiss.omp_set_num_threads(a.threads)
    k = 10
    d_nlist, d_m = default_ivfpq_params(a.n, a.dim)
    nlist, m = a.nlist or d_nlist, a.pq_m or d_m
    rng = np.random.default_rng(a.seed)
    centres = rng.standard_normal((a.clusters, a.latent), dtype=np.float32)
    basis = rng.standard_normal((a.latent, a.dim), dtype=np.float32) / np.float32(np.sqrt(a.latent))
    gen = lambda i, size, seed=a.seed: chunk(i, size, centres, basis, a.noise, seed)
    queries = gen(10**6, a.queries, a.seed + 1)
    print(f'# {a.n} vectors × {a.dim}-d ({a.latent}-d latent), {a.clusters} clusters, {a.queries} queries, '
          f'IVF{nlist},PQ{m}x8, {a.threads} threads, faiss {faiss.__version__}, numpy {np.__version__}, '
          f'Python {platform.python_version()}')
    index = make_faiss_index(a.dim, 'cosine', 'ivfpq', nlist, m)
    t0 = time.perf_counter()
    train = np.concatenate([gen(i, a.chunk)
                            for i in range(max(1, -(-min(a.train, a.n) // a.chunk)))])[:min(a.train, a.n)]
    index.train(train)
    del train
    t_train = time.perf_counter() - t0
    gt_d = np.full((a.queries, k), -np.inf, np.float32)
    gt_i = np.full((a.queries, k), -1, np.int64)
    t_add = t_exact = 0.0
    for j, start in enumerate(range(0, a.n, a.chunk)):
        x = gen(j, min(a.chunk, a.n - start))
        t1 = time.perf_counter()
        index.add(x)
        t2 = time.perf_counter()
        dd, ii = faiss.knn(queries, x, k, faiss.METRIC_INNER_PRODUCT)
        gt_d, gt_i = merge_topk(gt_d, gt_i, dd, ii + start, k)
        t_exact += time.perf_counter() - t2
        t_add += t2 - t1
    print(f'build: train {t_train:.1f} s on {min(a.train, a.n)} vectors, add {t_add:.1f} s; exact top-{k} of all '
          f'queries {t_exact:.1f} s ({1e3 * t_exact / a.queries:.2f} ms/query, brute force over chunks)')
    print(f'index size: {faiss.serialize_index(index).nbytes / 2**20:.1f} MiB '
          f'(raw float32 {a.n * a.dim * 4 / 2**20:.0f} MiB)')
    for nprobe in a.nprobe:
        params = faiss.SearchParametersIVF(nprobe=nprobe)
        t1 = time.perf_counter()
        _, ids = index.search(queries, k, params=params)
        t_batch = time.perf_counter() - t1
        single = []
        for q in queries[:a.single]:
            t1 = time.perf_counter()
            index.search(q[None], k, params=params)
            single.append(time.perf_counter() - t1)
        recall = np.mean([len(set(ids[i]) & set(gt_i[i])) / k for i in range(a.queries)])
        print(f'IVF-PQ nprobe={nprobe:<4d} recall@10={recall:.3f}  latency/query: '
              f'batched {1e3 * t_batch / a.queries:.3f} ms, '
              f'single {1e3 * statistics.median(single):.3f} ms (median of {len(single)})')
    print(f'peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB')
    return 0


if __name__ == '__main__':
    sys.exit(main())
