"""``python -m ddpm evaluate``: measure a model (``ddpm.evaluate``), print the tables, optionally write them
into its model card. Needs the dataset (``python -m ddpm data fetch NAME``); the first run for a dataset
trains its classifier (minutes on a CPU), later runs load it from the cache."""
from __future__ import annotations

import argparse
import sys

from ..defaults import DEFAULT_DTYPE, DEFAULT_GUIDANCE, DEFAULT_SAMPLER, DEFAULT_STEPS, DTYPES, EVALUATE_BATCH

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
    parser.add_argument("--dtype", choices=DTYPES, default=DEFAULT_DTYPE,
                        help=f"model precision while sampling (default {DEFAULT_DTYPE}; auto: bfloat16 on a CPU with "
                             f"native bfloat16 and on a GPU, else float32; the rows and the card name the one that ran)")
    parser.add_argument("--compile", action="store_true",
                        help="sample with the compiled forward (ddpm.aot, as the app does once it is built); the rows "
                             "say \"compiled\"")
    parser.add_argument("--batch", type=int, default=EVALUATE_BATCH, help=f"sampling batch size (default {EVALUATE_BATCH})")
    parser.add_argument("--write-card", action="store_true",
                        help="store the rows in the checkpoint's ddpm_config.json (replacing rows of the same setting, "
                             "keeping the others) and regenerate its README.md")
    parser.add_argument("--steps-table", action="store_true",
                        help="with --write-card: store the rows as the card's steps-vs-quality table (replacing its "
                             "previous one), not in its main table; e.g. --samplers dpm++:20,dpm++:4,dpm++:6,unipc:4,...")
    return parser


def command_line(args: argparse.Namespace, dtype: str | None = None) -> str:
    """The canonical command that reproduces a measurement, for the model card; ``dtype``: the precision that
    ran ("auto" resolved, so that the command gives the same rows on another machine)."""
    from ..evaluate import parse_guidance

    dtype = dtype or args.dtype
    return (f"python -m ddpm evaluate --model {args.model} --n {args.n} --samplers {args.samplers} "
            f"--guidance {','.join(f'{g:g}' for g in parse_guidance(args.guidance))} --seed {args.seed} --dtype {dtype}"
            + (" --compile" if getattr(args, "compile", False) else "")
            + (" --write-card --steps-table" if getattr(args, "steps_table", False) else ""))


def run(args: argparse.Namespace) -> int:
    """Run ``python -m ddpm evaluate`` with parsed ``args``; prints the table. Returns the exit code
    (2 with a message on stderr for bad input or a missing model/dataset)."""
    from ..card_metrics import local_folder, write_card
    from ..card_steps import check_sweep, is_sweep, steps_summary
    from ..checkpoint import load
    from ..device import dtype_name
    from ..evaluate import evaluate, settings_from_spec
    from ..tables import format_class_table, format_table

    if args.steps_table and not args.write_card:
        print("error: --steps-table stores a sweep in the card: give --write-card too", file=sys.stderr)
        return 2
    try:
        guidance = DEFAULT_GUIDANCE if args.guidance is None else args.guidance
        samplers = DEFAULT_SAMPLERS if args.samplers is None else args.samplers
        checked = settings_from_spec(samplers, guidance, args.seed, args.dtype)  # checked before the (slower) load
        if args.steps_table:  # before an hour of sampling, not after
            check_sweep([{"sampler": s.sampler, "steps": s.steps, "guidance": s.guidance} for s in checked])
        folder = local_folder(args.model) if args.write_card else None
        model = load(args.model)
        # the model's own defaults where none were given; the card's command names them
        args.guidance = f"{model.default_guidance:g}" if args.guidance is None else args.guidance
        args.samplers = f"{model.default_sampler}:{DEFAULT_STEPS}" if args.samplers is None else args.samplers
        dtype = dtype_name(args.dtype, model.device)  # "auto" made concrete: the rows and the card's command name it
        settings = settings_from_spec(args.samplers, args.guidance, args.seed, dtype, args.compile)
        rows = evaluate(model, settings, n=args.n, batch=args.batch, seed=args.seed)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_table(rows))
    if per_class := format_class_table(rows):
        print("\nclass accuracy per class:\n" + per_class)
    if is_sweep(rows):
        print("\n" + steps_summary(rows))
    if folder is not None:
        try:
            write_card(folder, model, rows, command_line(args, dtype), steps=args.steps_table)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        from ..checkpoint import own_config_path

        print(f"wrote the metrics into {own_config_path(folder)} and {folder / 'README.md'}")
    return 0
