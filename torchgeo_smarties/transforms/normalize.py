"""SMARTIES normalisation as a kornia augmentation.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypedDict, Unpack

import numpy as np
import torch
from kornia.augmentation import IntensityAugmentationBase2D
from torch import Tensor

from ..errors import InputError
from ..spectrum import resolve_bands
from .band_stats import BandStats, _as_tuple
from .presets import preset_stats

__all__ = ('NormalizeMode', 'NormalizeOptions', 'SmartiesNormalize', 'sar_to_db')

#: ``'smarties'``: percentile min-max → clip [0, 1] → z-score (the release); ``'zscore'``: plain z-score.
NormalizeMode = Literal['smarties', 'zscore']

_Values = Sequence[float] | Tensor | np.ndarray


class NormalizeOptions(TypedDict, total=False):
    """The keyword options of the ``SmartiesNormalize.from_*`` constructors, as for :class:`SmartiesNormalize`.

    ``mode`` (default ``'smarties'``), ``sar_to_db`` (default ``False``; :meth:`SmartiesNormalize.from_file`:
    the setting the statistics were computed with), ``nodata`` (default ``None``) and ``keepdim`` (default
    ``False``).

    .. versionadded:: 0.3
    """

    mode: NormalizeMode
    sar_to_db: bool | Sequence[bool]
    nodata: float | None
    keepdim: bool


def sar_to_db(x: Tensor, eps: float = 1e-10) -> Tensor:
    """Linear SAR power (σ0) to decibels: ``10·log10(max(x, eps))`` (NaN stays NaN)."""
    return 10.0 * torch.log10(x.clamp_min(eps))


class SmartiesNormalize(IntensityAugmentationBase2D):
    r"""SMARTIES per-band normalisation (the release's ``ImageNormalizeStandardize``) as a kornia augmentation.

    .. math::
        y_c = \frac{\operatorname{clip}\big((x_c - p1_c)/(p99_c - p1_c),\, 0,\, 1\big) - \mu_c}{\sigma_c}

    with ``μ``/``σ`` computed after the min-max step. Invalid pixels (NaN, or equal to *nodata*) are set to
    0 in the output (the release sets nodata to 0 after normalising); :meth:`valid_mask` gives the
    (B, C, H, W) validity to pass to the encoder as ``band_mask=``, and the last call's mask is kept in
    :attr:`last_valid_mask` (the ``valid=`` tensor itself when :meth:`normalize` was given one and *nodata* is
    unset).

    Deterministic (``p=1``, no randomness); works on CPU/CUDA batches, inside
    :class:`kornia.augmentation.AugmentationSequential` (also with ``data_keys=None`` dict batches: only the
    ``'image'`` entries are normalised) and :class:`torch.nn.Sequential`. The statistics are buffers and are
    also cast to the input's device/dtype on each call, so the module may stay on the CPU (as a torchgeo
    datamodule's ``aug`` does) while the batch is on the GPU.

    Args:
        p1: 1st percentile per band (raw units; dB for SAR). Omit in ``'zscore'`` mode for raw-unit *mean*/*std*.
        p99: 99th percentile per band.
        mean: mean per band after the min-max step (or in raw units, see *mode*).
        std: standard deviation per band, same convention as *mean*.
        bands: optional band ids of the statistics (kept for reference, ``self.bands``).
        mode: ``'smarties'`` (default) or ``'zscore'``: plain ``(x − m)/s`` without the clip. With *p1*/*p99*
            given, ``m = p1 + mean·(p99 − p1)``, ``s = std·(p99 − p1)`` — the same affine map as ``'smarties'``
            minus the clip (the release notes plain standardisation works "with a slight drop"); without them
            *mean*/*std* are taken as raw-unit statistics.
        sar_to_db: convert linear SAR power to dB (``10·log10``, values ≤ 0 clamped to 1e-10, i.e. −100 dB)
            before normalising. ``True`` converts the SAR bands (polarisation bands such as
            ``sentinel1:VV``) when *bands* is given, else every channel; a sequence of bools selects channels.
        nodata: value marking invalid pixels (NaN is always invalid).
        keepdim: kornia's flag (keep a (C, H, W) input unbatched).

    Raises:
        BandCountError: if the per-band statistics differ in length.
        InputError: if p99 ≤ p1 or std ≤ 0 for a band, or *mode* is unknown.

    Example:
        >>> norm = SmartiesNormalize.from_preset('sentinel2_l2a')
        >>> x = torch.full((2, 12, 32, 32), 1000.0)
        >>> norm(x).shape
        torch.Size([2, 12, 32, 32])

    .. versionadded:: 0.1
    """

    last_valid_mask: Tensor | None
    p1: Tensor
    span: Tensor
    mean: Tensor
    std: Tensor
    loc: Tensor
    scale: Tensor
    db_channels: Tensor

    def __init__(
        self,
        p1: _Values | None = None,
        p99: _Values | None = None,
        mean: _Values | None = None,
        std: _Values | None = None,
        *,
        bands: str | Sequence[str] | None = None,
        mode: NormalizeMode = 'smarties',
        sar_to_db: bool | Sequence[bool] = False,
        nodata: float | None = None,
        keepdim: bool = False,
    ) -> None:
        super().__init__(p=1.0, same_on_batch=True, keepdim=keepdim)

        if mode not in ('smarties', 'zscore'):
            raise InputError(f"mode must be 'smarties' or 'zscore', got {mode!r}")
        if mean is None or std is None:
            raise InputError('give mean= and std= (per band), or build from statistics: from_preset / from_file')
        if (p1 is None) != (p99 is None):
            raise InputError('give both p1= and p99=, or neither (then mode must be "zscore")')
        if p1 is None and mode != 'zscore':
            raise InputError(
                "p1= and p99= are required in mode 'smarties'; for a plain z-score with raw-unit mean/std pass "
                "mode='zscore'"
            )
        band_ids = tuple(b.id for b in resolve_bands(bands)) if bands is not None else None
        mean_t = _as_tuple(mean, 'mean')
        std_t = _as_tuple(std, 'std')
        assert mean_t is not None and std_t is not None
        p1_t = _as_tuple(p1, 'p1')
        p99_t = _as_tuple(p99, 'p99')
        raw = p1_t is None
        if raw:
            # validate lengths/std via BandStats with a dummy unit range
            p1_t = tuple(0.0 for _ in mean_t)
            p99_t = tuple(1.0 for _ in mean_t)
        assert p1_t is not None and p99_t is not None
        stats = BandStats(bands=band_ids, p1=p1_t, p99=p99_t, mean=mean_t, std=std_t, source='SmartiesNormalize')
        self.stats = stats
        self.bands = band_ids
        self.mode: NormalizeMode = mode
        self.nodata = None if nodata is None else float(nodata)
        self._raw_zscore = raw

        n = len(stats)
        if isinstance(sar_to_db, bool):
            if not sar_to_db:
                db = [False] * n
            elif band_ids is not None:
                pol = [b.polarization is not None for b in resolve_bands(list(band_ids))]
                db = pol if any(pol) else [True] * n
            else:
                db = [True] * n
        else:
            db = [bool(v) for v in sar_to_db]
            if len(db) != n:
                from ..errors import BandCountError

                raise BandCountError(f'sar_to_db has {len(db)} entries for {n} bands; give one bool per band')
        self.sar_to_db = tuple(db)

        t = stats.as_tensors(dtype=torch.float64)
        if mode == 'zscore':
            if raw:
                loc, scale = t['mean'], t['std']
            else:
                loc, scale = stats.affine_mean_std()
            self.register_buffer('loc', loc, persistent=False)
            self.register_buffer('scale', scale, persistent=False)
        else:
            # float64 buffers (cast to the input's dtype per call): float64 inputs get full precision
            self.register_buffer('p1', t['p1'], persistent=False)
            self.register_buffer('span', t['p99'] - t['p1'], persistent=False)
            self.register_buffer('mean', t['mean'], persistent=False)
            self.register_buffer('std', t['std'], persistent=False)
        self.register_buffer('db_channels', torch.tensor(db, dtype=torch.bool), persistent=False)
        self.last_valid_mask = None

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_stats(
        cls, stats: BandStats, bands: str | Sequence[str] | None = None, **options: Unpack[NormalizeOptions]
    ) -> SmartiesNormalize:
        """Build from :class:`~torchgeo_smarties.transforms.BandStats`, selected/reordered to *bands*.

        In ``'zscore'`` mode, raw-unit mean/std are used when the statistics have them (computed
        statistics do; the release's presets do not, and then the clip-free affine map is used).

        Args:
            stats: the statistics.
            bands: the image's channel order (band ids); ``None`` = the statistics' own order.
            **options: ``mode``, ``sar_to_db``, ``nodata``, ``keepdim`` (:class:`NormalizeOptions`).
        """
        stats = stats.select(bands)
        if options.get('mode') == 'zscore' and stats.raw_mean is not None and stats.raw_std is not None:
            out = cls(mean=stats.raw_mean, std=stats.raw_std, bands=stats.bands, **options)
        else:
            out = cls(p1=stats.p1, p99=stats.p99, mean=stats.mean, std=stats.std, bands=stats.bands, **options)
        out.stats = stats  # keep the provenance (source, method, conventions) for describe() / tags()
        return out

    @classmethod
    def from_preset(
        cls, name: str, bands: str | Sequence[str] | None = None, **options: Unpack[NormalizeOptions]
    ) -> SmartiesNormalize:
        """Normalisation with the release's statistics of a sensor or dataset preset.

        Args:
            name: ``'sentinel2_l2a'``, ``'sentinel2_l1c'``, ``'sentinel1'``, ``'maxar_rgb'`` (pretraining
                statistics) or ``'eurosat'``, ``'bigearthnet_s2'``, ``'bigearthnet_s1'``, ``'resisc45'``,
                ``'whu_rs19'``, ``'ucmerced'`` (evaluation statistics).
            bands: the image's channel order (preset name or band ids; bare names like ``'B04'`` are taken
                from the preset's sensor). ``None`` = the preset's own order (e.g. EuroSAT's tif order, B8A last).
            **options: ``mode`` (see the class), ``sar_to_db`` (the S1 statistics are in dB; pass ``True`` if
                the input is linear power), ``nodata`` (value marking invalid pixels), ``keepdim`` (kornia's
                flag); see :class:`NormalizeOptions`.

        Raises:
            UnknownPresetError: for an unknown preset.
            UnknownBandError: if a band has no statistic in the preset.
        """
        return cls.from_stats(preset_stats(name, bands), **options)

    @classmethod
    def from_file(
        cls, path: str | Path, bands: str | Sequence[str] | None = None, **options: Unpack[NormalizeOptions]
    ) -> SmartiesNormalize:
        """Normalisation with statistics written by :func:`~torchgeo_smarties.transforms.compute_statistics`.

        In ``'zscore'`` mode the file's raw-unit mean/std are used when present.

        Args:
            path: the ``.json``/``.yaml`` statistics file.
            bands: the image's channel order (band ids); ``None`` = the file's order.
            **options: as for :meth:`from_stats`; *sar_to_db* defaults to (or, given as ``None``, is) the
                setting the statistics were computed with.
        """
        stats = BandStats.load(path)
        if options.get('sar_to_db') is None:
            options['sar_to_db'] = stats.sar_to_db
        return cls.from_stats(stats, bands, **options)

    # ------------------------------------------------------------------ computation
    def _check(self, x: Tensor) -> None:
        n = len(self.stats)
        if x.ndim < 3 or x.shape[-3] != n:
            from ..errors import BandCountError

            raise BandCountError(
                f'the image has {x.shape[-3] if x.ndim >= 3 else "no"} channels (shape {tuple(x.shape)}) but the '
                f'normalisation has statistics for {n} bands{f" {list(self.bands)}" if self.bands else ""}; '
                'select the statistics of your channels with bands=[...] (in channel order)'
            )

    def valid_mask(self, x: Tensor) -> Tensor:
        """Per-pixel validity (same shape as *x*, bool): not NaN and not equal to *nodata*.

        Pass it to the encoder as ``band_mask=`` (it accepts (B, C, H, W)). Compute it on the *raw* input
        (before geometric augmentations, or transform it along with the image).
        """
        valid = ~torch.isnan(x)
        if self.nodata is not None:
            valid &= x != self.nodata
        return valid

    def normalize(self, x: Tensor, valid: Tensor | None = None, *, inplace: bool = False) -> Tensor:
        """The normalisation of a raw (…, C, H, W) float tensor (invalid pixels → 0).

        Args:
            x: raw values.
            valid: the pixels' validity (bool, shape of *x*) when the caller already knows it (a raster reader
                that applied nodata and masks; ``nodata`` still applies); default: not NaN and not ``nodata``
                (:meth:`valid_mask`).
            inplace: overwrite a floating-point *x* with the result (the same values, without allocating a
                buffer per arithmetic step: the raster reader's batch buffer).
        """
        self._check(x)
        if not x.is_floating_point():
            x, inplace = x.float(), True
        shape = (-1, 1, 1)

        def buf(t: Tensor) -> Tensor:
            return t.to(device=x.device, dtype=x.dtype).view(shape)

        if valid is not None and self.nodata is None:
            keep = valid  # the caller's validity is final: no inverted copy of the mask
        else:
            invalid = ~valid if valid is not None else torch.isnan(x)
            if self.nodata is not None:
                invalid |= x == self.nodata
            keep = ~invalid
        if any(self.sar_to_db):
            db = self.db_channels.to(x.device)
            x, inplace = torch.where(db.view(shape), sar_to_db(x), x), True
        if self.mode == 'zscore':
            lead = x.sub_(buf(self.loc)) if inplace else x - buf(self.loc)
            out = lead.div_(buf(self.scale))
        else:
            lead = x.sub_(buf(self.p1)) if inplace else x - buf(self.p1)
            out = lead.div_(buf(self.span)).clamp_(0.0, 1.0).sub_(buf(self.mean)).div_(buf(self.std))
        torch.where(keep, out, torch.zeros((), dtype=out.dtype, device=out.device), out=out)
        self.last_valid_mask = keep
        return out

    def forward(self, input: Any, params: dict[str, Tensor] | None = None, **kwargs: Any) -> Any:
        """Normalise a batch; a plain (B, C, H, W) tensor skips kornia's parameter machinery (same result)."""
        if params is None and not kwargs and isinstance(input, Tensor) and input.ndim == 4:
            return self.normalize(input)
        return super().forward(input, params=params, **kwargs)

    def apply_transform(
        self, input: Tensor, params: dict[str, Tensor], flags: dict[str, Any], transform: Tensor | None = None
    ) -> Tensor:
        """Kornia hook: :meth:`normalize` the batch."""
        return self.normalize(input)

    # ------------------------------------------------------------------ provenance
    @property
    def method(self) -> str:
        """How the statistics were obtained: preset, interpolated, scene, file or explicit."""
        extra = self.stats.extra
        if 'method' in extra and extra['method'] in ('preset', 'interpolated', 'scene', 'file'):
            return str(extra['method'])
        if 'preset' in extra:
            return 'preset'
        if 'method' in extra:  # computed by compute_statistics (histogram) and read from a file
            return 'file'
        return 'explicit'

    def describe(self) -> str:
        """A human-readable account of the normalisation: method, source, and per band p1/p99/mean/std/convention."""
        conv = self.stats.extra.get('conventions', {}) or {}
        how = self.stats.extra.get('how', {}) or {}
        head = f'normalisation: {self.method} ({self.stats.source or "given statistics"}), mode {self.mode!r}'
        if self.method == 'interpolated':
            head += ' — a torchgeo_smarties extension of the release (see docs: Bring your own sensor)'
        lines = [head, f'  {"band":<22} {"p1":>10} {"p99":>10} {"mean":>7} {"std":>7}  convention']
        names = self.bands or tuple(f'channel {i}' for i in range(len(self.stats)))
        s = self.stats
        for i, b in enumerate(names):
            note = conv.get(b, '')
            if how.get(b) and how[b] != 'release':
                note = f'{how[b]}; {note}' if note else how[b]
            db = ' [linear → dB]' if self.sar_to_db[i] else ''
            lines.append(f'  {b:<22} {s.p1[i]:>10.5g} {s.p99[i]:>10.5g} {s.mean[i]:>7.4f} {s.std[i]:>7.4f}  {note}{db}')
        if self.nodata is not None:
            lines.append(f'  nodata: {self.nodata:g}')
        return '\n'.join(lines)

    def tags(self) -> dict[str, str]:
        """Tags to store with an output: ``{'SMARTIES_NORM': JSON}``, readable back by :meth:`BandStats.load`.

        The JSON is a statistics document (format :data:`~torchgeo_smarties.transforms.STATS_FORMAT`) plus
        ``method``, ``mode``, ``nodata`` and the per-channel ``sar_to_db`` flags.
        """
        import json

        from .band_stats import NORM_TAG

        doc = self.stats.to_dict()
        doc['extra'] = {**doc.get('extra', {}), 'method': self.method}
        doc['sar_to_db'] = any(self.sar_to_db)  # what this normaliser does (a preset's flag only says 'in dB')
        doc.update(method=self.method, mode=self.mode, nodata=self.nodata, sar_to_db_channels=list(self.sar_to_db))
        return {NORM_TAG: json.dumps(doc, sort_keys=False, default=str)}

    def extra_repr(self) -> str:  # noqa: D102
        bands = f', bands={list(self.bands)}' if self.bands else f', channels={len(self.stats)}'
        db = f', sar_to_db={list(self.sar_to_db)}' if any(self.sar_to_db) else ''
        nd = f', nodata={self.nodata}' if self.nodata is not None else ''
        return f'mode={self.mode!r}{bands}{db}{nd}'

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.extra_repr()})'
