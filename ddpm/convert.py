"""Rewrite checkpoint folders in today's layout (``ddpm.checkpoint.FORMAT``), in place, weights bit for bit.

    python -m ddpm.convert checkpoints/mnist [more folders]    # or: python -m ddpm.convert checkpoints/*

A ``ddpm-checkpoint/1`` folder (config.json + model.safetensors) becomes ddpm_config.json + unet/ (+
class_embedding/) + scheduler/, its card is regenerated (``ddpm.card``), and the old files go: one copy
of the weights. A folder already in today's layout is rewritten the same way, so running it again is
harmless and refreshes the card. ``ddpm.load`` reads either layout: converting is for sharing, not needed.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import torch

from .card import model_card
from .checkpoint import CARD_NAME, CONFIG_NAME, OWN_CONFIG, WEIGHTS_NAME, DiffusionModel, is_v1_folder, load


def same_weights(a: DiffusionModel, b: DiffusionModel) -> bool:
    """Whether two models hold the same tensors, names, dtypes and values, bit for bit."""
    x, y = a.denoiser.state_dict(), b.denoiser.state_dict()
    return list(x) == list(y) and all(x[k].dtype == y[k].dtype and torch.equal(x[k], y[k]) for k in x)


def convert(folder: str | Path) -> Path:
    """Rewrite ``folder`` in today's layout with a fresh card; ValueError (and nothing changed) if the rewritten
    folder would not load the same weights. Extra parts already there (classifier/) stay."""
    folder = Path(folder)
    model = load(folder, device="cpu")
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(tmp, card=model_card(model))
    again = load(tmp, device="cpu")
    if not same_weights(model, again) or again.schedule != model.schedule or again.classes != model.classes:
        shutil.rmtree(tmp)
        raise ValueError(f"{folder}: the rewritten folder does not load the same model; nothing was changed")
    # in an order that leaves a folder that loads at every point: the parts, then our own file (which
    # load prefers from then on), then the ddpm-checkpoint/1 files, if any, go
    for item in tmp.iterdir():
        if item.name != OWN_CONFIG:
            _replace(item, folder / item.name)
    _replace(tmp / OWN_CONFIG, folder / OWN_CONFIG)
    tmp.rmdir()
    if is_v1_folder(folder):
        (folder / CONFIG_NAME).unlink()
        (folder / WEIGHTS_NAME).unlink(missing_ok=True)
    return folder


def _replace(source: Path, target: Path) -> None:
    if target.is_dir():
        shutil.rmtree(target)
    os.replace(source, target)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ddpm.convert", description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", help="checkpoint folders to rewrite in place")
    args = p.parse_args(argv)
    for folder in args.folders:
        try:
            convert(folder)
        except (ValueError, FileNotFoundError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"{folder}: {', '.join(sorted(p.name for p in Path(folder).iterdir()))} ({CARD_NAME} regenerated)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
