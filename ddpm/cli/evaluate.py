"""``python -m ddpm evaluate``: measure a model (``ddpm.evaluate``), print the tables, optionally write them
into its model card. Needs the dataset (``python -m ddpm data fetch NAME``); the first run for a dataset
trains its classifier (minutes on a CPU), later runs load it from the cache."""
from __future__ import annotations

import argparse
import sys

from ..defaults import DEFAULT_GUIDANCE, DEFAULT_SAMPLER, DEFAULT_STEPS, EVALUATE_BATCH

DEFAULT_SAMPLERS = f"{DEFAULT_SAMPLER}:{DEFAULT_STEPS}"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``python -m ddpm evaluate``."""
    parser.add_argument("--model", required=True, help="bundled model name, checkpoint folder or Hub id")
    parser.add_argument("--n", type=int, default=1000, help="samples per setting, class-balanced (default 1000)")
    parser.add_argument("--samplers", default=None,
                        help=f"comma-separated NAME:STEPS, e.g. ddpm:1000,ddim:50,dpm++:20 (default: the model's own "
                             f"sampler, 20 steps, else {DEFAULT_SAMPLERS})")
    parser.add_argument("--guidance", default=None,
                        help=f"classifier-free guidance scale, or several for a sweep, e.g. 1,1.5,2,3 "
                             f"(default: the model's own, else {DEFAULT_GUIDANCE:g})")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed and test-split cut (default 0)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                        help="model precision while sampling (default float32)")
    parser.add_argument("--batch", type=int, default=EVALUATE_BATCH, help=f"sampling batch size (default {EVALUATE_BATCH})")
    parser.add_argument("--write-card", action="store_true",
                        help="store the rows in the checkpoint's ddpm_config.json (replacing rows of the same setting, "
                             "keeping the others) and regenerate its README.md")
    return parser


def command_line(args: argparse.Namespace) -> str:
    """The canonical command that reproduces a measurement, for the model card."""
    from ..evaluate import parse_guidance

    return (f"python -m ddpm evaluate --model {args.model} --n {args.n} --samplers {args.samplers} "
            f"--guidance {','.join(f'{g:g}' for g in parse_guidance(args.guidance))} --seed {args.seed}" + (f" --dtype {args.dtype}" if args.dtype != "float32" else ""))


def run(args: argparse.Namespace) -> int:
    """Run ``python -m ddpm evaluate`` with parsed ``args``; prints the table. Returns the exit code
    (2 with a message on stderr for bad input or a missing model/dataset)."""
    from ..card_metrics import local_folder, write_card
    from ..checkpoint import load
    from ..evaluate import evaluate, settings_from_spec
    from ..tables import format_class_table, format_table

    try:
        guidance = DEFAULT_GUIDANCE if args.guidance is None else args.guidance
        samplers = DEFAULT_SAMPLERS if args.samplers is None else args.samplers
        settings_from_spec(samplers, guidance, args.seed, args.dtype)  # checked before the (slower) load
        folder = local_folder(args.model) if args.write_card else None
        model = load(args.model)
        # the model's own defaults where none were given; the card's command names them
        args.guidance = f"{model.default_guidance:g}" if args.guidance is None else args.guidance
        args.samplers = f"{model.default_sampler}:{DEFAULT_STEPS}" if args.samplers is None else args.samplers
        settings = settings_from_spec(args.samplers, args.guidance, args.seed, args.dtype)
        rows = evaluate(model, settings, n=args.n, batch=args.batch, seed=args.seed)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_table(rows))
    if per_class := format_class_table(rows):
        print("\nclass accuracy per class:\n" + per_class)
    if folder is not None:
        try:
            write_card(folder, model, rows, command_line(args))
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        from ..checkpoint import own_config_path

        print(f"wrote the metrics into {own_config_path(folder)} and {folder / 'README.md'}")
    return 0
