"""The one place that names devices and precision.

Everything else in the library asks this module which device to use and how to autocast,
so that the same code runs on a laptop CPU, a CUDA GPU, or a ZeroGPU Space.
"""
from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
AUTO = "auto"  # the fastest precision that keeps quality here: see default_dtype


def pick_device(prefer: str | torch.device | None = None) -> torch.device:
    """The device to run on: `prefer` if given, else CUDA when present, else the CPU."""
    if prefer is not None:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def cpu() -> torch.device:
    """The CPU device (used for generators and for moving results out to numpy)."""
    return torch.device("cpu")


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (a GPU runs asynchronously), so a timer measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@functools.cache
def cpu_has_native_bfloat16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bfloat16 matmuls in hardware (x86: AVX512-BF16 or AMX-BF16; Arm: BF16).

    Without it, oneDNN emulates bfloat16 and autocast is slower than float32, so "auto" stays float32.
    Reads ``cpuinfo`` (default: /proc/cpuinfo, Linux); without one the answer is False (float32, always right)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.partition(":")[2].split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def default_dtype(device: torch.device | str | None = None) -> str:
    """The precision "auto" means on ``device`` (default: the CPU), the one place that decides it.

    Half precision on a GPU (bfloat16 where supported, else float16), bfloat16 on a CPU that does it
    natively, float32 otherwise. bfloat16 sampling measured the same class accuracy and FID as float32
    on the four bundled models (their cards), at about half the time on an AVX512-BF16 CPU (``bench``)."""
    device = torch.device(device) if device is not None else cpu()
    if device.type == "cuda":
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if device.type == "cpu":
        return "bfloat16" if cpu_has_native_bfloat16() else "float32"
    return "float32"


def dtype_name(dtype: str | torch.dtype, device: torch.device | str | None = None) -> str:
    """The concrete precision name for ``dtype`` ("auto" resolved for ``device``), for Settings and labels."""
    if isinstance(dtype, torch.dtype):
        names = {v: k for k, v in DTYPES.items()}
        if dtype not in names:
            raise ValueError(f"unsupported dtype {dtype}; choose one of {sorted(DTYPES)}")
        return names[dtype]
    if dtype == AUTO:
        return default_dtype(device)
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {AUTO}, {', '.join(sorted(DTYPES))}")
    return dtype


def resolve_dtype(dtype: str | torch.dtype, device: torch.device | str | None = None) -> torch.dtype:
    """Accept "auto" (resolved for ``device``, default the CPU) / "float32" / "bfloat16" / "float16"
    or a torch dtype."""
    return DTYPES[dtype_name(dtype, device)]


def autocast(device: torch.device, dtype: str | torch.dtype = "float32"):
    """Autocast context for a model forward: a no-op for float32, mixed precision otherwise.

    Without autocast's cast cache: it is cleared, under one process-wide mutex, when the context exits, and the
    cached weight casts' release takes the GIL. With the app compiling in a background thread (torch.compile's
    tracing holds the GIL while it waits for that mutex), a request's exit deadlocked both threads, on the first
    click during the compile (diffusion_lab.bench_app --first --compile 1). One context wraps one forward, in
    which every weight is cast once, so the cache saved nothing here."""
    dtype = resolve_dtype(dtype, device)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype, cache_enabled=False)


def generator(seed: int | None, device: torch.device | None = None) -> torch.Generator:
    """A seeded generator on `device` (CPU by default); seed None draws a fresh random seed."""
    g = torch.Generator(device=device or cpu())
    if seed is None:
        g.seed()
    else:
        g.manual_seed(int(seed))
    return g
