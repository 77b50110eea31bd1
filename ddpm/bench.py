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

    if name:
        return load(name)
    torch.manual_seed(0)
    denoiser = build("scratch", image_size=28, channels=1, num_classes=10, widths=(32, 64, 64),
                     attention=(False, False, True), layers_per_block=2)
    for p in denoiser.parameters():  # the zero-initialised output layers would make every mode agree trivially
        p.data.add_(0.02 * torch.randn_like(p))
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
