"""``python -m ddpm data fetch`` (the datasets) and ``python -m ddpm models`` (the bundled checkpoints)."""
from __future__ import annotations

import argparse


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """``data fetch [NAMES] [--force]``."""
    dsub = p.add_subparsers(dest="data_command", required=True)
    f = dsub.add_parser("fetch", help="download and convert datasets (idempotent)")
    f.add_argument("names", nargs="*", help="mnist fashion letters emoji (default: all)")
    f.add_argument("--force", action="store_true", help="convert again even if done")


def run_data(args) -> int:
    from .. import data

    paths = data.fetch(args.names or None, force=args.force)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def add_models_arguments(p: argparse.ArgumentParser) -> None:
    """``models`` takes no options."""


def run_models(args) -> int:
    from ..checkpoint import CHECKPOINTS_DIR, bundled, load

    names = bundled()
    if not names:
        print(f"no bundled models under {CHECKPOINTS_DIR} yet")
    for name in names:
        m = load(name)
        print(f"{name:10s} {m.denoiser.family:14s} {m.denoiser.num_parameters() / 1e6:5.2f}M params  "
              f"{m.channels}x{m.image_size}x{m.image_size}  classes: {', '.join(m.class_names or ['-'])}")
    return 0
