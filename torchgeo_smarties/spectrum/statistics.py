"""The release's normalisation statistics as plain numbers (pure Python: no torch, no numpy).

Read at run time from the release's own configuration files shipped in ``torchgeo_smarties/data/release``
(github.com/gsumbul/SMARTIES ``config/``, Apache-2.0). :func:`release_statistics` gives a preset's per-band
``p1, p99, mean, std`` keyed by band id; :mod:`torchgeo_smarties.transforms` builds its
:class:`~torchgeo_smarties.transforms.BandStats` from it, and code below the transforms layer (e.g. the bundled
demo in :mod:`torchgeo_smarties.models`) can use the numbers without importing the transforms.

.. versionadded:: 0.2
"""

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from ..errors import UnknownPresetError
from .registry import resolve_bands

__all__ = ('STATS_PRESETS', 'ReleaseStatistics', 'list_stats_presets', 'release_statistics', 'resolve_stats_preset')


@dataclass(frozen=True)
class ReleaseStatistics:
    """One preset's statistics, in the preset's band order.

    Attributes:
        preset: the canonical preset name.
        bands: band ids.
        p1: 1st percentile per band (raw units; dB for SAR).
        p99: 99th percentile per band.
        mean: mean per band after the clipped percentile min-max step.
        std: standard deviation per band after that step.
        source: ``'<file>:<entry>'`` in the release's configuration.
        release_bands: the release's own range names of the bands.
    """

    preset: str
    bands: tuple[str, ...]
    p1: tuple[float, ...]
    p99: tuple[float, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str
    release_bands: tuple[str, ...]

    def by_band(self) -> dict[str, tuple[float, float, float, float]]:
        """``{band id: (p1, p99, mean, std)}``."""
        return {b: (self.p1[i], self.p99[i], self.mean[i], self.std[i]) for i, b in enumerate(self.bands)}


#: Statistics presets: name → (release YAML file, entry, band preset giving the band ids in the entry's order).
#: The RGB scene-classification datasets (RESISC-45, WHU-RS19, UC-Merced) are keyed by the RGB bands of the
#: ``maxar`` sensor (alias ``rgb``): the release treats them as its ``RGB`` sensor.
STATS_PRESETS: dict[str, tuple[str, str, str]] = {
    'sentinel2_l2a': ('pretraining_sensors.yaml', 'SENTINEL2-L2A', 'sentinel2_l2a'),
    'sentinel2_l1c': ('pretraining_sensors.yaml', 'SENTINEL2-L1C', 'sentinel2_l1c'),
    'sentinel1': ('pretraining_sensors.yaml', 'SENTINEL1-GRD', 'sentinel1'),
    'maxar_rgb': ('pretraining_sensors.yaml', 'RGB', 'maxar_rgb'),
    'eurosat': ('eval_datasets.yaml', 'EuroSAT', 'eurosat'),
    'bigearthnet_s2': ('eval_datasets.yaml', 'BigEarthNetS2', 'bigearthnet_s2'),
    'bigearthnet_s1': ('eval_datasets.yaml', 'BigEarthNetS1', 'bigearthnet_s1'),
    'resisc45': ('eval_datasets.yaml', 'RESISC45', 'maxar_rgb'),
    'whu_rs19': ('eval_datasets.yaml', 'WHU-RS19', 'maxar_rgb'),
    'ucmerced': ('eval_datasets.yaml', 'UC-Merced', 'maxar_rgb'),
}

_PRESET_ALIASES = {
    'sentinel2': 'sentinel2_l2a',
    's2_l2a': 'sentinel2_l2a',
    's2_l1c': 'sentinel2_l1c',
    's1': 'sentinel1',
    'sentinel1_grd': 'sentinel1',
    'rgb': 'maxar_rgb',
    'fmow_rgb': 'maxar_rgb',
    'eurosat_ms': 'eurosat',
    'bigearthnet': 'bigearthnet_s2',
    'ben_s2': 'bigearthnet_s2',
    'ben_s1': 'bigearthnet_s1',
    'nwpu_resisc45': 'resisc45',
    'whurs19': 'whu_rs19',
    'uc_merced': 'ucmerced',
}


def _norm(name: str) -> str:
    return name.strip().lower().replace('-', '_').replace(' ', '_')


@cache
def _release_yaml(filename: str) -> dict[str, Any]:
    text = resources.files('torchgeo_smarties').joinpath(f'data/release/{filename}').read_text(encoding='utf-8')
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def _floats(values: Iterable[Any]) -> tuple[float, ...]:
    # PyYAML (YAML 1.1) may read numbers such as '5.5e7' as strings: convert explicitly.
    return tuple(float(v) for v in values)


def list_stats_presets() -> tuple[str, ...]:
    """Names accepted by :func:`preset_stats` and :meth:`SmartiesNormalize.from_preset`."""
    return tuple(STATS_PRESETS)


def resolve_stats_preset(name: str) -> str:
    """The canonical name of a statistics preset (aliases such as ``'s2_l1c'`` accepted).

    Raises:
        UnknownPresetError: naming the presets.
    """
    key = _norm(name)
    key = _PRESET_ALIASES.get(key, key)
    if key not in STATS_PRESETS:
        from difflib import get_close_matches

        hint = get_close_matches(key, list(STATS_PRESETS) + list(_PRESET_ALIASES), n=3)
        raise UnknownPresetError(
            f'no normalisation statistics preset {name!r}'
            + (f' (did you mean {", ".join(hint)}?)' if hint else '')
            + f'; presets: {", ".join(STATS_PRESETS)}. For other data, compute the statistics with '
            'torchgeo_smarties.transforms.compute_statistics and load them with SmartiesNormalize.from_file'
        )
    return key


def release_statistics(name: str) -> ReleaseStatistics:
    """The release's statistics of a sensor or dataset preset (see :data:`STATS_PRESETS`).

    Raises:
        UnknownPresetError: if *name* is not a statistics preset.
    """
    key = resolve_stats_preset(name)
    filename, entry, band_preset = STATS_PRESETS[key]
    spec = _release_yaml(filename)[entry]
    spec = spec.get('sensor_specs', spec)
    return ReleaseStatistics(
        preset=key,
        bands=tuple(b.id for b in resolve_bands(band_preset)),
        p1=_floats(spec['percentiles']['1']),
        p99=_floats(spec['percentiles']['99']),
        mean=_floats(spec['mean']),
        std=_floats(spec['std']),
        source=f'{filename}:{entry}',
        release_bands=tuple(str(b) for b in spec['bands']),
    )
