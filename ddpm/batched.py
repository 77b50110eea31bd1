"""Many samples in batches: what ``python -m ddpm sample`` and ``evaluate`` generate.

Batch ``i`` runs with seed ``settings.seed + i``, so the same settings give the same images whatever else
runs, and two settings with the same seed start from the same noise.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from .checkpoint import DiffusionModel
from .defaults import MAX_BATCH
from .recipes import Settings, generate


def generate_in_batches(model: DiffusionModel, labels: Sequence[int | str] | None, n: int | None = None,
                        settings: Settings = Settings(), batch: int = 64, progress: bool = False,
                        desc: str | None = None) -> torch.Tensor:
    """One image per label (names or indices), or ``n`` unconditional ones, ``batch`` at a time:
    (N, C, H, W) float32 in [-1, 1] on the CPU."""
    if not 1 <= batch <= MAX_BATCH:
        raise ValueError(f"batch must be between 1 and {MAX_BATCH}, got {batch}")
    labels = None if labels is None else list(labels)
    total = len(labels) if labels is not None else n
    if total is None or total < 1:
        raise ValueError(f"need at least one label or n >= 1, got {'no labels' if labels is not None else f'n = {n}'}")
    chunks = []
    bar = tqdm(total=total, desc=desc, unit="img", disable=not progress, leave=False)
    for i, start in enumerate(range(0, total, batch)):
        size = min(batch, total - start)
        part = labels[start:start + size] if labels is not None else None
        job = generate(model, part, n=size, settings=settings.with_(seed=settings.seed + i))
        chunks.append(job.run().float().cpu())
        bar.update(size)
    bar.close()
    return torch.cat(chunks)
