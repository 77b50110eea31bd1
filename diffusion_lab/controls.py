"""Controls several tabs share: the sampler accordion with its seed row, and the picture editors."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

import ddpm
from ddpm.defaults import DEFAULT_GUIDANCE, DEFAULT_SAMPLER, DEFAULT_STEPS

from .inputs import MAX_SEED, random_seed, user_errors
from .lab import UI
from .uploads import MASK_RGB, undecoded

SAMPLERS = [("DPM-Solver++", "dpm++"), ("DPM-Solver++ SDE", "dpm++sde"), ("DPM-Solver++ 3M", "dpm++3"),
            ("UniPC", "unipc"), ("DEIS", "deis"), ("DDIM", "ddim"), ("DDPM", "ddpm")]
BRUSH_COLOURS = ["#000000", "#ffffff", "#e53935", "#fbc02d", "#43a047", "#1e88e5", "#8e24aa"]
MASK_BRUSH = "rgba({}, {}, {}, 0.65)".format(*MASK_RGB)
# Where a model's card records no steps sweep yet: mnist keeps its 20-step class accuracy and FID with
# DPM-Solver++ from 8 steps (1,000 samples: accuracy 0.998 at 20 steps; the sweep of issue 22).
FAST_FALLBACK = {"mnist": ("dpm++", 8)}
QUALITY, FAST = "quality", "fast"


@dataclass(frozen=True)
class Sampling:
    sampler: gr.Dropdown
    steps: gr.Slider
    guidance: gr.Slider
    seed: gr.Number
    speed: gr.Radio | None = None  # the quality / fast preset (not an input: it sets sampler and steps)

    @property
    def inputs(self) -> list:
        return [self.sampler, self.steps, self.guidance, self.seed]


def fast_preset(model: ddpm.DiffusionModel | None) -> tuple[str, int] | None:
    """(sampler, steps) with the fewest steps that keep the model's 20-step quality, from its card's steps
    sweep (``meta["metrics"]["steps"]``, read by ``ddpm.card_steps.offered_steps``; ties go to the model's own
    sampler), else ``FAST_FALLBACK``; where someone looked at the grids (``ddpm.card_metrics.set_steps_looked``)
    the count the look kept, or None when it kept none; None for a model nobody measured."""
    if model is None:
        return None
    steps = model.meta.get("metrics", {}).get("steps") or {}
    if steps.get("rows"):
        try:
            from ddpm.card_steps import offered_steps
        except ImportError:  # a library without steps sweeps
            fewest = {}
        else:
            fewest = {name: n for name, n in offered_steps(steps).items() if n and n < DEFAULT_STEPS}
        if fewest:
            best = min(fewest, key=lambda name: (fewest[name], name != model.default_sampler))
            return best, fewest[best]
    if steps.get("looked"):  # someone looked at the grids and saw what the sweep's numbers do not
        return None
    return FAST_FALLBACK.get(model.name)


def speed_choices(model) -> tuple[list[tuple[str, str]], bool]:
    """The Speed radio's choices for ``model`` and whether it has a fast preset at all."""
    quality = (f"quality ({DEFAULT_STEPS} steps)", QUALITY)
    preset = fast_preset(model)
    if preset is None:
        return [quality], False
    return [quality, (f"fast ({preset[0]}, {preset[1]} steps: the same measured quality)", FAST)], True


def speed_control(ui: UI, sampler_box, steps_box, elem_id: str | None) -> gr.Radio:
    """The Speed radio: "quality" sets the model's sampler at 20 steps, "fast" its fewest steps that keep
    that quality (``fast_preset``). A hand-set sampler or step count unticks it; another model brings its
    own choices, and "fast" goes back to quality (20 steps; the sampler follows the model's default)."""
    choices, shown = speed_choices(ui.lab.default_model)
    speed = gr.Radio(choices, value=QUALITY, label="Speed", visible=shown, elem_id=elem_id)

    def chosen(name, session, value):
        model = ui.lab.model(name, session)
        preset = fast_preset(model) if value == FAST else None
        return preset or (model.default_sampler, DEFAULT_STEPS)
    speed.input(user_errors(chosen), [ui.model, ui.session, speed], [sampler_box, steps_box], api_visibility="private",
                queue=False)
    for box in (sampler_box, steps_box):
        box.input(lambda: None, None, speed, api_visibility="private", queue=False)

    def follow(name, session, value):
        try:
            model = ui.lab.model(name, session)
        except ValueError:
            return gr.skip(), gr.skip()
        choices, shown = speed_choices(model)
        return (gr.Radio(choices=choices, value=QUALITY, visible=shown),
                DEFAULT_STEPS if value == FAST else gr.skip())
    ui.model_ready.success(follow, [ui.model, ui.session, speed], [speed, steps_box], api_visibility="private",
                           queue=False)
    return speed


def sampling_controls(sampler: str = DEFAULT_SAMPLER, steps: int = 20, guidance: float = DEFAULT_GUIDANCE,
                      open: bool = False, elem_id: str | None = None, ui: UI | None = None) -> Sampling:
    """The sampler accordion and the seed row; ``elem_id`` (a tab's prefix) names the sampler, steps and guidance.
    Given ``ui``, the accordion holds the Speed preset too (``speed_control``)."""
    def name(part):
        return f"{elem_id}-{part}" if elem_id else None
    with gr.Accordion("Sampler", open=open):
        with gr.Row():
            sampler_box = gr.Dropdown(SAMPLERS, value=sampler, label="Sampler", min_width=150, elem_id=name("sampler"))
            steps_box = gr.Slider(1, 1000, value=steps, step=1, label="Steps", min_width=200, elem_id=name("steps"))
        speed = speed_control(ui, sampler_box, steps_box, name("speed")) if ui is not None else None
        guidance_box = gr.Slider(0, 10, value=guidance, step=0.5, label="Guidance scale", elem_id=name("guidance"),
                                 info="0: unconditional · 1: plain conditional · higher: more typical of the class")
    with gr.Row(equal_height=True):
        seed = gr.Number(0, label="Seed", precision=0, minimum=0, maximum=MAX_SEED, min_width=120)
        dice = gr.Button("New seed", scale=0, min_width=140)
    dice.click(random_seed, None, seed, api_visibility="private", queue=False)
    return Sampling(sampler_box, steps_box, guidance_box, seed, speed)


def sketch_input(elem_id: str, value, label: str) -> gr.ImageEditor:
    """Upload, paste, or draw (or draw over an upload); the handler reads it with ``uploads.sketch``.
    The box is square and its canvas margin lies outside it (style.css), so a stroke begun anywhere in the
    box draws (the editor ignores strokes that start in the grey margin around its canvas)."""
    brush = gr.Brush(default_size=10, colors=BRUSH_COLOURS, color_mode="defaults")
    return undecoded(gr.ImageEditor(
        value=value, type="filepath", sources=("upload", "clipboard"), layers=False, transforms=(), brush=brush,
        canvas_size=(256, 256), height=310, label=label, elem_id=elem_id, elem_classes="square-editor",
        placeholder="Upload or paste a picture, or draw"))


def mask_input(elem_id: str, value, label: str) -> gr.ImageMask:
    """A picture with a brush to paint the region to regenerate; read with ``uploads.inpaint_input``."""
    brush = gr.Brush(default_size=16, colors=[MASK_BRUSH], color_mode="fixed")
    return undecoded(gr.ImageMask(
        value=value, type="filepath", sources=("upload", "clipboard"), layers=False, transforms=(), brush=brush,
        height=460, label=label, elem_id=elem_id, placeholder="Upload or paste a picture"))

