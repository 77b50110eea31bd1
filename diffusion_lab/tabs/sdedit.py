"""SDEdit: noise a picture part way and denoise it back, once per strength; a target class pulls it along."""
from __future__ import annotations

import gradio as gr

import ddpm
from ddpm import images as im

from .. import reproduce
from ..controls import sampling_controls, sketch_input
from ..examples import example_images, image_examples
from ..follow import follow_examples, follow_target
from ..inputs import NONE, real, run_text, target_class
from ..lab import UI, Lab
from ..runs import Run, scrub_value, scrubber, tracks_from
from ..streaming import events, stops, stream_job
from ..uploads import sketch, sketch_picture

STRENGTH_CHOICES = [round(0.1 * k, 1) for k in range(1, 11)]
STRENGTHS = [0.2, 0.4, 0.6, 0.8, 1.0]  # the default pick


def same_steps(levels: list[float], jobs: list[ddpm.Job], steps: int) -> str:
    """A status note when strengths ran the very same steps (so gave the same image): "· strengths 0.2 and 0.4
    both ran 1 of 3 steps (more steps tell them apart)"; "" when each strength ran steps of its own."""
    runs: dict[int, list[float]] = {}
    for level, job in zip(levels, jobs, strict=True):
        runs.setdefault(job.num_model_steps, []).append(level)
    same = [(n, ls) for n, ls in runs.items() if len(ls) > 1]
    if not same:
        return ""
    parts = [f"{', '.join(f'{v:g}' for v in ls[:-1])} and {ls[-1]:g} {'both' if len(ls) == 2 else 'all'} ran "
             f"{n} of {steps} steps" for n, ls in same]
    return f" · strengths {'; '.join(parts)} (more steps tell them apart)"


def sdedit(lab: Lab, model, image, target, strengths, sampler, steps, guidance, seed, session,
           progress=gr.Progress()):
    model, s, _ = lab.begin(model, session, sampler, steps, guidance, seed)
    x0 = sketch(image, model)
    label = target_class(model, target)
    given = strengths.split(",") if isinstance(strengths, str) else strengths or []
    levels = sorted({real(v, 0, 1, "strength") for v in given})
    if not levels:
        raise ValueError("pick at least one strength (how much noise to add: 0 none, 1 all)")
    jobs = ddpm.sdedit(model, x0, levels, labels=label, settings=s)
    total, done, results, tracks = sum(max(j.num_model_steps, 1) for j in jobs), 0, [], []
    k = im.display_scale(model.image_size)
    seen = im.to_display(x0, k)

    def tick(step):
        nonlocal done
        done += 1
        progress((done, total), desc="denoising")
    for level, job in zip(levels, jobs, strict=True):
        start_t = job.plan[0]
        x, frames = yield from stream_job(job, tick, lambda step, status, first: {  # the strengths done so far
            "gallery": list(results), "seen": seen, "status": f"strength {level:g}: {status}"})
        caption = f"strength {level:g} (from t={start_t})" if start_t >= 0 else f"strength {level:g} (input)"
        results.append((im.to_display(x[0], k), f"{level:g}"))
        tracks += tracks_from(frames, [caption], x)
    what = f"target {NONE if label is None else label} · {run_text(s)}{same_steps(levels, jobs, s.steps)}"
    yield {"gallery": results, "seen": seen, "status": f"Done: {model.name} · {what}",
           "run": Run(f"SDEdit · {model.name} · {what}", tracks),
           **reproduce.result(lab, session, model, "sdedit",
                              {"image": sketch_picture(image, model), "strengths": levels, "labels": label}, s)}


def create(ui: UI):
    examples = example_images(ui.lab.models)
    names = ui.lab.default_classes
    with gr.Tab("SDEdit", id="sdedit"):
        gr.Markdown("SDEdit: noise your image part way, then let the model denoise it back, once per strength. "
                    "Low strength keeps your picture; high strength keeps only its rough layout. "
                    "A target class pulls the result toward that class. Sketches are centred and scaled like "
                    "the training data before the model sees them.", elem_classes="help")
        with gr.Row():
            with gr.Column(scale=2, min_width=300):
                image = sketch_input("sdedit-image", examples[0][1] if examples else None,
                                     "Upload, pick an example, or draw")
                with gr.Row():
                    target_box = gr.Dropdown([NONE] + names, value=NONE, allow_custom_value=True,
                                             label="Target class", elem_id="sdedit-target")
                    strengths = gr.CheckboxGroup(STRENGTH_CHOICES, value=STRENGTHS, label="Strengths (noise levels)")
                sampling = sampling_controls(guidance=3.0)
                with gr.Row():
                    run = gr.Button("Run SDEdit", variant="primary", elem_id="sdedit-run")
                    stop = gr.Button("Stop", variant="stop", elem_id="sdedit-stop")
                    whole = gr.Button(visible=False)  # /sdedit: the run returned whole (streaming.events)
            with gr.Column(scale=3, min_width=300):
                status = gr.Textbox(label="Status", interactive=False, elem_id="sdedit-status")
                with gr.Row():
                    seen = gr.Image(label="model input", type="numpy", format="png", height=200, buttons=[],
                                    interactive=False, scale=1, min_width=140, elem_classes="picture")
                    gallery = gr.Gallery(label="Results by strength", columns=5, height=230, scale=4,
                                         min_width=280, format="png", object_fit="contain",
                                         elem_id="sdedit-gallery", elem_classes="picture")
                steps = scrubber("sdedit-scrubber", "Run SDEdit: each strength's denoising steps appear here.")
                repro = reproduce.panel(ui, "sdedit", run,
                                        {"image": image, "target": target_box, "strengths": strengths}, sampling)
        image_examples(ui.model, image, examples)
    follow_examples(ui, image, examples)
    outputs = {"gallery": gallery, "seen": seen, "status": status, "run": ui.last_run, **repro.outputs}
    event = events(run, whole, sdedit, ui.lab, [ui.model, image, target_box, strengths, *sampling.inputs, ui.session],
                   outputs, "sdedit", show_progress_on=status, concurrency_id="model")
    run.click(lambda: None, None, steps, api_visibility="private", queue=False)  # not the last run's beside this one
    event.success(lambda run: scrub_value(run, grid=False, px=84), ui.last_run, steps, api_visibility="private", queue=False)
    stops(stop, event, status)
    follow_target(ui, target_box)
    ui.runs.append(event)


if __name__ == "__main__":
    from ..page import serve

    serve(create)
