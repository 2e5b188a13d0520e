"""open_sources: list files, globs, folders of scenes and STAC item collections expand into validated scenes."""

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from torchgeo_smarties.errors import SceneListError
from torchgeo_smarties.inference import open_source, open_sources

T10 = Affine(10, 0, 500000, 0, -10, 5000000)


def _tif(path: Path, count: int = 2, desc: tuple[str, ...] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, 'w', driver='GTiff', width=16, height=16, count=count, dtype='uint16', crs='EPSG:32632',
                       transform=T10) as dst:
        dst.write(np.ones((count, 16, 16), np.uint16))
        if desc:
            dst.descriptions = desc
    return path


def _collection(path: Path, ids: list[str]) -> Path:
    feats = [{'type': 'Feature', 'stac_version': '1.0.0', 'id': i, 'geometry': None, 'links': [],
              'properties': {'datetime': '2023-01-01T00:00:00Z', 'constellation': 'sentinel-2'},
              'assets': {'blue': {'href': f'{i}_B02.tif', 'type': 'image/tiff', 'roles': ['data'],
                                  'eo:bands': [{'name': 'B02', 'common_name': 'blue'}]}}} for i in ids]
    for i in ids:
        _tif(path.parent / f'{i}_B02.tif', count=1)
    path.write_text(json.dumps({'type': 'FeatureCollection', 'features': feats}))
    return path


def test_list_file_glob_and_sequence(tmp_path: Path) -> None:
    a, b = _tif(tmp_path / 'd' / 'a.tif'), _tif(tmp_path / 'd' / 'b.tif')
    lst = tmp_path / 'd' / 'scenes.txt'
    lst.write_text('# my scenes\na.tif\n\n  b.tif  \n')
    scenes = open_sources(lst)
    assert [s.input for s in scenes] == [str(a), str(b)] and [s.name for s in scenes] == ['a', 'b']
    assert scenes[0].source is not None and scenes[0].source.count == 2
    assert [s.input for s in open_sources(str(tmp_path / 'd' / '*.tif'))] == [str(a), str(b)]
    assert [s.name for s in open_sources([a, str(_tif(tmp_path / 'e' / 'a.tif'))], validate=False)] == ['a', 'a_2']


def test_folder_of_scenes_vs_per_band_folder(tmp_path: Path) -> None:
    pytest.importorskip('pystac')
    root = tmp_path / 'scenes'
    _tif(root / 's1.tif')
    for b in ('B02', 'B03'):
        _tif(root / 's2' / f'{b}.tif', count=1)
    _collection(root / 'items.json', ['x', 'y'])  # a collection inside a folder is one scene entry: the file
    scenes = open_sources(root, validate=False)
    assert [Path(s.input).name for s in scenes] == ['items.json', 's1.tif', 's2', 'x_B02.tif', 'y_B02.tif']
    # a folder of only single-band rasters is one scene (per-band folder)
    one = open_sources(root / 's2')
    assert len(one) == 1 and one[0].source is not None and one[0].source.count == 2


def test_item_collection_expands_to_items(tmp_path: Path) -> None:
    pytest.importorskip('pystac')
    coll = _collection(tmp_path / 'c.json', ['S2A_1', 'S2B_2'])
    scenes = open_sources(coll)
    assert [s.input for s in scenes] == [f'{coll}#S2A_1', f'{coll}#S2B_2']
    assert [s.name for s in scenes] == ['S2A_1', 'S2B_2']
    src = open_source(scenes[1].input)
    assert src.descriptions == ('sentinel2:B02',) and src.paths[0].endswith('S2B_2_B02.tif')


def test_bad_scene_named_before_any_work(tmp_path: Path) -> None:
    a = _tif(tmp_path / 'a.tif')
    bad = tmp_path / 'b.tif'
    bad.write_text('nope')
    with pytest.raises(SceneListError, match=r'scene 2 of 2 \(.*b.tif\): cannot read'):
        open_sources([a, bad])
    with pytest.raises(SceneListError, match='listed twice'):
        open_sources([a, tmp_path / '.' / 'a.tif'])
