"""Bad input to the retrieval commands: a typed error naming the fix (API), one line on stderr (CLI)."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from retrieval.synthetic import S1, cell_centre, random_embedding, write_embedding

from torchgeo_smarties.cli import main
from torchgeo_smarties.errors import (
    EmbeddingFileError,
    EmbeddingIndexError,
    IndexMismatchError,
    QueryError,
    SmartiesError,
)
from torchgeo_smarties.retrieval import EmbeddingIndex, build_index, search_index, similarity_map


def quiet(_: str) -> None:
    pass


@pytest.fixture
def scene(tmp_path: Path) -> Path:
    return write_embedding(tmp_path / 'scene.tif', random_embedding(0))


@pytest.fixture
def index(scene: Path, tmp_path: Path) -> Path:
    build_index([scene], tmp_path / 'idx', log=quiet)
    return tmp_path / 'idx'


def cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    rc = main([str(a) for a in args])
    err = capsys.readouterr().err.strip()
    return rc, err


def assert_one_line(rc: int, err: str, phrase: str) -> None:
    assert rc == 1, err
    assert 'Traceback' not in err and len(err.splitlines()) == 1, err
    assert phrase in err, err


# class: search on an index folder that does not exist
def test_missing_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(EmbeddingIndexError, match='does not exist; build it with'):
        EmbeddingIndex.load(tmp_path / 'nope')
    assert_one_line(*cli(capsys, 'search', tmp_path / 'nope', '--vector', tmp_path / 'v.npy'), 'does not exist')


# class: append vectors of another dimension
def test_dim_mismatch_on_append(index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = write_embedding(tmp_path / 'other.tif', random_embedding(1, d=16))
    with pytest.raises(IndexMismatchError, match='16-d but index .* holds 8-d'):
        build_index([other], index, append=True, log=quiet)
    assert_one_line(*cli(capsys, 'index', other, '-o', index, '--append'), 'holds 8-d vectors')


# class: append vectors computed with other weights
def test_weights_mismatch_on_append(index: Path, tmp_path: Path) -> None:
    other = write_embedding(tmp_path / 'other.tif', random_embedding(1), weights='SMARTIESBase16_Weights.SMARTIES_V1')
    with pytest.raises(IndexMismatchError, match='not comparable: build a separate index'):
        build_index([other], index, append=True, log=quiet)


# class: append with another metric
def test_metric_mismatch_on_append(index: Path, tmp_path: Path) -> None:
    other = write_embedding(tmp_path / 'other.tif', random_embedding(1))
    with pytest.raises(IndexMismatchError, match="use --metric cosine"):
        build_index([other], index, append=True, metric='l2', log=quiet)


# class: append embeddings of another layer / final-norm setting
def test_feature_mismatch_on_append(index: Path, tmp_path: Path) -> None:
    other = write_embedding(tmp_path / 'other.tif', random_embedding(1), tags={'SMARTIES_LAYER': '2'})
    with pytest.raises(IndexMismatchError, match='SMARTIES_LAYER=2 but'):
        build_index([other], index, append=True, log=quiet)


# class: inputs of different dimensions in one build
def test_mixed_dims_in_one_build(scene: Path, tmp_path: Path) -> None:
    other = write_embedding(tmp_path / 'other.tif', random_embedding(1, d=16))
    with pytest.raises(IndexMismatchError, match='different dimensions'):
        build_index([scene, other], tmp_path / 'new', log=quiet)
    assert not (tmp_path / 'new').exists()  # nothing written


# class: a point outside every scene
def test_point_outside_every_scene(index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(QueryError, match='lies outside every scene'):
        search_index(index, point='0,0', crs='EPSG:32618', log=quiet)
    assert_one_line(*cli(capsys, 'search', index, '--point', '0,0', '--crs', 'EPSG:32618'), 'outside every scene')


# class: a point on a nodata cell
def test_point_on_nodata(tmp_path: Path) -> None:
    emb = random_embedding(0, nan_cells=0)
    emb[:, 1, 1] = np.nan
    path = write_embedding(tmp_path / 'holes.tif', emb)
    with pytest.raises(QueryError, match='falls on a nodata cell'):
        similarity_map(path, cell_centre(1, 1), tmp_path / 'sim.tif', log=quiet)


# class: unknown CRS
def test_unknown_crs(index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x, y = cell_centre(0, 0)
    with pytest.raises(QueryError, match='unknown CRS'):
        search_index(index, point=(x, y), crs='EPSG:999999', log=quiet)
    assert_one_line(*cli(capsys, 'search', index, '--point', f'{x},{y}', '--crs', 'nonsense'), 'unknown CRS')


# class: a malformed point
@pytest.mark.parametrize('point', ['1', '1,2,3', 'a,b', 'nan,1'])
def test_bad_point(index: Path, point: str) -> None:
    with pytest.raises(QueryError, match='X,Y|finite'):
        search_index(index, point=point, log=quiet)


# class: k <= 0
@pytest.mark.parametrize('k', [0, -3])
def test_k_not_positive(index: Path, k: int, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(QueryError, match='k must be a positive integer'):
        search_index(index, vector=np.ones(8), k=k, log=quiet)
    assert_one_line(*cli(capsys, 'search', index, '--point', '1,1', '-k', str(k)), 'k must be a positive integer')


# class: no embedding files given
def test_empty_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(EmbeddingFileError, match='no embedding files given'):
        build_index([], tmp_path / 'idx', log=quiet)
    assert_one_line(*cli(capsys, 'index', '-o', tmp_path / 'idx'), 'no embedding files given')


# class: inputs with only nodata
def test_all_nodata(tmp_path: Path) -> None:
    path = write_embedding(tmp_path / 'empty.tif', np.full((8, 3, 3), np.nan, np.float32))
    with pytest.raises(EmbeddingFileError, match='no valid'):
        build_index([path], tmp_path / 'idx', log=quiet)


# class: an input file that does not exist
def test_missing_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_line(*cli(capsys, 'index', tmp_path / 'nope.tif', '-o', tmp_path / 'idx'), 'does not exist')


# class: a raster that is not an embedding (integer pixels / untagged)
def test_not_an_embedding_raster(tmp_path: Path) -> None:
    p = tmp_path / 'image.tif'
    with rasterio.open(p, 'w', driver='GTiff', height=4, width=4, count=3, dtype='uint16') as ds:
        ds.write(np.ones((3, 4, 4), np.uint16))
    with pytest.raises(EmbeddingFileError, match='embed it first'):
        build_index([p], tmp_path / 'idx', log=quiet)
    q = tmp_path / 'floats.tif'
    with rasterio.open(q, 'w', driver='GTiff', height=4, width=4, count=3, dtype='float32') as ds:
        ds.write(np.ones((3, 4, 4), np.float32))
    with pytest.raises(EmbeddingFileError, match='not a SMARTIES embedding raster'):
        build_index([q], tmp_path / 'idx', log=quiet)


# class: an unsupported embedding file type
def test_unsupported_file_type(tmp_path: Path) -> None:
    (tmp_path / 'vectors.csv').write_text('a,b\n1,2\n')
    with pytest.raises(EmbeddingFileError, match='unsupported embedding file type'):
        build_index([tmp_path / 'vectors.csv'], tmp_path / 'idx', log=quiet)


# class: a Parquet file without embedding/geometry columns
def test_parquet_without_embeddings(tmp_path: Path) -> None:
    import pandas as pd

    pd.DataFrame({'a': [1]}).to_parquet(tmp_path / 't.parquet')
    with pytest.raises(EmbeddingFileError, match='no embedding / geometry column'):
        build_index([tmp_path / 't.parquet'], tmp_path / 'idx', log=quiet)


# class: the same file twice (or already indexed)
def test_duplicate_input(scene: Path, index: Path, tmp_path: Path) -> None:
    with pytest.raises(EmbeddingFileError, match='given twice or already indexed'):
        build_index([scene, scene], tmp_path / 'new', log=quiet)
    with pytest.raises(EmbeddingFileError, match='already indexed'):
        build_index([scene], index, append=True, log=quiet)


# class: output index exists without --append
def test_existing_output_without_append(scene: Path, index: Path) -> None:
    with pytest.raises(EmbeddingIndexError, match='already exists; pass --append'):
        build_index([scene], index, log=quiet)


# class: an incomplete or corrupt index folder
def test_incomplete_index(index: Path) -> None:
    (index / 'meta.parquet').unlink()
    with pytest.raises(EmbeddingIndexError, match='not a complete index folder'):
        EmbeddingIndex.load(index)


# class: a corrupt manifest
def test_corrupt_manifest(index: Path) -> None:
    (index / 'index.json').write_text('{not json')
    with pytest.raises(EmbeddingIndexError, match='unreadable'):
        EmbeddingIndex.load(index)


# class: a sensor filter naming no sensor in the index
def test_unknown_sensor_filter(index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(QueryError, match="choose from: 'sentinel2'"):
        search_index(index, vector=np.ones(8), sensor='sentinel1', log=quiet)
    x, y = cell_centre(0, 0)
    assert_one_line(*cli(capsys, 'search', index, '--point', f'{x},{y}', '--sensor', 'landsat8'),
                    'no vectors of sensor')


# class: a query vector of another dimension
def test_query_dim_mismatch(index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(IndexMismatchError, match='query is 5-d'):
        search_index(index, vector=np.ones(5), log=quiet)
    np.save(tmp_path / 'v.npy', np.ones(5, np.float32))
    assert_one_line(*cli(capsys, 'search', index, '--vector', tmp_path / 'v.npy'), 'query is 5-d')


# class: a query from embeddings of other weights
def test_query_weights_mismatch(index: Path, tmp_path: Path) -> None:
    other = write_embedding(tmp_path / 'other.tif', random_embedding(1, nan_cells=0), weights='another model')
    x, y = cell_centre(0, 0)
    with pytest.raises(IndexMismatchError, match='use the same --weights'):
        search_index(index, point=(x, y), embedding=[other], log=quiet)


# class: no query, or more than one
def test_query_count(index: Path) -> None:
    with pytest.raises(QueryError, match='exactly one query'):
        search_index(index, log=quiet)
    with pytest.raises(QueryError, match='exactly one query'):
        search_index(index, point='1,1', vector=np.ones(8), log=quiet)


# class: results file with an unsupported suffix (checked before searching)
def test_bad_results_suffix(index: Path, tmp_path: Path) -> None:
    with pytest.raises(QueryError, match='use .geojson'):
        search_index(index, vector=np.ones(8), output=tmp_path / 'hits.txt', log=quiet)


# class: IVF-PQ forced on too few vectors, or pq_m not dividing the dimension
def test_ivfpq_options(scene: Path, tmp_path: Path) -> None:
    with pytest.raises(EmbeddingIndexError, match='needs at least 256 vectors'):
        build_index([scene], tmp_path / 'a', index_type='ivfpq', log=quiet)
    with pytest.raises(EmbeddingIndexError, match='dividing the dimension 8'):
        EmbeddingIndex.from_vectors(np.ones((300, 8)), index_type='ivfpq', pq_m=3)


# class: --sensor contradicting the file's band tags
def test_sensor_contradicts_tags(scene: Path, tmp_path: Path) -> None:
    with pytest.raises(EmbeddingFileError, match='contradicts the bands of the file'):
        build_index([scene], tmp_path / 'idx', sensor='sentinel1', log=quiet)


# class: similarity output equal to the input, or not a GeoTIFF
def test_similarity_output_is_input(scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x, y = cell_centre(0, 0)
    with pytest.raises(QueryError, match='is the input embedding file'):
        similarity_map(scene, (x, y), scene, log=quiet)
    with pytest.raises(QueryError, match='must be a GeoTIFF'):
        similarity_map(scene, (x, y), tmp_path / 'sim.png', log=quiet)
    assert_one_line(*cli(capsys, 'similarity', scene, '--point', f'{x},{y}', '-o', scene), 'is the input')


# class: similarity of a pooled table (no grid)
def test_similarity_of_pooled(tmp_path: Path) -> None:
    import geopandas as gpd
    from shapely.geometry import box

    gdf = gpd.GeoDataFrame({'row_off': [0], 'col_off': [0]}, geometry=[box(0, 0, 1, 1)], crs='EPSG:32632')
    gdf['embedding'] = [np.ones(4, np.float32)]
    gdf.to_parquet(tmp_path / 'p.parquet')
    with pytest.raises(EmbeddingFileError, match='needs a dense embedding GeoTIFF'):
        similarity_map(tmp_path / 'p.parquet', '0.5,0.5', tmp_path / 's.tif', log=quiet)


# class: eval retrieval on a folder without labels.csv / with an unknown direction
def test_eval_bad_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / 'chips').mkdir()
    assert_one_line(*cli(capsys, 'eval', 'retrieval', '--folder', tmp_path / 'chips', '--weights', 'demo'),
                    'has no labels.csv')
    assert_one_line(*cli(capsys, 'eval', 'retrieval', '--folder', tmp_path / 'chips', '--directions', 's1->s3'),
                    'unknown direction')


# (not a bad-input class) the error hierarchy
def test_hierarchy() -> None:
    errors: list[Callable[..., Exception]] = [EmbeddingFileError, EmbeddingIndexError, IndexMismatchError, QueryError]
    assert all(issubclass(e, SmartiesError) and issubclass(e, ValueError) for e in errors)  # type: ignore[arg-type]
    assert issubclass(IndexMismatchError, EmbeddingIndexError)


def test_s1_fixture_is_sentinel1(tmp_path: Path) -> None:
    p = write_embedding(tmp_path / 's1.tif', random_embedding(2), bands=S1)
    assert build_index([p], tmp_path / 'i', log=quiet).sensors == {'sentinel1': 27}


# class: eval retrieval on a BigEarthNetV2 root without the dataset
def test_eval_dataset_not_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_line(*cli(capsys, 'eval', 'retrieval', '--dataset', 'bigearthnet_v2', '--root', tmp_path / 'none'),
                    'pass --download or the right --root')


# class: a results or similarity output folder that does not exist
def test_output_folder_missing(index: Path, scene: Path, tmp_path: Path) -> None:
    with pytest.raises(QueryError, match='does not exist; create it first'):
        search_index(index, vector=np.ones(8), output=tmp_path / 'no' / 'hits.geojson', log=quiet)
    x, y = cell_centre(0, 0)
    with pytest.raises(SmartiesError, match='does not exist; create it first'):
        similarity_map(scene, (x, y), tmp_path / 'no' / 'sim.tif', log=quiet)
