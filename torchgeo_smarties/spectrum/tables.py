"""Read sensor band tables (CSV): one band per row, centre wavelength and FWHM with a unit.

The format, shared by the hyperspectral sensors shipped in ``torchgeo_smarties/data/sensors/``
and by :func:`~torchgeo_smarties.spectrum.register_sensor_from_table`::

    # comment lines start with '#': cite the table's source here
    name,center,fwhm,unit,gsd
    B1,418.416,5.627,nm,30
    B2,0.424043,0.0055,um,30

Columns ``name``, ``center`` and ``unit`` are required; ``fwhm`` (empty: a line-like
band), ``gsd`` (m) and ``absorption`` (``true``/``false``: overrides the water-vapour
flag) are optional. Rows become the mapping form of
:func:`~torchgeo_smarties.spectrum.register_sensor`, so every value is validated there.
"""

import csv
import io
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Final, TextIO

from ..errors import SensorTableError
from .sensors import WATER_VAPOUR_WINDOWS_NM
from .units import to_nm

__all__ = ('OPTIONAL_COLUMNS', 'REQUIRED_COLUMNS', 'builtin_table', 'in_absorption_window', 'read_band_table')

#: Columns every band table has.
REQUIRED_COLUMNS: Final = ('name', 'center', 'unit')
#: Columns a band table may have.
OPTIONAL_COLUMNS: Final = ('fwhm', 'gsd', 'absorption')

_TRUE, _FALSE = ('true', 'yes', '1'), ('false', 'no', '0', '')


def in_absorption_window(center_nm: float) -> bool:
    """Whether a centre wavelength lies in a water-vapour absorption window (≈1.35–1.45 µm, ≈1.8–1.95 µm)."""
    return any(lo <= center_nm <= hi for lo, hi in WATER_VAPOUR_WINDOWS_NM)


def _rows(lines: Iterable[str], where: str) -> list[tuple[str, dict[str, object]]]:
    body = [(n, line) for n, line in enumerate(lines, 1) if line.strip() and not line.lstrip().startswith('#')]
    if not body:
        raise SensorTableError(
            f'{where}: the table has no header and no rows; expected columns {",".join(REQUIRED_COLUMNS)}'
        )
    reader = csv.reader(line for _, line in body)
    header = [h.strip().lower() for h in next(reader)]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    unknown = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if missing or unknown or len(set(header)) != len(header):
        raise SensorTableError(
            f'{where}: header {",".join(header)!r} is not valid (missing: {missing}, unknown: {unknown}); '
            f'required columns: {", ".join(REQUIRED_COLUMNS)}; optional: {", ".join(OPTIONAL_COLUMNS)}'
        )
    out: list[tuple[str, dict[str, object]]] = []
    for (lineno, _), cells in zip(body[1:], reader):
        if len(cells) != len(header):
            raise SensorTableError(f'{where}:{lineno}: {len(cells)} cells, but the header has {len(header)} columns')
        row = {k: v.strip() for k, v in zip(header, cells)}
        spec: dict[str, object] = {'center': row['center'], 'unit': row['unit']}
        if row.get('fwhm'):
            spec['fwhm'] = row['fwhm']
        if row.get('gsd'):
            spec['gsd'] = row['gsd']
        if 'absorption' in row:
            flag = row['absorption'].lower()
            if flag not in _TRUE + _FALSE:
                raise SensorTableError(f'{where}:{lineno}: absorption must be true or false, got {row["absorption"]!r}')
            spec['absorption'] = flag in _TRUE
        out.append((row['name'], spec))
    if not out:
        raise SensorTableError(f'{where}: the table has a header but no band rows')
    return out


def read_band_table(
    source: str | Path | TextIO, *, flag_absorption: bool = True
) -> list[tuple[str, dict[str, object]]]:
    """Read a band table into ``register_sensor`` band specs, in row order.

    Args:
        source: a path, or an open text file / ``io.StringIO``.
        flag_absorption: flag rows whose centre lies in a water-vapour absorption
            window (unless the table has an ``absorption`` column value for the row).

    Returns:
        One ``(name, spec)`` per row; *spec* has ``center``, ``unit`` and, when given
        (or flagged), ``fwhm``, ``gsd``, ``absorption``.

    Raises:
        SensorTableError: if the file is missing or unreadable, or the header or a row is malformed.
    """
    if isinstance(source, str | Path):
        path = Path(source)
        where = str(path)
        try:
            text = path.read_text(encoding='utf-8-sig')
        except FileNotFoundError as err:
            raise SensorTableError(f'sensor table {where!r} does not exist; give the path of a CSV band table') from err
        except (OSError, UnicodeDecodeError) as err:
            raise SensorTableError(f'cannot read sensor table {where!r}: {err}') from err
    elif isinstance(source, io.TextIOBase) or hasattr(source, 'read'):
        where = str(getattr(source, 'name', '<table>'))
        text = source.read()
        if not isinstance(text, str):
            raise SensorTableError(f'{where}: open the table in text mode (got {type(text).__name__})')
    else:
        raise SensorTableError(f'a sensor table is a path or a text file, got {type(source).__name__}')
    rows = _rows(text.splitlines(), where)
    if flag_absorption:
        for _, spec in rows:
            if 'absorption' not in spec:
                try:
                    centre = to_nm(float(str(spec['center'])), str(spec['unit']))
                except ValueError:
                    continue  # register_sensor reports the bad value with the band name
                spec['absorption'] = in_absorption_window(centre)
    return rows


def builtin_table(name: str) -> list[tuple[str, dict[str, object]]]:
    """A band table shipped in ``torchgeo_smarties/data/sensors/`` (e.g. ``'enmap'``), absorption bands flagged."""
    text = resources.files('torchgeo_smarties').joinpath(f'data/sensors/{name}.csv').read_text(encoding='utf-8')
    return read_band_table(io.StringIO(text))
