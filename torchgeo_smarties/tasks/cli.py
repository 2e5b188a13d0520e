"""``smarties fit|validate|test --config X.yaml``: LightningCLI with torchgeo's data modules and our tasks.

Like ``torchgeo.main`` (``subclass_mode`` for model and data, bare class names resolve for
torchgeo's data modules and tasks), but importing :mod:`torchgeo_smarties` first so that the
SMARTIES timm models and task classes (``SMARTIESClassification``, ...) are registered.
"""

import os
from collections.abc import Sequence
from typing import Any

__all__ = ('build_cli', 'main')

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

    try:  # backwards-compatible torchgeo.trainers aliases (deprecated, still resolvable by name)
        import torchgeo.trainers  # noqa: F401
    except ImportError:  # pragma: no cover
        pass
    for k, v in _GDAL_ENV.items():
        os.environ.setdefault(k, v)
    kwargs.setdefault('seed_everything_default', 0)
    kwargs.setdefault('save_config_kwargs', {'overwrite': True})
    return LightningCLI(
        model_class=BaseTask,
        datamodule_class=BaseDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        parser_kwargs={'version': f'torchgeo_smarties {__version__}'},
        args=list(args) if isinstance(args, Sequence) and not isinstance(args, str) else args,  # type: ignore[arg-type]
        run=run,
        **kwargs,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``smarties fit|validate|test`` (the subcommand is ``argv[0]``).

    Returns:
        0 on success (LightningCLI exits through ``SystemExit`` for ``--help`` and parse errors).
    """
    build_cli(None if argv is None else list(argv))
    return 0
