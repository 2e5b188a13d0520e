"""The band-coverage chart (paper Fig. 1b); matplotlib is imported only when a chart is drawn."""

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

from .plan import InterpolationPolicy
from .ranges import LEARNED_RANGES
from .records import resolution_record, select_sensors
from .sensors import MICROWAVE_NM, Band

__all__ = ('plot_coverage',)

#: Sensors with more bands than this (hyperspectral) are drawn without band labels.
_MAX_LABELLED: Final = 40

#: One distinct colour per learned range (0–16).
_PALETTE: Final = (
    '#1f77b4',
    '#aec7e8',
    '#ff7f0e',
    '#ffbb78',
    '#2ca02c',
    '#98df8a',
    '#d62728',
    '#ff9896',
    '#9467bd',
    '#c5b0d5',
    '#8c564b',
    '#c49c94',
    '#e377c2',
    '#f7b6d2',
    '#7f7f7f',
    '#17becf',
    '#bcbd22',
)


def _pack_lanes(spans: Sequence[tuple[float, float]]) -> list[int]:
    """Assign overlapping intervals to lanes (greedy interval partitioning); returns one lane per span."""
    order = sorted(range(len(spans)), key=lambda i: spans[i])
    ends: list[float] = []
    lane = [0] * len(spans)
    for i in order:
        lo, hi = spans[i]
        for j, end in enumerate(ends):
            if end <= lo * (1 + 1e-9):
                ends[j] = hi
                lane[i] = j
                break
        else:
            ends.append(hi)
            lane[i] = len(ends) - 1
    return lane


def _primary_index(band: Band, policy: InterpolationPolicy) -> int | None:
    rec = resolution_record(band, policy, 'nearest')
    if not rec['indices']:
        return None
    return int(max(zip(rec['weights'], rec['indices']))[1])


def plot_coverage(
    path: str | Path, sensors: Iterable[str] | None = None, policy: InterpolationPolicy = 'linear', dpi: int = 150
) -> Path:
    """Draw the band-coverage chart (paper Fig. 1b) and save it as an image.

    The 17 learned ranges are drawn as horizontal bars (one row each) on top;
    below them, one row per sensor with its bands, coloured by the learned range
    each band mostly resolves to under *policy* (grey: no projection). The
    wavelength axis is logarithmic and broken between thermal infrared and the
    C-band SAR ranges (~5.5 cm).

    Args:
        path: output file; the format follows the suffix (``.png``, ``.svg``, ``.pdf``).
        sensors: sensor ids/aliases; ``None`` for all registered sensors.
        policy: the policy that decides each band's colour.
        dpi: resolution of raster output.

    Returns:
        The path written.

    Raises:
        UnknownSensorError: if a sensor name is not registered.
    """
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    chosen = select_sensors(sensors)
    colour = {r.index: _PALETTE[r.index % len(_PALETTE)] for r in LEARNED_RANGES}
    optical_lim = (380.0, 14_000.0)
    sar_lim = (5.3e7, 5.8e7)

    labels = [f'[{r.index}] {r.key}' for r in LEARNED_RANGES] + [s.id for s in chosen]
    n_rows = len(labels)
    fig, (ax_o, ax_s) = plt.subplots(
        1, 2, sharey=True, figsize=(12, 0.32 * n_rows + 1.6), gridspec_kw={'width_ratios': [6, 1], 'wspace': 0.04}
    )

    for row, r in enumerate(LEARNED_RANGES):
        ax = ax_s if r.min_nm >= MICROWAVE_NM else ax_o
        ax.barh(
            row, r.max_nm - r.min_nm, left=r.min_nm, height=0.7, color=colour[r.index], edgecolor='black', linewidth=0.5
        )
    for k, sensor in enumerate(chosen):
        row = len(LEARNED_RANGES) + k
        spans = []
        for b in sensor.bands:
            lo, hi = b.min_nm, b.max_nm
            if hi - lo <= 0:  # a line-like band (e.g. SAR given as one frequency)
                lo, hi = b.center_nm * 0.999, b.center_nm * 1.001
            spans.append((lo, hi, b))
        lanes = _pack_lanes([(lo, hi) for lo, hi, _ in spans])
        n_lanes = max(lanes) + 1
        height = 0.8 / n_lanes
        for (lo, hi, b), lane in zip(spans, lanes):
            y = row - 0.4 + height * (lane + 0.5)
            idx = _primary_index(b, policy)
            ax = ax_s if b.center_nm >= MICROWAVE_NM else ax_o
            style: dict[str, Any] = (
                {'color': 'white', 'hatch': '////'} if idx is None else {'color': colour[idx], 'alpha': 0.8}
            )
            ax.barh(y, hi - lo, left=lo, height=height * 0.92, edgecolor='black', linewidth=0.4, **style)
            if len(sensor.bands) <= _MAX_LABELLED:
                ax.text(b.center_nm, y, b.name, ha='center', va='center', fontsize=min(5.0, 12 * height), clip_on=True)

    ax_o.set_xscale('log')
    ax_o.set_xlim(*optical_lim)
    ax_o.set_xticks([400, 500, 700, 1000, 1500, 2000, 3000, 5000, 10_000])
    ax_o.get_xaxis().set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f'{v / 1e3:g}'))
    ax_o.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax_o.set_xlabel('wavelength (µm, log scale)')
    ax_s.set_xlim(*sar_lim)
    ax_s.set_xticks([5.4e7, 5.6e7])
    ax_s.get_xaxis().set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f'{v / 1e7:g}'))
    ax_s.set_xlabel('C-band (cm)')
    ax_o.set_yticks(range(n_rows))
    ax_o.set_yticklabels(labels, fontsize=7)
    ax_o.set_ylim(n_rows - 0.5, -0.5)
    ax_o.axhline(len(LEARNED_RANGES) - 0.5, color='black', linewidth=0.8)
    ax_s.axhline(len(LEARNED_RANGES) - 0.5, color='black', linewidth=0.8)
    ax_o.spines['right'].set_visible(False)
    ax_s.spines['left'].set_visible(False)
    ax_s.tick_params(axis='y', left=False)
    for ax in (ax_o, ax_s):
        ax.grid(axis='x', which='major', linewidth=0.3, alpha=0.5)
    handles = [Patch(color=colour[r.index], label=f'{r.index} {r.key}') for r in LEARNED_RANGES]
    handles.append(Patch(facecolor='white', edgecolor='black', hatch='////', label='no projection'))
    fig.legend(handles=handles, loc='lower center', ncol=6, fontsize=6, frameon=False)
    fig.suptitle(
        f"SMARTIES learned spectral ranges (top) and sensor bands coloured by the range they resolve to ('{policy}')",
        fontsize=9,
    )
    fig.subplots_adjust(left=0.16, right=0.98, top=1 - 0.5 / fig.get_figheight(), bottom=1.3 / fig.get_figheight())
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out
