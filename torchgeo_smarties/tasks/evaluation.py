"""The paper's evaluation protocols: kNN, linear probe, layer-wise lr decay, multi-scale evaluation.

* kNN (release / DINO-style): cosine similarity of L2-normalised CLS features, the k = 20
  nearest training samples vote with weight ``exp(sim / T)``, T = 0.07; the class with the
  largest summed weight wins (``knn_scores(...).argmax(1)``; :func:`knn_accuracy` scores it).
* Linear probe: :func:`~torchgeo_smarties.tasks.heads.linear_probe_head` on frozen features.
* Fine-tuning: AdamW parameter groups with layer-wise lr decay 0.75 (:func:`param_groups_lrd`);
  like the release (timm's group matcher), the spectrum projections and the head are in the
  top group (scale 1.0), the final norm with the last block, ``cls_token`` in the stem group.
* Multi-scale: inputs resized to 12.5/25/50/100 % with sizes rounded to multiples of 16
  (:func:`multiscale_sizes`, :func:`resize_to_scale`).
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ImageSizeError, InputError

__all__ = (
    'DEFAULT_SCALES',
    'extract_features',
    'knn_accuracy',
    'knn_scores',
    'multiscale_sizes',
    'param_groups_lrd',
    'resize_to_scale',
)

#: The paper's multi-scale evaluation: fraction of the native image size.
DEFAULT_SCALES: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0)


def knn_scores(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    chunk_size: int = 1024,
) -> Tensor:
    """Weighted kNN class scores (DINO-style vote, as in the release).

    Features are L2-normalised; each test sample takes its *k* most cosine-similar training
    samples, each voting ``exp(sim / temperature)`` for its class (or, for multi-hot labels
    (N, K), for each of its positive classes).

    Args:
        train_features: (N, D).
        train_labels: (N,) class indices, or (N, K) multi-hot labels.
        test_features: (M, D).
        num_classes: K.
        k: neighbours (paper: 20; clipped to N).
        temperature: T (paper: 0.07).
        chunk_size: test samples per similarity block (memory bound).

    Returns:
        (M, K) summed vote weights.

    Raises:
        InputError: for mismatched shapes or k < 1.
    """
    if train_features.ndim != 2 or test_features.ndim != 2 or train_features.shape[1] != test_features.shape[1]:
        raise InputError(f'features must be (N, D) and (M, D), got {tuple(train_features.shape)} and '
                         f'{tuple(test_features.shape)}')
    if train_labels.shape[0] != train_features.shape[0]:
        raise InputError(f'{train_labels.shape[0]} labels for {train_features.shape[0]} training features')
    if k < 1:
        raise InputError(f'k must be >= 1, got {k}')
    k = min(k, train_features.shape[0])
    train = F.normalize(train_features.float(), dim=1)
    test = F.normalize(test_features.float(), dim=1)
    if train_labels.ndim == 1:
        onehot = F.one_hot(train_labels.long(), num_classes).float()
    else:
        onehot = train_labels.float()
    out = []
    for start in range(0, test.shape[0], chunk_size):
        sim = test[start:start + chunk_size] @ train.T
        top, idx = sim.topk(k, dim=1)
        weights = (top / temperature).exp()
        out.append((weights[..., None] * onehot[idx]).sum(dim=1))
    return torch.cat(out) if out else torch.zeros(0, num_classes)


def knn_accuracy(scores: Tensor, test_labels: Tensor) -> float:
    """kNN score of vote *scores* (:func:`knn_scores`): top-1 accuracy for class-index labels, macro mAP for multi-hot.

    Args:
        scores: ``(N, num_classes)`` vote scores of the test samples.
        test_labels: ``(N,)`` class indices or ``(N, num_classes)`` multi-hot labels.
    """
    if test_labels.ndim == 1:
        return float((scores.argmax(dim=1) == test_labels.to(scores.device)).float().mean())
    return _mean_average_precision(scores, test_labels.float())


def _mean_average_precision(scores: Tensor, targets: Tensor) -> float:
    """Macro mAP over the labels with at least one positive (torchmetrics' AP: tied scores form one threshold)."""
    from torchmetrics.functional.classification import multilabel_average_precision

    present = targets.sum(0) > 0
    n = int(present.sum())
    if n == 0:
        return float('nan')
    ap = multilabel_average_precision(scores[:, present].float(), targets[:, present].long(), num_labels=n,
                                      average='macro')
    return float(ap)


@torch.no_grad()
def extract_features(
    model: Callable[[Tensor], Tensor],
    batches: Iterable[Mapping[str, Any]],
    *,
    transform: Callable[[Tensor], Tensor] | None = None,
    device: torch.device | str = 'cpu',
    image_key: str = 'image',
    label_key: str = 'label',
) -> tuple[Tensor, Tensor]:
    """Run *model* (e.g. a SMARTIES encoder: CLS after the final norm) over batches of ``{'image', 'label'}``.

    Args:
        model: maps (B, C, H, W) to (B, D); put it in eval mode first.
        batches: an iterable of torchgeo-style sample dicts (a DataLoader).
        transform: optional tensor transform applied to the images on *device* (normalisation, resize).
        device: where to compute.
        image_key: image key of the batches.
        label_key: label key of the batches.

    Returns:
        (features (N, D) float32 on CPU, labels (N, ...) on CPU).
    """
    feats, labels = [], []
    for batch in batches:
        x = batch[image_key].to(device).float()
        if transform is not None:
            x = transform(x)
        feats.append(model(x).float().cpu())
        labels.append(torch.as_tensor(batch[label_key]).cpu())
    if not feats:
        raise InputError('no batches: the dataset is empty')
    return torch.cat(feats), torch.cat(labels)


def multiscale_sizes(
    height: int, width: int, scales: Sequence[float] = DEFAULT_SCALES, patch_size: int = 16
) -> list[tuple[int, int]]:
    """Image sizes for multi-scale evaluation: ``round(scale · size / patch) · patch``, at least one patch.

    >>> multiscale_sizes(224, 224)
    [(32, 32), (64, 64), (112, 112), (224, 224)]
    """
    out = []
    for s in scales:
        if s <= 0:
            raise InputError(f'scales must be positive, got {s}')
        out.append(tuple(max(patch_size, int(round(s * n / patch_size)) * patch_size) for n in (height, width)))
    return out  # type: ignore[return-value]


def resize_to_scale(x: Tensor, scale: float, patch_size: int = 16, mode: str = 'bilinear') -> Tensor:
    """Resize a (B, C, H, W) batch to *scale* of its size, rounded to multiples of *patch_size*."""
    if x.ndim != 4:
        raise ImageSizeError(f'expected a (B, C, H, W) batch, got shape {tuple(x.shape)}')
    (h, w), = multiscale_sizes(x.shape[-2], x.shape[-1], (scale,), patch_size)
    if (h, w) == tuple(x.shape[-2:]):
        return x
    return F.interpolate(x, size=(h, w), mode=mode, align_corners=False, antialias=mode in ('bilinear', 'bicubic'))


def param_groups_lrd(
    model: nn.Module,
    lr: float,
    weight_decay: float = 0.05,
    layer_decay: float = 0.75,
    encoder: nn.Module | None = None,
    no_weight_decay: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """AdamW parameter groups with layer-wise learning-rate decay (BEiT/MAE fine-tuning, the release's recipe).

    The encoder's groups are timm's :func:`timm.optim.param_groups_layer_decay` (its ViT group matcher:
    ``cls_token``/``patch_embed`` = layer 0, ``blocks.i`` = i + 1, the final norm with the last block, the
    spectrum projections and the head on top; scale ``layer_decay ** (top - layer)``; no weight decay for
    1-D parameters). Parameters outside the encoder (task heads, decoders, fusion heads) get scale 1.0.
    Each group also gets ``lr = lr · lr_scale`` (torch optimisers ignore ``lr_scale``) and ``names``.

    Args:
        model: the full model (e.g. a task's ``self.model``).
        lr: base learning rate.
        weight_decay: weight decay of ≥ 2-D parameters.
        layer_decay: per-block decay (release: 0.75).
        encoder: the SMARTIES encoder inside *model* (default: *model* itself, or ``model.encoder``).
        no_weight_decay: parameter names (as in *model*) without weight decay.

    Returns:
        A list of param-group dicts for ``torch.optim.AdamW``.
    """
    from timm.optim import param_groups_layer_decay

    if encoder is None:
        sub_module = getattr(model, 'encoder', None)
        encoder = sub_module if isinstance(sub_module, nn.Module) else model
    prefix = next((f'{name}.' if name else '' for name, mod in model.named_modules() if mod is encoder), '')
    skip = set(no_weight_decay)
    local_skip = [n[len(prefix):] for n in skip if n.startswith(prefix)]
    names = {id(p): n for n, p in model.named_parameters()}
    groups = param_groups_layer_decay(encoder, weight_decay, no_weight_decay_list=local_skip, layer_decay=layer_decay)
    inside = {id(p) for g in groups for p in g['params']}
    rest: dict[bool, dict[str, Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in inside or (name.startswith(prefix) and prefix):
            continue
        decay = not (p.ndim <= 1 or name in skip)
        rest.setdefault(decay, {'params': [], 'lr_scale': 1.0, 'weight_decay': weight_decay if decay else 0.0})
        rest[decay]['params'].append(p)
    out = [g for g in groups if g['params']] + [rest[k] for k in sorted(rest)]
    for g in out:
        g['lr'] = lr * g['lr_scale']
        g['names'] = [names[id(p)] for p in g['params']]
    return out
