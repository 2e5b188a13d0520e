"""Resolve a band list into a *projection plan*: which learned projections, which weights.

A plan is a frozen, hashable value: the encoder caches its fused patch-embedding
weights per plan. Four interpolation policies decide what an *unseen* band (one
the released model was not trained on) uses; bands the model was trained on
(Sentinel-2, Sentinel-1 VV/VH, Maxar RGB) map to their learned projection under
every policy.

``'linear'`` (default)
    Linear interpolation between the two learned ranges whose centres bracket the
    band's centre: weights are inverse distances, ``w_lo = (c_hi − c)/(c_hi − c_lo)``.
``'nearest'``
    The learned range with the closest centre (the paper's naive transfer).
``'official'``
    Reproduces the release: bands the release's table lists use their entry —
    Landsat-8 B2 and B10 use the aggregated entries 18 and 17 with the release's
    *distance-proportional* weights ``|c − c_i| / Σ|c − c_j|`` (B2 = 0.79·aerosol +
    0.21·S2-blue; B10 ≈ the VV SAR projection). Other bands raise.
``'learned'``
    Only bands with a learned projection; anything else raises.

Bands the release gives no projection (Sentinel-2 B10 cirrus) are accepted and
ignored under every policy, as the release does: they take no part in the mean.
SAR channels that were not learned (HH, HV) use the learned polarisation of the
same kind (co-pol → VV, cross-pol → VH) under ``nearest`` and ``linear``.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

from ..errors import EmptyBandListError, OutOfSpectrumError, SpectrumOptionError, UnresolvableBandError
from .ranges import LEARNED_RANGES, NUM_LEARNED_RANGES, range_by_index
from .registry import BandSpec, resolve_bands
from .sensors import Band

__all__ = (
    'OUT_OF_RANGE',
    'POLICIES',
    'BandProjection',
    'InterpolationPolicy',
    'OutOfRange',
    'ProjectionPlan',
    'check_options',
    'plan_bands',
    'resolve_band',
)

InterpolationPolicy = Literal['linear', 'nearest', 'official', 'learned']
OutOfRange = Literal['error', 'nearest']
POLICIES: tuple[str, ...] = get_args(InterpolationPolicy)
#: Valid values of ``out_of_range``.
OUT_OF_RANGE: tuple[str, ...] = get_args(OutOfRange)

_SPECTRUM_MIN_NM = min(r.min_nm for r in LEARNED_RANGES)  # aerosol, 422 nm
_SPECTRUM_MAX_NM = max(r.max_nm for r in LEARNED_RANGES)  # C-band, 5.6 cm
_VV, _VH = 15, 16
_CROSS_POL = {'VH', 'HV'}


@dataclass(frozen=True)
class BandProjection:
    """How one band is projected.

    Attributes:
        band: the band id ``'<sensor>:<band>'``.
        indices: learned projection indices combined (empty: band ignored).
        weights: one weight per index, summing to 1.
        how: ``'learned'``, ``'nearest'``, ``'linear'``, ``'official'`` or ``'ignored'``.
        center_nm: the band's centre wavelength.
    """

    band: str
    indices: tuple[int, ...]
    weights: tuple[float, ...]
    how: str
    center_nm: float

    @property
    def ignored(self) -> bool:
        """Whether the band takes no part in the token (no projection)."""
        return not self.indices

    def describe(self) -> str:
        """A short human-readable description, e.g. ``'0.79·aerosol + 0.21·blue_1'``."""
        if self.ignored:
            return 'ignored (no projection in the release)'
        return ' + '.join(
            f'{w:.4g}·{range_by_index(i).key}[{i}]' if len(self.indices) > 1 else f'{range_by_index(i).key}[{i}]'
            for i, w in zip(self.indices, self.weights)
        )


@dataclass(frozen=True)
class ProjectionPlan:
    """A resolved band list: one :class:`BandProjection` per image channel, in order."""

    entries: tuple[BandProjection, ...]
    policy: str

    @property
    def bands(self) -> tuple[str, ...]:
        """The band ids, in channel order."""
        return tuple(e.band for e in self.entries)

    @property
    def num_bands(self) -> int:
        """Number of image channels the plan expects."""
        return len(self.entries)

    @property
    def active(self) -> tuple[bool, ...]:
        """Per channel: whether it is projected (False for ignored bands)."""
        return tuple(not e.ignored for e in self.entries)

    @property
    def num_active(self) -> int:
        """Number of channels that take part in the mean (the release's C)."""
        return sum(self.active)

    def matrix(self) -> tuple[tuple[float, ...], ...]:
        """The channel × learned-range mixing matrix A (C × 17); ignored rows are zero.

        The fused patch embedding of a plan is ``K_c = (12 / C_active) Σ_k A[c, k] W_k``.
        """
        rows = []
        for e in self.entries:
            row = [0.0] * NUM_LEARNED_RANGES
            for i, w in zip(e.indices, e.weights):
                row[i] += w
            rows.append(tuple(row))
        return tuple(rows)

    def describe(self) -> str:
        """One line per band, for logs and the CLI."""
        return '\n'.join(f'{i:>3}  {e.band:<22} -> {e.describe()}' for i, e in enumerate(self.entries))


def _learned_centres(polarization: str | None) -> list[tuple[float, int]]:
    """Learned (centre, index) pairs sorted by centre; one SAR entry picked by polarisation."""
    sar = _VH if (polarization or '').upper() in _CROSS_POL else _VV
    return sorted((r.center_nm, r.index) for r in LEARNED_RANGES if r.index not in (_VV, _VH) or r.index == sar)


def check_options(policy: object, out_of_range: object) -> None:
    """Validate the two enum-like options of planning.

    Raises:
        SpectrumOptionError: naming the valid values.
    """
    if policy not in POLICIES:
        raise SpectrumOptionError(f'unknown interpolation policy {policy!r}; valid: {", ".join(POLICIES)}')
    if out_of_range not in OUT_OF_RANGE:
        raise SpectrumOptionError(
            f'unknown out_of_range {out_of_range!r}; valid: {", ".join(OUT_OF_RANGE)} '
            "('error' refuses bands outside the pretraining spectrum, 'nearest' uses the closest learned range)"
        )


def resolve_band(
    band: Band, policy: InterpolationPolicy = 'linear', out_of_range: OutOfRange = 'error'
) -> BandProjection:
    """Resolve one band under *policy* (see the module docs).

    Raises:
        UnresolvableBandError: if the policy has no rule for this band.
        OutOfSpectrumError: if the band lies outside the pretraining spectrum and
            *out_of_range* is ``'error'``.
        SpectrumOptionError: for an unknown *policy* or *out_of_range*.
    """
    check_options(policy, out_of_range)
    c = band.center_nm
    if band.release_index == -1:
        return BandProjection(band.id, (), (), 'ignored', c)
    if band.learned_index is not None:
        return BandProjection(band.id, (band.learned_index,), (1.0,), 'learned', c)
    if policy == 'official':
        if band.release_index is not None:
            r = range_by_index(band.release_index)
            if r.kind == 'aggregated':
                return BandProjection(band.id, r.sources, r.official_weights(), 'official', c)
            return BandProjection(band.id, (r.index,), (1.0,), 'official', c)
        raise UnresolvableBandError(
            f"{band.id} has no entry in the release's spectral table, so policy 'official' cannot project it; "
            "use interpolation='linear' (default) or 'nearest'"
        )
    if policy == 'learned':
        raise UnresolvableBandError(
            f"{band.id} ({c:.1f} nm) has no learned projection; use interpolation='linear' or 'nearest'"
        )
    cross_pol = (band.polarization or '').upper() in _CROSS_POL
    # The spectrum check comes first: an L-band SAR channel (~23.6 cm) must not pass as C-band VV/VH.
    if not (_SPECTRUM_MIN_NM <= c <= _SPECTRUM_MAX_NM):
        if out_of_range == 'error':
            raise OutOfSpectrumError(
                f'{band.id} (centre {c:.6g} nm) lies outside the spectrum SMARTIES was pretrained on '
                f'({_SPECTRUM_MIN_NM:g} nm – {_SPECTRUM_MAX_NM:.3g} nm); pass out_of_range="nearest" to use the '
                'closest learned projection anyway (an extrapolation the model never saw)'
            )
        idx = 0 if c < _SPECTRUM_MIN_NM else (_VH if cross_pol else _VV)
        return BandProjection(band.id, (idx,), (1.0,), 'nearest (out of range)', c)
    if band.is_sar and band.polarization:
        idx = _VH if cross_pol else _VV
        return BandProjection(band.id, (idx,), (1.0,), policy, c)
    centres = _learned_centres(band.polarization)
    if policy == 'nearest':
        _, idx = min(centres, key=lambda t: (abs(t[0] - c), t[1]))
        return BandProjection(band.id, (idx,), (1.0,), 'nearest', c)
    for cc, idx in centres:
        if cc == c:
            return BandProjection(band.id, (idx,), (1.0,), 'linear', c)
    below = [t for t in centres if t[0] < c]
    above = [t for t in centres if t[0] > c]
    if not below or not above:
        # Inside the spectrum but beyond the outermost learned centre (e.g. a 425 nm coastal band,
        # below aerosol's 442.5 nm centre): nothing brackets it, so use the outermost range.
        _, idx = above[0] if not below else below[-1]
        return BandProjection(band.id, (idx,), (1.0,), 'linear', c)
    lo = max(below, key=lambda t: t[0])
    hi = min(above, key=lambda t: t[0])
    w_lo = (hi[0] - c) / (hi[0] - lo[0])
    return BandProjection(band.id, (lo[1], hi[1]), (w_lo, 1.0 - w_lo), 'linear', c)


def plan_bands(
    bands: str | Iterable[BandSpec] | ProjectionPlan,
    policy: InterpolationPolicy = 'linear',
    out_of_range: OutOfRange = 'error',
) -> ProjectionPlan:
    """Resolve a band list (preset name, ids or :class:`Band` objects) into a plan.

    A :class:`ProjectionPlan` is returned unchanged.

    Raises:
        EmptyBandListError: if the list is empty or every band is ignored.
        UnknownBandError, UnknownSensorError, UnknownPresetError: for bad names.
        UnresolvableBandError, OutOfSpectrumError: see :func:`resolve_band`.
        SpectrumOptionError: for an unknown *policy* or *out_of_range*.

    A band may appear twice (two channels with the same band): the release accepts it
    and averages over every entry (a conformance case), so it is not refused here.
    """
    check_options(policy, out_of_range)
    if isinstance(bands, ProjectionPlan):
        return bands
    resolved = resolve_bands(bands)
    entries = tuple(resolve_band(b, policy, out_of_range) for b in resolved)
    if not any(not e.ignored for e in entries):
        raise EmptyBandListError(
            f'none of the bands {[e.band for e in entries]} has a projection; add at least one projected band'
        )
    return ProjectionPlan(entries, policy)
