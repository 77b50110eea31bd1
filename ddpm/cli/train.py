"""``python -m ddpm train CONFIG [--flag value ...]``: train (or resume), optionally time-boxed, and export."""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from ..train_config import add_config_overrides, config_from_args


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``python -m ddpm train``: a config, a ``--flag`` per setting, time and export."""
    p.add_argument("config", help="a TOML file, or a bundled config name (mnist, fashion, letters, emoji)")
    add_config_overrides(p)
    p.add_argument("--minutes", type=float,
                   help="stop after this many minutes of training, saving the state and exporting a snapshot; "
                        "the same command again continues")
    p.add_argument("--export-to", help="also copy the final checkpoint folder here (e.g. checkpoints/mnist)")
    p.add_argument("--export-now", action="store_true",
                   help="do not train: export the EMA weights of the saved state as they are (a snapshot)")


def run(args) -> int:
    from ..train import Trainer

    config = config_from_args(args)
    if args.export_to and Path(args.export_to).exists() and not Path(args.export_to).is_dir():
        raise ValueError(f"--export-to {args.export_to} is a file: name a folder")  # before training, not after
    trainer = Trainer(config)
    if args.export_now:
        if trainer.step == 0:
            raise ValueError(f"{config.run_dir / 'state'} holds no training state to export")
        final = trainer.export()
    else:
        final = trainer.fit(minutes=args.minutes)
    if trainer.step < config.steps:
        print(f"stopped at step {trainer.step} of {config.steps}; the same command again continues")
    print(f"final checkpoint: {final}")
    if args.export_to:
        shutil.copytree(final, args.export_to, dirs_exist_ok=True)
        partial = f" (a snapshot at step {trainer.step} of {config.steps})" if trainer.step < config.steps else ""
        print(f"copied to {args.export_to}{partial}")
    return 0
