"""``smarties bands``: list sensors, bands and the learned ranges they resolve to.

The building blocks are public so that the documentation is generated from the
registry itself (see :func:`write_docs_assets`), never copied by hand:

* :func:`band_records` / :func:`bands_json`: machine-readable description of the
  registry (wavelengths in nm) with each band's resolution under every policy;
* :func:`format_table`: the human-readable table the CLI prints;
* :func:`plot_coverage`: the band-coverage chart (paper Fig. 1b);
* :func:`write_docs_assets`: the reStructuredText tables and the chart for the docs.
"""

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final, cast

from .. import __version__
from ..errors import OutOfSpectrumError, SmartiesError, UnresolvableBandError
from .plan import POLICIES, InterpolationPolicy, OutOfRange, resolve_band
from .ranges import AGGREGATED_RANGES, LEARNED_RANGES, NO_PROJECTION_RANGES, range_by_index
from .registry import get_sensor, list_presets, list_sensors
from .sensors import Band, Sensor

__all__ = (
    'ALL_POLICIES',
    'DISPLAY_POLICIES',
    'band_records',
    'bands_json',
    'build_parser',
    'format_table',
    'main',
    'plot_coverage',
    'resolution_record',
    'select_sensors',
    'write_docs_assets',
)

#: Policies shown side by side by ``--all-policies`` and in the docs.
DISPLAY_POLICIES: Final[tuple[InterpolationPolicy, ...]] = ('linear', 'nearest', 'official')

#: Every policy, typed (``plan.POLICIES`` is a plain ``tuple[str, ...]``).
ALL_POLICIES: Final = cast(tuple[InterpolationPolicy, ...], POLICIES)

#: Wavelengths at or above this (1 mm) are microwave: shown in cm and GHz, not µm.
_MICROWAVE_NM: Final = 1e6
_SPEED_OF_LIGHT: Final = 299_792_458.0
_DASH: Final = '—'


def select_sensors(names: Iterable[str] | None = None) -> tuple[Sensor, ...]:
    """The sensors named (ids or aliases, case-insensitive), or all registered ones.

    Args:
        names: sensor ids or aliases; ``None`` or empty for every registered sensor.

    Returns:
        The sensors, in the order given (duplicates removed).

    Raises:
        UnknownSensorError: if a name is not registered.
    """
    if not names:
        return list_sensors()
    out: dict[str, Sensor] = {}
    for name in names:
        sensor = get_sensor(name)
        out.setdefault(sensor.id, sensor)
    return tuple(out.values())


def resolution_record(band: Band, policy: InterpolationPolicy, out_of_range: OutOfRange = 'error') -> dict[str, Any]:
    """How *band* resolves under *policy*, as a JSON-ready dict.

    Args:
        band: the band.
        policy: an interpolation policy (see :mod:`~torchgeo_smarties.spectrum.plan`).
        out_of_range: what to do with bands outside the pretraining spectrum.

    Returns:
        ``{'indices', 'weights', 'ranges', 'how', 'text', 'error'}``. A band the
        policy cannot project has empty *indices*, ``how='unresolvable'`` (or
        ``'out_of_spectrum'``) and the reason in *error*; a band the release gives
        no projection (Sentinel-2 B10) has ``how='ignored'`` and no error.
    """
    try:
        proj = resolve_band(band, policy, out_of_range)
    except OutOfSpectrumError as err:
        return {
            'indices': [],
            'weights': [],
            'ranges': [],
            'how': 'out_of_spectrum',
            'text': f'{_DASH} outside the pretraining spectrum',
            'error': str(err),
        }
    except UnresolvableBandError as err:
        reason = 'not in the release table' if policy == 'official' else 'no learned projection'
        return {
            'indices': [],
            'weights': [],
            'ranges': [],
            'how': 'unresolvable',
            'text': f'{_DASH} {reason}',
            'error': str(err),
        }
    return {
        'indices': list(proj.indices),
        'weights': list(proj.weights),
        'ranges': [range_by_index(i).key for i in proj.indices],
        'how': proj.how,
        'text': 'ignored (no projection in the release)' if proj.ignored else proj.describe(),
        'error': None,
    }


def _band_record(band: Band, policies: Sequence[InterpolationPolicy], out_of_range: OutOfRange) -> dict[str, Any]:
    return {
        'id': band.id,
        'name': band.name,
        'aliases': list(band.aliases),
        'description': band.description,
        'center_nm': band.center_nm,
        'min_nm': band.min_nm,
        'max_nm': band.max_nm,
        'fwhm_nm': band.fwhm_nm,
        'gsd_m': band.gsd_m,
        'units': band.units,
        'polarization': band.polarization,
        'learned_index': band.learned_index,
        'release_index': band.release_index,
        'no_projection': band.release_index == -1,
        'resolution': {p: resolution_record(band, p, out_of_range) for p in policies},
    }


def band_records(
    sensors: Iterable[str] | None = None,
    policies: Sequence[InterpolationPolicy] = ALL_POLICIES,
    out_of_range: OutOfRange = 'error',
) -> list[dict[str, Any]]:
    """One record per sensor, with its bands and their resolution under each policy.

    Args:
        sensors: sensor ids/aliases; ``None`` for all registered sensors.
        policies: the policies to resolve every band under.
        out_of_range: what to do with bands outside the pretraining spectrum.

    Returns:
        A list of ``{'id', 'name', 'aliases', 'description', 'bands': [...]}``;
        wavelengths are in nm, GSD in m.

    Raises:
        UnknownSensorError: if a sensor name is not registered.
    """
    return [
        {
            'id': s.id,
            'name': s.name,
            'aliases': list(s.aliases),
            'description': s.description,
            'bands': [_band_record(b, policies, out_of_range) for b in s.bands],
        }
        for s in select_sensors(sensors)
    ]


def bands_json(
    sensors: Iterable[str] | None = None,
    policies: Sequence[InterpolationPolicy] = ALL_POLICIES,
    out_of_range: OutOfRange = 'error',
) -> dict[str, Any]:
    """The full machine-readable document ``smarties bands --json`` prints.

    Returns:
        ``{'version', 'units', 'policies', 'learned_ranges', 'release_entries', 'sensors'}``.
    """
    return {
        'version': __version__,
        'units': {'wavelength': 'nm', 'gsd': 'm'},
        'policies': list(policies),
        'learned_ranges': [
            {
                'index': r.index,
                'key': r.key,
                'name': r.name,
                'min_nm': r.min_nm,
                'max_nm': r.max_nm,
                'center_nm': r.center_nm,
            }
            for r in LEARNED_RANGES
        ],
        'release_entries': [
            {
                'index': r.index,
                'key': r.key,
                'name': r.name,
                'min_nm': r.min_nm,
                'max_nm': r.max_nm,
                'center_nm': r.center_nm,
                'kind': r.kind,
                'sources': list(r.sources),
                'official_weights': list(r.official_weights()),
            }
            for r in (*AGGREGATED_RANGES, *NO_PROJECTION_RANGES)
        ],
        'sensors': band_records(sensors, policies, out_of_range),
    }


def _fmt_wavelength(band: Band) -> str:
    """Centre wavelength: ``'442.7 nm (0.4427 µm)'`` or ``'5.547 cm (5.405 GHz)'``."""
    c = band.center_nm
    if c >= _MICROWAVE_NM:
        ghz = _SPEED_OF_LIGHT / (c * 1e-9) / 1e9
        return f'{c / 1e7:.4g} cm ({ghz:.4g} GHz)'
    return f'{c:g} nm ({c / 1e3:.4g} µm)'


def _fmt_width(band: Band) -> str:
    w = band.fwhm_nm
    if band.center_nm >= _MICROWAVE_NM:
        return f'{band.min_nm / 1e7:.3g}–{band.max_nm / 1e7:.3g} cm'
    return f'{w:g} nm'


def _fmt_gsd(band: Band) -> str:
    return _DASH if band.gsd_m is None else f'{band.gsd_m:g} m'


def format_table(
    sensors: Iterable[str] | None = None,
    policies: Sequence[InterpolationPolicy] = ('linear',),
    out_of_range: OutOfRange = 'error',
) -> str:
    """The human-readable listing ``smarties bands`` prints.

    One block per sensor: band name, centre wavelength (nm and µm; cm and GHz for
    SAR), bandwidth, GSD, the learned range(s) the band resolves to under each of
    *policies*, and the unit of the product's pixel values.

    Raises:
        UnknownSensorError: if a sensor name is not registered.
    """
    lines: list[str] = []
    for sensor in select_sensors(sensors):
        alias = f'  (aliases: {", ".join(sensor.aliases)})' if sensor.aliases else ''
        lines.append(f'{sensor.id}: {sensor.name}{alias}')
        header = ['band', 'centre', 'width', 'GSD', *(f'-> {p}' for p in policies), 'values']
        rows = [header]
        for b in sensor.bands:
            cells = [b.name, _fmt_wavelength(b), _fmt_width(b), _fmt_gsd(b)]
            cells += [resolution_record(b, p, out_of_range)['text'] for p in policies]
            cells.append(b.units)
            rows.append(cells)
        widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
        for r in rows:
            lines.append('  ' + '  '.join(c.ljust(w) for c, w in zip(r, widths)) + '  ' + r[-1])
        lines.append('')
    lines.append('Learned ranges: ' + ', '.join(f'{r.index}={r.key}' for r in LEARNED_RANGES))
    lines.append(
        "'—' means the policy cannot project the band (official: not in the release's table; "
        'learned: not a band SMARTIES was trained on); wavelengths are centre values.'
    )
    return '\n'.join(lines)


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
        ax = ax_s if r.min_nm >= _MICROWAVE_NM else ax_o
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
            ax = ax_s if b.center_nm >= _MICROWAVE_NM else ax_o
            style: dict[str, Any] = (
                {'color': 'white', 'hatch': '////'} if idx is None else {'color': colour[idx], 'alpha': 0.8}
            )
            ax.barh(y, hi - lo, left=lo, height=height * 0.92, edgecolor='black', linewidth=0.4, **style)
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


# ---------------------------------------------------------------------------- docs


def _rst_literal(text: str) -> str:
    return f'``{text}``' if text else ''


def _rst_cell(text: str) -> str:
    return text.replace('\\', '\\\\').replace('*', '\\*').replace('|', '\\|').replace('`', '\\`')


def _list_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]], widths: str = 'auto') -> list[str]:
    out = [f'.. list-table:: {title}'.rstrip(), '   :header-rows: 1', f'   :widths: {widths}', '']
    for row in (header, *rows):
        for j, cell in enumerate(row):
            out.append(f'   {"*" if j == 0 else " "} - {cell}' if cell else f'   {"*" if j == 0 else " "} -')
    out.append('')
    return out


def _rst_tables(policies: Sequence[InterpolationPolicy]) -> str:
    lines: list[str] = [
        '.. This file is generated by torchgeo_smarties.spectrum.cli.write_docs_assets(); do not edit.',
        '',
    ]
    for sensor in list_sensors():
        title = f'{sensor.name} (``{sensor.id}``)'
        lines += [title, '^' * len(title), '']
        if sensor.description:
            lines += [_rst_cell(sensor.description), '']
        if sensor.aliases:
            lines += ['Aliases: ' + ', '.join(_rst_literal(a) for a in sensor.aliases), '']
        header = ['Band', 'Centre (nm)', 'Min–max (nm)', 'GSD', *(f'``{p}``' for p in policies), 'Values', 'Aliases']
        rows = []
        for b in sensor.bands:
            cells = [_rst_literal(b.id), f'{b.center_nm:.6g}', f'{b.min_nm:.6g}–{b.max_nm:.6g}', _fmt_gsd(b)]
            for p in policies:
                rec = resolution_record(b, p)
                cells.append(_rst_literal(rec['text']) if rec['indices'] else _rst_cell(rec['text']))
            cells.append(_rst_cell(b.units))
            cells.append(', '.join(_rst_literal(a) for a in b.aliases))
            rows.append(cells)
        lines += _list_table('', header, rows)
    return '\n'.join(lines) + '\n'


def _rst_ranges() -> str:
    lines = ['.. This file is generated by torchgeo_smarties.spectrum.cli.write_docs_assets(); do not edit.', '']
    header = ['Index', 'Key', 'Release label', 'Min (nm)', 'Max (nm)', 'Centre (nm)', 'Kind', 'Sources · weights']
    rows = []
    for r in (*LEARNED_RANGES, *AGGREGATED_RANGES, *NO_PROJECTION_RANGES):
        src = ''
        if r.sources:
            src = ' + '.join(f'{w:.5g}·[{i}]' for i, w in zip(r.sources, r.official_weights()))
        rows.append(
            [
                str(r.index),
                _rst_literal(r.key),
                _rst_cell(r.name),
                f'{r.min_nm:.6g}',
                f'{r.max_nm:.6g}',
                f'{r.center_nm:.6g}',
                r.kind,
                src,
            ]
        )
    lines += _list_table('', header, rows)
    return '\n'.join(lines) + '\n'


def _rst_presets() -> str:
    lines = ['.. This file is generated by torchgeo_smarties.spectrum.cli.write_docs_assets(); do not edit.', '']
    rows = [[_rst_literal(k), str(len(v)), ', '.join(_rst_literal(b) for b in v)] for k, v in list_presets().items()]
    lines += _list_table('', ['Preset', 'Bands', 'Band ids, in channel order'], rows, widths='20 8 72')
    return '\n'.join(lines) + '\n'


def write_docs_assets(outdir: str | Path) -> list[Path]:
    """Generate the band-registry page's tables and chart from the registry.

    Writes ``ranges_table.rst`` (the release's spectral table), ``bands_table.rst``
    (every registered sensor's bands, resolved under each of :data:`DISPLAY_POLICIES`),
    ``presets_table.rst``, ``bands.json`` and ``band_coverage.png`` into *outdir*.
    The Sphinx ``conf.py`` calls this at build time.

    Args:
        outdir: output directory, created if missing.

    Returns:
        The files written.
    """
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        'ranges_table.rst': _rst_ranges(),
        'bands_table.rst': _rst_tables(DISPLAY_POLICIES),
        'presets_table.rst': _rst_presets(),
        'bands.json': json.dumps(bands_json(), indent=1, ensure_ascii=False) + '\n',
    }
    written = []
    for name, text in files.items():
        p = out / name
        p.write_text(text, encoding='utf-8')
        written.append(p)
    written.append(plot_coverage(out / 'band_coverage.png'))
    return written


# ---------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``smarties bands``."""
    parser = argparse.ArgumentParser(
        prog='smarties bands',
        description=(
            'List sensors, their bands (centre wavelength, bandwidth, GSD, value units) and the SMARTIES learned '
            'spectral range(s) each band resolves to.'
        ),
        epilog=(
            'examples:\n'
            '  smarties bands --sensor sentinel2\n'
            '  smarties bands --sensor landsat8 --all-policies\n'
            '  smarties bands --json --sensor s2\n'
            '  smarties bands --plot out/bands.png'
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        '--sensor',
        '-s',
        action='append',
        metavar='NAME',
        help='sensor id or alias (repeatable); default: all registered sensors',
    )
    policy = parser.add_mutually_exclusive_group()
    policy.add_argument(
        '--policy',
        '-p',
        choices=POLICIES,
        default='linear',
        help='interpolation policy for bands the model was not trained on (default: %(default)s)',
    )
    policy.add_argument(
        '--all-policies', action='store_true', help='show the linear, nearest and official resolutions side by side'
    )
    parser.add_argument(
        '--out-of-range',
        choices=('error', 'nearest'),
        default='error',
        help="bands outside the pretraining spectrum: report them ('error', default) or use the nearest range",
    )
    parser.add_argument(
        '--json',
        action='store_true',
        help='print machine-readable JSON (wavelengths in nm; resolution under every policy)',
    )
    parser.add_argument('--plot', metavar='FILE', type=Path, help='also draw the band-coverage chart to FILE (.png)')
    parser.add_argument('--presets', action='store_true', help='list the band-set presets instead of the bands')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``smarties bands``.

    Args:
        argv: the arguments after ``bands`` (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 2 for a usage error (unknown sensor, …).
    """
    args = build_parser().parse_args(None if argv is None else list(argv))
    policies: tuple[InterpolationPolicy, ...] = DISPLAY_POLICIES if args.all_policies else (args.policy,)
    try:
        if args.presets:
            presets = list_presets()
            if args.json:
                print(json.dumps(presets, indent=1))
            else:
                for name, bands in presets.items():
                    print(f'{name:<16} {len(bands):>2}  {", ".join(bands)}')
        elif args.json:
            doc = bands_json(args.sensor, ALL_POLICIES, args.out_of_range)
            print(json.dumps(doc, indent=1, ensure_ascii=False))
        else:
            print(format_table(args.sensor, policies, args.out_of_range))
        if args.plot is not None:
            path = plot_coverage(args.plot, args.sensor, policies[0])
            print(f'wrote {path}', file=sys.stderr)
    except SmartiesError as err:
        print(f'smarties bands: error: {err}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
