"""The whole app: every tab, in order (the Denoising steps tab shows the last run of any other)."""
from __future__ import annotations

import gradio as gr

import ddpm

from .page import build, launch
from .tabs import compare, forward, generate, illusions, inpaint, sdedit, steps

TABS = [generate.create, steps.create, compare.create, forward.create, sdedit.create, inpaint.create, illusions.create]


def build_demo(models: dict[str, ddpm.DiffusionModel] | None = None) -> gr.Blocks:
    """The whole app. ``models=None`` loads every bundled checkpoint (once, here)."""
    return build(models, TABS)


__all__ = ["build_demo", "launch"]
