"""``smarties embed`` and ``smarties predict``.

.. versionadded:: 0.1
"""

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from ..errors import SmartiesError
from .job import EmbedKeywords, PoolKeywords, PredictKeywords, keyword_names

__all__ = ('SAMPLES', 'build_embed_parser', 'build_predict_parser', 'embed_main', 'predict_main')

#: Options of the dense raster that ``--pool`` does not use (refused with it instead of silently ignored).
_DENSE_ONLY = (('layer', '--layer'), ('dtype', '--dtype'), ('final_norm', '--final-norm'), ('resume', '--resume'),
               ('overlap', '--overlap'), ('preview', '--preview'), ('compress', '--compress'))


class _UsageError(Exception):
    """A contradiction between command-line options (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit status 2), like the other errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f'{self.prog}: error: {" ".join(message.split())} (see {self.prog} --help)\n')

_SAMPLE_DIR = Path(__file__).resolve().parents[1] / 'data' / 'samples'
#: Bundled sample scenes for ``--sample``.
SAMPLES = {'sentinel2': _SAMPLE_DIR / 'sentinel2_l1c_crop.tif'}


def _common(p: argparse.ArgumentParser, many: bool = False) -> None:
    if many:
        p.add_argument('input', nargs='*', help='GeoTIFF/COG/VRT, a folder of single-band files, a URL '
                       '(https://, s3://) or a STAC item (.json file or URL); or several scenes: several inputs, a '
                       'list file (.txt), a glob, a STAC item collection or a folder of scenes (then -o is a folder)')
    else:
        p.add_argument('input', nargs='?', help='GeoTIFF/COG/VRT, a folder of single-band files, a URL '
                       '(https://, s3://) or a STAC item (.json file or URL)')
    p.add_argument('-o', '--output', required=True,
                   help='output file, or a folder (ending in / or existing) to write <input name>_<kind>.tif into')
    p.add_argument('--sample', choices=sorted(SAMPLES), help='use a bundled CC0 sample scene as input (no network)')
    g = p.add_argument_group('bands and normalisation')
    g.add_argument('--bands', help='band ids per raster band, e.g. "sentinel2:B02,sentinel2:B03,..." or a preset')
    g.add_argument('--sensor', help='a preset naming the raster bands in order, e.g. sentinel2_l2a')
    g.add_argument('--stats', help='normalisation statistics file (compute_statistics); default: sensor statistics')
    g.add_argument('--norm', help='statistics preset (sentinel2_l1c, sentinel2_l2a, sentinel1, ...) or none')
    g = p.add_argument_group('model')
    g.add_argument('--weights', help="enum name (SMARTIESBase16_Weights.SMARTIES_V1), a .safetensors/.pth path, or "
                   "'demo'; default: official ViT-B if available, else the bundled demo checkpoint")
    g.add_argument('--num-heads', type=int, help='attention heads of a custom-size checkpoint')
    g = p.add_argument_group('tiling and performance')
    g.add_argument('--tile', type=int, default=224, help='tile size in px, multiple of 16 (default 224)')
    g.add_argument('--overlap', type=int, default=None, help='tile overlap in px, multiple of 16 (default 32)')
    g.add_argument('--batch-size', type=int, default=8, help='tiles per forward pass (default 8)')
    g.add_argument('--workers', type=int, default=None, help='DataLoader workers (default 0 on CPU, else cores-1 <= 4)')
    g.add_argument('--device', help='torch device, e.g. cuda, cuda:1 (default cpu; in a multi-scene job under '
                   'torchrun/SLURM, cuda is each process\'s local GPU)')
    g.add_argument('--precision', choices=('fp32', 'bf16', 'fp16'), default='fp32', help='autocast precision')
    g.add_argument('--no-progress', action='store_true', help='no progress bar')
    g = p.add_argument_group('robustness')
    g.add_argument('--resume', action='store_true', help='continue an interrupted run (byte-identical result)')
    g.add_argument('--require-crs', action='store_true', help='refuse rasters without a CRS (default: warn)')
    g.add_argument('--compress', default=None, type=str.lower, choices=('deflate', 'zstd', 'lzw', 'lzma', 'packbits',
                   'none'), help='GeoTIFF compression (default zstd; zstd and deflate at level 1, float predictor)')


def build_embed_parser() -> argparse.ArgumentParser:
    """The ``smarties embed`` argument parser."""
    p = _Parser(
        prog='smarties embed',
        description='Dense SMARTIES embeddings of a raster, as a GeoTIFF on the 16-px patch grid (one band per '
                    'channel, CRS kept, transform × 16), or one vector per tile with --pool.',
        epilog='example: smarties embed --sample sentinel2 -o out/',
    )
    _common(p, many=True)
    g = p.add_argument_group('output')
    g.add_argument('--dtype', choices=('float32', 'float16'), default=None, help='output data type (default float32)')
    g.add_argument('--layer', type=int, default=None, help='block whose tokens are written (default -1 = last; '
                   'negative counts from the end)')
    g.add_argument('--final-norm', action='store_true', help="apply the final LayerNorm (default: the release's "
                   'all_tokens, last block without norm)')
    g.add_argument('--pool', choices=('mean', 'cls'), help='write one vector per tile (GeoParquet .parquet or CSV) '
                   'instead of the dense raster')
    g.add_argument('--preview', help='also write a PNG: true colour | PCA-RGB of the embeddings (default with '
                   '--sample: <output folder>/<name>_preview.png)')
    g = p.add_argument_group('several devices / nodes (Lightning predict with DDP)')
    g.add_argument('--devices', type=int, help='devices per node: run through lightning.Trainer.predict with DDP, '
                   'each rank embedding its own tiles (default: single process on --device)')
    g.add_argument('--num-nodes', type=int, default=1, help='number of nodes (with --devices; default 1)')
    g.add_argument('--strategy', default='ddp', help='Lightning strategy: ddp (default; launches itself on one node, '
                   'or runs under torchrun/SLURM) or ddp_spawn')
    g.add_argument('--accelerator', default='auto', help='Lightning accelerator with --devices: auto (default), gpu, '
                   'cpu')
    return p


def build_predict_parser() -> argparse.ArgumentParser:
    """The ``smarties predict`` argument parser."""
    p = _Parser(
        prog='smarties predict',
        description='Run a fine-tuned SMARTIES model over a raster: class ids (with a colour table) and class '
                    'probabilities as GeoTIFFs.',
    )
    _common(p)
    g = p.add_argument_group('fine-tuned model')
    g.add_argument('--checkpoint', help='a Lightning checkpoint of a torchgeo_smarties.tasks segmentation or '
                   'classification task')
    g.add_argument('--head', help='a linear head (.safetensors/.pth with weight (K, D) and bias (K)) applied to the '
                   "encoder's patch tokens (with --weights for the encoder)")
    g.add_argument('--mode', choices=('segmentation', 'classification'), default=None,
                   help='segmentation: per-pixel (or per-patch for --head) map; classification: one class per tile '
                   '(default: from the checkpoint)')
    g.add_argument('--classes', help='comma-separated class names (written as band tags)')
    return p


def _resolve_io(args: argparse.Namespace, kind: str) -> tuple[str, Path, Path | None]:
    if args.sample:
        if args.input:
            raise SmartiesError('give either INPUT or --sample, not both')
        inp = str(SAMPLES[args.sample])
    elif args.input:
        inp = args.input[0] if isinstance(args.input, list) else args.input
    else:
        raise SmartiesError('give an INPUT raster (or --sample sentinel2)')
    out = Path(args.output)
    is_dir = args.output.endswith(('/', os.sep)) or out.is_dir()
    preview = Path(args.preview) if getattr(args, 'preview', None) else None
    if is_dir:
        out.mkdir(parents=True, exist_ok=True)
        stem = Path(inp).stem if not Path(inp).is_dir() else Path(inp).name
        suffix = '.parquet' if getattr(args, 'pool', None) else '.tif'
        if args.sample and preview is None and kind == 'embeddings' and not getattr(args, 'pool', None):
            preview = out / f'{stem}_preview.png'
        out = out / f'{stem}_{kind}{suffix}'
    return inp, out, preview


def _check_pool(args: argparse.Namespace) -> None:
    given = [flag for name, flag in _DENSE_ONLY if getattr(args, name, None) is not None
             and getattr(args, name) is not False]
    if given:
        raise _UsageError(f'--pool writes one vector per tile and does not use {", ".join(given)}: drop '
                          f'{"it" if len(given) == 1 else "them"}, or drop --pool for the dense raster')
    if args.devices is not None or args.num_nodes != 1:
        raise _UsageError('--pool runs in a single process; drop --devices/--num-nodes')


def _options(args: argparse.Namespace, accepted: type) -> dict[str, Any]:
    """The library keywords the command line sets, among those the typed dict *accepted* declares.

    An option left unset is not passed, so the library's default applies (one place for every default).
    """
    names = {'num_workers': 'workers'}  # keyword -> argparse destination, where they differ
    return {k: v for k in sorted(keyword_names(accepted)) if (v := getattr(args, names.get(k, k), None)) is not None}


def _fail(prog: str, err: BaseException | str, code: int = 1) -> int:
    print(f'{prog}: error: {" ".join(str(err).split())}', file=sys.stderr)
    return code


def embed_main(argv: list[str]) -> int:
    """Entry point of ``smarties embed``; returns the exit status."""
    args = build_embed_parser().parse_args(argv)
    prog = 'smarties embed'
    try:
        from .embed import embed_raster, pool_raster

        if args.pool:
            _check_pool(args)
        if args.device is not None and (args.devices is not None or args.num_nodes != 1):
            raise _UsageError('--devices/--num-nodes run through Lightning, which places each rank on its own device: '
                              'drop --device (choose the kind with --accelerator)')
        args.device = args.device or 'cpu'
        if args.input and not args.sample:
            from .batch import is_batch_input

            if is_batch_input(args.input):
                return _embed_batch(args, prog)
        inp, out, preview = _resolve_io(args, 'embeddings')
        progress = not args.no_progress
        with warnings.catch_warnings():
            warnings.simplefilter('always')
            warnings.filterwarnings('ignore', category=DeprecationWarning)  # library internals, not the user's input
            warnings.showwarning = _show_warning
            if args.pool:
                pool_raster(inp, out, device=args.device, pool=args.pool, progress=progress,
                            **_options(args, PoolKeywords))
            elif args.devices is not None or args.num_nodes != 1:
                from .distributed import embed_raster_distributed

                embed_raster_distributed(
                    inp, out, devices=1 if args.devices is None else args.devices, num_nodes=args.num_nodes,
                    strategy=args.strategy, accelerator=args.accelerator, resume=args.resume, preview=preview,
                    progress=progress, **_options(args, EmbedKeywords),
                )
            else:
                embed_raster(inp, out, device=args.device, resume=args.resume, preview=preview, progress=progress,
                             **_options(args, EmbedKeywords))
    except _UsageError as err:
        return _fail(prog, err, 2)
    except SmartiesError as err:
        return _fail(prog, err)
    except OSError as err:  # e.g. a permission or I/O error the checks could not foresee: one line, no traceback
        return _fail(prog, f'{type(err).__name__}: {err}')
    except KeyboardInterrupt:
        print(f'{prog}: interrupted; rerun the same command with --resume to continue', file=sys.stderr)
        return 130
    return 0


def _embed_batch(args: argparse.Namespace, prog: str) -> int:
    """``smarties embed`` over several scenes (:func:`~torchgeo_smarties.inference.batch.embed_many`)."""
    from .batch import embed_many

    for flag, given in (('--pool', args.pool), ('--preview', args.preview), ('--devices', args.devices is not None),
                        ('--num-nodes', args.num_nodes != 1)):
        if given:
            raise _UsageError(f'{flag} is for one scene; a batch job (several scenes) embeds each scene in one process '
                              '(split scenes across processes with torchrun/SLURM ranks instead)')
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise _UsageError(f'several scenes write into a folder: -o {args.output!r} is a file; give a folder such as '
                          f'{str(out.with_suffix("")) + "/"!r}')
    with warnings.catch_warnings():
        warnings.simplefilter('always')
        warnings.filterwarnings('ignore', category=DeprecationWarning)
        warnings.showwarning = _show_warning
        res = embed_many(args.input, out, resume=args.resume, device=args.device, progress=not args.no_progress,
                         **_options(args, EmbedKeywords))
    if res.failed:
        print(f'{prog}: error: {len(res.failed)} of {len(res.outcomes)} scenes failed: '
              + '; '.join(f'{o.input} ({o.error})' for o in res.failed).replace('\n', ' ')
              + '; fix them and rerun the same command with --resume', file=sys.stderr)
        return 1
    return 0


def predict_main(argv: list[str]) -> int:
    """Entry point of ``smarties predict``; returns the exit status."""
    args = build_predict_parser().parse_args(argv)
    args.device = args.device or 'cpu'
    try:
        from .predict import predict_raster

        inp, out, _ = _resolve_io(args, 'prediction')
        predict_raster(
            inp, out, checkpoint=args.checkpoint, head=args.head, mode=args.mode,
            classes=args.classes.split(',') if args.classes else None, device=args.device, resume=args.resume,
            progress=not args.no_progress, **_options(args, PredictKeywords),
        )
    except SmartiesError as err:
        return _fail('smarties predict', err)
    except OSError as err:
        return _fail('smarties predict', f'{type(err).__name__}: {err}')
    except KeyboardInterrupt:
        print('smarties predict: interrupted; rerun the same command with --resume to continue', file=sys.stderr)
        return 130
    return 0


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: object = None, line: str | None = None) -> None:
    print(f'warning: {message}', file=sys.stderr)
