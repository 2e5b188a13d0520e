"""The human-readable band table ``smarties bands`` prints (and the value formatters the docs share)."""

from collections.abc import Iterable, Sequence
from typing import Final

from .plan import InterpolationPolicy, OutOfRange
from .ranges import LEARNED_RANGES
from .records import resolution_record, select_sensors
from .sensors import MICROWAVE_NM, Band
from .units import SPEED_OF_LIGHT

__all__ = ('format_gsd', 'format_table', 'format_wavelength', 'format_width')

_DASH: Final = '—'


def format_wavelength(band: Band) -> str:
    """Centre wavelength: ``'442.7 nm (0.4427 µm)'`` or ``'5.547 cm (5.405 GHz)'``."""
    c = band.center_nm
    if c >= MICROWAVE_NM:
        ghz = SPEED_OF_LIGHT / (c * 1e-9) / 1e9
        return f'{c / 1e7:.4g} cm ({ghz:.4g} GHz)'
    return f'{c:g} nm ({c / 1e3:.4g} µm)'


def format_width(band: Band) -> str:
    """Bandwidth: ``'106 nm'``, or the range in cm for microwave bands."""
    w = band.fwhm_nm
    if band.center_nm >= MICROWAVE_NM:
        return f'{band.min_nm / 1e7:.3g}–{band.max_nm / 1e7:.3g} cm'
    return f'{w:g} nm'


def format_gsd(band: Band) -> str:
    """Native ground sampling distance, ``'10 m'`` (a dash when unknown)."""
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
    chosen = select_sensors(sensors)
    for sensor in chosen:
        alias = f'  (aliases: {", ".join(sensor.aliases)})' if sensor.aliases else ''
        lines.append(f'{sensor.id}: {sensor.name}{alias}')
        header = ['band', 'centre', 'width', 'GSD', *(f'-> {p}' for p in policies), 'values']
        rows = [header]
        for b in sensor.bands:
            cells = [b.name + (' [abs]' if b.absorption else ''), format_wavelength(b), format_width(b), format_gsd(b)]
            cells += [resolution_record(b, p, out_of_range)['text'] for p in policies]
            cells.append(b.units)
            rows.append(cells)
        widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
        for r in rows:
            lines.append('  ' + '  '.join(c.ljust(w) for c, w in zip(r, widths)) + '  ' + r[-1])
        lines.append('')
    if any(b.absorption for sensor in chosen for b in sensor.bands):
        lines.append(
            "[abs]: a water-vapour absorption band (≈1.35–1.45 µm, ≈1.8–1.95 µm), left out of the sensor's default "
            'band set (name it explicitly to use it).'
        )
    lines.append('Learned ranges: ' + ', '.join(f'{r.index}={r.key}' for r in LEARNED_RANGES))
    lines.append(
        "'—' means the policy cannot project the band (official: not in the release's table; "
        'learned: not a band SMARTIES was trained on); wavelengths are centre values.'
    )
    return '\n'.join(lines)
