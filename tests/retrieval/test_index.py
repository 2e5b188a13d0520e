"""Index build, append, reload, memory-mapping and the sensor filter."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely

from torchgeo_smarties.retrieval import EmbeddingIndex, build_index, inspect_embeddings, search_index
from torchgeo_smarties.retrieval.index import default_ivfpq_params

from .synthetic import S1, cell_centre, random_embedding, write_embedding


def quiet(_: str) -> None:
    pass


def test_build_skips_nodata_and_records_metadata(emb_s2: Path, emb_s1: Path, tmp_path: Path) -> None:
    idx = build_index([emb_s2, emb_s1], tmp_path / 'idx', log=quiet)
    assert len(idx) == 2 * (30 - 3)  # 3 NaN cells per scene skipped
    assert idx.manifest['index_type'] == 'flat' and idx.metric == 'cosine' and idx.dim == 8
    assert idx.sensors == {'sentinel1': 27, 'sentinel2': 27}
    assert sorted(p.name for p in (tmp_path / 'idx').iterdir()) == ['index.faiss', 'index.json', 'meta.parquet']
    row = idx.meta.iloc[0]
    assert row['date'] == '2023-06-15'  # from the file name S2A_20230615_...
    assert row['crs'] == 'EPSG:32618' and row['bands'].startswith('sentinel2:B02')
    # the footprint of cell (row, col) is the 160 m square of that cell
    g = shapely.from_wkb(row['geometry'])
    assert g.bounds == pytest.approx((500_000 + 160 * row['col'], 4_500_000 - 160 * (row['row'] + 1),
                                      500_000 + 160 * (row['col'] + 1), 4_500_000 - 160 * row['row']))


def test_own_vector_returns_that_patch_first(emb_s2: Path, emb_s1: Path, tmp_path: Path) -> None:
    build_index([emb_s2, emb_s1], tmp_path / 'idx', log=quiet)
    x, y = cell_centre(2, 3)
    hits = search_index(tmp_path / 'idx', point=f'{x},{y}', crs='EPSG:32618', k=5, log=quiet)
    top = hits.iloc[0]
    assert (top['row'], top['col'], Path(top['source']).name) == (2, 3, emb_s2.name)
    assert top['score'] == pytest.approx(1.0, abs=1e-5)  # cosine of a float32 vector with itself
    assert top.geometry.contains(shapely.Point(x, y))
    assert list(hits['rank']) == [1, 2, 3, 4, 5] and hits['score'].is_monotonic_decreasing


def test_point_in_another_crs(emb_s2: Path, tmp_path: Path) -> None:
    from pyproj import Transformer

    build_index([emb_s2], tmp_path / 'idx', log=quiet)
    x, y = cell_centre(1, 4)
    lon, lat = Transformer.from_crs('EPSG:32618', 'EPSG:4326', always_xy=True).transform(x, y)
    hits = search_index(tmp_path / 'idx', point=(lon, lat), crs='EPSG:4326', embedding=[emb_s2], k=1, log=quiet)
    assert (hits.iloc[0]['row'], hits.iloc[0]['col']) == (1, 4)


def test_sensor_filter_returns_k_of_that_sensor(emb_s2: Path, emb_s1: Path, tmp_path: Path) -> None:
    idx = build_index([emb_s2, emb_s1], tmp_path / 'idx', log=quiet)
    x, y = cell_centre(2, 3)
    hits = search_index(idx, point=f'{x},{y}', k=10, sensor='sentinel1', log=quiet)
    assert len(hits) == 10 and set(hits['sensor']) == {'sentinel1'}
    # the same as the best S1 rows of an unfiltered exhaustive search
    everything = search_index(idx, point=f'{x},{y}', k=len(idx), log=quiet)
    expected = everything[everything['sensor'] == 'sentinel1'].head(10)
    assert list(hits['id']) == list(expected['id'])


def test_append_and_reload_give_identical_results(emb_s2: Path, emb_s1: Path, tmp_path: Path) -> None:
    q = np.random.default_rng(5).standard_normal((4, 8)).astype(np.float32)
    once = build_index([emb_s2, emb_s1], tmp_path / 'once', log=quiet)
    build_index([emb_s2], tmp_path / 'twice', log=quiet)
    appended = build_index([emb_s1], tmp_path / 'twice', append=True, log=quiet)
    reloaded = EmbeddingIndex.load(tmp_path / 'twice')  # memory-mapped
    a, b, c = (i.search(q, 7) for i in (once, appended, reloaded))
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.ids, c.ids)
    np.testing.assert_array_equal(a.scores, c.scores)  # same index, same kernel: identical
    pd.testing.assert_frame_equal(once.meta, reloaded.meta)
    assert reloaded.manifest['count'] == 54 and len(reloaded.manifest['sources']) == 2


def test_ivfpq_index_trains_and_finds_itself(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((20, 32)).astype(np.float32)
    labels = rng.integers(20, size=2000)
    x = centres[labels] + 0.05 * rng.standard_normal((2000, 32)).astype(np.float32)
    idx = EmbeddingIndex.from_vectors(x, index_type='ivfpq', nlist=16)
    assert idx.manifest['index_type'] == 'ivfpq' and idx.manifest['pq_m'] == default_ivfpq_params(2000, 32)[1] == 4
    idx.save(tmp_path / 'ivf')
    hits = EmbeddingIndex.load(tmp_path / 'ivf').search(x[:50], 5, nprobe=16)
    # PQ is lossy (points of one tight cluster are interchangeable), but the neighbours come from the query's own
    # cluster: clusters are ~1.4 apart on the unit sphere, far above the PQ error
    assert (labels[hits.ids] == labels[:50, None]).mean() >= 0.95


def test_default_ivfpq_params() -> None:
    assert default_ivfpq_params(1_000_000, 768) == (1024, 96)
    assert default_ivfpq_params(100, 768)[0] == 16


def test_pooled_geoparquet(tmp_path: Path) -> None:
    import geopandas as gpd
    from shapely.geometry import box

    rng = np.random.default_rng(0)
    gdf = gpd.GeoDataFrame({'tile': [0, 1], 'row_off': [0, 0], 'col_off': [0, 224], 'height': [224, 224],
                            'width': [224, 224]},
                           geometry=[box(0, 0, 2240, 2240), box(2240, 0, 4480, 2240)], crs='EPSG:32632')
    gdf['embedding'] = list(rng.standard_normal((2, 8)).astype(np.float32))
    gdf.to_parquet(tmp_path / 'pool.parquet', index=False)
    info = inspect_embeddings(tmp_path / 'pool.parquet', sensor='sentinel1')
    assert (info.kind, info.dim, info.size, info.crs, info.sensor) == ('pooled', 8, 2, 'EPSG:32632', 'sentinel1')
    idx = build_index([tmp_path / 'pool.parquet'], tmp_path / 'idx', sensor='sentinel1', log=quiet)
    hits = search_index(idx, point='3000,1000', k=1, log=quiet)
    assert (hits.iloc[0]['col'], hits.iloc[0]['sensor']) == (224, 'sentinel1')


def test_results_files(emb_s2: Path, tmp_path: Path) -> None:
    import geopandas as gpd

    build_index([emb_s2], tmp_path / 'idx', log=quiet)
    x, y = cell_centre(0, 0)
    search_index(tmp_path / 'idx', point=f'{x},{y}', k=3, output=tmp_path / 'r.geojson', log=quiet)
    search_index(tmp_path / 'idx', point=f'{x},{y}', k=3, output=tmp_path / 'r.parquet', log=quiet)
    gj, gp = gpd.read_file(tmp_path / 'r.geojson'), gpd.read_parquet(tmp_path / 'r.parquet')
    assert gj.crs.to_epsg() == 4326 and gp.crs.to_epsg() == 32618
    assert list(gj['rank']) == list(gp['rank']) == [1, 2, 3]
    assert {'score', 'source', 'sensor', 'geometry'} <= set(gp.columns)
    # the GeoJSON polygon is the parquet one reprojected (≤ 1e-6 degrees of round-off)
    assert gj.geometry.iloc[0].centroid.distance(gp.to_crs(4326).geometry.iloc[0].centroid) < 1e-6


def test_mixed_crs_results_are_reprojected(tmp_path: Path) -> None:
    a = write_embedding(tmp_path / 'a.tif', random_embedding(0))
    b = write_embedding(tmp_path / 'b.tif', random_embedding(1), bands=S1, crs='EPSG:32619', x0=100_000)
    idx = build_index([a, b], tmp_path / 'idx', log=quiet)
    hits = search_index(idx, vector=np.ones(8, np.float32), k=len(idx), log=quiet)
    assert hits.crs.to_epsg() == 4326 and hits.geometry.notna().all()
