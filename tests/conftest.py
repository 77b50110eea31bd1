"""Shared fixtures: tiny CPU models that build in milliseconds."""
from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
import torch

import ddpm
from ddpm.classifier import train_classifier
from ddpm.testing import TINY_CLASSES, quadrant_images
from ddpm.testing import tiny_model as make_tiny_model

CLASS_NAMES = TINY_CLASSES

# The test models are tiny: a second intra-op thread buys nothing, and on a busy 2-core machine its
# spin-waiting made one 8x8 UNet forward take 600 ms instead of 9 ms.
torch.set_num_threads(1)
# No served app of a test builds compiled forwards (a subprocess, a minute of both cores, files in ~/.cache):
# tests/test_aot.py builds one for a tiny model into a temporary cache, and the app tests patch what they check.
os.environ["DIFFUSION_LAB_COMPILE"] = "0"
# A test that samples with compile=True builds its package into a cache of this run, not the user's.
os.environ["DDPM_COMPILE_CACHE"] = tempfile.mkdtemp(prefix="ddpm-compiled-tests-")


@pytest.fixture(autouse=True, scope="session")
def float32_by_default():
    """Settings' "auto" precision resolves to float32 in every test, whatever this CPU does natively:
    the parity and oracle tests compare to 1e-5 and must give the same answer on every machine.
    Session-wide, so that module fixtures (a served app's first run) resolve it as the tests do.
    (tests/test_speed.py checks the real decision with its own patches.)"""
    import ddpm.device

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ddpm.device, "cpu_has_native_bfloat16", lambda: False)
        yield


@pytest.fixture
def tiny_model():
    """Factory ``tiny_model(family="scratch", image_size=8, schedule=None, seed=0) -> DiffusionModel``:
    ``ddpm.testing.tiny_model``, a 1-channel, 3-class model (``CLASS_NAMES``; unconditional for ``unet2d``)
    with widths (8, 16), every weight nudged by seeded noise. The default schedule is linear, T = 50."""
    return make_tiny_model


@pytest.fixture(scope="session")
def quadrant_classifier():
    """A classifier of ``ddpm.testing.quadrant_images`` (16 px, 4 classes), trained once (3 epochs)."""
    images, labels = quadrant_images(256)
    return train_classifier(images, labels, 4, epochs=3, seed=0, batch_size=32, progress=False)


@pytest.fixture(scope="session")
def quadrant_model():
    """A 16 px model of the four quadrant classes "q0".."q3" (its weights as initialised, T = 50)."""
    torch.manual_seed(0)
    denoiser = ddpm.build("scratch", image_size=16, channels=1, num_classes=4, widths=(8, 16),
                          attention=(False, False), layers_per_block=1).eval()
    return ddpm.DiffusionModel(denoiser, ddpm.NoiseSchedule(num_timesteps=50), [f"q{k}" for k in range(4)],
                               "toy", name="tiny")


@pytest.fixture
def edit_files(tiny_model, tmp_path):
    """What the edit verbs and their reproductions take: (a tiny model's saved folder, a 16x16 stroke
    picture PNG, a PNG mask of its top half), all in tmp_path."""
    from PIL import Image

    folder = tiny_model().save(tmp_path / "tiny")
    picture = np.zeros((16, 16), np.uint8)
    picture[3:13, 6:10] = 255
    Image.fromarray(picture).save(tmp_path / "in.png")
    mask = np.zeros((16, 16), np.uint8)
    mask[:8] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    return folder, tmp_path / "in.png", tmp_path / "mask.png"
