"""``smarties index``, ``smarties search``, ``smarties similarity`` and ``smarties eval retrieval`` (parsing only).

.. versionadded:: 0.2
"""

import argparse
import json
import re
import sys
from pathlib import Path

from ..errors import EmbeddingFileError, QueryError

__all__ = ('build_eval_parser', 'build_index_parser', 'build_search_parser', 'build_similarity_parser', 'eval_main',
           'index_main', 'search_main', 'similarity_main')


def _log(msg: str) -> None:
    print(msg, file=sys.stderr)


def _parser(command: str, description: str, epilog: str) -> argparse.ArgumentParser:
    """The parser of ``smarties <command>``, with its description and an example as epilog."""
    return argparse.ArgumentParser(prog=f'smarties {command}', description=description, epilog=epilog)


def _negative_points(argv: list[str]) -> list[str]:
    """``--point -76.3,37.6`` → ``--point=-76.3,37.6`` (argparse would take the value for an option)."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] == '--point' and re.match(r'^-\d', arg):
            out[-1] = f'--point={arg}'
        else:
            out.append(arg)
    return out


def build_index_parser() -> argparse.ArgumentParser:
    """The ``smarties index`` parser."""
    p = _parser(
        'index',
        'Build (or extend) a vector index of SMARTIES embeddings: a folder with index.faiss, '
        'meta.parquet and index.json. NaN (nodata) cells are skipped.',
        'example: smarties index scene_a_embeddings.tif scene_b_embeddings.tif -o my_index/',
    )
    p.add_argument('embeddings', nargs='*', metavar='EMBEDDINGS',
                   help='embedding GeoTIFFs (smarties embed) and/or pooled GeoParquet files (smarties embed --pool)')
    p.add_argument('-o', '--output', required=True, help='the index folder')
    p.add_argument('--append', action='store_true', help='add to the existing index (same dim, metric, weights)')
    p.add_argument('--metric', choices=('cosine', 'ip', 'l2'), help='similarity (default cosine for a new index)')
    p.add_argument('--index-type', choices=('auto', 'flat', 'ivfpq'), default='auto',
                   help='flat: exact; ivfpq: approximate, compressed; auto (default): IVF-PQ from 100 000 vectors on')
    p.add_argument('--nlist', type=int, help='IVF lists (default: the power of two nearest sqrt(N))')
    p.add_argument('--pq-m', type=int, help='PQ sub-quantisers, a divisor of the dimension (default: dim/8)')
    g = p.add_argument_group('labels for files without SMARTIES tags (e.g. pooled GeoParquet)')
    g.add_argument('--sensor', help='sensor id, e.g. sentinel1 (for --sensor filtering in smarties search)')
    g.add_argument('--bands', help='band ids of the embedded image')
    g.add_argument('--weights-tag', help='weights description the vectors were computed with')
    return p


def index_main(argv: list[str]) -> int:
    """Entry point of ``smarties index``."""
    from .index import build_index

    a = build_index_parser().parse_args(argv)
    build_index(a.embeddings, a.output, append=a.append, metric=a.metric, index_type=a.index_type, nlist=a.nlist,
                pq_m=a.pq_m, sensor=a.sensor, bands=a.bands, weights=a.weights_tag, log=_log)
    return 0


def build_search_parser() -> argparse.ArgumentParser:
    """The ``smarties search`` parser."""
    p = _parser(
        'search',
        'Find the k indexed patches most similar to a query: a map point in an embedded scene, an '
        'image chip (embedded on the fly), or a whole embedding file (mean vector).',
        'example: smarties search my_index/ --point 399960,4990200 --crs EPSG:32618 -k 20 -o hits.geojson '
        '--sensor sentinel2',
    )
    p.add_argument('index', help='the index folder (smarties index)')
    q = p.add_argument_group('query (one of)')
    q.add_argument('--point', help='X,Y of a map point; its cell in --embedding FILE (default: the index sources)')
    q.add_argument('--crs', help='CRS of --point, e.g. EPSG:4326 (default: the scene CRS)')
    q.add_argument('--embedding', action='append',
                   help='embedding file holding --point; alone: query with the mean of its valid vectors')
    q.add_argument('--image', help='an image chip (GeoTIFF) to embed on the fly and mean-pool')
    q.add_argument('--vector', help='a .npy file holding one (D,) query vector')
    g = p.add_argument_group('embedding --image')
    g.add_argument('--bands', help='band ids of the chip (default: from its band descriptions)')
    g.add_argument('--image-sensor', help='preset naming the chip bands in order, e.g. sentinel1')
    g.add_argument('--weights', help="weights to embed the chip with (default as in smarties embed; must match the "
                   "index's weights)")
    g.add_argument('--stats', help='normalisation statistics file')
    g.add_argument('--norm', help='statistics preset or none')
    r = p.add_argument_group('results')
    r.add_argument('-k', type=int, default=10, help='number of results (default 10)')
    r.add_argument('--sensor', action='append',
                   help='only results of this sensor (e.g. sentinel2 for S1→S2 search); repeatable')
    r.add_argument('--nprobe', type=int, help='IVF lists visited (IVF-PQ only; default from the index)')
    r.add_argument('-o', '--output', help='results file: .geojson (EPSG:4326) or .parquet (GeoParquet)')
    return p


def search_main(argv: list[str]) -> int:
    """Entry point of ``smarties search``."""
    import numpy as np

    from .query import search_index

    a = build_search_parser().parse_args(_negative_points(argv))
    vector = None
    if a.vector is not None:
        if not Path(a.vector).is_file():
            raise QueryError(f'vector file {a.vector!r} does not exist')
        try:
            vector = np.load(a.vector, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise EmbeddingFileError(f'cannot read {a.vector!r} as a .npy array ({err})') from None
    frame = search_index(a.index, point=a.point, crs=a.crs, embedding=a.embedding, image=a.image, vector=vector,
                         bands=a.bands, image_sensor=a.image_sensor, weights=a.weights, stats=a.stats, norm=a.norm,
                         k=a.k, sensor=a.sensor, nprobe=a.nprobe, output=a.output, log=_log)
    if a.output is None:
        cols = ['rank', 'score', 'sensor', 'source', 'row', 'col', 'date']
        print(frame[cols].assign(source=frame['source'].map(lambda s: Path(s).name)).to_string(index=False))
    return 0


def build_similarity_parser() -> argparse.ArgumentParser:
    """The ``smarties similarity`` parser."""
    p = _parser(
        'similarity',
        'A GeoTIFF of the cosine similarity of every patch of an embedding raster to the patch at a '
        'point (same grid and CRS, NaN where nodata), with an optional PNG preview.',
        'example: smarties similarity scene_embeddings.tif --point 399960,4990200 -o sim.tif --preview sim.png',
    )
    p.add_argument('embedding', help='a dense embedding GeoTIFF (smarties embed)')
    p.add_argument('--point', required=True, help='X,Y of the query patch')
    p.add_argument('--crs', help='CRS of --point (default: the raster CRS)')
    p.add_argument('-o', '--output', required=True, help='the similarity GeoTIFF')
    p.add_argument('--preview', help='also write a PNG with a colour bar')
    return p


def similarity_main(argv: list[str]) -> int:
    """Entry point of ``smarties similarity``."""
    from .similarity import similarity_map

    a = build_similarity_parser().parse_args(_negative_points(argv))
    similarity_map(a.embedding, a.point, a.output, crs=a.crs, preview=a.preview, log=_log)
    return 0


def build_eval_parser() -> argparse.ArgumentParser:
    """The ``smarties eval retrieval`` parser."""
    p = _parser(
        'eval retrieval',
        'Single- and cross-sensor retrieval (S1→S2, S2→S1, S1→S1, S2→S2): mAP@k, precision@k, '
        'recall@k (relevance: at least one shared label) and Jaccard-graded nDCG@k, as JSON.',
        'examples: smarties eval retrieval --dataset bigearthnet_v2 --root data/ben2 --split test '
        '--max-samples 2000; smarties eval retrieval --folder chips/ --weights demo',
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--dataset', choices=('bigearthnet_v2',), help="torchgeo's BigEarthNetV2 (bands='all')")
    src.add_argument('--folder', help='a folder of paired chips: labels.csv, s1/<id>.tif, s2/<id>.tif')
    p.add_argument('--root', help='dataset folder (with --dataset)')
    p.add_argument('--split', default='test', choices=('train', 'val', 'test'), help='dataset split (default test)')
    p.add_argument('--download', action='store_true', help='download the dataset if missing')
    p.add_argument('--s1-bands', help='band ids of the s1 chips (--folder; default: from the files)')
    p.add_argument('--s2-bands', help='band ids of the s2 chips (--folder; default: from the files)')
    p.add_argument('--norm-s1', help='s1 statistics preset, file or none (--folder; default: from the bands)')
    p.add_argument('--norm-s2', help='s2 statistics preset, file or none (--folder; default: from the bands)')
    p.add_argument('--weights', help="encoder weights (as in smarties embed: enum name, file, 'demo')")
    p.add_argument('--num-heads', type=int, help='attention heads of a custom-size checkpoint')
    p.add_argument('-k', type=int, nargs='+', default=[10], help='cut-offs (default 10)')
    p.add_argument('--directions', nargs='+', default=['s1->s2', 's2->s1', 's1->s1', 's2->s2'],
                   help='query->gallery sensor pairs (default: all four)')
    p.add_argument('--exclude-pair', action='store_true',
                   help="cross-sensor: leave the query's own counterpart out of the gallery")
    p.add_argument('--image-size', type=int, default=224, help='resize chips to this size (0: keep)')
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--device', default='cpu')
    p.add_argument('--max-samples', type=int, default=0, help='use at most N pairs (0: all)')
    p.add_argument('--output', help='also write the results as JSON to this file')
    return p


def eval_main(argv: list[str]) -> int:
    """Entry point of ``smarties eval retrieval`` (called by ``smarties eval``)."""
    from ..inference.weights import load_encoder
    from .evaluation import DIRECTIONS, bigearthnet_v2_chips, embed_pairs, evaluate_pairs, read_paired_folder

    a = build_eval_parser().parse_args(argv)
    if any(k <= 0 for k in a.k):
        raise QueryError(f'-k must be positive, got {a.k}')
    bad = [d for d in a.directions if d not in DIRECTIONS]
    if bad:
        raise QueryError(f'unknown direction(s) {bad}; choose from {", ".join(DIRECTIONS)}')
    if a.image_size < 0 or a.image_size % 16:
        raise QueryError(f'--image-size must be 0 or a positive multiple of 16, got {a.image_size}')
    if a.output and not Path(a.output).resolve().parent.is_dir():
        raise QueryError(f'output folder {str(Path(a.output).resolve().parent)!r} does not exist; create it first')
    if a.dataset:
        if not a.root:
            raise QueryError('--dataset needs --root (the dataset folder)')
        from torchgeo.datasets import BigEarthNetV2, DatasetNotFoundError

        try:
            ds = BigEarthNetV2(root=a.root, split=a.split, bands='all', download=a.download)
        except DatasetNotFoundError as err:
            raise EmbeddingFileError(f'BigEarthNetV2 not found in {a.root!r} ({str(err).splitlines()[0]}); pass '
                                     '--download or the right --root') from None
        chips = bigearthnet_v2_chips(ds, max_samples=a.max_samples)
    else:
        chips = read_paired_folder(a.folder, bands={'s1': a.s1_bands, 's2': a.s2_bands},
                                   norm={'s1': a.norm_s1, 's2': a.norm_s2}, max_samples=a.max_samples)
    model, wdesc = load_encoder(a.weights, num_heads=a.num_heads)
    _log(f'weights: {wdesc}')
    emb = embed_pairs(chips, model, image_size=a.image_size, batch_size=a.batch_size, device=a.device, log=_log)
    results = evaluate_pairs(emb, k=a.k, directions=a.directions, exclude_pair=a.exclude_pair)
    for r in results:
        r.update(weights=wdesc, source=a.dataset or str(a.folder))
        print(json.dumps(r))
    if a.output:
        Path(a.output).write_text(json.dumps(results, indent=2) + '\n')
    return 0
