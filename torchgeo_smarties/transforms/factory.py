"""The normaliser of an inference run, from the options ``--stats`` / ``--norm`` and the band set.

.. versionadded:: 0.2
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from difflib import get_close_matches
from typing import Any

from ..errors import NormalizationError, UnknownPresetError
from ..spectrum import resolve_bands
from .band_stats import BandStats, read_stats_document
from .normalize import SmartiesNormalize
from .presets import STATS_PRESETS, _resolve_preset_name
from .scene import WindowSource, check_sar_units, scene_statistics
from .sensor_stats import default_stats

__all__ = ('NORM_METHODS', 'make_normalizer', 'normalization_preset', 'normalization_tags')

#: ``--norm`` values besides the statistics presets: ``'auto'`` (the default: release preset or interpolated
#: statistics from the bands' value conventions), ``'scene'`` (statistics of the input itself), ``'sar_linear'``
#: (the default, with SAR bands given in linear power and converted to dB) and ``'none'`` (already normalised).
NORM_METHODS: tuple[str, ...] = ('auto', 'scene', 'sar_linear', 'none')


def _check_norm(norm: str | None) -> str:
    if norm is None:
        return 'auto'
    if not isinstance(norm, str):
        raise NormalizationError(f'norm must be a string, got {type(norm).__name__}')
    key = norm.strip().lower().replace('-', '_')
    if key in NORM_METHODS:
        return key
    try:
        return _resolve_preset_name(key)
    except UnknownPresetError:
        valid = [*NORM_METHODS, *STATS_PRESETS]
        hint = get_close_matches(key, valid, n=2)
        raise UnknownPresetError(
            f'unknown --norm {norm!r}' + (f' (did you mean {" or ".join(hint)}?)' if hint else '')
            + f'; valid: {", ".join(valid)}'
        ) from None


def make_normalizer(
    band_ids: Sequence[str],
    stats: str | os.PathLike[str] | None = None,
    norm: str | None = None,
    source: WindowSource | None = None,
) -> SmartiesNormalize | None:
    """The per-tile normalisation of a run, validated before anything is computed.

    Args:
        band_ids: the input's band ids, in channel order.
        stats: a statistics file (``.json``/``.yaml`` from :func:`compute_statistics`), or an embedding GeoTIFF
            written by ``smarties embed`` (its ``SMARTIES_NORM`` tag: reproduces that run's normalisation).
        norm: ``None``/``'auto'`` (default), ``'scene'``, ``'sar_linear'``, ``'none'`` (see :data:`NORM_METHODS`)
            or a statistics preset (:data:`~torchgeo_smarties.transforms.STATS_PRESETS`).
        source: the input raster (``read(window)`` API); needed by ``'scene'``, and used by the default to
            detect SAR bands given in linear power.

    Returns:
        A :class:`SmartiesNormalize` (call ``.normalize`` per tile; ``.describe()`` / ``.tags()`` for the record),
        or ``None`` for ``norm='none'`` (or a reproduced run that used none).

    Raises:
        NormalizationError: for both *stats* and *norm*, or ``'scene'`` without *source*.
        UnknownPresetError: for an unknown *norm*, listing the valid values.
        StatisticsFileError: for a missing/invalid statistics file or one listing a band twice.
        UnknownBandError: if the statistics lack a band of the input.
        NoStatisticsError: if a band has no default statistics (no value convention, thermal bands).
        SarUnitsError: if SAR bands look like linear power (fix: ``norm='sar_linear'``) or the reverse.
    """
    ids = tuple(b.id for b in resolve_bands(list(band_ids)))
    method = _check_norm(norm)
    if stats is not None:
        if norm is not None:
            raise NormalizationError(
                f'give either statistics (--stats {os.fspath(stats)}) or --norm {norm}, not both: the one would '
                'silently override the other'
            )
        doc: Any = read_stats_document(stats)
        if isinstance(doc, dict) and doc.get('method') == 'none':
            return None
        loaded = BandStats.from_dict(doc, source=os.fspath(stats))
        if loaded.extra.get('method') not in ('preset', 'interpolated', 'scene'):
            loaded = replace(loaded, extra={**loaded.extra, 'method': 'file'})
        nodata = doc.get('nodata') if isinstance(doc, dict) else None
        return SmartiesNormalize.from_stats(loaded, list(ids), sar_to_db=loaded.sar_to_db,
                                            nodata=None if nodata is None else float(nodata))
    if method == 'none':
        return None
    if method == 'scene':
        if source is None:
            raise NormalizationError("norm='scene' computes the statistics from the input: pass source= (the raster)")
        return SmartiesNormalize.from_stats(scene_statistics(source, ids))
    if method in ('auto', 'sar_linear'):
        sar_linear = method == 'sar_linear'
        computed = default_stats(ids, sar_linear=sar_linear)
        if source is not None:
            check_sar_units(source, ids, sar_linear=sar_linear)
        return SmartiesNormalize.from_stats(computed, sar_to_db=sar_linear)
    normalizer = SmartiesNormalize.from_preset(method, list(ids))
    if source is not None:
        check_sar_units(source, ids)
    return normalizer


def normalization_preset(band_ids: Sequence[str]) -> str:
    """The release statistics preset covering a band set (S2 with B10 → L1C, other S2 → L2A, S1, Maxar RGB).

    Raises:
        NoStatisticsError: for band sets no release preset covers (their default statistics are interpolated:
            :func:`~torchgeo_smarties.transforms.default_stats`).
    """
    from ..errors import NoStatisticsError
    from .sensor_stats import release_preset_for

    preset = release_preset_for(band_ids)
    if preset is None:
        sensors = sorted({b.sensor for b in resolve_bands(list(band_ids))})
        raise NoStatisticsError(
            f'no release statistics preset covers bands of {sensors}; make_normalizer interpolates the release\'s '
            'statistics for them (default_stats), or pass --stats FILE / --norm scene / --norm PRESET'
        )
    return preset


def normalization_tags(normalizer: object) -> dict[str, str]:
    """The ``SMARTIES_NORM`` tag recording a run's normalisation (``--stats OUTPUT.tif`` reads it back).

    A :class:`SmartiesNormalize` gives its :meth:`~SmartiesNormalize.tags`; ``None`` records ``method: none``;
    another callable records that it cannot be reproduced.
    """
    import json

    from .band_stats import NORM_TAG

    if isinstance(normalizer, SmartiesNormalize):
        return normalizer.tags()
    if normalizer is None:
        return {NORM_TAG: json.dumps({'method': 'none'})}
    return {NORM_TAG: json.dumps({'method': 'custom', 'callable': repr(normalizer)[:200]})}
