"""Choosing and loading the encoder for ``smarties embed`` / ``smarties predict``.

.. versionadded:: 0.1
"""

import inspect
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import Tensor
from torchvision.models._api import WeightsEnum

from ..errors import CheckpointError, WeightsArgumentError
from ..models import (
    SMARTIESBase16_Weights,
    SMARTIESTiny16_Weights,
    SMARTIESViT,
    load_checkpoint,
    load_encoder_weights,
    resolve_weights_arg,
)
from ..models.checkpoint import check_state_dict_values, is_url, read_checkpoint

if TYPE_CHECKING:
    from lightning.pytorch import LightningModule

__all__ = ('infer_architecture', 'load_encoder', 'load_task_checkpoint')

_HEADS = {768: 12, 1024: 16}


def infer_architecture(state_dict: Mapping[str, Any], path: Path | None = None, num_heads: int | None = None,
                       *, source: str | None = None) -> dict[str, Any]:
    """Encoder hyper-parameters from release-format key shapes (``embed_dim``, ``depth``, ``img_size``, …).

    ``num_heads`` is not in the weights: 12 for 768-d, 16 for 1024-d, else from *num_heads*, else from a
    ``<file>.json`` beside the weights (key ``num_heads``).

    Args:
        state_dict: release-format encoder weights.
        path: the weights file (to find the ``.json`` beside it and to name it in errors).
        num_heads: attention heads (``--num-heads``), overriding the json and the default.
        source: how to name the weights in errors (default: *path*).

    Raises:
        CheckpointError: if the keys are not the release's, the head count cannot be determined, or
            ``embed_dim`` is not a positive multiple of it.
    """
    where = source or (str(path) if path is not None else 'the weights')
    if 'cls_token' not in state_dict or 'pos_embed' not in state_dict:
        raise CheckpointError(
            'the weights do not look like a SMARTIES encoder (no cls_token/pos_embed); pass a release-format '
            '.safetensors/.pth, an enum name (SMARTIESBase16_Weights.SMARTIES_V1) or demo'
        )
    dim = int(state_dict['cls_token'].shape[-1])
    depth = len({k.split('.')[1] for k in state_dict if k.startswith('blocks.')})
    n = int(state_dict['pos_embed'].shape[1]) - 1
    side = int(round(n ** 0.5))
    fc1 = state_dict.get('blocks.0.mlp.fc1.weight')
    arch: dict[str, Any] = {'embed_dim': dim, 'depth': depth, 'img_size': side * 16,
                            'mlp_ratio': (int(fc1.shape[0]) / dim) if fc1 is not None else 4.0}
    heads: Any = num_heads
    origin = 'num_heads' if num_heads is not None else ''
    if heads is None and path is not None:
        for cand in (path.with_suffix('.json'), path.with_name(path.name + '.json')):
            if cand.is_file():
                try:
                    meta = json.loads(cand.read_text())
                except (json.JSONDecodeError, UnicodeDecodeError) as err:
                    raise CheckpointError(f'{cand} (the config beside {where}) is not valid JSON: {err}') from None
                if not isinstance(meta, dict):
                    raise CheckpointError(f'{cand} (the config beside {where}) must be a JSON object with "num_heads"')
                arch_meta = meta.get('arch')
                heads = meta.get('num_heads', arch_meta.get('num_heads') if isinstance(arch_meta, dict) else None)
                if heads is not None:
                    origin = f'{cand.name}'
                    break
    if heads is None:
        heads, origin = _HEADS.get(dim), 'the default for this width'
    if heads is None:
        raise CheckpointError(
            f'cannot tell the number of attention heads of the {dim}-d encoder {where}; pass --num-heads N '
            f'(a divisor of {dim}) or put a json with {{"num_heads": N}} beside the weights'
        )
    if isinstance(heads, bool) or not isinstance(heads, int) or heads <= 0 or dim % heads:
        divisors = [d for d in range(1, min(dim, 64) + 1) if dim % d == 0]
        raise CheckpointError(
            f'{where}: num_heads={heads!r} (from {origin}) does not divide embed_dim={dim}; the encoder needs a '
            f'positive divisor of {dim}, e.g. one of {divisors}'
        )
    arch['num_heads'] = int(heads)
    return arch


def _demo() -> tuple[SMARTIESViT, str]:
    try:
        from ..models.demo import load_demo_encoder
    except ImportError as err:
        raise CheckpointError(
            f'the bundled demo checkpoint is not available in this installation ({err}); pass --weights '
            '<path to a .safetensors file> or an enum name'
        ) from None
    model = load_demo_encoder()
    return model, 'demo (bundled smarties-demo-tiny checkpoint; pretrained on a small CC0 scene, for demos only)'


def load_encoder(spec: str | os.PathLike[str] | WeightsEnum | bool | None = None, *, num_heads: int | None = None,
                 download_timeout: float = 3.0) -> tuple[SMARTIESViT, str]:
    """Build the encoder named by *spec* and say which weights were used.

    Args:
        spec: ``None`` / ``'null'`` (official ViT-B if available locally or downloadable within
            *download_timeout*, otherwise the bundled demo checkpoint), ``True`` / ``'true'`` (the official
            ViT-B, no fallback), ``'demo'``, a weights enum member or its name
            (``'SMARTIESBase16_Weights.SENTINEL2_L2A_SMARTIES'``), a path to release-format weights, or an
            ``http(s)://`` URL of such a file (see :func:`~torchgeo_smarties.models.resolve_weights_arg`).
        num_heads: attention heads for a custom-size checkpoint (see :func:`infer_architecture`).
        download_timeout: seconds to wait for the hub when looking for the default weights.

    Returns:
        (model in eval mode, a one-line description of the weights).

    Raises:
        WeightsArgumentError: if *spec* is none of the accepted forms (or ``false``: embeddings need weights).
        CheckpointError: if the weights cannot be found, read or matched.
    """
    resolved = resolve_weights_arg(spec)
    if resolved is False:
        raise WeightsArgumentError(
            'weights=false would embed with a randomly initialised encoder; pass demo, an enum name, a file or URL '
            '(or nothing: the official ViT-B if available, else the demo checkpoint)'
        )
    if resolved is None:
        enum = SMARTIESBase16_Weights.SMARTIES_V1
        path = enum.local_path
        if path is None and not os.environ.get('HF_HUB_OFFLINE'):
            from ..models import find_weights_file

            try:
                path = find_weights_file(enum.meta['hf_repo'], enum.meta['filename'], timeout=download_timeout)
            except CheckpointError:
                path = None
        if path is None:
            model, desc = _demo()
            return model.eval(), desc + ' — official ViT-B weights not found locally and not downloadable'
        resolved = path
    if resolved is True:
        resolved = SMARTIESBase16_Weights.SMARTIES_V1
    if resolved is SMARTIESTiny16_Weights.DEMO:
        model, desc = _demo()
        return model.eval(), desc
    if isinstance(resolved, WeightsEnum):
        weights = resolved
        arch = {k: weights.meta[k] for k in ('embed_dim', 'depth', 'num_heads') if k in weights.meta}
        if len(arch) != 3:
            raise CheckpointError(f'{weights!r} is not a SMARTIES weights enum member (no embed_dim/depth/num_heads)')
        model = SMARTIESViT(**arch)
        load_encoder_weights(model, weights.get_state_dict(), source=repr(weights))
        return model.eval(), f'{weights!r} ({weights.meta.get("hf_repo") or weights.meta.get("filename")})'
    where = str(resolved)
    sd = load_checkpoint(resolved)  # safe: safetensors or torch.load(weights_only=True); URLs size-capped
    arch = infer_architecture(sd, None if is_url(where) else Path(where), num_heads, source=where)
    model = SMARTIESViT(**arch)
    load_encoder_weights(model, sd, source=where)
    return model.eval(), f'{where} (embed_dim {arch["embed_dim"]}, depth {arch["depth"]}, heads {arch["num_heads"]})'


def load_task_checkpoint[T: LightningModule](path_or_url: str | os.PathLike[str], task_classes: Sequence[type[T]]) -> T:
    """Rebuild a Lightning task from a ``.ckpt`` file or URL without running code from it.

    Replaces ``LightningModule.load_from_checkpoint`` (which unpickles with ``weights_only=False`` for
    URLs): the file is read with :func:`~torchgeo_smarties.models.checkpoint.read_checkpoint`, the task is
    built from ``hyper_parameters`` (keys starting with ``_``, LightningCLI's bookkeeping, are dropped, and
    ``weights`` is never passed: the state dict supplies every value, so nothing is downloaded), and
    ``state_dict`` is loaded strictly. The classes are tried in order (one named by LightningCLI's
    ``_class_path`` first); the first that fits wins.

    Args:
        path_or_url: a Lightning checkpoint (local path or ``http(s)://`` URL).
        task_classes: the LightningModule classes the checkpoint may belong to.

    Returns:
        The task in eval mode, on the CPU.

    Raises:
        CheckpointError: if the file is unsafe or unreadable, not a Lightning checkpoint, has NaN/inf or
            integer tensors in floating-point parameters, or fits none of *task_classes*.
    """
    where = os.fspath(path_or_url)
    ckpt = read_checkpoint(path_or_url)
    sd, hparams = ckpt.get('state_dict'), ckpt.get('hyper_parameters', {})
    if not isinstance(sd, Mapping) or not isinstance(hparams, Mapping):
        raise CheckpointError(
            f'{where!r} is not a Lightning checkpoint (no state_dict / hyper_parameters); for encoder weights in '
            'the release format use --weights (with --head)'
        )
    class_path = str(hparams.get('_class_path', ''))
    kwargs = {str(k): v for k, v in hparams.items() if not str(k).startswith('_') and k != 'weights'}
    order = sorted(task_classes, key=lambda c: class_path != f'{c.__module__}.{c.__qualname__}'
                   and not class_path.endswith(f'.{c.__name__}'))
    errors = []
    for cls in order:
        params = inspect.signature(cls.__init__).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            extra = sorted(set(kwargs) - set(params))
            if extra:
                errors.append(f'{cls.__name__}: unknown hyper-parameters {extra[:5]}')
                continue
        try:
            task = cls(**kwargs)
        except (TypeError, ValueError, KeyError) as err:
            errors.append(f'{cls.__name__}: {type(err).__name__}: {str(err)[:160]}')
            continue
        own = task.state_dict()
        missing = [k for k in own if k not in sd]
        unexpected = [k for k in sd if k not in own]
        shapes = [k for k in own if k in sd and isinstance(sd[k], Tensor) and sd[k].shape != own[k].shape]
        if missing or unexpected or shapes:
            errors.append(f'{cls.__name__}: missing {missing[:3]}, unexpected {unexpected[:3]}, shape mismatch '
                          f'{shapes[:3]}')
            continue
        check_state_dict_values(sd, own, where=where)
        task.load_state_dict(sd, strict=True)
        return task.eval()
    names = ', '.join(c.__name__ for c in task_classes)
    raise CheckpointError(f'{where!r} is not a checkpoint of {names}: ' + '; '.join(errors))
