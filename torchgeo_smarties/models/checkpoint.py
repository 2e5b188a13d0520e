"""Reading and validating SMARTIES checkpoints in the release's key format.

A released encoder file holds the keys ``cls_token``, ``pos_embed``,
``spectrum_projection.spectrum_embeds.{0..16}.proj.{weight,bias}``, ``blocks.*`` and
``norm.*`` (see ``manifest_vitb.json``). Pretraining checkpoints add the MAE
decoder (``mask_token``, ``decoder_*``), which the encoder ignores. Everything else
missing or unexpected is an error that lists the keys.
"""

import os
import pickle
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import CheckpointError
from .pos_embed import resample_pos_embed

__all__ = ('DECODER_PREFIXES', 'filter_encoder_state_dict', 'load_checkpoint', 'load_encoder_weights')

#: Key prefixes of the release's MAE pretraining decoder (ignored by the encoder).
DECODER_PREFIXES = ('mask_token', 'decoder_')
_OPTIONAL = ('head.', 'fc_norm.')
_WRAPPER_KEYS = ('state_dict', 'model', 'module', 'encoder')


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read a ``.safetensors`` or ``.pth``/``.pt``/``.ckpt`` file into a flat state dict.

    ``.pth`` files are read with ``torch.load(weights_only=True)``; a dict wrapped in
    ``state_dict``/``model`` is unwrapped and a ``module.`` prefix stripped.

    Raises:
        CheckpointError: if the file is missing, unreadable, truncated or not a state dict.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f'checkpoint {str(p)!r} does not exist (or is not a file)')
    try:
        if p.suffix == '.safetensors':
            from safetensors.torch import load_file

            sd: Any = load_file(str(p))
        else:
            sd = torch.load(str(p), map_location='cpu', weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        raise CheckpointError(
            f'cannot read checkpoint {str(p)!r} ({type(err).__name__}: {str(err)[:200]}); the file may be truncated '
            'or corrupt — download it again'
        ) from err
    except Exception as err:  # safetensors raises its own error type
        if type(err).__name__ == 'SafetensorError':
            raise CheckpointError(f'cannot read safetensors file {str(p)!r}: {err}; the file may be truncated') from err
        raise
    return _flatten(sd, str(p))


def _flatten(sd: Any, where: str) -> dict[str, Tensor]:
    for _ in range(3):
        if isinstance(sd, Mapping) and not any(isinstance(v, Tensor) for v in sd.values()):
            for k in _WRAPPER_KEYS:
                if k in sd and isinstance(sd[k], Mapping):
                    sd = sd[k]
                    break
            else:
                break
    if not isinstance(sd, Mapping) or not sd:
        raise CheckpointError(f'{where} does not contain a state dict of tensors')
    out = {str(k): v for k, v in sd.items() if isinstance(v, Tensor)}
    if out and all(k.startswith('module.') for k in out):
        out = {k[len('module.'):]: v for k, v in out.items()}
    return out


def filter_encoder_state_dict(state_dict: Mapping[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """Adapt a release-format state dict to *model* (timm ``pretrained_filter_fn`` signature).

    Drops MAE decoder keys, casts to the model's parameter dtype (half-precision
    checkpoints load into float32), resamples ``pos_embed`` to the model's grid the
    release's way, and drops ``norm.*`` when the model pools with ``fc_norm``
    (the release deletes ``norm`` for ``global_pool=True``).
    """
    own = model.state_dict()
    out: dict[str, Tensor] = {}
    for k, v in state_dict.items():
        if k.startswith(DECODER_PREFIXES):
            continue
        if k.startswith('norm.') and k not in own:
            continue
        target = own.get(k)
        if target is not None and v.is_floating_point() and v.dtype != target.dtype:
            v = v.to(target.dtype)
        out[k] = v
    pe = out.get('pos_embed')
    target_pe = own.get('pos_embed')
    if pe is not None and target_pe is not None and pe.shape != target_pe.shape and pe.ndim == 3:
        n_old = pe.shape[1] - 1
        side = int(round(n_old**0.5))
        grid = getattr(getattr(model, 'patch_embed', None), 'grid_size', None)
        if side * side == n_old and grid is not None and pe.shape[2] == target_pe.shape[2]:
            out['pos_embed'] = resample_pos_embed(pe, tuple(grid), (side, side), 1)
    return out


def load_encoder_weights(
    model: nn.Module, weights: str | os.PathLike[str] | Mapping[str, Tensor], *, allow_head_mismatch: bool = True
) -> nn.Module:
    """Load release-format weights into a :class:`~torchgeo_smarties.models.SMARTIESViT`, strictly.

    Every encoder key must be consumed and none may be missing (a classification
    head / ``fc_norm`` aside); MAE decoder keys are ignored.

    Args:
        model: the encoder.
        weights: a path (``.safetensors``/``.pth``) or a state dict.
        allow_head_mismatch: drop a checkpoint head whose shape differs from the model's
            (e.g. a 10-class head into a 0-class feature extractor) with a warning.

    Returns:
        *model*, for chaining.

    Raises:
        CheckpointError: listing missing, unexpected or shape-mismatched keys.
    """
    sd = load_checkpoint(weights) if isinstance(weights, (str, os.PathLike)) else _flatten(weights, 'state dict')
    sd = filter_encoder_state_dict(sd, model)
    own = model.state_dict()
    mismatched = []
    for k, v in list(sd.items()):
        if k in own and own[k].shape != v.shape:
            if k.startswith(_OPTIONAL) and allow_head_mismatch:
                warnings.warn(f'dropping checkpoint {k} of shape {tuple(v.shape)}: the model has {tuple(own[k].shape)}',
                              stacklevel=2)
                del sd[k]
            else:
                mismatched.append(f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}')
    missing = [k for k in own if k not in sd and not k.startswith(_OPTIONAL)]
    unexpected = [k for k in sd if k not in own]
    if mismatched or missing or unexpected:
        parts = []
        if mismatched:
            parts.append(f'shape mismatch: {mismatched[:10]}')
        if missing:
            parts.append(f'missing keys ({len(missing)}): {missing[:10]}')
        if unexpected:
            parts.append(f'unexpected keys ({len(unexpected)}): {unexpected[:10]}')
        raise CheckpointError(
            'checkpoint does not match the SMARTIES encoder — ' + '; '.join(parts)
            + '. Check the model size (ViT-B vs ViT-L, or embed_dim/depth of a custom config) and that the file '
            "is in the release's key format."
        )
    model.load_state_dict(sd, strict=False)
    return model
