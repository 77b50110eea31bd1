"""``python -m ddpm illusion`` and ``python -m ddpm evaluate-illusions``:

    python -m ddpm illusion anagram --model M --classes A,B --view V [--n N] [--best-of K] ... --out FILE
    python -m ddpm illusion hybrid  --model M --classes LOW,HIGH [--sigma S | --factor F] ... --out FILE
    python -m ddpm evaluate-illusions --model M [--pairs A/B:VIEW,...] [--n N] [--best-of K]

``illusion`` draws N x K candidates in one batched job, scores them with the model's own classifier
(``model.classifier``, as the app does; a model that ships none: its dataset's, ``illusions.ranker_for``)
and keeps the best of each K. FILE.npz holds ``images`` float32 in [0, 1],
(N, H, W) grayscale or (N, H, W, 3) colour, in the dataset's polarity, and ``scores`` (N,) (the
alignment, min_i p_i); FILE.png is a grid, one row per reading (every view of every result).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..argtypes import nonneg_int, positive_int
from ..defaults import AFAR_FACTOR, DEFAULT_HIGH_GUIDANCE, DEFAULT_ILLUSION_GUIDANCE
from .sample import add_sampling_arguments, compile_note, for_model, forward_text, settings_from


def _anagram_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--view-guidance", default=None, metavar="G1,G2",
                        help="anagrams: each view's own guidance, as is first (default: --guidance for both)")
    parser.add_argument("--repeats", type=nonneg_int, default=0,
                        help="anagrams: time travel, every step taken 1 + R times (ddpm/ddim only; default 0)")


def _view_guidance(args) -> list[float] | None:
    if args.view_guidance is None:
        return None
    try:
        return [float(g) for g in args.view_guidance.split(",")]
    except ValueError:
        raise ValueError(f"--view-guidance takes numbers separated by commas, got {args.view_guidance!r}") from None


def add_illusion_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Subcommands ``anagram`` and ``hybrid`` of ``python -m ddpm illusion``; each sets ``run``."""
    sub = parser.add_subparsers(dest="illusion", required=True)
    for kind in ("anagram", "hybrid"):
        p = sub.add_parser(kind, help=f"make a {'visual anagram' if kind == 'anagram' else 'hybrid image'}")
        p.add_argument("--model", required=True, help="bundled model name, checkpoint folder or Hub id")
        p.add_argument("--classes", required=True, help="A,B" if kind == "anagram" else "LOW,HIGH (from afar, up close)")
        if kind == "anagram":
            p.add_argument("--view", required=True, help="the second view: flip_v, flip_h, rot90, rot180, negate, ...")
            _anagram_options(p)
        else:
            split = p.add_mutually_exclusive_group()
            split.add_argument("--sigma", type=float, default=None, help="split by a Gaussian blur of this std (px)")
            split.add_argument("--factor", type=int, default=None,
                               help=f"split by what survives area-downsampling by F (default {AFAR_FACTOR})")
            p.add_argument("--high-guidance", type=float, default=DEFAULT_HIGH_GUIDANCE,
                           help=f"the up-close part's own guidance (default {DEFAULT_HIGH_GUIDANCE:g})")
        p.add_argument("--n", type=positive_int, default=1, help="results (default 1)")
        p.add_argument("--best-of", type=positive_int, default=1, help="candidates per result, the best kept (default 1)")
        add_sampling_arguments(p, guidance=DEFAULT_ILLUSION_GUIDANCE)
        p.add_argument("--out", required=True, help="FILE.npz (arrays) or FILE.png (every view)")
        p.set_defaults(run=run_illusion)
    return parser


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``python -m ddpm evaluate-illusions``; sets ``run``."""
    parser.add_argument("--model", required=True, help="bundled model name, checkpoint folder or Hub id")
    parser.add_argument("--pairs", default=None, help="A/B:VIEW or LOW/HIGH:hybrid, comma-separated "
                                                      "(default: the model's presets)")
    parser.add_argument("--n", type=positive_int, default=32, help="single samples per pair (default 32)")
    parser.add_argument("--best-of", type=positive_int, default=8, help="K for the best-of-K column (default 8)")
    add_sampling_arguments(parser, guidance=DEFAULT_ILLUSION_GUIDANCE)
    _anagram_options(parser)
    parser.add_argument("--factor", type=int, default=AFAR_FACTOR,
                        help=f"hybrids: split and see from afar at 1/F (default {AFAR_FACTOR})")
    parser.add_argument("--high-guidance", type=float, default=DEFAULT_HIGH_GUIDANCE,
                        help=f"hybrids: the up-close part's own guidance (default {DEFAULT_HIGH_GUIDANCE:g})")
    parser.set_defaults(run=run_evaluate)
    return parser


def make(args) -> tuple:
    """Sample, score and keep the best: (model, images (n, C, H, W) in [-1, 1], scores, every candidate's scores,
    readings, the settings as they ran)."""
    from .. import illusions
    from ..checkpoint import load
    from ..recipes import anagram, hybrid

    classes = [c.strip() for c in args.classes.split(",")]
    if len(classes) != 2 or not all(classes):
        raise ValueError(f"--classes takes two classes, A,B; got {args.classes!r}")
    illusions.check_candidates(args.n, args.best_of)
    model = load(args.model, device=args.device)
    settings = for_model(settings_from(args), args, model)  # the model's own sampler where none was named
    total = args.n * args.best_of
    if args.illusion == "anagram":
        parts = [(classes[0], "identity"), (classes[1], args.view)]
        job = anagram(model, parts, n=total, settings=settings, guidances=_view_guidance(args), repeats=args.repeats)
        readings = illusions.anagram_readings(model, parts)
    else:
        factor = None if args.sigma is not None else (args.factor or AFAR_FACTOR)
        job = hybrid(model, *classes, sigma=args.sigma, factor=factor, n=total, settings=settings,
                     high_guidance=args.high_guidance)
        readings = illusions.hybrid_readings(model, *classes, factor or AFAR_FACTOR)
    # the model's own, as the app and the Python text rank with; else its dataset's (trained on first use)
    classifier = illusions.ranker_for(model, log=lambda m: print(m, file=sys.stderr))
    images, scores, every = illusions.sample_best(job, readings, classifier, args.best_of)
    return model, images, scores, every, readings, settings


def run_illusion(args) -> int:
    """``python -m ddpm illusion anagram|hybrid``: writes FILE.npz or FILE.png. Returns the exit code."""
    import numpy as np
    import torch

    from ..images import save_grid, to_numpy

    try:
        out = Path(args.out)
        if out.suffix.lower() not in (".npz", ".png"):
            raise ValueError(f"--out must end in .npz or .png, got {out.name!r}")
        out.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        model, images, scores, every, readings, settings = make(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if out.suffix.lower() == ".npz":
        with open(out, "wb") as f:
            np.savez_compressed(f, images=to_numpy(images).astype(np.float32),
                                scores=scores["score"].numpy().astype(np.float32),
                                accepted=scores["accepted"].numpy())
    else:  # one row per reading, so every view of every result is seen
        save_grid(torch.cat([r.view(images).cpu() for r in readings]), out, nrow=len(images), scale=4)
    accepted = int(every["accepted"].sum())
    print(f"wrote {len(images)} {args.illusion}{'s' if len(images) != 1 else ''} to {out} "
          f"({time.perf_counter() - started:.1f} s, {forward_text(settings)}); {accepted} of {len(every['accepted'])} candidates accepted "
          f"in every reading; scores {', '.join(f'{s:.2f}' for s in scores['score'].tolist())}")
    compile_note(settings, args)
    return 0


def run_evaluate(args) -> int:
    """``python -m ddpm evaluate-illusions``: prints the table. Returns the exit code."""
    from .. import illusions
    from ..checkpoint import load

    try:
        if args.n < args.best_of or args.best_of < 1:
            raise ValueError(f"--n ({args.n}) must be at least --best-of ({args.best_of}), which must be positive")
        model = load(args.model, device=args.device)
        if args.compile == "auto":  # a measurement names its forward: eager unless --compile asks
            args.compile = False
        settings = for_model(settings_from(args), args, model)
        if model.dataset is None:
            raise ValueError(f"model {model.name!r} names no dataset, so there is no classifier to score it")
        presets = ",".join(map(str, illusions.PRESETS.get(model.dataset, [])))
        pairs = illusions.parse_pairs(args.pairs or presets, model.classes)
        ranker = illusions.ranker_for(model, log=lambda m: print(m, file=sys.stderr))
        grader = illusions.grader_for(model.dataset, log=lambda m: print(m, file=sys.stderr))
        print(illusions.format_table([]))
        rows = illusions.evaluate_pairs(model, pairs, args.n, args.best_of, ranker, grader, settings, args.factor,
                                        args.high_guidance, log=lambda line: print(line, flush=True),
                                        guidances=_view_guidance(args), repeats=args.repeats)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"\n{len(rows)} pairs; single = fraction of single samples the grader accepts in every reading; "
          f"best of K = the grader's acceptance of the ranker's pick of K")
    return 0
