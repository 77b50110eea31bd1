"""Denoising steps: scrub through the last run of any tab (x_t, predicted x0, noise estimate, then the result)."""
from __future__ import annotations

import gradio as gr

from ..lab import UI
from ..runs import scrub_value, scrubber


def show_run(run):
    """A run just finished: the sample picker lists its tracks, the scrubber shows the first."""
    if run is None:
        return gr.Dropdown(choices=[], value=None, label="Sample"), None
    choices = [(f"{i + 1}. {tr.caption}", i) for i, tr in enumerate(run.tracks)]
    kept = len(run.tracks)
    label = f"Sample (the first {kept} of the run's {run.total} are kept)" if run.total > kept else "Sample"
    return gr.Dropdown(choices=choices, value=0, label=label), scrub_value(run, [0])


def show_track(run, index):
    if run is None or index is None or not 0 <= int(index) < len(run.tracks):
        return gr.skip()
    return scrub_value(run, [int(index)])


def create(ui: UI):
    """Builds the tab; returns ``follow(event)``, which makes the tab show the run ``event`` leaves."""
    with gr.Tab("Denoising steps", id="steps"):
        gr.Markdown("Scrub through every stored step of the last run (from any tab): the noisy input x_t, "
                    "the model's predicted clean image x0, and its noise estimate, then the result. The frames "
                    "live in the page, so moving the slider is instant; ▶ plays the run.", elem_classes="help")
        picker = gr.Dropdown([], label="Sample", elem_id="steps-sample", interactive=True)
        html = scrubber("steps-scrubber")
    picker.input(show_track, [ui.last_run, picker], html, api_visibility="private", queue=False)

    def follow(event):
        event.success(show_run, ui.last_run, [picker, html], api_visibility="private", queue=False)
    return follow


if __name__ == "__main__":
    from ..page import serve
    from . import generate

    def both(ui):  # alone this tab would have no run to show: Generate beside it
        generate.create(ui)
        return create(ui)
    serve(both)
