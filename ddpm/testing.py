"""Random models for tests and benchmarks: tiny, seeded, and with no weight left at zero."""
from __future__ import annotations

import torch
from torch import nn

from .checkpoint import DiffusionModel
from .models import build
from .schedule import NoiseSchedule

TINY_CLASSES = ["zero", "one", "two"]


@torch.no_grad()
def nudge_weights(module: nn.Module, scale: float = 0.1, seed: int = 0) -> nn.Module:
    """Add ``scale`` x seeded standard normal noise to every parameter of ``module``, in place; returns it.

    Some layers start at zero (the scratch UNet's output head answers 0 for every input until trained),
    which would make a random model's outputs, and every comparison of them, trivially equal."""
    g = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        p.add_((scale * torch.randn(p.shape, generator=g)).to(p.device, p.dtype))
    return module


def tiny_model(family: str = "scratch", image_size: int = 8, schedule: NoiseSchedule | None = None,
               seed: int = 0, scale: float = 0.1) -> DiffusionModel:
    """A 1-channel, 3-class (``TINY_CLASSES``; unconditional for ``unet2d``) model of widths (8, 16) whose
    weights are nudged by seeded noise (:func:`nudge_weights`). The default schedule is linear, T = 50."""
    torch.manual_seed(seed)  # the layers' own initialisation draws from the global generator
    denoiser = build(family, image_size=image_size, channels=1, num_classes=len(TINY_CLASSES), widths=(8, 16),
                     attention=(False, True), layers_per_block=1)
    nudge_weights(denoiser, scale, seed)
    names = TINY_CLASSES if denoiser.num_classes is not None else None
    return DiffusionModel(denoiser.eval(), schedule or NoiseSchedule(num_timesteps=50), class_names=names,
                          name=f"tiny-{family}")


def squares_dataset(n: int = 32, size: int = 8, channels: int = 1, classes: int = 3,
                    seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """A training set learnable in a few steps: class c is a bright square in a class-specific place.
    ((n, C, size, size) uint8, (n,) int64 labels, class names "c0", "c1", ...)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    images = torch.zeros(n, channels, size, size, dtype=torch.uint8)
    for i, c in enumerate(labels.tolist()):
        images[i, :, 2 * c:2 * c + 3, 1:5] = 255
    return images, labels, [f"c{k}" for k in range(classes)]


def quadrant_images(n: int, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A four-class set a classifier learns at once: (n, 1, size, size) images in [-1, 1], dark noise with
    class k's quadrant bright (k = 0 top left, 1 top right, 2 bottom left, 3 bottom right); (n,) labels."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    images = -0.8 + 0.2 * torch.rand(n, 1, size, size, generator=g)
    half = size // 2
    for k in range(4):
        r, c = divmod(k, 2)
        images[labels == k, :, r * half:(r + 1) * half, c * half:(c + 1) * half] += 1.5
    return images.clamp(-1, 1), labels
