"""Held-out evaluation of the bundled demo checkpoint (masked reconstruction on the bundled CC0 crop).

Lives in ``tasks`` (not ``models.demo``) because it reads data with
:class:`~torchgeo_smarties.tasks.paired_data.PairedRasterDataset`: models must not import tasks.

.. versionadded:: 0.2
"""

from importlib import resources
from pathlib import Path
from typing import Any

import torch

__all__ = ('demo_heldout_report',)


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
    from ..models.mae import SMARTIESMAE, masked_reconstruction_errors, random_token_mask
    from ..ops import random_assignment
    from .paired_data import PairedRasterDataset, collate_pairs

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


