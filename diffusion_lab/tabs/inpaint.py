"""Inpaint: paint over part of a picture; the model regenerates it to fit the rest, which is kept exactly."""
from __future__ import annotations

from functools import partial

import gradio as gr
import torch

from ddpm import images as im

from .. import reproduce
from ..controls import mask_input, sampling_controls
from ..examples import example_images, image_examples, preset_mask
from ..follow import follow_examples, follow_target
from ..inputs import NONE, run_text, target_class
from ..lab import UI, Lab
from ..runs import Replay, Run, chart_lines, frame_steps, inpaint_job, tracks_from
from ..streaming import events, stops, stream_job, ticker
from ..uploads import MASK_RGB, inpaint_input


def inpaint(lab: Lab, model, image, target, repaint, count, sampler, steps, guidance, seed, session,
            progress=gr.Progress()):
    name = str(model or "").strip()  # what rebuilds this run for a branch (the steps tab)
    model, s, n = lab.begin(model, session, sampler, steps, guidance, seed, count)
    picture, mask, (w, h) = inpaint_input(image, model)
    x0 = im.prepare_image(picture, model, keep_layout=True)
    square = f" · used the centre {min(h, w)}×{min(h, w)} of the {w}×{h} picture" if h != w else ""
    label = target_class(model, target)
    args = {"x0": x0.expand(n, -1, -1, -1), "mask": torch.from_numpy(mask), "target": label,
            "jump_length": 5 if repaint else 0, "jump_n_sample": 3 if repaint else 1}
    job = inpaint_job(model, s, None, **args)
    k = im.display_scale(model.image_size)
    seen = im.mask_overlay(x0, mask, k, colour=MASK_RGB)
    jumps = f" (RePaint: {s.steps} steps, going back to redo stretches)" if repaint else ""

    def preview(step, status, first):
        out = {"seen": seen, "status": status + jumps}
        return {**out, "result": None} if first else out
    x, frames = yield from stream_job(job, ticker(progress), preview)
    what = (f"{int(mask.sum())} of {mask.size} pixels · target {NONE if label is None else label}"
            f"{' · RePaint' if repaint else ''} · {run_text(s)}{square}")
    grid = im.captioned_grid(x, [f"seed {s.seed} #{i + 1}" for i in range(n)], min(n, 4), k // 2)
    yield {"seen": seen, "result": grid, "status": f"Done: {model.name} · {what}",
           "run": Run(f"Inpaint · {model.name} · {what}", tracks_from(frames, [f"#{i + 1}" for i in range(n)], x),
                      ncol=min(n, 4), chart=partial(chart_lines, model, frames, x, label and [label] * n),
                      replay=Replay(name, s, inpaint_job, args, frame_steps(job), targets=label and [label] * n)),
           **reproduce.result(lab, session, model, "inpaint",
                              {"image": picture, "mask": mask, "labels": label, "n": n,
                               "jump_length": 5 if repaint else 0, "jump_n_sample": 3 if repaint else 1}, s)}


def create(ui: UI):
    examples = [[name, preset_mask(path)] for name, path in example_images(ui.lab.models)]
    names = ui.lab.default_classes
    with gr.Tab("Inpaint", id="inpaint"):
        gr.Markdown("Paint over the part of the image to replace; the model regenerates it to fit the rest, "
                    "which is kept exactly. The examples come with their lower half already painted. RePaint "
                    "resampling goes back and forth in noise a few times so the new part agrees better with "
                    "the old (needs DDIM or DDPM; about 3x the work).", elem_classes="help")
        with gr.Row():
            with gr.Column(scale=3, min_width=300):
                editor = mask_input("inpaint-editor", examples[0][1] if examples else None,
                                    "Image: paint the region to replace")
                with gr.Row():
                    target_box = gr.Dropdown([NONE] + names, value=NONE, allow_custom_value=True, label="Target class")
                    count = gr.Slider(1, 8, value=4, step=1, label="Images")
                    repaint = gr.Checkbox(True, label="RePaint resampling")
                sampling = sampling_controls(sampler="ddim", steps=30, guidance=3.0)
                with gr.Row():
                    run = gr.Button("Inpaint", variant="primary", elem_id="inpaint-run")
                    stop = gr.Button("Stop", variant="stop", elem_id="inpaint-stop")
                    whole = gr.Button(visible=False)  # /inpaint: the run returned whole (streaming.events)
            with gr.Column(scale=2, min_width=300):
                status = gr.Textbox(label="Status", interactive=False, elem_id="inpaint-status")
                seen = gr.Image(label="image and mask as the model sees them", type="numpy", format="png",
                                height=230, interactive=False, elem_id="inpaint-seen", elem_classes="picture")
                result = gr.Image(label="Results", type="pil", format="png", height=260, interactive=False,
                                  elem_id="inpaint-result", elem_classes="picture")
                repro = reproduce.panel(ui, "inpaint", run, {"editor": editor, "target": target_box,
                                                             "repaint": repaint, "count": count}, sampling)
        image_examples(ui.model, editor, examples, "Test-set examples (lower half masked)")
    follow_examples(ui, editor, examples)
    outputs = {"seen": seen, "result": result, "status": status, "run": ui.last_run, **repro.outputs}
    event = events(run, whole, inpaint, ui.lab,
                   [ui.model, editor, target_box, repaint, count, *sampling.inputs, ui.session], outputs, "inpaint",
                   show_progress_on=status, concurrency_id="model")
    stops(stop, event, status)
    follow_target(ui, target_box)
    ui.runs.append(event)


if __name__ == "__main__":
    from ..page import serve

    serve(create)
