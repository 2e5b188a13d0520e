"""``smarties eval knn``: the paper's kNN evaluation on a torchgeo dataset.

Example (with network access, downloads EuroSAT and the released ViT-B weights)::

    smarties eval knn --dataset eurosat --root data/eurosat --download --weights default

Features are the CLS token after the final norm of the frozen encoder; the k = 20 nearest
training samples (cosine) vote with weight exp(sim / 0.07). Images are normalised with
``SmartiesNormalize.from_preset(<preset>)`` and resized to ``--image-size`` (224 px, the
release's input size); ``--scales`` adds multi-scale evaluation (12.5/25/50/100 %).
"""

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models._api import WeightsEnum

from ..errors import DatasetRootError, InputError
from ..models import resolve_weights_arg
from ._build import create_encoder, load_weights
from .evaluation import extract_features, knn_accuracy, knn_scores, resize_to_scale

__all__ = ('DATASETS', 'EvalDataset', 'main')


@dataclass(frozen=True)
class EvalDataset:
    """How to evaluate on one torchgeo dataset.

    Attributes:
        target: ``'module:Class'`` of the torchgeo dataset.
        preset: SMARTIES band preset of the image channels (in the dataset's order).
        num_classes: number of classes/labels.
        multilabel: labels are multi-hot (scored by mAP instead of accuracy).
        train_split: split whose features form the kNN memory.
        test_split: split that is scored.
        kwargs: extra constructor arguments of the dataset.
        normalize: preset of ``SmartiesNormalize.from_preset``.
        channels: band ids in the order the dataset really returns them, when it differs from *preset*.
    """

    target: str
    preset: str
    num_classes: int
    multilabel: bool = False
    train_split: str = 'train'
    test_split: str = 'test'
    kwargs: dict[str, Any] = field(default_factory=dict)
    normalize: str | None = None
    channels: tuple[str, ...] | None = None

    def load(self) -> Any:
        """The dataset class."""
        module, _, name = self.target.partition(':')
        return getattr(importlib.import_module(module), name)


#: Datasets known to ``smarties eval knn --dataset``.
DATASETS: dict[str, EvalDataset] = {
    # torchgeo EuroSAT: 13 bands B01..B12 with B8A last (B10 is ignored by the tokenizer, as in the release)
    'eurosat': EvalDataset('torchgeo.datasets:EuroSAT', 'eurosat', 10, normalize='eurosat'),
    'bigearthnet_s2': EvalDataset('torchgeo.datasets:BigEarthNet', 'bigearthnet_s2', 19, True,
                                  kwargs={'bands': 's2', 'num_classes': 19}, normalize='bigearthnet_s2'),
    # torchgeo 0.10 reads the S1 files in sorted name order, i.e. (VH, VV) despite its docstring
    # (see SMARTIESBigEarthNetDataModule.s1_file_order)
    'bigearthnet_s1': EvalDataset('torchgeo.datasets:BigEarthNet', 'bigearthnet_s1', 19, True,
                                  kwargs={'bands': 's1', 'num_classes': 19}, normalize='bigearthnet_s1',
                                  channels=('sentinel1:VH', 'sentinel1:VV')),
}


def _normalizer(preset: str, bands: Sequence[str] | None = None) -> Callable[[Tensor], Tensor]:
    """``SmartiesNormalize.from_preset(preset)`` as a tensor function (imported lazily)."""
    try:
        from torchgeo_smarties.transforms import SmartiesNormalize
    except ImportError as err:
        raise InputError(
            f'torchgeo_smarties.transforms.SmartiesNormalize is not available ({err}); pass --no-normalize to use '
            'images as they are'
        ) from err
    norm = SmartiesNormalize.from_preset(preset, bands=list(bands) if bands else None)

    def apply(x: Tensor) -> Tensor:
        try:
            out = norm(x)
        except (TypeError, KeyError, AttributeError):
            out = norm({'image': x})
        return out['image'] if isinstance(out, dict) else out

    return apply


def _multihot(labels: Tensor, num_classes: int) -> Tensor:
    return labels if labels.ndim == 2 else F.one_hot(labels.long(), num_classes)


def build_parser() -> argparse.ArgumentParser:
    """The ``smarties eval`` parser."""
    parser = argparse.ArgumentParser(prog='smarties eval', description='Paper evaluation protocols.')
    sub = parser.add_subparsers(dest='protocol', required=True, metavar='PROTOCOL')
    knn = sub.add_parser('knn', help='weighted kNN (k=20, T=0.07) on frozen CLS features')
    knn.add_argument('--dataset', required=True, choices=sorted(DATASETS), help='torchgeo dataset')
    knn.add_argument('--root', required=True, help='dataset folder (downloaded there with --download)')
    knn.add_argument('--download', action='store_true', help='download the dataset if missing')
    knn.add_argument('--weights', default='default',
                     help="'default' (released weights of --model), 'demo' (bundled tiny checkpoint), an enum name, "
                          "'none' (random), or a release-format file")
    knn.add_argument('--model', help='SMARTIES timm model name (default: the weights\' architecture, else '
                                     'smarties_vit_base_patch16)')
    knn.add_argument('--k', type=int, default=20)
    knn.add_argument('--temperature', type=float, default=0.07)
    knn.add_argument('--image-size', type=int, default=224, help='resize images to this size (0: keep)')
    knn.add_argument('--scales', type=float, nargs='+', default=[1.0],
                     help='multi-scale evaluation, e.g. 0.125 0.25 0.5 1.0')
    knn.add_argument('--batch-size', type=int, default=64)
    knn.add_argument('--num-workers', type=int, default=0)
    knn.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    knn.add_argument('--no-normalize', action='store_true', help='skip SmartiesNormalize (data already normalised)')
    knn.add_argument('--max-samples', type=int, default=0, help='use at most N samples per split (0: all)')
    knn.add_argument('--output', help='also write the results as JSON to this file')
    sub.add_parser('retrieval', add_help=False,
                   help='single/cross-sensor retrieval mAP@k, P@k, R@k (torchgeo_smarties.retrieval)')
    return parser


def run_knn(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run the kNN protocol; returns one result dict per scale."""
    from torch.utils.data import DataLoader, Subset
    from torchgeo.datasets import DatasetNotFoundError

    spec = DATASETS[args.dataset]
    cls = spec.load()
    layout = f'the layout of torchgeo.datasets.{cls.__name__} (or add --download)'
    if not args.download and not os.path.isdir(args.root):  # before the weights are loaded
        raise DatasetRootError(f'--root {args.root!r} is not a directory; expected {layout}')
    weights = None if args.weights.lower() in ('default', 'random') else resolve_weights_arg(args.weights)
    if args.model is None:  # e.g. --weights demo → the demo's own (tiny) architecture
        args.model = weights.meta['model'] if isinstance(weights, WeightsEnum) else 'smarties_vit_base_patch16'
    if args.weights == 'default':  # the released weights of --model (local cache, else Hugging Face)
        enc = create_encoder(args.model, spec.preset, pretrained=True)
    else:
        enc = create_encoder(args.model, spec.preset)
        load_weights(enc, enc, weights)
    if spec.channels is not None:
        enc.set_bands(list(spec.channels))
    device = torch.device(args.device)
    enc = enc.to(device).eval()
    norm = None if args.no_normalize or spec.normalize is None else _normalizer(spec.normalize, spec.channels)
    feats: dict[float, dict[str, tuple[Tensor, Tensor]]] = {s: {} for s in args.scales}
    for split in (spec.train_split, spec.test_split):
        try:
            ds = cls(root=args.root, split=split, download=args.download, **spec.kwargs)
        except DatasetNotFoundError:
            raise DatasetRootError(
                f'--root {args.root!r} does not hold the {args.dataset} {split!r} split; expected {layout}'
            ) from None
        if args.max_samples and len(ds) > args.max_samples:
            ds = Subset(ds, range(args.max_samples))
        loader = DataLoader(ds, batch_size=args.batch_size, num_workers=args.num_workers)
        for scale in args.scales:

            def transform(x: Tensor, scale: float = scale) -> Tensor:
                if norm is not None:
                    x = norm(x)
                if args.image_size:
                    x = F.interpolate(x, size=(args.image_size, args.image_size), mode='bilinear',
                                      align_corners=False, antialias=True)
                return resize_to_scale(x, scale, enc.patch_size)

            feats[scale][split] = extract_features(enc, loader, transform=transform, device=device)
    results = []
    for scale in args.scales:
        (xtr, ytr), (xte, yte) = feats[scale][spec.train_split], feats[scale][spec.test_split]
        if spec.multilabel:
            ytr, yte = _multihot(ytr, spec.num_classes), _multihot(yte, spec.num_classes)
        score = knn_accuracy(knn_scores(xtr, ytr, xte, spec.num_classes, args.k, args.temperature), yte)
        results.append({
            'dataset': args.dataset, 'protocol': 'knn', 'model': args.model, 'scale': scale, 'k': args.k,
            'temperature': args.temperature, 'metric': 'mAP' if spec.multilabel else 'accuracy', 'value': score,
            'n_train': len(xtr), 'n_test': len(xte),
        })
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``smarties eval``.

    Returns:
        0 on success.
    """
    rest = list(sys.argv[1:] if argv is None else argv)
    if rest[:1] == ['retrieval']:  # protocol implemented by torchgeo_smarties.retrieval
        from ..retrieval.cli import eval_main

        return eval_main(rest[1:])
    args = build_parser().parse_args(rest)
    results = run_knn(args)
    for r in results:
        print(json.dumps(r))
    if args.output:
        with open(args.output, 'w') as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
