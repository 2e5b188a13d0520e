"""The spectral ranges of SMARTIES' spectrum-aware projection, as released.

The numbers are read from the release's own configuration file
(``torchgeo_smarties/data/release/electromagnetic_spectrum.yaml``, github.com/gsumbul/SMARTIES
@ fc0df04, Apache-2.0), never retyped. Wavelengths are in nm; YAML 1.1 reads
``5.5e7`` as a string, so every value goes through :func:`float`.

There are 17 *learned* ranges (indices 0–16, one ``Linear(16·16 → D)`` each),
two *aggregated* entries (17 = Landsat thermal, 18 = Landsat blue) that
interpolate learned layers with the release's distance-proportional weights,
and one entry with no projection (Sentinel-2 B10, index −1).
"""

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final, Literal

import yaml

__all__ = (
    'AGGREGATED_RANGES',
    'LEARNED_RANGES',
    'NO_PROJECTION_RANGES',
    'NUM_LEARNED_RANGES',
    'PROJECTION_SCALER',
    'SpectralRange',
    'all_ranges',
    'range_by_index',
    'range_by_key',
)

#: Number of learned per-range projections in the released model.
NUM_LEARNED_RANGES: Final = 17

#: The release multiplies the mean band embedding by 12 (C_max, hard-coded).
PROJECTION_SCALER: Final = 12.0

RangeKind = Literal['learned', 'aggregated', 'none']


@dataclass(frozen=True)
class SpectralRange:
    """One entry of the release's spectral table.

    Attributes:
        index: the release's ``projection_idx`` (0–16 learned, 17/18 aggregated,
            −1 for "no projection").
        key: the YAML key, e.g. ``'near_infrared_1'``.
        name: the release's label, e.g. ``'B08 (NIR 1)'``.
        min_nm: lower bound in nm (the release uses centre ± full FWHM).
        max_nm: upper bound in nm.
        kind: ``'learned'``, ``'aggregated'`` or ``'none'``.
        sources: learned indices an aggregated entry interpolates.
        release_sensors: the release's ``sensors`` field.
    """

    index: int
    key: str
    name: str
    min_nm: float
    max_nm: float
    kind: RangeKind
    sources: tuple[int, ...] = ()
    release_sensors: tuple[str, ...] = ()

    @property
    def center_nm(self) -> float:
        """Centre wavelength, 0.5·(min + max), in nm."""
        return 0.5 * (self.min_nm + self.max_nm)

    def official_weights(self) -> tuple[float, ...]:
        """The release's interpolation weights for an aggregated entry.

        ``w_i = |c − c_i| / Σ_j |c − c_j|`` — proportional to distance, exactly as
        ``SpectrumRangeProjectionAvg`` computes them (see the docs for why this
        looks unintended but is what the released weights were evaluated with).
        """
        if self.kind != 'aggregated':
            return ()
        centres = [range_by_index(i).center_nm for i in self.sources]
        dist = [abs(self.center_nm - c) for c in centres]
        total = sum(dist)
        return tuple(d / total for d in dist)


def _load_yaml() -> dict[str, Any]:
    text = (
        resources.files('torchgeo_smarties')
        .joinpath('data/release/electromagnetic_spectrum.yaml')
        .read_text(encoding='utf-8')
    )
    data: dict[str, Any] = yaml.safe_load(text)
    return data


@cache
def all_ranges() -> tuple[SpectralRange, ...]:
    """Every entry of the release's spectral table, sorted by index (−1 last)."""
    out = []
    for key, spec in _load_yaml().items():
        idx = int(spec['projection_idx'])
        agg = tuple(int(i) for i in spec.get('agg_projections') or ())
        kind: RangeKind = 'none' if idx < 0 else ('aggregated' if agg else 'learned')
        out.append(
            SpectralRange(
                index=idx,
                key=str(key),
                name=str(spec['name']).strip(),
                min_nm=float(spec['min_wavelength']),
                max_nm=float(spec['max_wavelength']),
                kind=kind,
                sources=agg,
                release_sensors=tuple(str(s) for s in spec.get('sensors') or ()),
            )
        )
    out.sort(key=lambda r: (r.index < 0, r.index))
    return tuple(out)


def range_by_key(key: str) -> SpectralRange:
    """Look up a range by its YAML key (e.g. ``'blue_2'``).

    Raises:
        KeyError: if the key is not in the table.
    """
    for r in all_ranges():
        if r.key == key:
            return r
    raise KeyError(f'{key!r} is not a release spectral range; valid: {[r.key for r in all_ranges()]}')


def range_by_index(index: int) -> SpectralRange:
    """Look up a range by its projection index (0–18).

    Raises:
        KeyError: if no entry has that index.
    """
    for r in all_ranges():
        if r.index == index:
            return r
    raise KeyError(f'no release spectral range has projection index {index}')


LEARNED_RANGES: Final = tuple(r for r in all_ranges() if r.kind == 'learned')
AGGREGATED_RANGES: Final = tuple(r for r in all_ranges() if r.kind == 'aggregated')
NO_PROJECTION_RANGES: Final = tuple(r for r in all_ranges() if r.kind == 'none')

assert [r.index for r in LEARNED_RANGES] == list(range(NUM_LEARNED_RANGES))
