"""Reading and validating SMARTIES checkpoints: one safe reader for every file and URL.

Security model (see ``docs/security.rst``): nothing read from a checkpoint can run code.

* ``.safetensors`` files are read with :mod:`safetensors` (no pickle at all);
* ``.pth``/``.pt``/``.ckpt``/``.bin`` files with ``torch.load(weights_only=True)``, whose unpickler only
  rebuilds tensors, plain containers and numbers, plus the explicit allow-list :data:`SAFE_GLOBALS`;
  a file that needs any other Python global (a pickled module, a ``__reduce__`` payload) is refused
  with a :class:`~torchgeo_smarties.errors.CheckpointError` naming the globals and the fix;
* ``http(s)://`` URLs are downloaded (size-capped) into a temporary file and read the same way;
* every other suffix or URL scheme is refused.

A released encoder file holds the keys ``cls_token``, ``pos_embed``,
``spectrum_projection.spectrum_embeds.{0..16}.proj.{weight,bias}``, ``blocks.*`` and
``norm.*`` (see ``manifest_vitb.json``). Pretraining checkpoints add the MAE
decoder (``mask_token``, ``decoder_*``), which the encoder ignores. Everything else
missing or unexpected is an error that lists the keys; NaN/inf values or integer tensors
where the model has floating-point parameters are errors too.

Key names (timm's ``checkpoint_filter_fn`` pattern): in the model the 17 learned projections live in
``patch_embed`` (state-dict keys ``patch_embed.spectrum_embeds.{k}.proj.*``); the release calls them
``spectrum_projection.spectrum_embeds.{k}.proj.*``. The two namings are mapped only here, at the load/export
boundary: :func:`from_release_keys` (used by :func:`checkpoint_filter_fn`, :func:`load_encoder_weights`, the
weights enums and the encoder's ``load_state_dict`` pre-hook) and :func:`to_release_keys` /
:func:`to_release_state_dict` (export in the release layout).
"""

import os
import pathlib
import pickle
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import Tensor, nn

from ..errors import CheckpointError
from .pos_embed import resample_pos_embed

__all__ = (
    'DECODER_PREFIXES',
    'MAX_DOWNLOAD_BYTES',
    'MODEL_PROJECTION_PREFIX',
    'RELEASE_PROJECTION_PREFIX',
    'SAFE_GLOBALS',
    'TORCH_SUFFIXES',
    'check_state_dict_values',
    'checkpoint_filter_fn',
    'extract_backbone',
    'filter_encoder_state_dict',
    'from_release_keys',
    'is_url',
    'load_checkpoint',
    'load_encoder_weights',
    'read_checkpoint',
    'release_keys_pre_hook',
    'to_release_keys',
    'to_release_state_dict',
)

#: Key prefixes of the release's MAE pretraining decoder (ignored by the encoder).
DECODER_PREFIXES = ('mask_token', 'decoder_')
_OPTIONAL = ('head.', 'fc_norm.')
_WRAPPER_KEYS = ('state_dict', 'model', 'module', 'encoder')

#: Key prefix of the spectral projection in the release's files, and in the model (it lives in ``patch_embed``).
RELEASE_PROJECTION_PREFIX = 'spectrum_projection.'
MODEL_PROJECTION_PREFIX = 'patch_embed.'

#: Suffixes read with ``torch.load(weights_only=True)`` (``.safetensors`` is read with safetensors).
TORCH_SUFFIXES = ('.pth', '.pt', '.ckpt', '.bin')

#: Python globals a pickled checkpoint may reference beyond what ``weights_only=True`` allows by itself
#: (tensors, storages, dtypes, ``OrderedDict``, ``torch.Size``, numbers, strings, lists, tuples, dicts, sets).
#: A Lightning 2.x ``.ckpt`` of the torchgeo_smarties tasks needs none of them: Lightning stores
#: ``hyper_parameters`` as a plain ``dict`` and the loops', callbacks', optimizers' and schedulers' state as
#: dicts of numbers, strings and tensors. The only addition is :mod:`pathlib` paths, which appear when a
#: hyper-parameter or callback argument was given as a ``Path``; building a path from strings runs no code.
SAFE_GLOBALS: tuple[Callable[..., Any], ...] = (
    pathlib.PosixPath, pathlib.PurePosixPath, pathlib.WindowsPath, pathlib.PureWindowsPath,
)

#: Default cap on a checkpoint download (bytes); ``$SMARTIES_MAX_DOWNLOAD_BYTES`` overrides it.
MAX_DOWNLOAD_BYTES = 8 * 2**30
_FIX = ('If you trust the file, load it yourself and re-save the tensors with torch.save(model.state_dict(), path), '
        'or convert them with safetensors.torch.save_file(state_dict, path)')


def is_url(path_or_url: str | os.PathLike[str]) -> bool:
    """Whether *path_or_url* is a URL (``scheme://...``) rather than a local path."""
    return isinstance(path_or_url, str) and re.match(r'^[A-Za-z][A-Za-z0-9+.-]*://', path_or_url) is not None


def _max_bytes(max_bytes: int | None) -> int:
    if max_bytes is not None:
        return max_bytes
    env = os.environ.get('SMARTIES_MAX_DOWNLOAD_BYTES')
    if env:
        try:
            return int(env)
        except ValueError:
            raise CheckpointError(f'SMARTIES_MAX_DOWNLOAD_BYTES={env!r} is not an integer number of bytes') from None
    return MAX_DOWNLOAD_BYTES


def _download(url: str, dest: Path, max_bytes: int, timeout: float) -> None:
    """Stream *url* into *dest*, refusing more than *max_bytes* (announced or actually sent)."""
    req = urllib.request.Request(url, headers={'User-Agent': 'torchgeo-smarties'})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp, open(dest, 'wb') as f:
            length = resp.headers.get('Content-Length')
            if length is not None and length.isdigit() and int(length) > max_bytes:
                raise CheckpointError(
                    f'{url} is {int(length)} bytes, more than the {max_bytes}-byte download cap; download it '
                    'yourself and pass the local path, or raise SMARTIES_MAX_DOWNLOAD_BYTES'
                )
            total = 0
            while chunk := resp.read(1 << 20):
                total += len(chunk)
                if total > max_bytes:
                    raise CheckpointError(
                        f'{url} sent more than the {max_bytes}-byte download cap; download it yourself and pass '
                        'the local path, or raise SMARTIES_MAX_DOWNLOAD_BYTES'
                    )
                f.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as err:
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(f'cannot download {url} ({type(err).__name__}: {str(err)[:160]}); check the URL and '
                              'the network, or download the file and pass its local path') from err


def _refused_globals(path: Path, err: Exception) -> list[str]:
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # not a zip checkpoint (legacy format) or unreadable: fall back to the message
        names = []
    allowed = {f'{g.__module__}.{g.__qualname__}' for g in SAFE_GLOBALS}
    names = [n for n in names if n not in allowed]
    if not names:
        names = re.findall(r'Unsupported global: GLOBAL ([\w.]+ ?[\w.]*)', str(err))
        names = [n.replace(' ', '.') for n in names]
    return names


def _check_suffix(p: Path, where: str) -> None:
    if p.suffix.lower() not in ('.safetensors', *TORCH_SUFFIXES):
        raise CheckpointError(
            f'checkpoint {where!r} has the suffix {p.suffix or "(none)"!r}; readable are .safetensors and the torch '
            f'formats {", ".join(TORCH_SUFFIXES)} (read with torch.load(weights_only=True)). Rename a torch file '
            'accordingly, re-save it with torch.save(state_dict) or convert it to .safetensors'
        )


def _read_local(p: Path, where: str) -> Any:
    _check_suffix(p, where)
    if p.suffix.lower() == '.safetensors':
        try:
            from safetensors.torch import load_file

            return load_file(str(p))
        except Exception as err:  # safetensors raises its own error type (SafetensorError)
            raise CheckpointError(f'cannot read safetensors file {where!r}: {str(err)[:200]}; the file may be '
                                  'truncated or corrupt — download it again') from err
    try:
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            return torch.load(str(p), map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        if 'weights_only' not in text.lower() and 'WeightsUnpickler' not in text:
            raise CheckpointError(f'cannot read checkpoint {where!r} (UnpicklingError: {text[:200]}); the file may '
                                  'be truncated or corrupt — download it again') from err
        names = _refused_globals(p, err)
        if names:
            what = f'it needs the Python object(s) {", ".join(names[:10])}, which could run code when unpickled'
        else:
            detail = text.split('WeightsUnpickler error:')[-1].strip().split('\n')[0][:160]
            what = f'the safe unpickler (torch.load(weights_only=True)) rejected it ({detail})'
        raise CheckpointError(
            f'refusing to load {where!r}: {what}; only tensors, plain containers, numbers, strings and pathlib '
            f'paths are allowed. {_FIX}'
        ) from None
    except (OSError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile, AttributeError, TypeError) as err:
        raise CheckpointError(
            f'cannot read checkpoint {where!r} ({type(err).__name__}: {str(err)[:200]}); the file may be truncated '
            'or corrupt — download it again'
        ) from err


def read_checkpoint(
    path_or_url: str | os.PathLike[str], *, max_bytes: int | None = None, timeout: float = 60.0
) -> dict[str, Any]:
    """Read a checkpoint file or ``http(s)://`` URL without running code from it.

    ``.safetensors`` → :func:`safetensors.torch.load_file`; ``.pth``/``.pt``/``.ckpt``/``.bin`` →
    ``torch.load(weights_only=True)`` with only :data:`SAFE_GLOBALS` added. URLs are downloaded into a
    temporary file (deleted afterwards), at most *max_bytes*.

    Args:
        path_or_url: a local path or an ``http://``/``https://`` URL (the suffix of its path picks the format).
        max_bytes: download cap (default :data:`MAX_DOWNLOAD_BYTES`, or ``$SMARTIES_MAX_DOWNLOAD_BYTES``).
        timeout: network timeout in seconds.

    Returns:
        The checkpoint's top-level dict (a flat ``{key: tensor}`` for safetensors; a Lightning ``.ckpt``
        keeps ``state_dict``, ``hyper_parameters``, ...).

    Raises:
        CheckpointError: if the file is missing, unreadable, truncated, not a dict, in an unknown format,
            too large to download, or needs Python objects outside the allow-list (code execution refused).
    """
    where = os.fspath(path_or_url)
    if is_url(where):
        scheme = urlparse(where).scheme.lower()
        if scheme not in ('http', 'https'):
            raise CheckpointError(f'checkpoint URL {where!r}: only http:// and https:// URLs are read (got '
                                  f'{scheme}://); download the file and pass its local path')
        name = Path(urlparse(where).path).name or 'checkpoint'
        tmp = Path(tempfile.mkdtemp(prefix='smarties-ckpt-'))
        try:
            local = tmp / name
            _check_suffix(local, where)  # before any download
            _download(where, local, _max_bytes(max_bytes), timeout)
            obj = _read_local(local, where)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    else:
        p = Path(where)
        if not p.is_file():
            raise CheckpointError(f'checkpoint {where!r} does not exist (or is not a file)')
        obj = _read_local(p, where)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f'{where!r} holds a {type(obj).__name__}, not a dict of tensors; re-save it with '
                              'torch.save(model.state_dict(), path)')
    return dict(obj)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read a checkpoint (file or URL, see :func:`read_checkpoint`) into a flat state dict.

    A dict wrapped in ``state_dict``/``model``/``module``/``encoder`` is unwrapped and a ``module.``
    prefix stripped.

    Raises:
        CheckpointError: if the file is missing, unreadable, truncated, unsafe or not a state dict.
    """
    return _flatten(read_checkpoint(path), os.fspath(path))


def extract_backbone(path_or_url: str | os.PathLike[str]) -> tuple[str, dict[str, Tensor]]:
    """The backbone of a torchgeo task's Lightning ``.ckpt`` (safe twin of ``torchgeo.tasks.utils.extract_backbone``).

    With a ``model`` hyper-parameter the keys under ``model.`` are returned (prefix removed); with a
    ``backbone`` hyper-parameter those under ``model.backbone.model.``.

    Returns:
        (model or backbone name, state dict).

    Raises:
        CheckpointError: if the file is unsafe/unreadable or not a torchgeo task checkpoint.
    """
    where = os.fspath(path_or_url)
    ckpt = read_checkpoint(path_or_url)
    hp, sd = ckpt.get('hyper_parameters'), ckpt.get('state_dict')
    if not isinstance(hp, Mapping) or not isinstance(sd, Mapping):
        raise CheckpointError(f'{where!r} is not a Lightning checkpoint (no hyper_parameters / state_dict); pass a '
                              'release-format .safetensors/.pth file for encoder weights')
    if 'model' in hp:
        prefix, name = 'model.', hp['model']
    elif 'backbone' in hp:
        prefix, name = 'model.backbone.model.', hp['backbone']
    else:
        raise CheckpointError(f"{where!r}: the checkpoint's hyper_parameters have neither 'model' nor 'backbone'")
    out = {k[len(prefix):]: v for k, v in sd.items() if isinstance(v, Tensor) and k.startswith(prefix)}
    if not out:
        raise CheckpointError(f'{where!r}: no state_dict key starts with {prefix!r}')
    out = from_release_keys(out)  # an older task checkpoint names the projection spectrum_projection.*
    check_state_dict_values(out, where=where)
    return str(name), out


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


def check_state_dict_values(
    state_dict: Mapping[str, Tensor], reference: Mapping[str, Tensor] | None = None, *, where: str = 'checkpoint'
) -> None:
    """Refuse tensors that would make a model output NaN or silently change type.

    Checks every floating-point tensor of *state_dict* for NaN/inf, and — given the model's own
    *reference* state dict — every key whose model tensor is floating-point for an integer (or bool)
    checkpoint tensor, which ``load_state_dict`` would silently cast.

    Raises:
        CheckpointError: naming the bad keys (at most 10 of each kind).
    """
    nonfinite, integer = [], []
    for k, v in state_dict.items():
        if not isinstance(v, Tensor):
            continue
        if v.is_floating_point() or v.is_complex():
            if v.numel() and not bool(torch.isfinite(v).all()):
                nonfinite.append(k)
        elif reference is not None and k in reference and reference[k].is_floating_point():
            integer.append(f'{k} ({str(v.dtype).replace("torch.", "")})')
    if nonfinite or integer:
        parts = []
        if nonfinite:
            parts.append(f'NaN/inf values in {len(nonfinite)} tensor(s): {nonfinite[:10]}')
        if integer:
            parts.append(f'integer tensors where the model has floating-point parameters: {integer[:10]}')
        raise CheckpointError(
            f'{where}: ' + '; '.join(parts) + '. The weights are corrupt (or diverged in training) and would '
            'give NaN outputs indistinguishable from nodata; use an earlier checkpoint or re-export the weights'
        )


def _rename_prefix(state_dict: Mapping[str, Any], old: str, new: str, prefix: str = '') -> dict[str, Any]:
    """Rename the keys ``prefix + old + rest`` to ``prefix + new + rest``, refusing a key present in both forms."""
    src, dst = prefix + old, prefix + new
    out: dict[str, Any] = {}
    for k, v in state_dict.items():
        out[dst + k[len(src):] if k.startswith(src) else k] = v
    if len(out) != len(state_dict):
        both = sorted(k for k in state_dict if k.startswith(src) and dst + k[len(src):] in state_dict)
        raise CheckpointError(
            f'the state dict holds the spectral projection twice, under {src!r} (release names) and {dst!r} '
            f'(model names), e.g. {both[:3]}; keep one naming (torchgeo_smarties.models.to_release_state_dict '
            'writes the release layout)'
        )
    return out


def from_release_keys(state_dict: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
    """Release key names → the model's: ``spectrum_projection.*`` → ``patch_embed.*`` (other keys unchanged).

    Keys already in the model's naming pass through, so the function is idempotent.

    Args:
        state_dict: an encoder state dict (release or model naming).
        prefix: the encoder's prefix inside a larger state dict (e.g. ``'encoder.'``).

    Raises:
        CheckpointError: if the projection appears under both names.
    """
    return _rename_prefix(state_dict, RELEASE_PROJECTION_PREFIX, MODEL_PROJECTION_PREFIX, prefix)


def to_release_keys(state_dict: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
    """The model's key names → the release's: ``patch_embed.*`` → ``spectrum_projection.*``.

    The inverse of :func:`from_release_keys`.

    Raises:
        CheckpointError: if the projection appears under both names.
    """
    return _rename_prefix(state_dict, MODEL_PROJECTION_PREFIX, RELEASE_PROJECTION_PREFIX, prefix)


def to_release_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """An encoder's weights in the release's layout (``spectrum_projection.spectrum_embeds.{k}.proj.*``), detached.

    What :meth:`~torchgeo_smarties.models.SMARTIESMAE.export_encoder` writes; every SMARTIES loader (and
    ``model.load_state_dict``) reads it back.
    """
    return to_release_keys({k: v.detach() for k, v in model.state_dict().items()})


def release_keys_pre_hook(module: nn.Module, state_dict: dict[str, Any], prefix: str, *_: Any) -> None:
    """``load_state_dict`` pre-hook of the encoder: release key names under *prefix* → the model's, in place."""
    renamed = from_release_keys(state_dict, prefix)
    if renamed.keys() != state_dict.keys():
        state_dict.clear()
        state_dict.update(renamed)


def checkpoint_filter_fn(state_dict: Mapping[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """Adapt a release-format (or model-format) state dict to *model* (timm ``pretrained_filter_fn`` signature).

    Maps the release's key names to the model's (:func:`from_release_keys`), drops MAE decoder keys, casts to
    the model's parameter dtype (half-precision checkpoints load into float32), resamples ``pos_embed`` to the
    model's grid the release's way, and drops ``norm.*`` when the model pools with ``fc_norm``
    (the release deletes ``norm`` for ``global_pool=True``).
    """
    own = model.state_dict()
    out: dict[str, Tensor] = {}
    for k, v in from_release_keys(state_dict).items():
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


#: The 0.1 name of :func:`checkpoint_filter_fn`.
filter_encoder_state_dict = checkpoint_filter_fn


def load_encoder_weights(
    model: nn.Module,
    weights: str | os.PathLike[str] | Mapping[str, Tensor],
    *,
    allow_head_mismatch: bool = True,
    source: str | None = None,
) -> nn.Module:
    """Load release-format weights into a :class:`~torchgeo_smarties.models.SMARTIESViT`, strictly.

    Every encoder key must be consumed and none may be missing (a classification
    head / ``fc_norm`` aside); MAE decoder keys are ignored.

    Args:
        model: the encoder.
        weights: a path (``.safetensors``/``.pth``) or a state dict.
        allow_head_mismatch: drop a checkpoint head whose shape differs from the model's
            (e.g. a 10-class head into a 0-class feature extractor) with a warning.
        source: name of the weights in error messages (default: the path, or 'state dict').

    Returns:
        *model*, for chaining.

    Raises:
        CheckpointError: listing missing, unexpected or shape-mismatched keys, or NaN/inf/integer tensors.
    """
    is_path = isinstance(weights, (str, os.PathLike))
    where = source or (os.fspath(weights) if is_path else 'state dict')  # type: ignore[arg-type]
    sd = load_checkpoint(weights) if is_path else _flatten(weights, where)  # type: ignore[arg-type]
    sd = from_release_keys(sd)  # release names → the model's (the projection lives in patch_embed)
    own = model.state_dict()
    check_state_dict_values({k: v for k, v in sd.items() if not k.startswith(DECODER_PREFIXES)}, own, where=where)
    sd = checkpoint_filter_fn(sd, model)
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
            f'{where} does not match the SMARTIES encoder — ' + '; '.join(parts)
            + '. Check the model size (ViT-B vs ViT-L, or embed_dim/depth of a custom config) and that the file '
            "is in the release's key format (or the model's: patch_embed.spectrum_embeds.* for spectrum_projection.*)."
        )
    model.load_state_dict(sd, strict=False)
    return model
