"""The engine's batched reads (``TileDataset.__getitems__``), the reader's ``out=`` buffers and direct float32
conversion, in-place normalisation, the accumulator's reused buffers and the held writer thread."""

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin
from rasterio.windows import Window

from torchgeo_smarties.errors import InputError, OptionError
from torchgeo_smarties.inference import TileGrid, engine, make_normalizer, open_source
from torchgeo_smarties.inference.engine import BlendAccumulator, TileBatch, TileDataset, _Sink, tile_loader
from torchgeo_smarties.inference.job import TilingOptions


def _raster(path: Path, arr: np.ndarray, nodata: float | None) -> Path:
    with rasterio.open(path, 'w', driver='GTiff', width=arr.shape[2], height=arr.shape[1], count=arr.shape[0],
                       dtype=arr.dtype.name, nodata=nodata, crs='EPSG:32632',
                       transform=from_origin(500000, 5000000, 10, 10)) as ds:
        ds.write(arr)
    return path


def test_read_into_buffers_equals_a_plain_read(sample: Path) -> None:
    src = open_source(sample)
    for window in (Window(8, 8, 32, 32), Window(src.width - 20, src.height - 10, 32, 32)):  # inside / past the edge
        vals, valid = src.read(window)
        buf = (np.full((src.count, 32, 32), -1, np.float32), np.zeros((src.count, 32, 32), bool))
        got = src.read(window, out=buf)
        assert got[0] is buf[0] and got[1] is buf[1]
        np.testing.assert_array_equal(buf[0], vals)
        np.testing.assert_array_equal(buf[1], valid)
    with pytest.raises(InputError, match='out= must be'):
        src.read(Window(0, 0, 32, 32), out=(np.empty((src.count, 16, 32), np.float32),
                                            np.empty((src.count, 16, 32), bool)))


@pytest.mark.parametrize(('dtype', 'nodata', 'values'), [
    ('uint16', 0, [0, 1, 65535]),  # converted by GDAL straight into float32 (exact)
    ('int16', -32768, [-32768, -32767, 32767]),
    ('int32', -2147483648, [-2147483648, -2147483647, 7]),  # not exact in float32: compared before converting
    ('float32', -9999.0, [-9999.0, np.nan, 0.5]),
])
def test_validity_is_judged_on_the_stored_values(tmp_path: Path, dtype: str, nodata: float,
                                                 values: list[float]) -> None:
    arr = np.full((2, 4, 4), 7, dtype)
    arr[:, 0, :3] = np.array(values, dtype)
    src = open_source(_raster(tmp_path / f'{dtype}.tif', arr, nodata))
    vals, valid = src.read(Window(0, 0, 4, 4))
    assert vals.dtype == np.float32
    expect = np.ones((2, 4, 4), bool)
    expect[:, 0, 0] = False  # only the nodata value itself (its neighbour -2147483647 rounds to the same float)
    if dtype == 'float32':
        expect[:, 0, 1] = False  # NaN
    np.testing.assert_array_equal(valid, expect)
    np.testing.assert_array_equal(vals[:, 0, 2], np.float32(values[2]))


def test_batches_equal_single_tiles_and_know_their_validity(sample: Path) -> None:
    src = open_source(sample)
    grid = TileGrid(src.height, src.width, 64, 16)
    norm = make_normalizer(tuple(src.descriptions))
    ds = TileDataset(src, grid, norm, start=2)
    batch = ds.__getitems__([0, 3, 1])
    assert isinstance(batch, TileBatch) and batch.tiles.tolist() == [2, 5, 3]
    for j, k in enumerate([0, 3, 1]):
        x, m, i = ds[k]
        assert i == 2 + k
        torch.testing.assert_close(batch.x[j], x, rtol=0, atol=0)  # the same reads and arithmetic, per element
        assert torch.equal(batch.valid[j], m)
    assert batch.all_valid == bool(batch.valid.all()) and (batch.mask is None) == batch.all_valid
    assert batch.x.is_contiguous() and batch.x.dtype == torch.float32


def test_batches_with_nodata_carry_the_mask(tmp_path: Path) -> None:
    arr = np.full((3, 64, 64), 500, np.uint16)
    arr[:, :5, :5] = 0
    src = open_source(_raster(tmp_path / 'nd.tif', arr, 0))
    grid = TileGrid(64, 64, 32, 0)
    batch = TileDataset(src, grid, None).__getitems__([0, 1])
    assert not batch.all_valid and batch.mask is batch.valid
    assert float(batch.x[0, :, :5, :5].abs().sum()) == 0.0  # invalid pixels reach the model as 0
    assert TileDataset(src, grid, None).__getitems__([1]).mask is None  # tile 1 has no nodata


@pytest.mark.parametrize('workers', [0, 1])
def test_tile_loader_yields_whole_batches(sample: Path, workers: int) -> None:
    src = open_source(sample)
    grid = TileGrid(src.height, src.width, 64, 16)
    ds = TileDataset(src, grid, make_normalizer(tuple(src.descriptions)))
    loader = tile_loader(ds, TilingOptions(64, 16, batch_size=4, num_workers=workers))
    batches = list(loader)
    assert all(isinstance(b, TileBatch) for b in batches)
    assert torch.cat([b.tiles for b in batches]).tolist() == list(range(len(grid)))
    assert [len(b.tiles) for b in batches[:-1]] == [4] * (len(batches) - 1)
    torch.testing.assert_close(batches[1].x[2], ds[6][0], rtol=0, atol=0)


def test_inplace_normalisation_equals_the_copying_one(sample: Path) -> None:
    src = open_source(sample)
    norm = make_normalizer(tuple(src.descriptions))
    assert norm is not None
    vals, valid = src.read(Window(0, 0, 48, 48))
    valid[:, :4, :4] = False
    x, m = torch.from_numpy(vals)[None], torch.from_numpy(valid)[None]
    raw = x.clone()
    copied = norm.normalize(x, valid=m)
    assert torch.equal(x, raw)  # not in place: the input is untouched
    inplace = norm.normalize(x, valid=m, inplace=True)
    assert inplace.data_ptr() == x.data_ptr()
    torch.testing.assert_close(inplace, copied, rtol=0, atol=0)
    assert norm.last_valid_mask is m and bool((inplace[~m] == 0).all())


def test_accumulator_reuses_its_buffers_and_blends_like_a_sum() -> None:
    rng = np.random.default_rng(0)
    width, k, tile, step = 10, 3, 6, 4
    acc = BlendAccumulator.zeros(0, width, k)
    total = np.zeros((30, width, k), np.float32)
    wtotal = np.zeros((30, width), np.float32)
    popped, bases = [], set()
    for y in range(0, 24, step):
        for x in (0, 4):
            out = rng.standard_normal((tile, tile, k)).astype(np.float32)
            w = rng.random((tile, tile)).astype(np.float32) + 0.1
            acc.add(y, x, out, w)
            total[y:y + tile, x:x + tile] += w[..., None] * out
            wtotal[y:y + tile, x:x + tile] += w
        popped.append(acc.pop(y + step))
        assert acc._base is not None
        bases.add(acc._base[0].__array_interface__['data'][0])
    assert len(bases) == 1  # one buffer for the whole run: no allocation per tile row
    got = np.concatenate(popped)
    with np.errstate(invalid='ignore'):
        want = total[:len(got)] / wtotal[:len(got), :, None]
    want[wtotal[:len(got)] == 0] = np.nan
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, equal_nan=True)


def test_held_writer_finishes_before_the_next_model_step() -> None:
    done = threading.Event()

    def slow() -> None:
        time.sleep(0.2)
        done.set()

    held, free = _Sink(hold=True), _Sink(hold=False)
    try:
        free.put(slow)
        free.hold()
        assert not done.is_set()  # not held: the model step would start while the writer works
        free.flush()
        done.clear()
        held.put(slow)
        held.hold()
        assert done.is_set()  # held: the writes of batch k end before step k + 1
    finally:
        held.close()
        free.close()


def test_read_threads_give_the_same_values_on_their_own_handles(sample: Path) -> None:
    src = open_source(sample)
    window = Window(0, 0, 100, 100)
    a = src.read(window)
    fast = src.with_read_threads(2)
    assert fast.read_threads == 2 and src.read_threads == 1
    b = fast.read(window)
    assert fast._handles is not src._handles
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    fast.close()
    assert src._handles  # the original source's files stay open
    for bad in (0, 1.5, True):
        with pytest.raises(OptionError, match='read threads must be an integer >= 1'):
            src.with_read_threads(bad)  # type: ignore[arg-type]


def test_runs_group_the_overlapping_tiles_of_a_row() -> None:
    grid = TileGrid(100, 200, 32, 16)  # origins every 16 px: 12 columns, 6 rows of tiles
    ncols = len(grid.col_origins)
    tiles = [0, 1, 2, 5, ncols, ncols + 1, 3 * ncols + 4]
    runs = grid.runs(tiles)
    assert runs == [
        (0, 0, 64, [(0, 0), (1, 16), (2, 32)]),  # 0, 1, 2 overlap: one window 0..64
        (0, 80, 32, [(3, 0)]),  # 5 starts at 80 > 64: a second read
        (16, 0, 48, [(4, 0), (5, 16)]),  # next tile row
        (48, 64, 32, [(6, 0)]),
    ]
    touching = TileGrid(64, 128, 32, 0)  # no overlap: neighbours touch, still one read
    assert touching.runs([0, 1, 2]) == [(0, 0, 96, [(0, 0), (1, 32), (2, 64)])]
    # at most 48 px per read: tile 2 (32..64) starts another run; a tile wider than the limit is still read
    assert grid.runs([0, 1, 2], max_width=48) == [(0, 0, 48, [(0, 0), (1, 16)]), (0, 32, 32, [(2, 0)])]
    assert grid.runs([0, 1], max_width=8) == [(0, 0, 32, [(0, 0)]), (0, 16, 32, [(1, 0)])]


@pytest.mark.parametrize(('batch', 'run_bytes'), [(3, None), (5, None), (64, None), (64, 3 * 32 * 5 * 40)])
def test_run_reads_equal_tile_reads_at_the_edges(tmp_path: Path, batch: int, run_bytes: int | None,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiles cut from one read of a run equal reads of each tile's window, edge padding and nodata included."""
    if run_bytes is not None:  # runs of at most 40 px: one tile each, as for a hyperspectral raster
        monkeypatch.setattr(engine, 'RUN_BYTES', run_bytes)
    rng = np.random.default_rng(0)
    arr = rng.integers(1, 5000, (3, 70, 90)).astype(np.uint16)
    arr[:, 60:, 80:] = 0  # nodata in the bottom-right corner (inside edge tiles)
    src = open_source(_raster(tmp_path / 'edge.tif', arr, 0))
    grid = TileGrid(src.height, src.width, 32, 16)  # the padded raster reaches past the 70 × 90 pixels
    ds = TileDataset(src, grid, None)
    reads = []
    plain = TileDataset._read
    monkeypatch.setattr(TileDataset, '_read', lambda self, *a, **k: reads.append(a[2]) or plain(self, *a, **k))
    th, tw = grid.tile_hw
    for first in range(0, len(grid), batch):
        ks = list(range(first, min(first + batch, len(grid))))
        got = ds.__getitems__(ks)
        for j, k in enumerate(ks):
            r0, c0 = grid.origin(k)
            vals, valid = src.read(Window(c0, r0, tw, th))
            np.testing.assert_array_equal(got.valid[j].numpy(), valid)
            np.testing.assert_array_equal(got.x[j].numpy(), np.where(valid, vals, 0))
    assert not ds.__getitems__([len(grid) - 1]).all_valid
    if run_bytes is not None or batch == 64:  # one read per tile, or one per tile row
        assert len(reads) == (len(grid) if run_bytes else len(grid.row_origins)) + 1
