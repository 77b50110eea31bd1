"""``python -m ddpm compile``: build a model's ahead-of-time compiled forward into the compile cache.

    python -m ddpm compile --model mnist [--dtype auto] [--device cpu] [--force]

Prints the package's path. Any later process that samples with the default ``compile="auto"`` or with
``compile=True`` (``Settings(compile=True)``, ``sample --compile``) loads it in milliseconds instead of compiling
(with "auto", a process finding no package runs eager); the app runs this in a niced subprocess
after it starts (``diffusion_lab.lab``). The cache is ``$DDPM_COMPILE_CACHE`` or ~/.cache/diffusion-lab/compiled.
"""
from __future__ import annotations

import argparse
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..defaults import DTYPES

    p.add_argument("--model", required=True, help="bundled name, checkpoint folder or Hub id")
    p.add_argument("--dtype", default="auto", choices=DTYPES,
                   help="the precision the forward computes in (default auto: as sampling resolves it here)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--force", action="store_true", help="build again even if the cache has the package")


def run(args) -> int:
    from .. import aot
    from ..checkpoint import load
    from ..device import dtype_name

    model = load(args.model, device=args.device)
    dtype = dtype_name(args.dtype, model.device)
    path = aot.package_path(model, dtype)
    if aot.built(model, dtype) and not args.force:
        print(f"{path} (already built)")
        return 0
    start = time.perf_counter()
    aot.build(model, dtype, path)
    print(f"{path} ({model.name}, {dtype}, built in {time.perf_counter() - start:.0f} s)")
    return 0
