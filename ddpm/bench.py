"""``python -m ddpm bench``: how fast sampling is here, against this machine's limit and a plain diffusers loop.

One run prints, per mode (eager or compiled, float32 or bfloat16), the median wall time of a guided grid
(default 16 images, 20 DPM-Solver++ steps), its ratio to eager float32, and its ratio to the limit: the
grid's FLOPs, counted by ``torch.utils.flop_counter`` on the real network calls, over this machine's
measured matmul peak in that precision (a 2048 x 2048 matmul, median of several). The peer rows drive the
same network with diffusers' ``DPMSolverMultistepScheduler`` in the plain loop a diffusers user writes
(guidance in one batched call), so what our loop costs over the network shows. The last column is how far
each mode's images are from the first mode's (same seed, same noise: the precision's doing, not chance).
The ``default`` mode samples with the library's default settings (``Settings()``: precision "auto", compile
"auto", resolved at its first run and then kept: it comes last, after the modes that build a package), and a
last line gives its time over the best mode's and over each limit. Modes are timed round-robin (every mode once a round, ``--repeats`` rounds), so
that a shared machine's drifting load moves them together. ``--profile MODE`` prints where the time
of one grid goes instead (torch.profiler, by operator).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from .defaults import DEFAULT_DTYPE, DEFAULT_GUIDANCE, DEFAULT_SAMPLER, DEFAULT_STEPS

PEER = "diffusers-"  # peer modes: diffusers-float32, diffusers-bfloat16


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="bundled name or folder (default: a random ~1.35M-param "
                                                 "scratch UNet at 28 px, the size of the bundled mnist model)")
    p.add_argument("--n", type=int, default=16, help="images per grid (default 16)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    p.add_argument("--sampler", default=DEFAULT_SAMPLER)
    p.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE,
                   help="any value costs the same: one batched pass")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per mode (median reported)")
    p.add_argument("--modes", default="float32,bfloat16,diffusers-float32,diffusers-bfloat16,compile-float32,"
                                      "compile-bfloat16,aot-float32,aot-bfloat16,default",
                   help="comma-separated [compile[:TORCH_MODE]-]DTYPE (torch.compile; compile:reduce-overhead-bfloat16: "
                        "CUDA graphs), aot-DTYPE (the ahead-of-time package, ddpm.aot: what --compile and the app "
                        "use), diffusers-DTYPE (the peer loop) or default (Settings() as they resolve here)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--profile", metavar="MODE", default=None,
                   help="instead of timing: profile one grid in MODE (e.g. bfloat16) and print the top operators")


def _model(name: str | None, device=None):
    from .checkpoint import DiffusionModel, load
    from .models import build
    from .schedule import NoiseSchedule
    from .testing import nudge_weights

    if name:
        return load(name, device=device)
    torch.manual_seed(0)
    denoiser = build("scratch", image_size=28, channels=1, num_classes=10, widths=(32, 64, 64),
                     attention=(False, False, True), layers_per_block=2)
    nudge_weights(denoiser, 0.02)  # the zero-initialised output layers would make every mode agree trivially
    from .device import pick_device

    return DiffusionModel(denoiser.eval().to(pick_device(device)), NoiseSchedule(),
                          [str(i) for i in range(10)], "random", name="random-28px")


def parse_mode(mode: str) -> tuple[str, str | None, str]:
    """"compile:reduce-overhead-bfloat16" -> ("ours", "reduce-overhead", "bfloat16"); "float32" ->
    ("ours", None, "float32"); "aot-bfloat16" -> ("ours", "aot", "bfloat16"); "diffusers-float32" ->
    ("diffusers", None, "float32"); "default" -> ("ours", "default", "auto")."""
    from .device import dtype_name

    loop, compile_mode, dtype = "ours", None, mode
    if mode == "default":  # Settings() as they resolve here (``Grid.default_job``)
        return "ours", "default", "auto"
    if mode.startswith(PEER):
        loop, dtype = "diffusers", mode.removeprefix(PEER)
    elif mode.startswith("aot-"):
        compile_mode, dtype = "aot", mode.removeprefix("aot-")
    elif mode.startswith("compile"):
        head, _, dtype = mode.rpartition("-")
        compile_mode = head.partition(":")[2] or "default"
    try:
        dtype_name(dtype)
    except ValueError:
        raise ValueError(f"unknown bench mode {mode!r}: [compile[:MODE]-]DTYPE, aot-DTYPE or {PEER}DTYPE") from None
    return loop, compile_mode, dtype


class Grid:
    """One grid, runnable in every mode: our recipe (``generate``), or the peer's plain diffusers loop."""

    def __init__(self, model, args):
        self.model, self.args, self._compiled, self.default = model, args, {}, None
        k = model.denoiser.num_classes or 1
        self.labels = [i % k for i in range(args.n)] if model.conditional else None

    def settings(self, dtype: str, compiled: bool = False):
        from .recipes import Settings

        a = self.args
        return Settings(sampler=a.sampler, steps=a.steps, guidance=a.guidance, seed=0, dtype=dtype, compile=compiled)

    def job(self, compile_mode: str | None, dtype: str):
        from .recipes import generate
        from .sampling import noise_estimate

        job = generate(self.model, self.labels, n=self.args.n,
                       settings=self.settings(dtype, compiled=compile_mode == "aot"))
        if compile_mode not in (None, "aot"):  # torch.compile in this process: our forward, the same loop
            if compile_mode not in self._compiled:
                self._compiled[compile_mode] = torch.compile(self.model.denoiser,
                                                             mode=None if compile_mode == "default" else compile_mode)
            labels = torch.tensor(self.labels) if self.labels is not None else None
            job.eps_fn = noise_estimate(self.model.denoiser, labels, self.args.guidance, dtype,
                                        self._compiled[compile_mode])
        return job

    def default_job(self):
        """The grid with the library's default precision and compile ("auto"), resolved at the first call and
        kept, so the timed runs all run what the first did."""
        from .recipes import Settings, generate, resolve

        if self.default is None:
            a = self.args
            self.default = resolve(self.model, Settings(sampler=a.sampler, steps=a.steps, guidance=a.guidance, seed=0))
        return generate(self.model, self.labels, n=self.args.n, settings=self.default)

    def run(self, mode: str) -> torch.Tensor:
        from .device import synchronize

        if mode == "default":
            x = self.default_job().run()
            synchronize(x.device)
            return x
        loop, compile_mode, dtype = parse_mode(mode)
        x = self.peer(dtype) if loop == "diffusers" else self.job(compile_mode, dtype).run()
        synchronize(x.device)
        return x

    @torch.inference_mode()
    def peer(self, dtype: str) -> torch.Tensor:
        """What a diffusers user writes: the scheduler (built from our schedule), CFG as one batch, step."""
        from .device import autocast
        from .device import generator as make_generator

        if self.args.sampler != "dpm++":
            raise ValueError("the diffusers peer is DPM-Solver++: run it with --sampler dpm++")
        model, n = self.model, self.args.n
        scheduler = model.schedule.sampler("dpm++", self.args.steps).scheduler  # a DPMSolverMultistepScheduler
        x = torch.randn((n, model.channels, model.image_size, model.image_size), generator=make_generator(0))
        x = x.to(model.device)
        y = None
        if self.labels is not None:
            y = torch.tensor(self.labels, device=model.device)
            y = torch.cat([y, torch.full_like(y, model.denoiser.num_classes)])
        for t in scheduler.timesteps:
            with autocast(model.device, dtype):
                rows = torch.cat([x, x]) if y is not None else x
                eps = model.denoiser(rows, t.to(model.device).expand(len(rows)), y).float()
            if y is not None:
                cond, null = eps.chunk(2)
                eps = null + self.args.guidance * (cond - null)
            x = scheduler.step(eps, t, x).prev_sample
        return x


def count_flops(grid: Grid) -> int:
    """FLOPs of one float32 grid, counted on the network calls it really makes."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        grid.run("float32")
    return counter.get_total_flops()


def matmul_peak(dtype: torch.dtype, device: torch.device, size: int | None = None, repeats: int = 7) -> float:
    """FLOP/s of a size x size matmul in ``dtype`` on ``device`` (median of ``repeats``, after a warm-up);
    ``size`` 2048 on a CPU, 8192 on a GPU (a 2048 matmul there is over in microseconds, launch-bound)."""
    from .device import synchronize

    size = size or (8192 if device.type == "cuda" else 2048)
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=g).to(device, dtype) for _ in range(2))
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        a @ b
        synchronize(device)
        if i:
            times.append(time.perf_counter() - start)
    return 2 * size ** 3 / statistics.median(times)


def profile(grid: Grid, mode: str, rows: int = 25) -> None:
    """Print the top operators of one grid in ``mode`` (after a warm-up run), by self CPU time."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    grid.run(mode)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if grid.model.device.type == "cuda" else [])
    start = time.perf_counter()
    with torch_profile(activities=activities) as prof:
        grid.run(mode)
    print(f"one grid in {mode}: {time.perf_counter() - start:.3f} s under the profiler")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def run(args) -> int:
    from .device import DTYPES, dtype_name

    if args.threads:
        torch.set_num_threads(args.threads)
    model = _model(args.model, args.device)
    grid = Grid(model, args)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for mode in modes + ([args.profile] if args.profile else []):
        # a typo fails before minutes of compiling; float16 before an hour of emulated matmuls
        if parse_mode(mode)[2] == "float16" and model.device.type == "cpu":
            raise ValueError(f"mode {mode!r}: float16 is for GPUs; a CPU emulates it (one 2048 matmul takes "
                             f"minutes): use bfloat16 or float32 here")
    print(f"model {model.name}: {model.denoiser.num_parameters() / 1e6:.2f}M params, {args.n} images, "
          f"{args.sampler} {args.steps} steps, guidance {args.guidance}, {torch.get_num_threads()} threads, "
          f"device {model.device}")
    if args.profile:
        profile(grid, args.profile)
        return 0
    flops = count_flops(grid)
    auto = dtype_name(DEFAULT_DTYPE, model.device)  # the library's default precision, as it resolves here

    def precision(mode: str) -> str:
        return auto if mode == "default" else parse_mode(mode)[2]
    dtypes = sorted({precision(m) for m in modes})
    peaks = {d: matmul_peak(DTYPES[d], model.device) for d in dtypes}
    print(f"grid: {flops / 1e9:.1f} GFLOP (counted); matmul peak "
          + ", ".join(f"{d} {peaks[d] / 1e9:.0f} GFLOP/s (limit {flops / peaks[d]:.3f} s)" for d in dtypes)
          + f"; the default precision ({DEFAULT_DTYPE}) here is {auto}", flush=True)
    width = max(30, *(len(m) + 10 for m in modes))
    first, warmups = {}, {}
    for mode in modes:  # warm-up (and compilation) first, each as it ends: a compiled mode's can take minutes
        start = time.perf_counter()
        first[mode] = grid.run(mode)
        warmups[mode] = time.perf_counter() - start
        print(f"  {mode}: first run {warmups[mode]:.2f} s", flush=True)
    times = {mode: [] for mode in modes}
    for _ in range(args.repeats):  # round-robin: a shared machine's load drifts, the ratios within a round do not
        for mode in modes:
            start = time.perf_counter()
            grid.run(mode)
            times[mode].append(time.perf_counter() - start)
    medians = {mode: statistics.median(ts) for mode, ts in times.items()}
    print(f"{'mode':{width}s} {'median s':>9s} {'vs first':>9s} {'limit s':>8s} {'x limit':>8s} {'first run s':>12s} "
          f"{'max |diff| vs first':>20s}", flush=True)
    base, reference = medians[modes[0]], first[modes[0]]
    default = "default" if "default" in modes else None
    ran = f" ({grid.default.dtype}, {'compiled' if grid.default.compile else 'eager'})" if default else ""
    for mode in modes:
        limit = flops / peaks[precision(mode)]
        print(f"{mode + (ran if mode == 'default' else ''):{width}s} {medians[mode]:9.3f} {base / medians[mode]:8.2f}x "
              f"{limit:8.3f} {medians[mode] / limit:7.2f}x {warmups[mode]:12.2f} "
              f"{(first[mode] - reference).abs().max().item():20.4f}", flush=True)
    best = min((m for m in medians if m != "default" or len(medians) == 1), key=medians.get)  # a mode, not the default
    app = f"aot-{auto}"  # what the app runs once its background build has loaded (diffusion_lab.lab)
    for label, mode in ((f"the library's default, Settings(){ran}", default),
                        (f"the app's default, once built ({app})", app if app in medians else None)):
        if mode is not None:
            print(f"{label}: {medians[mode] / medians[best]:.2f}x the best mode ({best}); "
                  + ", ".join(f"{medians[mode] * peaks[d] / flops:.2f}x the {d} limit" for d in dtypes), flush=True)
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
