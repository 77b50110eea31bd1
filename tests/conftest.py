"""Shared fixtures: tiny CPU models that build in milliseconds."""
from __future__ import annotations

import pytest
import torch

import ddpm

CLASS_NAMES = ["zero", "one", "two"]

# The test models are tiny: a second intra-op thread buys nothing, and on a busy 2-core machine its
# spin-waiting made one 8x8 UNet forward take 600 ms instead of 9 ms.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def float32_by_default(monkeypatch):
    """Settings' "auto" precision resolves to float32 in every test, whatever this CPU does natively:
    the parity and oracle tests compare to 1e-5 and must give the same answer on every machine.
    (tests/test_speed.py checks the real decision with its own patches.)"""
    import ddpm.device

    monkeypatch.setattr(ddpm.device, "cpu_has_native_bfloat16", lambda: False)


@pytest.fixture
def tiny_model():
    """Factory ``tiny_model(family="scratch", image_size=8, schedule=None, seed=0) -> DiffusionModel``.

    A 1-channel, 3-class model (``CLASS_NAMES``; unconditional for ``unet2d``) with widths (8, 16).
    Every weight is nudged by seeded noise, because some layers start at zero (the scratch UNet's
    output head would otherwise answer 0 for every input). The default schedule is linear, T = 50.
    """

    def make(family: str = "scratch", image_size: int = 8, schedule: ddpm.NoiseSchedule | None = None,
             seed: int = 0) -> ddpm.DiffusionModel:
        torch.manual_seed(seed)
        denoiser = ddpm.build(family, image_size=image_size, channels=1, num_classes=len(CLASS_NAMES),
                              widths=(8, 16), attention=(False, True), layers_per_block=1)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in denoiser.parameters():
                p.add_(0.1 * torch.randn(p.shape, generator=g))
        names = CLASS_NAMES if denoiser.num_classes is not None else None
        return ddpm.DiffusionModel(denoiser.eval(), schedule or ddpm.NoiseSchedule(num_timesteps=50),
                                   class_names=names, name=f"tiny-{family}")

    return make
