"""``python -m ddpm sdedit`` and ``python -m ddpm inpaint``: the editing verbs of the command line::

    python -m ddpm sdedit --model M --image FILE --strengths 0.3,0.6 [--target C] [sampling flags] --out FILE
    python -m ddpm inpaint --model M --image FILE --mask FILE [--target C] [--n N] [--repaint N] --out FILE

The input image is prepared as the app prepares an upload (``ddpm.images.prepare_image``; inpainting keeps
its layout so the mask stays aligned). The mask is a PNG of the same size: white (or, with transparency,
opaque) marks the region to replace. FILE.png writes a grid, FILE.npz the arrays as ``sample`` does.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import argparse
import time
from pathlib import Path

from ..argtypes import positive_int
from .sample import add_sampling_arguments, compile_note, for_model, forward_text, settings_from

if TYPE_CHECKING:
    import torch


def _strengths(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or any(not 0 <= v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated strengths in [0, 1], e.g. 0.3,0.6; got {text!r}")
    return values


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="bundled name (mnist, fashion, letters, emoji), folder, or Hub id")
    p.add_argument("--image", required=True, help="the input picture (any size; PNG, JPEG, ...)")
    p.add_argument("--target", help="a class to pull the result toward (name or index; default: none)")


def _out(p: argparse.ArgumentParser) -> None:
    add_sampling_arguments(p)
    p.add_argument("--out", required=True, help="FILE.png (grid) or FILE.npz (images in [0, 1], as sample writes)")


def add_sdedit_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--strengths", type=_strengths, default=[0.5],
                   help="how much noise to add, comma-separated in [0, 1] (0: none, 1: all); one result each")
    _out(p)


def add_inpaint_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--mask", required=True, help="PNG, same size as the image: white (or opaque) = replace")
    p.add_argument("--n", type=positive_int, default=1, help="how many results (default 1)")
    p.add_argument("--repaint", type=positive_int, default=1,
                   help="RePaint: passes over every stretch of --jump-length steps (1: none; ddpm/ddim only)")
    p.add_argument("--jump-length", type=positive_int, default=5, help="RePaint stretch, in steps (default 5)")
    _out(p)


def load_mask(path, model, threshold: float = 0.5) -> torch.Tensor:
    """A mask picture -> (H, W) bool at the model's size, True where the image is to be regenerated.

    Transparency, if the picture has any, is the mask (opaque = replace); otherwise brightness is (white =
    replace). Cropped to the centre square and resized as ``prepare_image(..., keep_layout=True)`` does."""
    import numpy as np
    import torch
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            picture = im.copy()
    except OSError as err:
        raise ValueError(f"could not read the mask {str(path)!r}: {err}") from None
    alpha = picture.convert("RGBA").getchannel("A") if "A" in picture.getbands() or "transparency" in picture.info \
        else None
    grey = alpha if alpha is not None and alpha.getextrema()[0] < 255 else picture.convert("L")
    w, h = grey.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    square = grey.crop((left, top, left + side, top + side)).convert("F")
    size = model.image_size
    if square.size != (size, size):
        square = square.resize((size, size), Image.Resampling.BOX)
    return torch.from_numpy(np.asarray(square) / 255.0 >= threshold)


def _write(images: torch.Tensor, out: Path, nrow: int, extra: dict) -> None:
    import numpy as np

    from ..images import save_grid, to_numpy

    if out.suffix.lower() == ".npz":
        with open(out, "wb") as f:
            np.savez_compressed(f, images=to_numpy(images).astype(np.float32), **extra)
    else:
        save_grid(images, out, nrow=nrow, scale=2)


def _begin(args):
    """The output path (checked), the Settings, the loaded model and the target class."""
    from ..checkpoint import load

    out = Path(args.out)
    if out.suffix.lower() not in (".npz", ".png"):
        raise ValueError(f"--out must end in .npz or .png, got {out.name!r}")
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder: name a file (in it)")
    if not Path(args.image).is_file():
        raise ValueError(f"--image {args.image}: no such file")
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = settings_from(args)
    model = load(args.model, device=args.device)
    settings = for_model(settings, args, model)
    target = None
    if args.target is not None:
        target = model.classes[model.label_ids([args.target])[0]]
    return out, settings, model, target


def _report(what: str, count: int, out: Path, seconds: float, settings, target, args) -> None:
    print(f"wrote {count} {what} to {out} ({seconds:.2f} s, {settings.sampler} {settings.steps} steps, "
          f"guidance {settings.guidance:g}, seed {settings.seed}, target {target or 'none'}, {forward_text(settings)})")
    compile_note(settings, args)


def run_sdedit(args) -> int:
    import numpy as np
    import torch

    from .. import recipes
    from ..images import prepare_image

    out, settings, model, target = _begin(args)
    image = prepare_image(args.image, model)
    start = time.perf_counter()
    jobs = recipes.sdedit(model, image, args.strengths, labels=target, settings=settings)
    images = torch.cat([job.run().cpu() for job in jobs])
    _write(images, out, len(args.strengths), {"strengths": np.asarray(args.strengths, dtype=np.float32)})
    _report(f"result{'s' if len(jobs) != 1 else ''} (strengths {', '.join(f'{s:g}' for s in args.strengths)})",
            len(jobs), out, time.perf_counter() - start, settings, target, args)
    return 0


def run_inpaint(args) -> int:
    from PIL import Image

    from .. import recipes
    from ..images import prepare_image

    out, settings, model, target = _begin(args)
    if not Path(args.mask).is_file():
        raise ValueError(f"--mask {args.mask}: no such file")
    with Image.open(args.image) as a, Image.open(args.mask) as b:
        if a.size != b.size:
            raise ValueError(f"the mask is {b.size[0]}x{b.size[1]} px but the image is {a.size[0]}x{a.size[1]}: "
                             f"draw the mask on a copy of the image")
    image = prepare_image(args.image, model, keep_layout=True)
    mask = load_mask(args.mask, model)
    jumps = dict(jump_length=args.jump_length, jump_n_sample=args.repaint) if args.repaint > 1 else {}
    start = time.perf_counter()
    job = recipes.inpaint(model, image.expand(args.n, -1, -1, -1), mask, labels=target, settings=settings, **jumps)
    images = job.run().cpu()
    _write(images, out, min(args.n, 8), {"mask": mask.numpy()})
    _report(f"result{'s' if args.n != 1 else ''} ({int(mask.sum())} of {mask.numel()} pixels replaced)",
            args.n, out, time.perf_counter() - start, settings, target, args)
    return 0
