from pathlib import Path

import numpy as np
import pytest
import torch

from torchgeo_smarties.errors import BandCountError, InputError
from torchgeo_smarties.transforms import BandStats, SmartiesNormalize, compute_raster_statistics, compute_statistics


def _data(n: int = 6) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [
        torch.randint(0, 1000, (3, 16, 16), generator=g).float() * torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1)
        for _ in range(n)
    ]


def _reference(arr: np.ndarray) -> dict[str, np.ndarray]:
    flat = np.moveaxis(arr, 1, 0).reshape(arr.shape[1], -1)
    p1 = np.percentile(flat, 1, axis=1)
    p99 = np.percentile(flat, 99, axis=1)
    y = np.clip((flat - p1[:, None]) / (p99 - p1)[:, None], 0, 1)
    return {'p1': p1, 'p99': p99, 'mean': y.mean(1), 'std': y.std(1), 'raw_mean': flat.mean(1), 'raw_std': flat.std(1)}


def test_matches_numpy_on_a_dataset(tmp_path: Path) -> None:
    data = _data()
    ref = _reference(torch.stack(data).double().numpy())
    stats = compute_statistics(data, bands='sentinel2_rgb', path=tmp_path / 's.json', progress=False)
    assert stats.bands == ('sentinel2:B04', 'sentinel2:B03', 'sentinel2:B02')
    width = np.array([1.0, 2.0, 3.0])  # value spacing of each channel: percentiles within one bin
    assert (np.abs(np.array(stats.p1) - ref['p1']) <= width).all()
    assert (np.abs(np.array(stats.p99) - ref['p99']) <= width).all()
    np.testing.assert_allclose(stats.raw_mean, ref['raw_mean'], rtol=1e-9)
    np.testing.assert_allclose(stats.raw_std, ref['raw_std'], rtol=1e-9)
    np.testing.assert_allclose(stats.mean, ref['mean'], atol=5e-3)
    np.testing.assert_allclose(stats.std, ref['std'], atol=5e-3)
    norm = SmartiesNormalize.from_file(tmp_path / 's.json', bands=['sentinel2:B02'])
    assert norm.stats.p99 == (stats.p99[2],)
    z = SmartiesNormalize.from_file(tmp_path / 's.json', mode='zscore')
    x = torch.stack(data)
    out = z(x).double()
    np.testing.assert_allclose(out.mean((0, 2, 3)).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std((0, 2, 3), unbiased=False).numpy(), 1.0, atol=1e-5)


def test_sources_nodata_and_errors() -> None:
    data = _data(3)
    data[0][0, :2] = float('nan')
    data[1][1, :2] = -1.0
    stats = compute_statistics(lambda: iter(data), nodata=-1.0, progress=False)
    assert stats.bands is None
    assert stats.extra['count'] == [3 * 256 - 32, 3 * 256 - 32, 3 * 256]
    batched = compute_statistics([{'image': torch.stack(data)}], nodata=-1.0, progress=False)
    assert batched.p99 == stats.p99 and batched.mean == stats.mean
    with pytest.raises(InputError, match='one-shot'):
        compute_statistics(iter(data), progress=False)
    with pytest.raises(BandCountError, match='3 channels but 2 bands'):
        compute_statistics(data, bands='sentinel1', progress=False)
    with pytest.raises(InputError, match='image_key'):
        compute_statistics([{'x': data[0]}], progress=False)


def test_sar_to_db() -> None:
    lin = [torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(i)) * 0.5 + 0.01 for i in range(3)]
    stats = compute_statistics(lin, bands='sentinel1', sar_to_db=True, progress=False)
    assert stats.sar_to_db
    assert -20.0 < stats.p1[0] < stats.p99[0] < -2.5  # 0.01 … 0.51 linear = −20 … −2.9 dB
    norm = SmartiesNormalize.from_stats(stats, sar_to_db=True)
    assert norm(torch.stack(lin)).isfinite().all()


def test_raster_by_windows(tmp_path: Path) -> None:
    import rasterio
    from rasterio.transform import from_origin

    g = np.random.default_rng(0)
    arr = g.integers(1, 5000, size=(2, 300, 260)).astype('uint16')
    arr[:, :10, :10] = 0
    path = tmp_path / 'r.tif'
    with rasterio.open(
        path,
        'w',
        driver='GTiff',
        height=300,
        width=260,
        count=2,
        dtype='uint16',
        nodata=0,
        transform=from_origin(0, 0, 10, 10),
        crs='EPSG:32632',
    ) as dst:
        dst.write(arr)
    stats = compute_raster_statistics(
        path, bands=['sentinel2:B04', 'sentinel2:B08'], window_size=64, path=tmp_path / 'r.yaml', progress=False
    )
    valid = arr.reshape(2, -1).astype(np.float64)
    valid = [v[v != 0] for v in valid]
    for c in range(2):
        assert stats.p1[c] == pytest.approx(np.percentile(valid[c], 1), abs=2.0)
        assert stats.p99[c] == pytest.approx(np.percentile(valid[c], 99), abs=2.0)
        assert stats.raw_mean[c] == pytest.approx(valid[c].mean(), rel=1e-9)
    assert BandStats.load(tmp_path / 'r.yaml').p99 == stats.p99
    with pytest.raises(BandCountError, match='2 bands but 1 band ids'):
        compute_raster_statistics(path, bands=['sentinel2:B04'], progress=False)
    with pytest.raises(InputError, match='cannot open raster'):
        compute_raster_statistics(tmp_path / 'nope.tif', progress=False)


def test_options_are_checked_before_reading(tmp_path: Path) -> None:
    """The shared keyword options: a misspelt one is refused before any pass, never silently ignored."""
    read = []

    def source() -> list[torch.Tensor]:
        read.append(1)
        return _data(1)

    with pytest.raises(TypeError, match=r"compute_statistics\(\) got unexpected keyword argument\(s\) \['bin'\]"):
        compute_statistics(source, bin=16)  # type: ignore[call-arg]
    assert not read
    with pytest.raises(TypeError, match=r"\['sar_to_dB'\]; the options are bins, path, percentiles"):
        compute_raster_statistics(tmp_path / 'absent.tif', sar_to_dB=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'node'"):
        SmartiesNormalize.from_preset('sentinel2_l2a', node=0)  # type: ignore[call-arg]


def test_from_file_sar_to_db_defaults_to_the_file(tmp_path: Path) -> None:
    lin = [torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(i)) * 0.5 + 0.01 for i in range(2)]
    compute_statistics(lin, bands='sentinel1', sar_to_db=True, progress=False, path=tmp_path / 's1.json')
    for kw in ({}, {'sar_to_db': None}):
        assert SmartiesNormalize.from_file(tmp_path / 's1.json', **kw).sar_to_db == (True, True)  # type: ignore[arg-type]
    assert SmartiesNormalize.from_file(tmp_path / 's1.json', sar_to_db=False).sar_to_db == (False, False)
