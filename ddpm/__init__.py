"""ddpm: class-conditioned diffusion models from scratch, one sampling loop, and editing recipes.

    import ddpm
    model = ddpm.load("mnist")
    images = ddpm.generate(model, ["3", "7"], settings=ddpm.Settings(steps=20, guidance=3)).run()

Images are (B, C, H, W) tensors in [-1, 1] inside the library; ``ddpm.images`` converts at the edges.

The package is lazy: ``import ddpm`` loads nothing heavy; a name below (``ddpm.load``) or a submodule
(``ddpm.recipes``) imports its module, and with it torch, on first use.
"""
from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

DISTRIBUTION = "diffusion-lab"  # what pip installs (pyproject.toml's name); imported as ddpm


def _version() -> str:
    """pyproject.toml's version: read from the file in a source checkout, from the metadata once installed."""
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    if pyproject.is_file():
        import tomllib

        return tomllib.loads(pyproject.read_text())["project"]["version"]
    from importlib.metadata import version

    return version(DISTRIBUTION)


__version__ = _version()

# public name -> the module that defines it
_EXPORTS = {
    "DiffusionModel": "checkpoint", "bundled": "checkpoint", "load": "checkpoint",
    "FAMILIES": "models", "Denoiser": "models", "build": "models",
    "Settings": "recipes", "anagram": "recipes", "forward_process": "recipes", "generate": "recipes",
    "hybrid": "recipes", "inpaint": "recipes", "sdedit": "recipes",
    "Job": "sampling", "Recorder": "sampling", "Step": "sampling", "iterate": "sampling",
    "noise_estimate": "sampling",
    "SAMPLERS": "schedule", "NoiseSchedule": "schedule",
    "VIEWS": "views", "get_view": "views",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    """``ddpm.load`` and the other names of ``__all__``, and submodules (``ddpm.recipes``), on first use."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
