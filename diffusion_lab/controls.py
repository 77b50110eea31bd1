"""Controls several tabs share: the sampler accordion with its seed row, and the picture editors."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ddpm.defaults import DEFAULT_GUIDANCE, DEFAULT_SAMPLER

from .inputs import MAX_SEED, random_seed
from .uploads import MASK_RGB, undecoded

SAMPLERS = [("DPM-Solver++", "dpm++"), ("DPM-Solver++ SDE", "dpm++sde"), ("DPM-Solver++ 3M", "dpm++3"),
            ("UniPC", "unipc"), ("DEIS", "deis"), ("DDIM", "ddim"), ("DDPM", "ddpm")]
BRUSH_COLOURS = ["#000000", "#ffffff", "#e53935", "#fbc02d", "#43a047", "#1e88e5", "#8e24aa"]
MASK_BRUSH = "rgba({}, {}, {}, 0.65)".format(*MASK_RGB)


@dataclass(frozen=True)
class Sampling:
    sampler: gr.Dropdown
    steps: gr.Slider
    guidance: gr.Slider
    seed: gr.Number

    @property
    def inputs(self) -> list:
        return [self.sampler, self.steps, self.guidance, self.seed]


def sampling_controls(sampler: str = DEFAULT_SAMPLER, steps: int = 20, guidance: float = DEFAULT_GUIDANCE,
                      open: bool = False, elem_id: str | None = None) -> Sampling:
    """The sampler accordion and the seed row; ``elem_id`` (a tab's prefix) names the sampler, steps and guidance."""
    def name(part):
        return f"{elem_id}-{part}" if elem_id else None
    with gr.Accordion("Sampler", open=open):
        with gr.Row():
            sampler_box = gr.Dropdown(SAMPLERS, value=sampler, label="Sampler", min_width=150, elem_id=name("sampler"))
            steps_box = gr.Slider(1, 1000, value=steps, step=1, label="Steps", min_width=200, elem_id=name("steps"))
        guidance_box = gr.Slider(0, 10, value=guidance, step=0.5, label="Guidance scale", elem_id=name("guidance"),
                                 info="0: unconditional · 1: plain conditional · higher: more typical of the class")
    with gr.Row(equal_height=True):
        seed = gr.Number(0, label="Seed", precision=0, minimum=0, maximum=MAX_SEED, min_width=120)
        dice = gr.Button("New seed", scale=0, min_width=140)
    dice.click(random_seed, None, seed, api_visibility="private", queue=False)
    return Sampling(sampler_box, steps_box, guidance_box, seed)


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

