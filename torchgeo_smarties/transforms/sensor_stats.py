r"""Default statistics for any registered sensor: the release's statistics, interpolated in wavelength.

An extension of the release (which ships statistics for Sentinel-2 L1C/L2A, Sentinel-1 and Maxar RGB only).
For band *c* with value convention ``x_ref = a·x + b`` into a reference value space (see
:mod:`torchgeo_smarties.spectrum.conventions`), each of the four SMARTIES statistics
``s ∈ {p1, p99, mean, std}`` is

.. math::
    s_c^{ref} = \sum_k A[c, k]\, s_k^{ref}, \qquad p_c = (p_c^{ref} - b) / a

where ``A`` is the ``linear`` projection plan's mixing matrix (:meth:`ProjectionPlan.matrix`: inverse-distance
weights between the two learned ranges bracketing the band's centre) and ``s_k^{ref}`` the release's statistic
of learned range *k* in that reference (a range the reference has no band for takes the statistic of the
reference's range with the nearest centre). *mean*/*std* are defined after the percentile min-max step, so
the affine map leaves them unchanged. Bands whose id has its own statistic in the reference (Sentinel-2,
Sentinel-1, Maxar RGB) use the release's number as is, so these sensors get exactly the release's presets.

.. versionadded:: 0.2
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from ..errors import NoStatisticsError
from ..spectrum import LEARNED_RANGES, NUM_LEARNED_RANGES, get_band, plan_bands, resolve_bands
from ..spectrum.conventions import ValueConvention, get_convention, interpolate_stat
from .band_stats import BandStats
from .presets import preset_stats

__all__ = ('default_stats', 'interpolated_stats', 'release_preset_for')

_STATS = ('p1', 'p99', 'mean', 'std')
#: Placeholder statistics of a band the model ignores (no projection): the token does not depend on them.
_IGNORED = (0.0, 1.0, 0.0, 1.0)


def release_preset_for(band_ids: Sequence[str]) -> str | None:
    """The release preset covering a band set exactly, or ``None``.

    Sentinel-2 with B10 → ``'sentinel2_l1c'``, other Sentinel-2 → ``'sentinel2_l2a'``, Sentinel-1 VV/VH →
    ``'sentinel1'``, Maxar RGB → ``'maxar_rgb'``.
    """
    ids = [b.id for b in resolve_bands(list(band_ids))]
    sensors = {b.split(':', 1)[0] for b in ids}
    if sensors == {'sentinel2'}:
        return 'sentinel2_l1c' if 'sentinel2:B10' in ids else 'sentinel2_l2a'
    if sensors == {'sentinel1'} and set(ids) <= {'sentinel1:VV', 'sentinel1:VH'}:
        return 'sentinel1'
    if sensors == {'maxar'}:
        return 'maxar_rgb'
    return None


@cache
def _reference(
    reference: str,
) -> tuple[dict[str, tuple[float, ...]], tuple[tuple[float, ...], ...], frozenset[int]]:
    """(band id → stats, learned index → stats for all 17 ranges, indices the reference has) of a preset."""
    stats = preset_stats(reference)
    assert stats.bands is not None
    by_band: dict[str, tuple[float, ...]] = {}
    by_index: dict[int, tuple[float, ...]] = {}
    for i, bid in enumerate(stats.bands):
        values = tuple(getattr(stats, k)[i] for k in _STATS)
        by_band[bid] = values
        idx = get_band(bid).learned_index
        if idx is not None:
            by_index[idx] = values
    centre = {r.index: r.center_nm for r in LEARNED_RANGES}
    table = []
    for k in range(NUM_LEARNED_RANGES):
        if k in by_index:
            table.append(by_index[k])
        else:  # complete the table: the reference's range with the nearest centre
            near = min(by_index, key=lambda j: (abs(centre[j] - centre[k]), j))
            table.append(by_index[near])
    return by_band, tuple(table), frozenset(by_index)


def _convention(band_id: str, l1c: bool) -> ValueConvention:
    conv = get_convention(band_id)
    if conv is None:
        sensor = band_id.split(':', 1)[0]
        raise NoStatisticsError(
            f'sensor {sensor!r} declares no value convention, so {band_id} has no default normalisation statistics; '
            'register it with register_sensor(..., convention=ValueConvention.reflectance(0.0001)) (or .dn8(), '
            '.sar_db()), or pass --stats FILE, --norm scene or --norm PRESET'
        )
    if not conv.has_reference:
        raise NoStatisticsError(
            f'{band_id} holds {conv.description}: no release statistics apply; drop the band from --bands, or '
            'normalise with --norm scene (statistics of the input) or --stats FILE'
        )
    if l1c and conv.reference == 'sentinel2_l2a' and band_id.startswith('sentinel2:'):
        conv = conv.with_reference('sentinel2_l1c')
    return conv


def interpolated_stats(band_ids: Sequence[str], *, sar_linear: bool = False) -> BandStats:
    """Statistics of any band set from the release's, by value convention and wavelength (see the module docs).

    Args:
        band_ids: the image's bands in channel order (ids, a preset or a sensor).
        sar_linear: SAR bands are linear power (converted to dB by the normaliser) rather than dB.

    Returns:
        Statistics in the input's value units, with ``extra['method'] = 'interpolated'`` and per-band
        ``extra['conventions']`` / ``extra['how']`` (``'release'``, ``'as <reference> range k'``,
        ``'interpolated'`` or ``'ignored'``).

    Raises:
        NoStatisticsError: for a band whose sensor declares no value convention, or whose values are not
            reflectance / DN / backscatter (e.g. thermal bands).
    """
    bands = resolve_bands(list(band_ids) if not isinstance(band_ids, str) else band_ids)
    ids = tuple(b.id for b in bands)
    l1c = 'sentinel2:B10' in ids
    matrix = plan_bands(bands, 'linear', out_of_range='nearest').matrix() if _any_projected(bands) else ()
    cols: dict[str, list[float]] = {k: [] for k in _STATS}
    conventions: dict[str, str] = {}
    how: dict[str, str] = {}
    sar_db = False
    for c, bid in enumerate(ids):
        conv = _convention(bid, l1c)
        if conv.kind in ('sar_db', 'sar_linear') and (sar_linear or conv.kind == 'sar_linear'):
            sar_db = True
        assert conv.reference is not None
        by_band, table, native = _reference(conv.reference)
        a, b = conv.to_reference()
        row = matrix[c] if matrix else ()
        if bid in by_band:
            values, how[bid] = by_band[bid], 'release'
            a, b = 1.0, 0.0  # the release's own numbers, in the band's own units
        elif row and sum(row) > 0:
            values = tuple(interpolate_stat(row, tuple(t[j] for t in table)) for j in range(len(_STATS)))
            used = [k for k, w in enumerate(row) if w]
            # one learned range the reference has a band for: its statistics as they are (e.g. HLS S30 = S2 L2A)
            as_is = len(used) == 1 and used[0] in native
            how[bid] = f'as {conv.reference} range {used[0]}' if as_is else 'interpolated'
        else:
            values, how[bid] = _IGNORED, 'ignored'
            a, b = 1.0, 0.0
        cols['p1'].append((values[0] - b) / a)
        cols['p99'].append((values[1] - b) / a)
        cols['mean'].append(values[2])
        cols['std'].append(values[3])
        conventions[bid] = conv.label() + (' — linear power, converted to dB' if sar_linear and conv.kind == 'sar_db'
                                           else '')
    return BandStats(
        bands=ids, p1=tuple(cols['p1']), p99=tuple(cols['p99']), mean=tuple(cols['mean']), std=tuple(cols['std']),
        sar_to_db=sar_db, source='SMARTIES release statistics interpolated in wavelength (torchgeo_smarties extension)',
        extra={'method': 'interpolated', 'conventions': conventions, 'how': how},
    )


def _any_projected(bands: Sequence[object]) -> bool:
    from ..spectrum import Band

    return any(isinstance(b, Band) and b.release_index != -1 for b in bands)


def default_stats(band_ids: Sequence[str], *, sar_linear: bool = False) -> BandStats:
    """The default statistics of a band set: the release preset when one covers it, else :func:`interpolated_stats`.

    Raises:
        NoStatisticsError: see :func:`interpolated_stats`.
    """
    preset = release_preset_for(band_ids)
    if preset is not None:
        stats = preset_stats(preset, list(band_ids))
        return BandStats(
            bands=stats.bands, p1=stats.p1, p99=stats.p99, mean=stats.mean, std=stats.std,
            sar_to_db=sar_linear and preset == 'sentinel1', source=stats.source,
            extra={**stats.extra, 'method': 'preset', 'conventions': {
                b: c.label() for b in stats.bands or () if (c := get_convention(b)) is not None}},
        )
    return interpolated_stats(band_ids, sar_linear=sar_linear)
