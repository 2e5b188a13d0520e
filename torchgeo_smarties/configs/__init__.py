"""The bundled LightningCLI configs, usable by name: ``smarties fit --config eurosat_classification``.

The YAML files ship inside the package (``torchgeo_smarties/configs/*.yaml``; the clone's ``configs/``
links to them). ``--config`` takes a file path or a bundled name (``eurosat_classification``, with or
without ``.yaml``); ``smarties configs`` lists the names and ``smarties configs NAME`` prints one, to copy
and edit. A value ``package://PATH`` in a config is the file ``PATH`` inside the installed package (e.g. the
bundled sample raster ``package://data/samples/sentinel2_l1c_crop.tif``), so the configs run from any
directory. This module imports no torch (``smarties configs`` starts fast).

.. versionadded:: 0.2
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigNotFoundError

__all__ = (
    'CONFIG_DIR',
    'PACKAGE_ROOT',
    'PACKAGE_SCHEME',
    'config_path',
    'list_configs',
    'main',
    'resolve_config_args',
    'resolve_package_paths',
)

#: Directory of the bundled configs.
CONFIG_DIR = Path(__file__).resolve().parent
#: Root of the installed ``torchgeo_smarties`` package (what ``package://`` refers to).
PACKAGE_ROOT = CONFIG_DIR.parent
#: Prefix of paths inside the package in config values.
PACKAGE_SCHEME = 'package://'
_CONFIG_FLAGS = ('--config', '-c')


def list_configs() -> dict[str, str]:
    """Bundled config names → their one-line description (the first comment line of the file)."""
    out: dict[str, str] = {}
    for path in sorted(CONFIG_DIR.glob('*.yaml')):
        first = next((ln for ln in path.read_text(encoding='utf-8').splitlines() if ln.startswith('#')), '')
        out[path.stem] = first.lstrip('# ').strip()
    return out


def config_path(name_or_path: str | os.PathLike[str]) -> Path:
    """The config file for a path or a bundled name.

    Raises:
        ConfigNotFoundError: if it is neither an existing file nor a bundled name (the message lists the names).
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    text = os.fspath(name_or_path)
    stem = text[:-5] if text.endswith('.yaml') else text
    if os.sep not in stem and '/' not in stem:
        bundled = CONFIG_DIR / f'{stem}.yaml'
        if bundled.is_file():
            return bundled
    raise ConfigNotFoundError(
        f'config {text!r} is neither an existing file nor a bundled config; bundled configs: '
        f'{", ".join(list_configs())} (run "smarties configs")'
    )


def resolve_package_paths(text: str) -> str:
    """*text* with every ``package://PATH`` replaced by the absolute path of ``PATH`` inside the package."""
    return text.replace(PACKAGE_SCHEME, PACKAGE_ROOT.as_posix() + '/')


def _materialise(path: Path) -> Path:
    """*path*, or a temporary copy with ``package://`` paths resolved (removed at exit) if it uses any."""
    text = path.read_text(encoding='utf-8')
    if PACKAGE_SCHEME not in text:
        return path
    fd, tmp = tempfile.mkstemp(prefix=f'smarties-{path.stem}-', suffix='.yaml')
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
        f.write(resolve_package_paths(text))
    atexit.register(lambda: Path(tmp).unlink(missing_ok=True))
    return Path(tmp)


def resolve_config_args(argv: Sequence[str]) -> list[str]:
    """Command-line arguments with every ``--config``/``-c`` value resolved to a file (see :func:`config_path`).

    Raises:
        ConfigNotFoundError: for a config that is neither a file nor a bundled name.
    """
    out: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        flag, eq, value = arg.partition('=')
        if flag in _CONFIG_FLAGS and eq:
            out.append(f'{flag}={_materialise(config_path(value))}')
        elif arg in _CONFIG_FLAGS and i + 1 < len(args):
            out += [arg, str(_materialise(config_path(args[i + 1])))]
            i += 1
        else:
            out.append(arg)
        i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``smarties configs [NAME]``: list the bundled configs, or print one."""
    parser = argparse.ArgumentParser(
        prog='smarties configs',
        description='List the bundled LightningCLI configs (use them by name: smarties fit --config NAME), '
        'or print one to copy and edit.',
    )
    parser.add_argument('name', nargs='?', help='a bundled config to print')
    parser.add_argument('--path', action='store_true', help='print the file path instead of the content')
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.name is None:
        configs = list_configs()
        width = max(map(len, configs), default=0)
        for name, desc in configs.items():
            print(f'{name:<{width}}  {desc}')
        return 0
    path = config_path(args.name)
    print(path if args.path else path.read_text(encoding='utf-8'), end='\n' if args.path else '')
    return 0
