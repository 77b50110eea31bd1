"""Compiled forwards that later processes load in milliseconds (AOTInductor packages, cached on disk).

``torch.compile`` compiles in the process that runs the model: tens of seconds of Python tracing that hold
the GIL, so an app compiling in a background thread slowed a visitor's first click from 3.7 s to 14 s on a
2-core CPU, and every new process compiles again (2 s with inductor's cache warm). Here the denoiser, in one
precision, is exported once with a dynamic batch (``torch.export``) and compiled ahead of time into ``.pt2``
packages (``torch._inductor.aoti_compile_and_package``), which any process then loads without tracing: the
app builds them in a niced subprocess (``python -m ddpm compile``) and loads them when they are there.
On a 2-core CPU the mnist grid ran 1.6x faster in bfloat16 than eager, as fast as torch.compile
(``python -m ddpm bench``); a package takes 25-60 s to build and 10 ms to load.

The package is named by everything its code depends on (the weights, the precision, the device and the
CPU's vector ISA, the torch version), so a stale one is never loaded: a changed model gets a new name.
"""
from __future__ import annotations

import hashlib
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .device import autocast, dtype_name

CACHE_ENV = "DDPM_COMPILE_CACHE"
MAX_ROWS = 4096  # the largest batch of network rows a package takes (guided illusions send parts x 2 x images)


def cache_dir() -> Path:
    """Where packages live: $DDPM_COMPILE_CACHE, else ~/.cache/diffusion-lab/compiled."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "diffusion-lab" / "compiled")


class _Forward(nn.Module):
    """What a package computes: the denoiser's estimate in one precision, returned in float32. Labels are a
    tensor (the null label for unconditional rows, as ``Denoiser.forward`` fills in) or absent for an
    unconditional model."""

    def __init__(self, denoiser: nn.Module, dtype: str):
        super().__init__()
        self.denoiser, self.dtype = denoiser, dtype

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        with autocast(x.device, self.dtype):
            return self.denoiser.predict(x, t, labels).float()


def _target(device: torch.device) -> str:
    """The code the compiler emits depends on: the GPU's architecture, or the CPU's vector instructions."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return f"cuda-sm{major}{minor}"
    try:  # the C++ is built for this CPU's instruction set (-march=native): another CPU gets its own package
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith(("flags", "Features"))), "")
    except OSError:
        flags = ""
    return f"{device.type}-{platform.machine()}-{platform.processor()}-{flags}"


def package_path(model, dtype: str = "auto") -> Path:
    """The package folder for ``model`` in ``dtype`` (resolved for the model's device) in the cache: its name
    hashes the weights, the precision, the target and the torch version. It holds one ``rows-LO-HI.pt2`` per
    range of batch sizes export could keep dynamic (diffusers' UNet2DModel takes another path from 64 rows)."""
    dtype = dtype_name(dtype, model.device)
    digest = hashlib.sha256()
    # the CPU kernels are built for the thread count of the process that compiles them (OpenMP num_threads)
    threads = str(torch.get_num_threads()) if model.device.type == "cpu" else ""
    for part in (torch.__version__, _target(model.device), threads, dtype, str(MAX_ROWS),
                 type(model.denoiser).__name__):
        digest.update(part.encode() + b"\0")
    for key, tensor in model.denoiser.state_dict().items():
        digest.update(key.encode() + b"\0")
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    # not the model's name: the same weights loaded by name, from a folder or from the Hub share one package
    return cache_dir() / f"{type(model.denoiser).__name__}-{dtype}-{digest.hexdigest()[:16]}"


def _example(model, rows: int = 4):
    device = model.device
    x = torch.zeros(rows, model.channels, model.image_size, model.image_size, device=device)
    t = torch.zeros(rows, dtype=torch.long, device=device)
    if not model.conditional:
        return (x, t)
    return (x, t, torch.full((rows,), model.denoiser.num_classes, dtype=torch.long, device=device))


def _row_range(exported, rows: int) -> tuple[int, int]:
    """The batch sizes an exported program accepts: the range export proved for its first input's rows."""
    x = next(n for n in exported.graph.nodes if n.op == "placeholder"
             and n.name in exported.graph_signature.user_inputs)
    size = x.meta["val"].shape[0]
    if isinstance(size, int):  # specialised to the example: this batch size only
        return rows, rows
    bounds = exported.range_constraints[size.node.expr]
    return int(bounds.lower), int(min(bounds.upper, MAX_ROWS))


def build(model, dtype: str = "auto", path: str | Path | None = None) -> Path:
    """Export ``model``'s denoiser in ``dtype`` with a dynamic batch and compile it into the package folder
    ``path`` (default ``package_path``): tens of seconds per batch range on a CPU. Each file is written under a
    temporary name and renamed, the folder last, so a reader never sees half a package. Raises whatever export
    or the compiler raise (no C++ compiler, an op export does not know)."""
    dtype = dtype_name(dtype, model.device)
    path = Path(path) if path is not None else package_path(model, dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(path.name + ".*"):  # what a build killed mid-way left, an hour or more ago
        if stale.is_dir() and time.time() - stale.stat().st_mtime > 3600:
            shutil.rmtree(stale, ignore_errors=True)
    module = _Forward(model.denoiser.eval(), dtype)
    tmp_dir = Path(tempfile.mkdtemp(prefix=path.name + ".", dir=path.parent))
    tmp_dir.chmod(0o755)  # as a plain folder: mkdtemp makes it private
    try:
        rows = 4
        while rows <= MAX_ROWS:
            example = _example(model, rows)
            with torch.no_grad():
                exported = torch.export.export(module, example,
                                               dynamic_shapes=tuple({0: torch.export.Dim.AUTO} for _ in example))
            low, high = _row_range(exported, rows)
            if high - low < 8:  # the batch did not stay dynamic: compiling every size is not worth it
                raise RuntimeError(f"export keeps {type(model.denoiser).__name__}'s batch dynamic only over "
                                   f"{low}..{high} rows")
            torch._inductor.aoti_compile_and_package(exported, package_path=str(tmp_dir / f"rows-{low}-{high}.pt2"))
            rows = high + 1
        shutil.rmtree(path, ignore_errors=True)
        try:
            os.replace(tmp_dir, path)
        except OSError:  # another process (the app's build, an evaluate) put the same package there meanwhile
            if not _ranges(path):
                raise
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return path


def _ranges(path: Path) -> list[tuple[int, int, Path]]:
    found = []
    for file in path.glob("rows-*-*.pt2"):
        low, high = file.stem.split("-")[1:3]
        found.append((int(low), int(high), file))
    return sorted(found)


def built(model, dtype: str = "auto") -> bool:
    """Whether the cache has ``model``'s package in ``dtype`` (nothing is loaded)."""
    path = package_path(model, dtype)
    return path.is_dir() and bool(_ranges(path))


def load(model, dtype: str = "auto", path: str | Path | None = None) -> Callable | None:
    """The compiled forward ``f(x, t, labels)`` of ``model`` in ``dtype`` from its package (None when there is
    none yet). It takes what ``Denoiser.forward`` takes (labels None: the null label), and runs a batch no
    part of the package takes (one row) eagerly, in the same precision."""
    dtype = dtype_name(dtype, model.device)
    path = Path(path) if path is not None else package_path(model, dtype)
    ranges = _ranges(path) if path.is_dir() else []
    if not ranges:
        return None
    packages = [(low, high, torch._inductor.aoti_load_package(str(file))) for low, high, file in ranges]
    denoiser = model.denoiser

    def forward(x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        rows = x.shape[0]
        package = next((p for low, high, p in packages if low <= rows <= high), None)
        if package is None or x.dtype != torch.float32:
            with autocast(x.device, dtype):
                return denoiser(x, t, labels).float()
        t = torch.as_tensor(t, device=x.device, dtype=torch.long).expand(rows).contiguous()
        if denoiser.num_classes is None:
            return package(x.contiguous(), t)
        if labels is None:
            labels = torch.full((rows,), denoiser.num_classes, device=x.device, dtype=torch.long)
        return package(x.contiguous(), t, torch.as_tensor(labels, device=x.device, dtype=torch.long).contiguous())

    forward.package = path
    forward.dtype = dtype
    forward.rows = [(low, high) for low, high, _ in packages]
    return forward
