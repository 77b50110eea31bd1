"""Controls that follow the Model box: class lists, a model's own defaults, and untouched example pictures.

Each listens to ``ui.model_ready`` (the Model box's change, on success) and updates one control, leaving
alone whatever the user has chosen that still fits the new model.
"""
from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from ddpm.defaults import DEFAULT_GUIDANCE, DEFAULT_SAMPLER

from .controls import Sampling, sampling_controls
from .examples import next_example
from .inputs import NONE
from .lab import UI


def model_or_none(ui: UI, name, session):
    try:
        return ui.lab.model(name, session)
    except ValueError:
        return None


def follow_model(ui: UI, box, choices_of: Callable, default_of: Callable, multiselect: bool = False) -> None:
    """Keep a dropdown in step with the Model box: new choices, the current pick kept while it still fits
    (so an example that sets model and classes together keeps its classes), else the model's default."""
    def update(name, session, current):
        model = model_or_none(ui, name, session)
        if model is None:
            return gr.skip()
        choices = choices_of(model)
        values = {c[1] if isinstance(c, tuple) else c for c in choices}
        if multiselect:
            keep = [c for c in (current or []) if c in values]
        else:
            keep = current if current in values else None
        return gr.Dropdown(choices=choices, value=keep or default_of(model))
    ui.model_ready.success(update, [ui.model, ui.session, box], box, api_visibility="private", queue=False)


def follow_target(ui: UI, box) -> None:
    """A target-class dropdown: the model's classes after "(none)", which is the default."""
    follow_model(ui, box, lambda m: [NONE] + m.classes, lambda m: NONE)


def follow_default(ui: UI, box, default_of: Callable) -> None:
    """Keep a control at the model's own default (``default_of(model)``: its ``default_guidance``, 3 for
    emoji and 1.5 for the digits, or its ``default_sampler``) until the user sets it; from then on a model
    switch leaves their value. Call it inside a tab: its State must not sit between tabs."""
    moved = gr.State(False)
    box.input(lambda: True, None, moved, api_visibility="private", queue=False)
    ui.followed[box] = moved  # a link that sets the control sets this too (diffusion_lab.reproduce.read_links)

    def update(name, session, touched):
        model = None if touched else model_or_none(ui, name, session)
        return gr.skip() if model is None else default_of(model)
    ui.model_ready.success(update, [ui.model, ui.session, moved], box, api_visibility="private", queue=False)


def model_sampling_controls(ui: UI, speed: bool = False, **kwargs) -> Sampling:
    """``sampling_controls`` that start on the default model's own sampler and guidance and follow the Model
    box to each model's (``follow_default``: until the user sets them); ``speed``: with the fast / quality radio.
    Call it inside a tab."""
    default = ui.lab.default_model
    sampling = sampling_controls(sampler=default.default_sampler if default else DEFAULT_SAMPLER,
                                 guidance=default.default_guidance if default else DEFAULT_GUIDANCE,
                                 ui=ui if speed else None, **kwargs)
    follow_default(ui, sampling.guidance, lambda m: m.default_guidance)
    follow_default(ui, sampling.sampler, lambda m: m.default_sampler)
    return sampling


def follow_examples(ui: UI, box, rows: list[list]) -> None:
    """Keep an untouched example picture in step with the Model box (see ``examples.next_example``);
    ``rows`` are the tab's [model name, example picture] rows."""
    by_model: dict[str, list] = {}
    for name, value in rows:
        by_model.setdefault(name, []).append(value)
    every = [value for _, value in rows]

    def update(name, current):
        value = next_example(current, by_model.get(name, []), every)
        return gr.skip() if value is None else value
    if rows:
        ui.model_ready.success(update, [ui.model, box], box, api_visibility="private", queue=False)
