"""The bundled models under checkpoints/: each loads, is small enough for a Space, has its card,
and samples through the CLI right after set-up (no data, no training)."""
from __future__ import annotations

import numpy as np
import pytest

import ddpm
from ddpm.checkpoint import CHECKPOINTS_DIR
from ddpm.cli import main

BUNDLED = ddpm.bundled()
MAX_WEIGHTS_BYTES = 10 * 1024 * 1024  # a Space's git takes bigger files only through LFS


def test_the_zoo_has_at_least_one_model():
    assert BUNDLED, "checkpoints/ holds no model: the app would start empty"


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_is_complete_and_small(name):
    folder = CHECKPOINTS_DIR / name
    assert (folder / "model.safetensors").stat().st_size <= MAX_WEIGHTS_BYTES
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    model = ddpm.load(name)
    assert model.conditional and len(model.class_names) == model.denoiser.num_classes
    assert model.meta["training"]["steps"] > 0
    assert f"# {name}" in (folder / "README.md").read_text()


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_samples_from_the_command_line(tmp_path, name):
    out = tmp_path / f"{name}.npz"
    assert main(["sample", "--model", name, "--per-class", "1", "--steps", "2", "--out", str(out)]) == 0
    data = np.load(out)
    model = ddpm.load(name)
    shape = (model.image_size, model.image_size) + ((3,) if model.channels == 3 else ())
    assert data["images"].shape == (model.denoiser.num_classes, *shape)
    assert np.isfinite(data["images"]).all() and data["images"].min() >= 0 and data["images"].max() <= 1
