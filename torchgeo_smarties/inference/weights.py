"""Choosing and loading the encoder for ``smarties embed`` / ``smarties predict``.

.. versionadded:: 0.1
"""

import json
import os
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from ..models import SMARTIESBase16_Weights, SMARTIESLarge16_Weights, SMARTIESViT, load_checkpoint, load_encoder_weights

__all__ = ('infer_architecture', 'load_encoder')

_ENUMS = {'SMARTIESBase16_Weights': SMARTIESBase16_Weights, 'SMARTIESLarge16_Weights': SMARTIESLarge16_Weights}
_HEADS = {768: 12, 1024: 16}


def infer_architecture(state_dict: dict[str, Any], path: Path | None = None, num_heads: int | None = None
                       ) -> dict[str, Any]:
    """Encoder hyper-parameters from release-format key shapes (``embed_dim``, ``depth``, ``img_size``, …).

    ``num_heads`` is not in the weights: 12 for 768-d, 16 for 1024-d, else from *num_heads*, else from a
    ``<file>.json`` beside the weights (key ``num_heads``).

    Raises:
        CheckpointError: if the keys are not the release's or the head count cannot be determined.
    """
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
    heads = num_heads
    if heads is None and path is not None:
        for cand in (path.with_suffix('.json'), path.with_name(path.name + '.json')):
            if cand.is_file():
                meta = json.loads(cand.read_text())
                heads = meta.get('num_heads') or meta.get('arch', {}).get('num_heads')
                if heads:
                    break
    if heads is None:
        heads = _HEADS.get(dim)
    if heads is None:
        raise CheckpointError(
            f'cannot tell the number of attention heads of a {dim}-d encoder; pass --num-heads N or put a json '
            f'with {{"num_heads": N}} beside the weights'
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


def load_encoder(spec: str | None = None, *, num_heads: int | None = None, download_timeout: float = 3.0
                 ) -> tuple[SMARTIESViT, str]:
    """Build the encoder named by *spec* and say which weights were used.

    Args:
        spec: ``None`` (official ViT-B if available locally or downloadable within *download_timeout*,
            otherwise the bundled demo checkpoint), ``'demo'``, an enum name
            (``'SMARTIESBase16_Weights.SMARTIES_V1'``) or a path to release-format weights.
        num_heads: attention heads for a custom-size checkpoint (see :func:`infer_architecture`).
        download_timeout: seconds to wait for the hub when looking for the default weights.

    Returns:
        (model in eval mode, a one-line description of the weights).

    Raises:
        CheckpointError: if the weights cannot be found, read or matched.
    """
    if spec is None:
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
        spec = str(path)
    if spec == 'demo':
        model, desc = _demo()
        return model.eval(), desc
    head, _, member = spec.partition('.')
    if head in _ENUMS and not Path(spec).exists():
        enum_cls = _ENUMS[head]
        try:
            weights = enum_cls[member or 'SMARTIES_V1']  # type: ignore[misc]
        except KeyError:
            raise CheckpointError(f'{spec!r}: {head} has no member {member!r}; valid: {list(enum_cls.__members__)}'
                                  ) from None
        arch = {k: weights.meta[k] for k in ('embed_dim', 'depth', 'num_heads')}
        model = SMARTIESViT(**arch)
        load_encoder_weights(model, weights.get_state_dict())
        return model.eval(), f'{head}.{weights.name} ({weights.meta["hf_repo"]})'
    p = Path(spec)
    if not p.is_file():
        raise CheckpointError(
            f'weights {spec!r} are neither a file, nor demo, nor an enum name (SMARTIESBase16_Weights.SMARTIES_V1, '
            'SMARTIESLarge16_Weights.SMARTIES_V1)'
        )
    sd = load_checkpoint(p)
    arch = infer_architecture(sd, p, num_heads)
    model = SMARTIESViT(**arch)
    load_encoder_weights(model, sd)
    return model.eval(), (f'{p} (embed_dim {arch["embed_dim"]}, depth {arch["depth"]}, heads {arch["num_heads"]})')
