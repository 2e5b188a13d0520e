"""The ``smarties`` command line.

Subcommands are dispatched lazily through :data:`COMMANDS`: a subcommand's module
is imported only when that subcommand runs, so ``smarties bands`` starts fast and
works even if the heavier parts of the package (models, trainers) fail to import.
Each entry names ``'package.module:function'``; the function takes the remaining
arguments as ``list[str]`` and returns an exit status.
"""

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from . import __version__
from .errors import SmartiesError

__all__ = ('COMMANDS', 'Command', 'build_parser', 'main')


@dataclass(frozen=True)
class Command:
    """One ``smarties`` subcommand.

    Attributes:
        target: ``'package.module:function'`` run with the remaining arguments.
        help: one-line description shown by ``smarties --help``.
        pass_name: whether the subcommand's own name is passed as the first
            argument (for LightningCLI-style ``fit``/``validate``/``test``).
    """

    target: str
    help: str
    pass_name: bool = False


#: The subcommand table: name -> :class:`Command`.
COMMANDS: Final[dict[str, Command]] = {
    'bands': Command(
        'torchgeo_smarties.spectrum.cli:main',
        'list sensors, bands, wavelengths, GSD and the learned spectral range each band resolves to',
    ),
    'embed': Command(
        'torchgeo_smarties.inference.cli:embed_main',
        'compute SMARTIES embeddings of images (GeoTIFF, folders, samples)',
    ),
    'predict': Command('torchgeo_smarties.inference.cli:predict_main', 'run a fine-tuned model on images'),
    'pretrain': Command(
        'torchgeo_smarties.tasks.pretrain_cli:main', 'pretrain / continue pretraining the SMARTIES MAE'
    ),
    'fit': Command('torchgeo_smarties.tasks.cli:main', 'fine-tune a task (LightningCLI, --config YAML)', True),
    'validate': Command('torchgeo_smarties.tasks.cli:main', 'validate a task (LightningCLI, --config YAML)', True),
    'test': Command('torchgeo_smarties.tasks.cli:main', 'test a task (LightningCLI, --config YAML)', True),
    'eval': Command(
        'torchgeo_smarties.tasks.eval_cli:main', 'run the paper evaluation protocols (linear probe, kNN, …)'
    ),
    'index': Command('torchgeo_smarties.retrieval.cli:index_main', 'build a vector index of embeddings (faiss)'),
    'search': Command('torchgeo_smarties.retrieval.cli:search_main', 'find the patches most similar to a query'),
    'similarity': Command(
        'torchgeo_smarties.retrieval.cli:similarity_main', 'map the cosine similarity of a scene to one patch'
    ),
    'configs': Command('torchgeo_smarties.configs:main', 'list the bundled configs (use them by name: --config NAME)'),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser (used for ``--help``, ``--version`` and usage errors)."""
    parser = argparse.ArgumentParser(
        prog='smarties',
        description='SMARTIES: a sensor-agnostic, spectrum-aware remote-sensing foundation model.',
        epilog="Run 'smarties COMMAND --help' for the options of a command.",
    )
    parser.add_argument('--version', action='version', version=f'%(prog)s {__version__}')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND', title='commands')
    for name, cmd in COMMANDS.items():
        sub.add_parser(name, help=cmd.help, add_help=False)
    return parser


def _load(name: str, cmd: Command) -> Callable[[list[str]], int] | None:
    module_name, _, func_name = cmd.target.partition(':')
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        missing = err.name or ''
        if module_name == missing or module_name.startswith(missing + '.'):
            print(
                f"smarties {name}: this command is not available in this installation (module '{module_name}' "
                "is missing); reinstall torchgeo-smarties or run 'smarties --help' for the available commands",
                file=sys.stderr,
            )
        else:
            print(
                f"smarties {name}: a dependency is missing: {err}; install it (e.g. pip install '{missing}') "
                'or reinstall torchgeo-smarties',
                file=sys.stderr,
            )
        return None
    func = getattr(module, func_name or 'main', None)
    if not callable(func):
        print(f"smarties {name}: '{module_name}' has no entry point '{func_name}'", file=sys.stderr)
        return None
    return func  # type: ignore[no-any-return]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``smarties`` console script.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status of the subcommand; 2 for a usage error, 1 if the
        subcommand is unavailable or fails with a :class:`~torchgeo_smarties.errors.SmartiesError`.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not args or args[0].startswith('-'):
        try:
            parser.parse_args(args)
        except SystemExit as exit_:  # --help / --version / unknown option
            return exit_.code if isinstance(exit_.code, int) else 2
        parser.print_usage(sys.stderr)
        print('smarties: error: a command is required; run "smarties --help" for the list', file=sys.stderr)
        return 2
    name, rest = args[0], args[1:]
    cmd = COMMANDS.get(name)
    if cmd is None:
        parser.print_usage(sys.stderr)
        print(f'smarties: error: unknown command {name!r}; choose from: {", ".join(COMMANDS)}', file=sys.stderr)
        return 2
    func = _load(name, cmd)
    if func is None:
        return 1
    try:
        code = func([name, *rest] if cmd.pass_name else rest)
    except SmartiesError as err:
        print(f'smarties {name}: error: {err}', file=sys.stderr)
        return 1
    except SystemExit as exit_:  # argparse in a subcommand
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return 0 if code is None else int(code)


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
