"""Illusions: a visual anagram (one image, two readings under a transform) and a hybrid image (one class from
afar, another up close), each with its presets for the bundled models."""
from __future__ import annotations

import gradio as gr
import torch

import ddpm
from ddpm import images as im

from ..controls import sampling_controls
from ..follow import model_or_none
from ..inputs import real, run_text, target_class
from ..lab import UI, Lab
from ..runs import Run, tracks_from
from ..streaming import handler, stops, stream_job, ticker

# Pairs that make good illusions with the bundled models; other models start from their first two classes.
ANAGRAMS = {"mnist": [("2", "5", "flip_v"), ("3", "8", "flip_h"), ("6", "9", "rot180")],
            "letters": [("N", "Z", "rot90"), ("M", "W", "flip_v")],
            "fashion": [("Trouser", "Dress", "flip_v"), ("Sandal", "Sneaker", "flip_h")]}
HYBRIDS = {"mnist": [("0", "1", 1.0), ("8", "3", 1.5)], "letters": [("O", "I", 1.0)]}
VIEW_LABELS = {"identity": "as is", "flip_v": "upside down", "flip_h": "mirrored", "rot180": "rotated 180°",
               "rot90": "rotated 90°", "rot270": "rotated -90°", "transpose": "transposed", "negate": "negative",
               "patches": "jigsaw"}


def view_label(view: str) -> str:
    v = ddpm.get_view(view)
    return VIEW_LABELS.get(v.name, v.description.split(" (")[0])


def view_choices(model: ddpm.DiffusionModel | None) -> list[tuple[str, str]]:
    size = model.image_size if model is not None else 28
    views = [n for n in ddpm.VIEWS if n not in ("identity", "patches")] + [f"patches:{max(2, size // 4)}"]
    return [(f"{view_label(v)} ({v})", v) for v in views]


def presets(model: ddpm.DiffusionModel | None, table: dict, tail) -> list[tuple]:
    """Good (class, class, extra) triples for a model: from ``table`` when its classes fit, else its first two."""
    names = model.classes if model is not None else []
    rows = [r for r in table.get(model.dataset if model else None, []) if r[0] in names and r[1] in names]
    return rows or [((names + [None, None])[0], (names + [None, None])[1], tail)]


def after_switch(model: ddpm.DiffusionModel, table: dict, tail, a, b, third, views: bool = False) -> tuple:
    """An illusion's (class A, class B, transform or blur) once the Model box shows ``model``: kept while
    both classes (and, given ``views``, the transform) fit it (so an example that sets model and classes
    together keeps all three), else the model's first preset, all three together: a transform chosen for
    one pair of classes never stays behind with another pair."""
    names = model.classes
    fits = a in names and b in names and (not views or third in {v for _, v in view_choices(model)})
    return (a, b, third) if fits else presets(model, table, tail)[0]


def anagram(lab: Lab, model, class_a, class_b, view, count, sampler, steps, guidance, seed, session,
            progress=gr.Progress()):
    model, s, n = lab.begin(model, session, sampler, steps, guidance, seed, count)
    a, b = target_class(model, class_a), target_class(model, class_b)
    v = ddpm.get_view(view)
    job = ddpm.anagram(model, [(a, "identity"), (b, v)], n=n, settings=s)
    x, frames = yield from stream_job(job, ticker(progress), lambda step, status, first: (
        {"status": status, "result": None} if first else {"status": status}))
    pairs = torch.stack([x, v(x)], 1).flatten(0, 1)
    captions = [c for _ in range(n) for c in (f"{a or 'any'} · as is", f"{b or 'any'} · {view_label(view)}")]
    what = f"{a or 'any'} / {b or 'any'} {v.spec} · {run_text(s)}"
    yield {"result": im.captioned_grid(pairs, captions, 2 * min(n, 2), im.display_scale(model.image_size) // 2),
           "status": f"Done: {model.name} · {what}",
           "run": Run(f"Anagram · {model.name} · {what}", tracks_from(frames, [f"#{i + 1}" for i in range(n)], x))}


def hybrid(lab: Lab, model, low, high, sigma, count, sampler, steps, guidance, seed, session, progress=gr.Progress()):
    model, s, n = lab.begin(model, session, sampler, steps, guidance, seed, count)
    sigma = real(sigma, 0.1, model.image_size, "blur sigma")
    low, high = target_class(model, low), target_class(model, high)
    job = ddpm.hybrid(model, low, high, sigma=sigma, n=n, settings=s)
    x, frames = yield from stream_job(job, ticker(progress), lambda step, status, first: (
        {"status": status, "large": None, "small": None} if first else {"status": status}))
    what = f"{low or 'any'} from afar, {high or 'any'} up close · sigma {sigma:g} · {run_text(s)}"
    yield {"large": im.captioned_grid(x, None, min(n, 4), im.display_scale(model.image_size)),
           "small": im.captioned_grid(x, None, min(n, 4), 1, pad=2), "status": f"Done: {model.name} · {what}",
           "run": Run(f"Hybrid · {model.name} · {what}", tracks_from(frames, [f"#{i + 1}" for i in range(n)], x))}


def follow_illusion(ui: UI, box_a, box_b, box_third, table: dict, tail, views: bool = False) -> None:
    """Keep an illusion's two class boxes and its transform (``views``: a dropdown of views) or blur (a
    slider) in step with the Model box, as one (see after_switch)."""
    def update(name, session, a, b, third):
        model = model_or_none(ui, name, session)
        if model is None:
            return gr.skip(), gr.skip(), gr.skip()
        a, b, third = after_switch(model, table, tail, a, b, third, views)
        third = gr.Dropdown(choices=view_choices(model), value=third) if views else third
        return gr.Dropdown(choices=model.classes, value=a), gr.Dropdown(choices=model.classes, value=b), third
    ui.model_ready.success(update, [ui.model, ui.session, box_a, box_b, box_third], [box_a, box_b, box_third],
                           api_visibility="private", queue=False)


def anagram_column(ui: UI):
    model = ui.lab.default_model
    names = model.classes if model is not None else []
    a, b, view0 = presets(model, ANAGRAMS, "rot180")[0]
    gr.Markdown("### Visual anagram\nOne image that reads as class A as it is, and as class B when "
                "transformed: at every step the model's noise estimates for both views are averaged.",
                elem_classes="help")
    with gr.Row():
        class_a = gr.Dropdown(names, value=a, allow_custom_value=True, label="Class A (as is)")
        class_b = gr.Dropdown(names, value=b, allow_custom_value=True, label="Class B (transformed)")
    view = gr.Dropdown(view_choices(model), value=view0, allow_custom_value=True, label="Transform",
                       elem_id="anagram-view")
    count = gr.Slider(1, 8, value=4, step=1, label="Images")
    sampling = sampling_controls(steps=30, guidance=3.0)
    with gr.Row():
        run = gr.Button("Make anagram", variant="primary", elem_id="anagram-run")
        stop = gr.Button("Stop", variant="stop", elem_id="anagram-stop")
    status = gr.Textbox(label="Status", interactive=False, elem_id="anagram-status")
    result = gr.Image(label="Each image as is, and transformed", type="pil", format="png", height=300,
                      interactive=False, elem_id="anagram-result", buttons=["download"], elem_classes="picture")
    rows = [[name, *r] for name, m in ui.lab.models.items() for r in presets(m, ANAGRAMS, "rot180")][:8]
    # labels, not a table: a table shows a class only if the *current* model has it (blank cells)
    gr.Examples(rows, [ui.model, class_a, class_b, view], label="Examples",
                example_labels=[f"{m}: {a} / {b} {view_label(v)}" for m, a, b, v in rows])
    outputs = {"result": result, "status": status, "run": ui.last_run}
    event = run.click(handler(anagram, ui.lab, outputs),
                      [ui.model, class_a, class_b, view, count, *sampling.inputs, ui.session], list(outputs.values()),
                      api_name="anagram", show_progress_on=status, concurrency_id="model")
    stops(stop, event, status)
    follow_illusion(ui, class_a, class_b, view, ANAGRAMS, "rot180", views=True)
    return event


def hybrid_column(ui: UI):
    model = ui.lab.default_model
    names = model.classes if model is not None else []
    low0, high0, sigma0 = presets(model, HYBRIDS, 1.0)[0]
    gr.Markdown("### Hybrid image\nLow frequencies from one class, high frequencies from another: up close "
                "you see the high-frequency class, from afar (small) the low one.", elem_classes="help")
    with gr.Row():
        low = gr.Dropdown(names, value=low0, allow_custom_value=True, label="From afar (low freq.)")
        high = gr.Dropdown(names, value=high0, allow_custom_value=True, label="Up close (high freq.)")
    sigma = gr.Slider(0.25, 4, value=sigma0, step=0.25, label="Blur sigma (px)", info="where low ends and high begins")
    count = gr.Slider(1, 8, value=4, step=1, label="Images")
    sampling = sampling_controls(steps=30, guidance=3.0)
    with gr.Row():
        run = gr.Button("Make hybrid", variant="primary", elem_id="hybrid-run")
        stop = gr.Button("Stop", variant="stop", elem_id="hybrid-stop")
    status = gr.Textbox(label="Status", interactive=False, elem_id="hybrid-status")
    large = gr.Image(label="Up close", type="pil", format="png", height=240, interactive=False, buttons=["download"],
                     elem_classes="picture")
    small = gr.Image(label="From afar", type="pil", format="png", height=80, interactive=False,
                     elem_id="hybrid-small", buttons=[])
    rows = [[name, *r] for name, m in ui.lab.models.items() for r in presets(m, HYBRIDS, 1.0)][:8]
    gr.Examples(rows, [ui.model, low, high, sigma], label="Examples",
                example_labels=[f"{m}: {lo} from afar, {hi} up close" for m, lo, hi, _ in rows])
    outputs = {"large": large, "small": small, "status": status, "run": ui.last_run}
    event = run.click(handler(hybrid, ui.lab, outputs),
                      [ui.model, low, high, sigma, count, *sampling.inputs, ui.session], list(outputs.values()), api_name="hybrid", show_progress_on=status, concurrency_id="model")
    stops(stop, event, status)
    follow_illusion(ui, low, high, sigma, HYBRIDS, 1.0)
    return event


def create(ui: UI):
    with gr.Tab("Illusions", id="illusions"), gr.Row():
        with gr.Column(min_width=300):
            ui.runs.append(anagram_column(ui))
        with gr.Column(min_width=300):
            ui.runs.append(hybrid_column(ui))


if __name__ == "__main__":
    from ..page import serve

    serve(create)
