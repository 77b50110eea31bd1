"""Conversions at the edges: model space is (B, C, H, W) float in [-1, 1]; users see uint8 HWC
arrays, PIL images, PNG grids. Also the preparation of sketches and photos for a model."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.utils import make_grid, save_image


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped, float32 on the CPU."""
    return ((x.detach().float().cpu() + 1) / 2).clamp(0, 1)


def from_unit(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1]."""
    return x.float() * 2 - 1


def to_numpy(x: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) in [-1, 1] -> float32 [0, 1] shaped (B, H, W) for C=1 or (B, H, W, 3) for C=3."""
    u = to_unit(x)
    return (u[:, 0] if u.shape[1] == 1 else u.permute(0, 2, 3, 1)).numpy()


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) or (B, C, H, W) in [-1, 1] -> uint8 (H, W, 3) / (B, H, W, 3), grey repeated to RGB."""
    u = to_unit(x)
    if u.dim() == 3:
        u = u[None]
    if u.shape[1] == 1:
        u = u.repeat(1, 3, 1, 1)
    arr = (u.permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)
    return arr[0] if x.dim() == 3 else arr


def grid(x: torch.Tensor, nrow: int = 8, padding: int = 2, pad_value: float = 0.5) -> torch.Tensor:
    """(B, C, H, W) in [-1, 1] -> one (3, H', W') [0, 1] grid image."""
    g = make_grid(to_unit(x), nrow=nrow, padding=padding, pad_value=pad_value)
    return g


def save_grid(x: torch.Tensor, path: str | Path, nrow: int = 8, scale: int = 1) -> Path:
    """Save (B, C, H, W) in [-1, 1] as a PNG grid, optionally upscaled by ``scale`` (nearest)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    g = grid(x, nrow=nrow)
    if scale > 1:
        g = torch.nn.functional.interpolate(g[None], scale_factor=scale, mode="nearest")[0]
    save_image(g, path)
    return path
