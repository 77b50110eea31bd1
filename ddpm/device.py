"""The one place that names devices and precision.

Everything else in the library asks this module which device to use and how to autocast,
so that the same code runs on a laptop CPU, a CUDA GPU, or a ZeroGPU Space.
"""
from __future__ import annotations

import contextlib

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


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


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """Accept "float32" / "bfloat16" / "float16" or a torch dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return DTYPES[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {sorted(DTYPES)}") from None


def autocast(device: torch.device, dtype: str | torch.dtype = "float32"):
    """Autocast context for a model forward: a no-op for float32, mixed precision otherwise."""
    dtype = resolve_dtype(dtype)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def generator(seed: int | None, device: torch.device | None = None) -> torch.Generator:
    """A seeded generator on `device` (CPU by default); seed None draws a fresh random seed."""
    g = torch.Generator(device=device or cpu())
    if seed is None:
        g.seed()
    else:
        g.manual_seed(int(seed))
    return g
