"""Released SMARTIES weights as torchvision/torchgeo ``WeightsEnum`` classes.

Weights are never downloaded at import. :meth:`SMARTIESWeightsEnum.get_state_dict`
looks for the file, in order, at ``$SMARTIES_WEIGHTS_DIR/<file>``,
``<torch hub dir>/checkpoints/<file>`` (``$TORCH_HOME/hub/checkpoints``), in the
Hugging Face hub cache, and only then downloads it from the Hugging Face hub
(with a short timeout, so an offline machine fails fast with a message saying
where to put the file).
"""

import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import Tensor, nn
from torchvision.models._api import Weights, WeightsEnum

from ..errors import CheckpointError
from .checkpoint import DECODER_PREFIXES, load_checkpoint

__all__ = ('SMARTIESBase16_Weights', 'SMARTIESLarge16_Weights', 'SMARTIESWeightsEnum', 'find_weights_file')

_PAPER = 'https://arxiv.org/abs/2506.19585'
_REPO = 'https://github.com/gsumbul/SMARTIES'
_DATASET = 'fMoW-RGB + fMoW-Sentinel (S2 L1C) + BigEarthNet-S2 (L2A) + BigEarthNet-S1'
_NORMALISATION = (
    'per band (x - p1) / (p99 - p1), clip to [0, 1], then (x - mean) / std with the release statistics '
    '(S1 in dB): torchgeo_smarties.transforms.SmartiesNormalize.from_preset(<preset>)'
)


def _meta(arch: str, repo_id: str, filename: str, embed_dim: int, depth: int, num_heads: int) -> dict[str, Any]:
    return {
        'dataset': _DATASET,
        'model': arch,
        'in_chans': 12,
        'bands': (
            'B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B08', 'B8A', 'B09', 'B11', 'B12',
        ),
        'band_ids': tuple(f'sentinel2:{b}' for b in (
            'B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B08', 'B8A', 'B09', 'B11', 'B12')),
        'any_bands': True,
        'publication': _PAPER,
        'repo': _REPO,
        'ssl_method': 'mae+cross-sensor-token-mixup',
        'license': 'apache-2.0',
        'hf_repo': repo_id,
        'filename': filename,
        'img_size': 224,
        'patch_size': 16,
        'embed_dim': embed_dim,
        'depth': depth,
        'num_heads': num_heads,
        'wavelength_unit': 'nm',
        'normalization': _NORMALISATION,
    }


def _hub_reachable(timeout: float) -> bool:
    """A quick TCP probe of the hub endpoint, so an offline machine fails fast instead of retrying for minutes."""
    endpoint = urlparse(os.environ.get('HF_ENDPOINT', 'https://huggingface.co'))
    host = endpoint.hostname or 'huggingface.co'
    port = endpoint.port or (443 if endpoint.scheme != 'http' else 80)
    try:
        with socket.create_connection((host, port), timeout=min(timeout, 5.0)):
            return True
    except OSError:
        return False


def find_weights_file(repo_id: str, filename: str, *, download: bool = True, timeout: float = 10.0) -> Path:
    """Locate a released weights file locally, downloading from the hub only as a last resort.

    Raises:
        CheckpointError: if the file is not found locally and cannot be downloaded.
    """
    candidates = []
    env = os.environ.get('SMARTIES_WEIGHTS_DIR')
    if env:
        candidates.append(Path(env) / filename)
    candidates.append(Path(torch.hub.get_dir()) / 'checkpoints' / filename)
    for c in candidates:
        if c.is_file():
            return c
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(repo_id, filename)
        if isinstance(cached, str) and Path(cached).is_file():
            return Path(cached)
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        pass
    if download and not os.environ.get('HF_HUB_OFFLINE') and not _hub_reachable(timeout):
        reason = f'the Hugging Face hub is not reachable within {timeout:g} s (offline?)'
    elif download and not os.environ.get('HF_HUB_OFFLINE'):
        try:
            from huggingface_hub import hf_hub_download

            return Path(hf_hub_download(repo_id, filename, etag_timeout=timeout))
        except Exception as err:  # network errors come in many types
            reason = f'{type(err).__name__}: {str(err)[:160]}'
    else:
        reason = 'downloads disabled'
    raise CheckpointError(
        f'weights {filename!r} ({repo_id}) were not found locally and could not be downloaded ({reason}). '
        f'Download the file and put it in {candidates[-1].parent} (or set SMARTIES_WEIGHTS_DIR), '
        'or pass weights=<path to the .safetensors file>.'
    )


class SMARTIESWeightsEnum(WeightsEnum):  # type: ignore[misc]
    """Base class of the SMARTIES weight enums: hub-cache/local-aware loading."""

    def get_state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Tensor]:
        """Load the released state dict (release key format, decoder keys removed).

        Accepts and ignores torchvision's ``progress``/``weights_only`` arguments
        (safetensors files are loaded without pickle; ``.pth`` with ``weights_only=True``).
        """
        path = find_weights_file(self.meta['hf_repo'], self.meta['filename'])
        sd = load_checkpoint(path)
        return {k: v for k, v in sd.items() if not k.startswith(DECODER_PREFIXES)}

    @property
    def local_path(self) -> Path | None:
        """The weights file if it is available without a download, else None."""
        try:
            return find_weights_file(self.meta['hf_repo'], self.meta['filename'], download=False)
        except CheckpointError:
            return None


class SMARTIESBase16_Weights(SMARTIESWeightsEnum):  # type: ignore[misc]
    """SMARTIES ViT-B/16 weights (Sumbul et al., ICCV 2025).

    .. versionadded:: 0.1
    """

    SMARTIES_V1 = Weights(
        url='https://huggingface.co/gsumbul/SMARTIES-v1-ViT-B/resolve/main/smarties-v1-vitb.safetensors',
        transforms=nn.Identity(),
        meta=_meta('smarties_vit_base_patch16', 'gsumbul/SMARTIES-v1-ViT-B', 'smarties-v1-vitb.safetensors',
                   768, 12, 12),
    )


class SMARTIESLarge16_Weights(SMARTIESWeightsEnum):  # type: ignore[misc]
    """SMARTIES ViT-L/16 weights (Sumbul et al., ICCV 2025).

    .. versionadded:: 0.1
    """

    SMARTIES_V1 = Weights(
        url='https://huggingface.co/gsumbul/SMARTIES-v1-ViT-L/resolve/main/smarties-v1-vitl.safetensors',
        transforms=nn.Identity(),
        meta=_meta('smarties_vit_large_patch16', 'gsumbul/SMARTIES-v1-ViT-L', 'smarties-v1-vitl.safetensors',
                   1024, 24, 16),
    )
