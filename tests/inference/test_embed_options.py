"""The keyword layer of the entry points: the shared keywords declared once, one builder of the parameter objects."""

import inspect
from pathlib import Path
from typing import Any

import pytest
import rasterio
import torch

from torchgeo_smarties.errors import OptionError
from torchgeo_smarties.inference import embed_raster, pool_raster, predict_raster
from torchgeo_smarties.inference.batch import embed_many
from torchgeo_smarties.inference.cli import _options, build_embed_parser, build_predict_parser
from torchgeo_smarties.inference.distributed import embed_raster_distributed
from torchgeo_smarties.inference.job import (
    DenseOptions,
    EmbedKeywords,
    EncoderSpec,
    PoolKeywords,
    PredictKeywords,
    RasterOptions,
    TilingOptions,
    keyword_names,
)

KW: dict[str, Any] = {'progress': False, 'num_workers': 0, 'log': lambda s: None}


def test_defaults_are_the_parameter_objects_defaults() -> None:
    opts = RasterOptions.from_keywords({})
    assert opts.tiling == TilingOptions() and opts.dense == DenseOptions() and opts.source == {}
    assert opts.encoder == EncoderSpec() and opts.encoder.torch_device == torch.device('cpu')
    assert RasterOptions.from_keywords({'overlap': None}, overlap=0).tiling.overlap == 0  # None: the caller's default
    assert RasterOptions.from_keywords({}, overlap=48).tiling.overlap == 48


def test_keywords_reach_their_objects() -> None:
    norm = torch.nn.Identity()
    opts = RasterOptions.from_keywords(
        {'tile': 64, 'overlap': 16, 'batch_size': 3, 'num_workers': 1, 'compress': 'ZSTD', 'weights': 'demo',
         'num_heads': 4, 'precision': 'bf16', 'dtype': 'float16', 'layer': 0, 'final_norm': True, 'bands': 'b',
         'sensor': 's', 'stats': 'x.json', 'norm': 'none', 'normalizer': norm, 'require_crs': True})
    assert opts.tiling == TilingOptions(64, 16, 3, 1, 'zstd')
    assert (opts.encoder.weights, opts.encoder.num_heads, opts.encoder.precision) == ('demo', 4, 'bf16')
    assert opts.dense == DenseOptions('float16', 0, True)
    assert opts.source == {'bands': 'b', 'sensor': 's', 'stats': 'x.json', 'norm': 'none', 'normalizer': norm,
                           'require_crs': True}


def test_keyword_sets() -> None:
    pool, predict, embed = keyword_names(PoolKeywords), keyword_names(PredictKeywords), keyword_names(EmbedKeywords)
    assert pool < predict < embed
    assert predict - pool == {'overlap', 'compress', 'checkpoint_seconds'}
    assert embed - predict == {'dtype', 'layer', 'final_norm'}
    # the wrappers' explicit parameters and their **options never overlap
    for fn, keys in ((embed_raster, embed), (pool_raster, pool), (predict_raster, predict),
                     (embed_raster_distributed, embed), (embed_many, embed)):
        explicit = {p for p in inspect.signature(fn).parameters if p != 'options'}
        assert not explicit & keys, fn.__name__


@pytest.mark.parametrize(('fn', 'kw', 'name'), [
    (embed_raster, {'tiles': 64}, 'tiles'),
    (pool_raster, {'overlap': 16}, 'overlap'),  # pooled tiles never overlap: not a keyword of pool_raster
    (pool_raster, {'dtype': 'float16'}, 'dtype'),
    (predict_raster, {'layer': 0}, 'layer'),
    (embed_raster_distributed, {'device': 'cpu'}, 'device'),  # the DDP path takes devices/accelerator
])
def test_unknown_keyword_is_a_type_error(fn: Any, kw: dict[str, Any], name: str, sample: Path,
                                         tmp_path: Path) -> None:
    extra = {'model': torch.nn.Identity()} if fn is predict_raster else {}
    with pytest.raises(TypeError, match=rf"{fn.__name__}\(\) got an unexpected keyword argument '{name}'"):
        fn(sample, tmp_path / 'o.tif', **extra, **kw, **KW)
    assert list(tmp_path.iterdir()) == []


def test_batch_job_validates_once_before_any_scene(sample: Path, tmp_path: Path) -> None:
    with pytest.raises(OptionError, match='tile size 30'):
        embed_many([str(sample), str(sample)], tmp_path / 'out', tile=30, **KW)
    assert not (tmp_path / 'out').exists()


def test_batch_job_loads_the_weights_once(sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchgeo_smarties.inference import weights

    loads = []
    real = weights.load_encoder

    def counting(*args: Any, **kwargs: Any) -> Any:
        loads.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(weights, 'load_encoder', counting)
    scenes = tmp_path / 'scenes'
    scenes.mkdir()
    for k in range(2):
        (scenes / f's{k}.tif').write_bytes(sample.read_bytes())
    tiny = str(Path(__file__).resolve().parents[1] / 'data' / 'tiny_encoder.safetensors')
    res = embed_many([str(scenes / 's*.tif')], tmp_path / 'out', weights=tiny, num_heads=4, tile=128, overlap=0,
                     catalogue=False, **KW)
    assert [o.status for o in res.outcomes] == ['done', 'done']
    assert len(loads) == 1  # up front, before the first scene; both scenes reuse the loaded encoder
    with rasterio.open(tmp_path / 'out' / 's1_embeddings.tif') as ds:
        assert ds.tags()['SMARTIES_WEIGHTS'].startswith(tiny)  # the label is the weights' description, as before


def test_cli_passes_only_the_options_it_was_given() -> None:
    args = build_embed_parser().parse_args(['in.tif', '-o', 'out.tif', '--workers', '2', '--layer', '0'])
    got = _options(args, EmbedKeywords)
    assert got == {'batch_size': 8, 'final_norm': False, 'layer': 0, 'num_workers': 2, 'precision': 'fp32',
                   'require_crs': False, 'tile': 224}  # overlap, dtype, compress, bands, …: the library's defaults
    assert RasterOptions.from_keywords(got).tiling == TilingOptions(num_workers=2)
    assert set(_options(args, PoolKeywords)) == {'batch_size', 'num_workers', 'precision', 'require_crs', 'tile'}
    pargs = build_predict_parser().parse_args(['in.tif', '-o', 'p.tif', '--overlap', '16', '--compress', 'zstd'])
    assert _options(pargs, PredictKeywords)['overlap'] == 16 and _options(pargs, PredictKeywords)['compress'] == 'zstd'
