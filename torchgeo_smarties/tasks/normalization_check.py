"""Warn when a task's data normalisation differs from the one its SMARTIES weights were pretrained with.

Every SMARTIES weights member carries its normalisation (``weights.transforms``, the SMARTIES
normalisation of the member's sensor, channels in ``weights.meta['bands']`` order). torchgeo's data
modules normalise with their own statistics (``K.Normalize`` in ``aug``; ``BaseDataModule``: mean 0,
std 255), so a torchgeo task given a SMARTIES weight trains on differently scaled data without a
word. :class:`NormalizationCheck` is a Lightning callback that, when fitting, validating or testing
starts, finds the normalisation step of the data module (its ``<split>_aug``/``aug``, the dataset's
``transforms``, else its ``mean``/``std``) and emits a
:class:`~torchgeo_smarties.errors.NormalizationMismatchWarning` naming both and the fix when they
differ. The SMARTIES tasks add it themselves (:class:`NormalizationCheckMixin`); ``smarties fit``
adds it to every run; with torchgeo's own tasks pass ``callbacks=[NormalizationCheck()]`` to the
``Trainer``.

What counts as the same normalisation:

* a :class:`~torchgeo_smarties.transforms.SmartiesNormalize` (or a weights member's ``transforms``)
  with a release statistics preset's statistics for each of its bands (``from_preset``,
  :func:`~torchgeo_smarties.tasks.smarties_normalize_for`, the SMARTIES data modules: the release fine-tunes
  with per-dataset statistics such as ``'eurosat'``), or whose statistics agree with the member's on the
  bands both name (no band in common: a new sensor, nothing to compare);
* any other step (kornia's or torchvision's ``Normalize``, ``SmartiesNormalize(mode='zscore')``) only
  if it maps probe values across and beyond each band's [p1, p99] range like the member's normalisation
  does, within :data:`RTOL`/:data:`ATOL` — a plain ``Normalize`` cannot reproduce the clip, so it always
  differs.

No step at all, two normalisation steps, or a channel count that does not fit the member's bands
(without band ids to align by) also warn. Weights that are not a SMARTIES enum member (``None``,
``True``, a path) or a data module whose ``aug`` is an opaque callable give nothing to compare.

.. versionadded:: 0.2
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import kornia.augmentation as K
import torch
import torchvision.transforms as T
import torchvision.transforms.v2 as T2
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from ..errors import NormalizationMismatchWarning, SmartiesError
from ..models.weights import SMARTIESWeightsEnum, SmartiesWeightsTransforms, resolve_weights_arg
from ..transforms import SmartiesNormalize
from ..transforms.stats import list_stats_presets, preset_stats

__all__ = ('ATOL', 'RTOL', 'NormalizationCheck', 'NormalizationCheckMixin', 'normalization_mismatch', 'weights_member')

#: Tolerances on the normalised probe values (z-scores of order 0.1–10). The release statistics have about 7
#: significant digits; statistics copied with 4 (a config, a paper table) move a z-score by < 1e-3, while a real
#: mismatch (torchgeo's statistics, another sensor's percentiles, a missing clip) moves it by > 1e-2.
RTOL = 1e-3
ATOL = 1e-3

#: Fractions of each band's [p1, p99] range where the two normalisations are compared (beyond it: the clip).
_PROBE = (-0.5, 0.0, 0.1, 0.5, 0.9, 1.0, 1.5)

_SPLITS = {'fit': ('train', 'val'), 'validate': ('val',), 'test': ('test',)}


def weights_member(weights: Any) -> SMARTIESWeightsEnum | None:
    """The SMARTIES weights member *weights* names (a member, its name, ``'demo'``), else None."""
    try:
        member = resolve_weights_arg(weights)
    except SmartiesError:  # the task itself refuses such weights; nothing to compare here
        return None
    if isinstance(member, SMARTIESWeightsEnum) and isinstance(member.transforms, SmartiesWeightsTransforms):
        return member
    return None


def _normalizers(obj: Any) -> list[nn.Module] | None:
    """The normalisation steps inside *obj* (pre-order), or None if *obj* cannot be inspected."""
    if obj is None:
        return []
    if isinstance(obj, (SmartiesWeightsTransforms, SmartiesNormalize)) or _mean_std(obj) is not None:
        return [obj]
    if not isinstance(obj, nn.Module):
        return None
    found: list[nn.Module] = []
    for child in obj.children():
        inner = _normalizers(child)
        found.extend(inner or [])
    return found


@functools.cache
def _release_band_stats() -> dict[str, set[tuple[float, float, float, float]]]:
    """(p1, p99, mean, std) of every band id in the release statistics presets."""
    out: dict[str, set[tuple[float, float, float, float]]] = {}
    for name in list_stats_presets():
        stats = preset_stats(name)
        for i, band in enumerate(stats.bands or ()):
            out.setdefault(band, set()).add((stats.p1[i], stats.p99[i], stats.mean[i], stats.std[i]))
    return out


def _release_statistics(step: nn.Module) -> bool:
    """Whether *step* is the SMARTIES normalisation with a release preset's statistics for every band it names.

    ``from_preset`` normalisers, and those assembled band by band from presets (``smarties_normalize_for``).
    """
    if not isinstance(step, SmartiesNormalize) or step.mode != 'smarties':
        return False
    if step.method == 'preset':
        return True
    if not step.bands:
        return False
    known = _release_band_stats()
    s = step.stats
    return all(
        any(all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) for a, b in zip(row, ref, strict=True))
            for ref in known.get(band, ()))
        for band, row in zip(step.bands, zip(s.p1, s.p99, s.mean, s.std, strict=True), strict=True)
    )


def _mean_std(step: Any) -> tuple[Tensor, Tensor] | None:
    """(mean, std) of an affine ``(x - mean) / std`` step: kornia's or torchvision's ``Normalize``, else None."""
    if isinstance(step, K.Normalize):
        return _values(step.flags['mean']), _values(step.flags['std'])
    if isinstance(step, (T.Normalize, T2.Normalize)):
        return _values(step.mean), _values(step.std)
    return None


def _unwrap(step: nn.Module) -> nn.Module:
    return step.normalize if isinstance(step, SmartiesWeightsTransforms) else step


def _values(t: Any) -> Tensor:
    return torch.as_tensor(t, dtype=torch.float64).reshape(-1)


def _fmt(t: Any) -> str:
    v = _values(t).tolist()
    text = ', '.join(f'{x:.4g}' for x in v[:4])
    return f'[{text}{", …" if len(v) > 4 else ""}]' if len(v) > 1 else text


def _describe(step: nn.Module) -> str:
    affine = _mean_std(step)
    if affine is not None:
        mean, std = affine
        default = bool((mean == 0).all() and (std == 255).all())
        note = " (torchgeo's default: raw values / 255)" if default else ''
        kind = 'K.Normalize' if isinstance(step, K.Normalize) else f'torchvision {type(step).__name__}'
        return f'{kind}(mean={_fmt(mean)}, std={_fmt(std)}){note}'
    if isinstance(step, SmartiesNormalize):
        return f'SmartiesNormalize({step.stats.source or step.method}, mode={step.mode!r})'
    return type(step).__name__


def _apply(step: nn.Module, x: Tensor) -> Tensor:
    """The normalisation *step* applied to the float64 probe *x* (1, C, 1, K) without side effects."""
    affine = _mean_std(step)
    if affine is not None:
        mean, std = affine
        return (x - mean[None, :, None, None]) / std[None, :, None, None]
    assert isinstance(step, SmartiesNormalize)
    kept = step.last_valid_mask
    try:
        return step.normalize(x)
    finally:
        step.last_valid_mask = kept


def _channels(step: nn.Module) -> int:
    affine = _mean_std(step)
    if affine is not None:
        return max(affine[0].numel(), affine[1].numel())
    assert isinstance(step, SmartiesNormalize)
    return len(step.stats)


def _difference(step: nn.Module, expected: SmartiesNormalize, bands: tuple[str, ...]) -> str | None:
    """Why *step* normalises unlike *expected* (channels *bands*), or None if they agree within the tolerance."""
    ids = step.bands if isinstance(step, SmartiesNormalize) else None
    if ids:
        pairs = [(i, bands.index(b)) for i, b in enumerate(ids) if b in bands]
        if not pairs:
            return None  # another sensor's bands: nothing to compare
        n = len(ids)
    else:
        n = _channels(step)
        if n == 1:  # a scalar mean/std, broadcast over every channel
            n = len(bands)
        if n != len(bands):
            return (f'normalises {n} channels with {_describe(step)}, but the weights\' normalisation is for '
                    f'{len(bands)} bands')
        pairs = [(i, i) for i in range(n)]
    t = torch.tensor(_PROBE, dtype=torch.float64)
    p1 = expected.p1.to(torch.float64)[:, None]
    span = expected.span.to(torch.float64)[:, None]
    x_exp = (p1 + t * span)[None, :, None, :]  # (1, C, 1, K) in the member's band order
    x_step = torch.zeros(1, n, 1, t.numel(), dtype=torch.float64)
    got_i, exp_i = (list(v) for v in zip(*pairs, strict=True))
    x_step[:, got_i] = x_exp[:, exp_i]
    got = _apply(step, x_step)[:, got_i]
    want = _apply(expected, x_exp)[:, exp_i]
    if torch.allclose(got, want, rtol=RTOL, atol=ATOL):
        return None
    err = (got - want).abs().amax(dim=(0, 2, 3))
    worst = ', '.join(bands[exp_i[k]] for k in err.argsort(descending=True)[:3].tolist())
    return (f"normalises with {_describe(step)}, which differs from the weights' normalisation by up to "
            f'{float(err.max()):.3g} after normalising (most for {worst})')


def normalization_mismatch(weights: Any, steps: Sequence[nn.Module] | None, where: str) -> str | None:
    """The warning text if the normalisation *steps* found at *where* differ from *weights*', else None.

    Args:
        weights: the task's ``weights`` (a SMARTIES weights member or its name; anything else gives None).
        steps: the normalisation steps of the data pipeline, in order (None: the pipeline is opaque).
        where: how to name the pipeline in the message, e.g. ``'EuroSATDataModule.aug'``.
    """
    member = weights_member(weights)
    if member is None or steps is None:
        return None
    transforms: SmartiesWeightsTransforms = member.transforms
    expected = transforms.normalize
    assert isinstance(expected, SmartiesNormalize)
    bands = tuple(member.meta['bands'])
    if not steps:
        reason: str | None = ('has no normalisation step (none of K.Normalize, torchvision Normalize, '
                              'SmartiesNormalize, a weights member\'s transforms: raw values would reach the model)')
    elif len(steps) > 1:
        reason = 'normalises twice: ' + ' then '.join(_describe(_unwrap(s)) for s in steps)
    else:
        step = _unwrap(steps[0])
        if _release_statistics(step):
            return None  # the release's own (per-dataset) statistics
        reason = _difference(step, expected, bands)
    if reason is None:
        return None
    name = f'{type(member).__name__}.{member.name}'
    preset = transforms.preset
    return (
        f"{where} {reason}; {name} expects the SMARTIES normalisation of {preset!r} (per band "
        'clip((x - p1) / (p99 - p1), 0, 1), then (· - mean) / std), so the model sees data scaled unlike its '
        f"pretraining. Fix: datamodule.aug = {name}.transforms (channels in meta['bands'] order: "
        f"{', '.join(bands)}), or put SmartiesNormalize.from_preset({preset!r}, bands=[<your channel order>]) in "
        'place of the K.Normalize step of aug; on the command line use a SMARTIES data module '
        '(--data torchgeo_smarties.tasks.SMARTIESEuroSATDataModule, SMARTIESBigEarthNetDataModule, '
        'SMARTIESSEN12MSDataModule)'
    )


def _pipeline_steps(datamodule: Any, split: str) -> tuple[list[nn.Module] | None, str]:
    """The normalisation steps a torchgeo-style data module applies to *split*, and where they were found."""
    cls = type(datamodule).__name__
    kwargs = getattr(datamodule, 'kwargs', None)
    per_sample = kwargs.get('transforms') if isinstance(kwargs, dict) else None
    if hasattr(datamodule, 'aug'):
        attr = f'{split}_aug' if getattr(datamodule, f'{split}_aug', None) is not None else 'aug'
        batch_steps = _normalizers(getattr(datamodule, attr))
        sample_steps = _normalizers(per_sample)
        if batch_steps is None or sample_steps is None:
            return None, cls
        where = f'{cls}.{attr}' + (' (with the dataset transforms)' if sample_steps else '')
        return sample_steps + batch_steps, where
    mean, std = getattr(datamodule, 'mean', None), getattr(datamodule, 'std', None)
    if mean is None or std is None:
        return None, cls
    return [K.Normalize(mean=_values(mean), std=_values(std))], f'{cls} (mean/std)'


class NormalizationCheck(Callback):
    """Warn when the data module's normalisation differs from the task's SMARTIES weights' normalisation.

    Reads the task's ``weights`` (``pl_module.weights``, else ``hparams['weights']``) and, for the splits
    of the stage (fit: train and val; validate: val; test: test), the data module's normalisation; emits
    one :class:`~torchgeo_smarties.errors.NormalizationMismatchWarning` per distinct mismatch (rank zero
    only). Silence it with ``warnings.filterwarnings('ignore', category=NormalizationMismatchWarning)``.

    Example:
        >>> trainer = lightning.Trainer(callbacks=[NormalizationCheck()])  # doctest: +SKIP
        >>> trainer.fit(torchgeo.tasks.Classification(..., weights=SMARTIESBase16_Weights.SENTINEL2_L2A_SMARTIES),
        ...             datamodule=EuroSATDataModule(...))  # doctest: +SKIP

    .. versionadded:: 0.2
    """

    def check(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> list[str]:
        """Warn for the data module of *trainer* and the weights of *pl_module*; returns the messages."""
        weights = getattr(pl_module, 'weights', None)
        if weights is None:
            weights = getattr(pl_module, 'hparams', {}).get('weights')
        datamodule = getattr(trainer, 'datamodule', None)
        if datamodule is None or weights_member(weights) is None:
            return []
        messages: list[str] = []
        for split in _SPLITS[stage]:
            steps, where = _pipeline_steps(datamodule, split)
            msg = normalization_mismatch(weights, steps, where)
            if msg is not None and msg not in messages:
                messages.append(msg)
                rank_zero_warn(msg, category=NormalizationMismatchWarning)
        return messages

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Check the train and val normalisation."""
        self.check(trainer, pl_module, 'fit')

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Check the val normalisation of ``trainer.validate`` (fit's validation loops were checked at fit start)."""
        if trainer.state.fn == 'validate':
            self.check(trainer, pl_module, 'validate')

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Check the test normalisation."""
        self.check(trainer, pl_module, 'test')


class NormalizationCheckMixin:
    """Mixin for LightningModules: the trainer runs a :class:`NormalizationCheck` with this module.

    .. versionadded:: 0.2
    """

    def configure_callbacks(self) -> Sequence[Callback] | Callback:
        """The parent's callbacks plus a :class:`NormalizationCheck`, unless the trainer already runs one."""
        parent = super().configure_callbacks()  # type: ignore[misc]
        callbacks = [parent] if isinstance(parent, Callback) else list(parent)
        trainer = getattr(self, '_trainer', None)
        present = [*callbacks, *(getattr(trainer, 'callbacks', None) or [])]
        if not any(isinstance(cb, NormalizationCheck) for cb in present):
            callbacks.append(NormalizationCheck())
        return callbacks
