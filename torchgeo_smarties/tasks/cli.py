"""``smarties fit|validate|test --config NAME|X.yaml``: LightningCLI with torchgeo's data modules and our tasks.

Like ``torchgeo.main`` (``subclass_mode`` for model and data, bare class names resolve for
torchgeo's data modules and tasks), but importing :mod:`torchgeo_smarties` first so that the
SMARTIES timm models and task classes (``SMARTIESClassification``, ...) are registered, and with:

* ``--config`` taking a bundled config name (:mod:`torchgeo_smarties.configs`) or a file;
* checkpoints with ``last.ckpt`` (``ModelCheckpoint(save_last=True)`` unless configured otherwise), so
  ``--ckpt_path <checkpoints dir>/last.ckpt`` resumes;
* a :class:`~torchgeo_smarties.tasks.NormalizationCheck` callback, so torchgeo's own tasks given SMARTIES
  weights warn when the data module's normalisation differs from the weights';
* config errors (unknown key, invalid value) as one line naming the key, exit status 2; errors of the
  task or data module (e.g. a wrong dataset root) as one typed line, exit status 1.
"""

import os
import re
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError, DatasetRootError, SmartiesError

__all__ = ('build_cli', 'config_error_line', 'dataset_root_error', 'main')

_GDAL_ENV = {
    'GDAL_DISABLE_READDIR_ON_OPEN': 'EMPTY_DIR',
    'AWS_NO_SIGN_REQUEST': 'YES',
    'GDAL_MAX_RAW_BLOCK_CACHE_SIZE': '200000000',
    'GDAL_SWATH_SIZE': '200000000',
    'VSI_CURL_CACHE_SIZE': '200000000',
}


def build_cli(args: Sequence[str] | dict[str, Any] | None = None, run: bool = True, **kwargs: Any) -> Any:
    """Create the LightningCLI (``run=False`` only parses and instantiates; used by the config tests).

    Args:
        args: command-line arguments (subcommand first when *run* is True) or a config dict.
        run: run the subcommand.
        **kwargs: extra ``LightningCLI`` arguments (e.g. ``trainer_defaults``).

    Returns:
        The ``LightningCLI`` object (``.model``, ``.datamodule``, ``.trainer``).
    """
    # bare class names in configs resolve through these imports (subclasses of the base classes)
    import torchgeo.datamodules
    import torchgeo.tasks
    from lightning.pytorch.cli import LightningCLI
    from torchgeo.datamodules import BaseDataModule
    from torchgeo.tasks import BaseTask

    import torchgeo_smarties.tasks  # noqa: F401

    from .. import __version__
    from ..configs import resolve_config_args

    try:  # backwards-compatible torchgeo.trainers aliases (deprecated, still resolvable by name)
        import torchgeo.trainers  # noqa: F401
    except ImportError:  # pragma: no cover
        pass
    for k, v in _GDAL_ENV.items():
        os.environ.setdefault(k, v)
    kwargs.setdefault('seed_everything_default', 0)
    kwargs.setdefault('save_config_kwargs', {'overwrite': True})
    if isinstance(args, Sequence) and not isinstance(args, str):
        args = resolve_config_args(args)
    # we pass the arguments on purpose (the dispatcher strips the program and subcommand names)
    warnings.filterwarnings('ignore', message=".*LightningCLI's args parameter is intended to run from within")

    from lightning.pytorch.callbacks import ModelCheckpoint
    from torchgeo.datasets import DatasetNotFoundError

    from .normalization_check import NormalizationCheck

    class SmartiesCLI(LightningCLI):
        def _run_subcommand(self, subcommand: str) -> None:
            try:
                super()._run_subcommand(subcommand)
            except DatasetNotFoundError as err:
                raise dataset_root_error(err, self.datamodule) from None

        def instantiate_trainer(self, **kw: Any) -> Any:
            trainer: Any = super().instantiate_trainer(**kw)
            for cb in trainer.checkpoint_callbacks:  # the default ModelCheckpoint, or one left at save_last=None
                if isinstance(cb, ModelCheckpoint) and cb.save_last is None:
                    cb.save_last = True
            if not any(isinstance(cb, NormalizationCheck) for cb in trainer.callbacks):
                trainer.callbacks.append(NormalizationCheck())  # torchgeo's own tasks given SMARTIES weights
            return trainer

    parser_kwargs = {'version': f'torchgeo_smarties {__version__}', 'exit_on_error': False}
    return SmartiesCLI(
        model_class=BaseTask,
        datamodule_class=BaseDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        parser_kwargs=parser_kwargs,
        args=list(args) if isinstance(args, Sequence) and not isinstance(args, str) else args,  # type: ignore[arg-type]
        run=run,
        **kwargs,
    )


def config_error_line(err: BaseException) -> str:
    """One line for a jsonargparse/LightningCLI config error: the full key and what is wrong with it."""
    text = str(err)
    lines = [ln.strip(' -') for ln in text.splitlines() if ln.strip(' -')]
    keys = re.findall(r'Parser key "([^"]+)"', text)
    cls = re.search(r"given class_path '([^']+)'", text)
    option = re.search(r"Option '([^']+)' is not accepted", text)
    if option and keys:
        where = f' by {cls.group(1)}' if cls else ''
        return f'{keys[0]}.init_args.{option.group(1)}: unknown option (not accepted{where})'
    if not keys:
        return lines[0] if lines else type(err).__name__
    key = f'{keys[0]}.init_args.{keys[1]}' if cls and len(keys) > 1 else keys[-1]
    reasons = [ln for ln in lines if ln.startswith('Expected') and 'NoneType' not in ln]
    reason = reasons[-1] if reasons else next((ln for ln in lines[1:] if not ln.startswith('Parser key')), lines[0])
    given = re.search(r'^\s*Given value: (.*)$', text, re.MULTILINE)
    if given and 'Got value' not in reason and 'NestedArg' not in given.group(1):
        reason = f'{reason}, got {given.group(1)!r}'
    return f'{key}: {reason}'


def _smarties_cause(err: BaseException) -> SmartiesError | None:
    seen: set[int] = set()
    cur: BaseException | None = err
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, SmartiesError):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def dataset_root_error(err: BaseException, datamodule: Any = None) -> DatasetRootError:
    """torchgeo's "dataset not found" as a :class:`DatasetRootError` naming the root and the expected layout."""
    kwargs = getattr(datamodule, 'kwargs', None) or {}
    root = kwargs.get('root', 'data')
    dataset = getattr(datamodule, 'dataset_class', None)
    name = dataset.__name__ if isinstance(dataset, type) else 'the dataset'
    layout = getattr(datamodule, 'expected_layout', None) or (
        f'the layout of torchgeo.datasets.{name}' if isinstance(dataset, type) else "its torchgeo class's layout"
    )
    return DatasetRootError(
        f'dataset root {os.fspath(root)!r} does not hold {name}: expected {layout}; pass the right directory with '
        '--data.dict_kwargs.root DIR, or add --data.dict_kwargs.download true to download it'
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``smarties fit|validate|test`` (the subcommand is ``argv[0]``).

    Returns:
        0 on success; 2 for a config error (one line on stderr naming the key).

    Raises:
        ConfigNotFoundError: for a ``--config`` that is neither a file nor a bundled name.
        DatasetRootError: if the data module's dataset root does not hold the dataset.
        SmartiesError: for other typed errors of the task or data module (the dispatcher prints one line).
    """
    from jsonargparse import ArgumentError

    args = list(sys.argv[1:] if argv is None else argv)
    name = args[0] if args else 'fit'
    try:
        build_cli(args)
    except ArgumentError as err:
        cause = _smarties_cause(err)
        if cause is not None:
            raise cause from None
        print(f'smarties {name}: config error: {config_error_line(err)}', file=sys.stderr)
        return 2
    except SmartiesError:
        raise
    except Exception as err:
        cause = _smarties_cause(err)
        if cause is not None:
            raise cause from None
        if type(err).__module__.startswith('jsonargparse'):
            raise ConfigError(config_error_line(err)) from None
        raise
    return 0
