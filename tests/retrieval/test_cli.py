"""The retrieval commands through the ``smarties`` dispatcher."""

import json
from pathlib import Path

import pytest

from torchgeo_smarties.cli import COMMANDS, main

from .synthetic import cell_centre


def test_commands_are_registered() -> None:
    for name in ('index', 'search', 'similarity'):
        assert COMMANDS[name].target.startswith('torchgeo_smarties.retrieval.cli:')


def test_index_search_similarity(emb_s2: Path, emb_s1: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['index', str(emb_s2), '-o', str(tmp_path / 'idx')]) == 0
    assert main(['index', str(emb_s1), '-o', str(tmp_path / 'idx'), '--append']) == 0
    manifest = json.loads((tmp_path / 'idx' / 'index.json').read_text())
    assert manifest['count'] == 54 and manifest['sensors'] == {'sentinel1': 27, 'sentinel2': 27}
    x, y = cell_centre(2, 3)
    out = tmp_path / 'hits.geojson'
    assert main(['search', str(tmp_path / 'idx'), '--point', f'{x},{y}', '--crs', 'EPSG:32618', '-k', '4',
                 '--sensor', 'sentinel1', '-o', str(out)]) == 0
    features = json.loads(out.read_text())['features']
    assert [f['properties']['rank'] for f in features] == [1, 2, 3, 4]
    assert {f['properties']['sensor'] for f in features} == {'sentinel1'}
    capsys.readouterr()
    assert main(['search', str(tmp_path / 'idx'), '--embedding', str(emb_s1), '-k', '2']) == 0
    printed = capsys.readouterr().out
    assert 'rank' in printed and 'score' in printed
    assert main(['similarity', str(emb_s2), '--point', f'{x},{y}', '-o', str(tmp_path / 's.tif'),
                 '--preview', str(tmp_path / 's.png')]) == 0
    assert (tmp_path / 's.tif').is_file() and (tmp_path / 's.png').is_file()


def test_eval_lists_the_retrieval_protocol(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['eval', '--help']) == 0
    assert 'retrieval' in capsys.readouterr().out
    assert main(['eval', 'retrieval', '--help']) == 0
    assert 'mAP@k' in capsys.readouterr().out
