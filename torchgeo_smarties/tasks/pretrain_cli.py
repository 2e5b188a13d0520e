r"""``smarties pretrain``: SMARTIES MAE pretraining from a YAML config (LightningCLI / jsonargparse).

Examples::

    smarties pretrain --config configs/pretrain_tiny_cpu.yaml
    smarties pretrain --config configs/pretrain_vitb_paper.yaml --trainer.devices 8 --trainer.num_nodes 2 \\
        --trainer.strategy ddp
    smarties pretrain --config configs/pretrain_tiny_cpu.yaml --ckpt_path runs/last.ckpt   # resume
    smarties pretrain validate --config ...                                                # other subcommands

Without a subcommand ``fit`` is run. Any ``--model.*``, ``--data.*`` or ``--trainer.*`` option overrides the
file. Multi-GPU / multi-node training uses Lightning's DDP strategy (launch one process per GPU with
``torchrun``/SLURM, or let Lightning spawn them on a single node).

.. versionadded:: 0.1
"""

import sys
from collections.abc import Sequence
from typing import Any

__all__ = ('build_cli', 'main')

_SUBCOMMANDS = ('fit', 'validate', 'test', 'predict')


def build_cli(argv: Sequence[str], run: bool = True) -> Any:
    """Build the LightningCLI for :class:`SMARTIESPretraining` + :class:`PairedDataModule`.

    Args:
        argv: command-line arguments (without the program name).
        run: run the subcommand (``fit`` when none is given); False only parses and instantiates.

    Returns:
        The ``LightningCLI`` object (``.model``, ``.datamodule``, ``.trainer``).
    """
    from lightning.pytorch.cli import LightningCLI

    from ..configs import resolve_config_args
    from .paired_data import PairedDataModule
    from .pretraining import SMARTIESPretraining

    args = resolve_config_args(argv)  # bundled config names, package:// paths
    if run and (not args or args[0] not in _SUBCOMMANDS) and not any(a in ('-h', '--help') for a in args[:1]):
        args = ['fit', *args]
    return LightningCLI(
        SMARTIESPretraining,
        PairedDataModule,
        args=args,
        run=run,
        seed_everything_default=0,
        save_config_kwargs={'overwrite': True},
        parser_kwargs={'default_env': False} if not run else {'fit': {'default_env': False}},
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``smarties pretrain``; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        build_cli(args, run=True)
    except SystemExit as err:  # argparse/jsonargparse exit codes
        return int(err.code or 0) if isinstance(err.code, int) else 1
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
