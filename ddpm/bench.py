"""``python -m ddpm bench``: how fast sampling is here, eager vs compiled, float32 vs bfloat16.

Prints the median wall time of a guided grid (default 16 images, 20 DPM-Solver++ steps) per
mode, its ratio to eager float32, and how far each mode's images are from float32's (the same
seed gives the same noise, so the difference is the precision's doing, not chance).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="bundled name or folder (default: a random ~1.35M-param "
                                                 "scratch UNet at 28 px, the size of the bundled mnist model)")
    p.add_argument("--n", type=int, default=16, help="images per grid (default 16)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--sampler", default="dpm++")
    p.add_argument("--guidance", type=float, default=1.5, help="any value costs the same: one batched pass")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per mode (median reported)")
    p.add_argument("--modes", default="float32,bfloat16,compile-float32,compile-bfloat16")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")


def _model(name: str | None):
    from .checkpoint import DiffusionModel, load
    from .models import build
    from .schedule import NoiseSchedule
    from .testing import nudge_weights

    if name:
        return load(name)
    torch.manual_seed(0)
    denoiser = build("scratch", image_size=28, channels=1, num_classes=10, widths=(32, 64, 64),
                     attention=(False, False, True), layers_per_block=2)
    nudge_weights(denoiser, 0.02)  # the zero-initialised output layers would make every mode agree trivially
    return DiffusionModel(denoiser.eval(), NoiseSchedule(), [str(i) for i in range(10)], "random", name="random-28px")


def run(args) -> int:
    from .recipes import Settings, generate

    if args.threads:
        torch.set_num_threads(args.threads)
    model = _model(args.model)
    k = model.denoiser.num_classes or 1
    labels = [i % k for i in range(args.n)] if model.conditional else None
    print(f"model {model.name}: {model.denoiser.num_parameters() / 1e6:.2f}M params, {args.n} images, "
          f"{args.sampler} {args.steps} steps, guidance {args.guidance}, {torch.get_num_threads()} threads, "
          f"device {model.device}")
    results, reference = {}, None
    for mode in args.modes.split(","):
        compiled = mode.startswith("compile-")
        dtype = mode.removeprefix("compile-")
        settings = Settings(sampler=args.sampler, steps=args.steps, guidance=args.guidance, seed=0, dtype=dtype,
                            compile=compiled)
        start = time.perf_counter()
        images = generate(model, labels, n=args.n, settings=settings).run()  # warm-up (and compilation)
        warmup = time.perf_counter() - start
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            generate(model, labels, n=args.n, settings=settings).run()
            times.append(time.perf_counter() - start)
        reference = images if reference is None else reference
        results[mode] = (statistics.median(times), warmup, (images - reference).abs().max().item())
    base = next(iter(results.values()))[0]
    print(f"{'mode':18s} {'median s':>9s} {'vs first':>9s} {'first run s':>12s} {'max |diff| vs first':>20s}")
    for mode, (median, warmup, diff) in results.items():
        print(f"{mode:18s} {median:9.3f} {base / median:8.2f}x {warmup:12.2f} {diff:20.4f}")
    return 0


# -- training ------------------------------------------------------------------------------------------
def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="a training config: TOML file or bundled name (mnist, fashion, letters, emoji)")
    from .argtypes import comma_list as _comma_list
    from .argtypes import nonneg_int as _nonneg_int
    from .argtypes import positive_int as _positive_int
    from .train_config import add_config_overrides

    p.add_argument("--batch-sizes", type=_comma_list(int), default=(),
                   help="comma-separated, e.g. 64,256,1024 (default: the config's)")
    p.add_argument("--modes", default="eager,compile",
                   help="eager, compile, or compile:MODE with a torch.compile mode, e.g. compile:reduce-overhead "
                        "(CUDA graphs); default eager,compile")
    p.add_argument("--timed-steps", type=_positive_int, default=20, help="timed steps per setting (median reported)")
    p.add_argument("--untimed-steps", type=_nonneg_int, default=3, help="steps run first, untimed (compilation happens here)")
    add_config_overrides(p)  # --widths 64,128,128, --mixed-precision no, ... as for train


def run_train(args) -> int:
    """Median time of one full training step (loss, backward, clip, AdamW, EMA) per batch size and mode,
    on random images of the config's dataset shape (no data needed), and images per second."""
    import tempfile

    from .data import dataset_info
    from .device import synchronize
    from .train import Trainer
    from .train_config import COMPILE_MODES, TrainConfig, config_from_args

    modes = args.modes.split(",")
    known = {"eager", "compile", *(f"compile:{m}" for m in COMPILE_MODES)}
    if unknown := set(modes) - known:
        raise ValueError(f"unknown mode(s) {', '.join(map(repr, sorted(unknown)))}: {', '.join(sorted(known))}")
    base = config_from_args(args)
    info = dataset_info(base.dataset)
    g = torch.Generator().manual_seed(0)
    n = 4096
    images = torch.randint(0, 256, (n, info.channels, info.image_size, info.image_size), generator=g,
                           dtype=torch.uint8)
    labels = torch.randint(0, len(info.class_names), (n,), generator=g)
    batch_sizes = list(args.batch_sizes) or [base.batch_size]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for batch in batch_sizes:
            for mode in modes:
                compile_mode = mode.partition(":")[2] or "default"
                config = TrainConfig(**{**vars(base), "batch_size": batch, "compile": mode != "eager",
                                        "compile_mode": compile_mode,
                                        "out_dir": f"{tmp}/{batch}-{mode}", "init_from": "",
                                        "steps": args.untimed_steps + args.timed_steps + 1})
                trainer = Trainer(config, images, labels, list(info.class_names))
                trainer.model.train()
                device, batches = trainer.accelerator.device, trainer.batches()
                start = time.perf_counter()
                for _ in range(args.untimed_steps):
                    trainer.train_step(*next(batches))
                synchronize(device)
                warm = time.perf_counter() - start
                times = []
                for _ in range(args.timed_steps):
                    start = time.perf_counter()
                    trainer.train_step(*next(batches))
                    synchronize(device)
                    times.append(time.perf_counter() - start)
                rows.append((batch, mode, statistics.median(times), warm))
                if len(rows) == 1:
                    print(f"{config.name}: {trainer.model.num_parameters() / 1e6:.2f}M params, widths "
                          f"{list(config.widths)}, {info.channels}x{info.image_size}x{info.image_size}, "
                          f"mixed precision {config.mixed_precision}, device {device}, "
                          f"{torch.get_num_threads()} threads")
    first = rows[0][2] / rows[0][0]  # seconds per image
    width = max(8, *(len(mode) for _, mode, _, _ in rows))
    print(f"{'batch':>6s} {'mode':{width}s} {'ms/step':>9s} {'steps/s':>8s} {'images/s':>9s} {'vs first':>9s} "
          f"{'warm-up s':>10s}")
    for batch, mode, median, warm in rows:
        print(f"{batch:6d} {mode:{width}s} {1000 * median:9.1f} {1 / median:8.2f} {batch / median:9.0f} "
              f"{first / (median / batch):8.2f}x {warm:10.1f}")
    return 0
