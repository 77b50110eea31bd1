"""``python -m ddpm sample``: images to an .npz array file or a .png grid (see ``ddpm.cli`` for the format),
and the sampling flags every command that samples shares."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..argtypes import nonneg_int, positive_int
from ..defaults import (DEFAULT_COMPILE, DEFAULT_DTYPE, DEFAULT_GUIDANCE, DEFAULT_SAMPLER, DEFAULT_STEPS, DTYPES,
                        SAMPLERS)


def add_sampling_arguments(p: argparse.ArgumentParser, guidance: float | None = None) -> None:
    """The sampling flags shared by every command that samples; ``guidance``: the command's own default
    guidance (the illusions'), else the model's."""
    p.add_argument("--steps", type=positive_int, default=DEFAULT_STEPS, help=f"sampling steps (default {DEFAULT_STEPS})")
    p.add_argument("--sampler", choices=SAMPLERS, default=None,
                   help=f"default: the model's own, from its config, else {DEFAULT_SAMPLER}")
    p.add_argument("--guidance", type=float, default=guidance,
                   help=f"classifier-free guidance scale (default {guidance:g})" if guidance is not None else
                   f"classifier-free guidance scale (default: the model's own, from its config, else {DEFAULT_GUIDANCE:g})")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM eta (0: deterministic)")
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--dtype", choices=DTYPES, default=DEFAULT_DTYPE,
                   help="model precision; auto: bfloat16 on a CPU with native bfloat16 and on a GPU, else float32")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=DEFAULT_COMPILE,
                   help="the compiled forward (ddpm.aot, 1.6x faster on a bfloat16 CPU): by default where this "
                        "machine's compile cache holds it (the app and `python -m ddpm compile` build it), else "
                        "eager; --compile builds it first where missing (about a minute, once); --no-compile: eager")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")


def settings_from(args):
    """The Settings the flags ask for; without --guidance or --sampler, the library's until ``for_model``."""
    from ..recipes import Settings

    guidance = DEFAULT_GUIDANCE if args.guidance is None else args.guidance
    return Settings(sampler=args.sampler or DEFAULT_SAMPLER, steps=args.steps, guidance=guidance, eta=args.eta,
                    seed=args.seed, dtype=args.dtype, compile=args.compile)


def for_model(settings, args, model):
    """``settings`` with the model's own default guidance and sampler where the command line named none, as
    they run on the model (``recipes.resolve``: the precision, and whether the compiled forward runs)."""
    from ..recipes import resolve

    own = {"guidance": model.default_guidance} if args.guidance is None else {}
    if args.sampler is None:
        own["sampler"] = model.default_sampler
    return resolve(model, settings.with_(**own))


def forward_text(settings) -> str:
    """How a result ran, for a command's last line: "bfloat16, compiled"."""
    return f"{settings.dtype}, {'compiled' if settings.compile else 'eager'}"


def compile_note(settings, args) -> None:
    """After a result the default ran eagerly (no package in the compile cache): how to build one, on stderr."""
    import sys

    if args.compile == "auto" and not settings.compile:
        print(f"note: `python -m ddpm compile --model {args.model}` builds this model's compiled forward once (25-60 s "
              "on a CPU); later runs load it, 1.6x faster where bfloat16 is native (--no-compile: always eager)",
              file=sys.stderr)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``python -m ddpm sample``."""
    p.add_argument("--model", required=True, help="bundled name (mnist, fashion, letters, emoji), folder, or Hub id")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--labels", help="comma-separated class names or indices, one image each: 3,3,7")
    who.add_argument("--per-class", type=positive_int, help="N images of every class")
    who.add_argument("--n", type=positive_int, help="N images (unconditional models, or random classes)")
    add_sampling_arguments(p)
    p.add_argument("--batch", type=positive_int, default=64, help="images per forward batch (default 64)")
    p.add_argument("--out", required=True, help="FILE.npz (arrays) or FILE.png (grid)")


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
    if args.per_class:  # interleaved, as the app orders them (ddpm.explore.per_class_labels); the grid regroups
        from ..explore import per_class_labels

        return per_class_labels(list(range(k)), args.per_class), args.per_class
    n = args.n or k
    g = torch.Generator().manual_seed(args.seed)
    return torch.randint(0, k, (n,), generator=g).tolist(), 8


def run(args) -> int:
    import numpy as np

    from ..checkpoint import load
    from ..explore import sample_batches
    from ..images import save_grid, to_numpy

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
    start = time.perf_counter()
    # every image from its own seed (ddpm.explore.image_seed): the same images whatever --batch is, and the
    # same as the app's Generate tab for the same classes, count and seed
    images = sample_batches(model, labels, settings, batch=args.batch, n=None if labels is not None else total)
    seconds = time.perf_counter() - start
    if out.suffix.lower() == ".npz":
        with open(out, "wb") as f:  # (given a path, numpy adds ".npz" to "x.NPZ")
            np.savez_compressed(f, images=to_numpy(images).astype(np.float32),
                                labels=np.asarray(labels if labels is not None else [-1] * total, dtype=np.int64))
    else:
        shown = images
        if args.per_class and labels is not None:  # one row per class in the picture (the npz keeps the order)
            k = model.denoiser.num_classes
            shown = images.view(args.per_class, k, *images.shape[1:]).transpose(0, 1).flatten(0, 1)
        save_grid(shown, out, nrow=nrow, scale=2)
    print(f"wrote {total} image{'s' if total != 1 else ''} to {out} ({seconds:.2f} s, {settings.sampler} {settings.steps} steps, "
          f"guidance {settings.guidance:g}, seed {settings.seed}, {forward_text(settings)})")
    compile_note(settings, args)
    return 0
