"""Illusions: a visual anagram (one image, two readings under a transform) and a hybrid image (one class from
afar, another up close), each with its presets for the bundled models. With the model's own classifier
(``model.classifier``) a run draws several candidates per image and keeps the best, scored in every reading."""
from __future__ import annotations

from functools import partial

import gradio as gr
import torch

import ddpm
from ddpm import illusions
from ddpm import images as im

from .. import reproduce
from ..controls import sampling_controls
from ..follow import model_or_none
from ..inputs import real, run_text, target_class, whole
from ..lab import UI, Lab
from ..runs import Run, reading_lines, tracks_from
from ..streaming import events, stops, stream_job, ticker

# Pairs that make good illusions with the bundled models: ddpm.illusions.PRESETS, measured with
# `python -m ddpm evaluate-illusions` (docs/MEASUREMENTS.md); the first of each works on the first try; other
# models start from their first two classes. Hybrids: the 0 ("sigma") means the split that matches "from
# afar" exactly (the area split).
def _preset_table(kind: str) -> dict[str, list[tuple]]:
    table = {}
    for dataset, items in illusions.PRESETS.items():
        table[dataset] = [(p.first, p.second, p.view if kind == "anagram" else 0.0) for p in items if p.kind == kind]
    return table


ANAGRAMS, HYBRIDS = _preset_table("anagram"), _preset_table("hybrid")
MAX_CANDIDATES = 8  # per image: a run draws images x candidates, at most illusions.MAX_CANDIDATES in all
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


def _candidates(model, value, n: int) -> int:
    """Candidates per image: 1 for a model with no classifier to rank them (nothing to choose by)."""
    k = whole(value, 1, MAX_CANDIDATES, "candidates")
    if model.classifier is None:
        return 1
    illusions.check_candidates(n, k)
    return k


def _select(frames: dict, chosen: torch.Tensor) -> dict:
    """The recorded frames of the chosen candidates only (the scrubber shows what was kept)."""
    return {key: (value if key == "t" else value[:, chosen]) for key, value in frames.items()}


def _rank(model, x, frames, readings, k: int):
    """Score the n * k candidates ``x`` in every reading and keep each group's best: (images, frames,
    scores of the kept ones or None without a classifier, a status note)."""
    if model.classifier is None:
        return x, frames, None, " · no scores: this model ships no classifier"
    every = illusions.score(model.classifier, x, readings)
    best, scores, chosen = illusions.pick_best(x, every, k)
    accepted = int(every["accepted"].sum())
    note = (f" · {accepted} of {x.shape[0]} candidates read as intended in every view by the {model.name} classifier"
            + (f", the best of each {k} kept" if k > 1 else ""))
    return best, _select(frames, chosen), scores, note


def _score_text(scores, i: int, r: int) -> str:
    return "" if scores is None else f" · p {float(scores['probs'][i, r]):.2f}"


def view_preview(step, views, ncol: int, scale: int):
    """The predicted x0 of a running illusion under each of its views, side by side (what each reading
    shows as it forms)."""
    x0 = step.x0[: max(1, 8 // len(views))]
    tiles = torch.stack([v(x0) for v in views], 1).flatten(0, 1)
    return im.captioned_grid(tiles, None, ncol, scale)


def anagram(lab: Lab, model, class_a, class_b, view, count, sampler, steps, guidance, seed, candidates,
            view_guidance, session, progress=gr.Progress()):
    model, s, n = lab.begin(model, session, sampler, steps, guidance, seed, count)
    a, b = target_class(model, class_a), target_class(model, class_b)
    v = ddpm.get_view(view)
    k = _candidates(model, candidates, n)
    second = real(view_guidance, 0, ddpm.defaults.MAX_GUIDANCE, "the transformed view's guidance")
    guidances = [s.guidance, second] if second else None  # 0: the same as Guidance
    parts = [(a, "identity"), (b, v)]
    job = ddpm.anagram(model, parts, n=n * k, settings=s, guidances=guidances)
    scale = im.display_scale(model.image_size) // 2
    x, frames = yield from stream_job(job, ticker(progress), lambda step, status, first: {
        "status": status + " · predicted x0 as is and transformed",
        "result": view_preview(step, [lambda t: t, v], 2 * min(n, 2), scale)})
    readings = illusions.anagram_readings(model, parts) if a is not None and b is not None else None
    x, frames, scores, note = _rank(model, x, frames, readings, k) if readings else (x, frames, None, "")
    pairs = torch.stack([x, v(x)], 1).flatten(0, 1)
    captions = [c for i in range(n) for c in (f"{a or 'any'} · as is{_score_text(scores, i, 0)}",
                                               f"{b or 'any'} · {view_label(view)}{_score_text(scores, i, 1)}")]
    what = (f"{a or 'any'} / {b or 'any'} {v.spec} · "
            f"{f'transformed view guidance {second:g} · ' if guidances else ''}{run_text(s)}")
    yield {"result": im.captioned_grid(pairs, captions, 2 * min(n, 2), scale),
           "status": f"Done: {model.name} · {what}{note}",
           "run": Run(f"Anagram · {model.name} · {what}", tracks_from(frames, [f"#{i + 1}" for i in range(n)], x),
                      chart=partial(reading_lines, model, frames, x, readings)),
           **reproduce.result(lab, session, model, "anagram", {"parts": [(a, "identity"), (b, v.spec)],
                              "n": n if readings else n * k, "best_of": k if readings else 1,
                              "view_guidance": guidances}, s)}


def hybrid(lab: Lab, model, low, high, sigma, count, sampler, steps, guidance, seed, candidates,
           high_guidance, session, progress=gr.Progress()):
    model, s, n = lab.begin(model, session, sampler, steps, guidance, seed, count)
    sigma = real(sigma, 0, model.image_size, "blur sigma")
    up_close = real(high_guidance, 0, ddpm.defaults.MAX_GUIDANCE, "up-close guidance")
    low, high = target_class(model, low), target_class(model, high)
    k = _candidates(model, candidates, n)
    factor = illusions.AFAR_FACTOR
    # sigma 0: split by exactly what survives "from afar" (the area projection), else a Gaussian blur
    job = ddpm.hybrid(model, low, high, sigma=sigma or None, n=n * k, settings=s,
                      factor=None if sigma else factor, high_guidance=up_close)
    scale = im.display_scale(model.image_size)
    x, frames = yield from stream_job(job, ticker(progress), lambda step, status, first: {
        "status": status + " · predicted x0 up close and from afar",
        "large": view_preview(step, [lambda t: t, lambda t: illusions.from_afar(t, factor)], 2 * min(n, 2),
                              scale // 2)})
    readings = illusions.hybrid_readings(model, low, high, factor) if low is not None and high is not None else None
    x, frames, scores, note = _rank(model, x, frames, readings, k) if readings else (x, frames, None, "")
    captions = None if scores is None else [f"afar p {float(scores['probs'][i, 0]):.2f} · close p "
                                            f"{float(scores['probs'][i, 1]):.2f}" for i in range(n)]
    split = f"sigma {sigma:g}" if sigma else f"split at 1/{factor}"
    what = (f"{low or 'any'} from afar, {high or 'any'} up close · {split} · up-close guidance {up_close:g} · "
            f"{run_text(s)}")
    yield {"large": im.captioned_grid(x, captions, min(n, 4), scale),
           "small": im.captioned_grid(illusions.from_afar(x, factor), None, min(n, 4), 1, pad=2),
           "status": f"Done: {model.name} · {what}{note}",
           "run": Run(f"Hybrid · {model.name} · {what}", tracks_from(frames, [f"#{i + 1}" for i in range(n)], x),
                      chart=partial(reading_lines, model, frames, x, readings)),
           **reproduce.result(lab, session, model, "hybrid", {
               "low_label": low, "high_label": high, "sigma": sigma or None, "factor": None if sigma else factor,
               "high_guidance": up_close, "n": n if readings else n * k, "best_of": k if readings else 1}, s)}


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
                "transformed: at every step the model's noise estimates for both views are averaged. The "
                "transform matters more than any setting: 1/7 works upside down far more often than mirrored. "
                "When one view keeps failing, guide it harder: 3/8 negated works about twice as often with "
                "Guidance 8 and the transformed view's 4.", elem_classes="help")
    with gr.Row():
        class_a = gr.Dropdown(names, value=a, allow_custom_value=True, label="Class A (as is)")
        class_b = gr.Dropdown(names, value=b, allow_custom_value=True, label="Class B (transformed)")
    view = gr.Dropdown(view_choices(model), value=view0, allow_custom_value=True, label="Transform",
                       elem_id="anagram-view")
    count = gr.Slider(1, 8, value=2, step=1, label="Images")
    candidates = gr.Slider(1, MAX_CANDIDATES, value=4, step=1, label="Candidates per image", elem_id="anagram-candidates",
                           info="draw this many, keep the one the model's classifier reads best in both views")
    view_guidance = gr.Slider(0, 10, value=0, step=0.5, label="Transformed view's guidance",
                              elem_id="anagram-view-guidance",
                              info="class B's own guidance; 0: the same as Guidance (which guides class A)")
    sampling = sampling_controls(steps=20, guidance=illusions.DEFAULT_ILLUSION_GUIDANCE)
    with gr.Row():
        run = gr.Button("Make anagram", variant="primary", elem_id="anagram-run")
        stop = gr.Button("Stop", variant="stop", elem_id="anagram-stop")
        whole = gr.Button(visible=False)  # /anagram: the run returned whole (streaming.events)
    status = gr.Textbox(label="Status", interactive=False, elem_id="anagram-status")
    result = gr.Image(label="Each image as is, and transformed", type="pil", format="png", height=300,
                      interactive=False, elem_id="anagram-result", buttons=["download"], elem_classes="picture")
    repro = reproduce.panel(ui, "anagram", run, {"class_a": class_a, "class_b": class_b, "view": view, "count": count,
                                                 "candidates": candidates, "view_guidance": view_guidance}, sampling)
    # the first two of every model's presets: every model gets a button
    rows = [[name, *r] for name, m in ui.lab.models.items() for r in presets(m, ANAGRAMS, "rot180")[:2]]
    # labels, not a table: a table shows a class only if the *current* model has it (blank cells)
    gr.Examples(rows, [ui.model, class_a, class_b, view], label="Examples",
                example_labels=[f"{m}: {a} / {b} {view_label(v)}" for m, a, b, v in rows])
    outputs = {"result": result, "status": status, "run": ui.last_run, **repro.outputs}
    event = events(run, whole, anagram, ui.lab,
                   [ui.model, class_a, class_b, view, count, *sampling.inputs, candidates, view_guidance, ui.session],
                   outputs, "anagram", show_progress_on=status, concurrency_id="model")
    stops(stop, event, status)
    follow_illusion(ui, class_a, class_b, view, ANAGRAMS, "rot180", views=True)
    return event


def hybrid_column(ui: UI):
    model = ui.lab.default_model
    names = model.classes if model is not None else []
    low0, high0, sigma0 = presets(model, HYBRIDS, 0.0)[0]
    gr.Markdown("### Hybrid image\nThe coarse picture from one class, the fine detail from another: up close "
                "you see the fine class, from afar (below: the image shrunk 4x, as the score sees it) the coarse one. "
                "The fine class can only draw where the coarse one has ink, so pick a pair where it fits inside "
                "(a 3 inside an 8).", elem_classes="help")
    with gr.Row():
        low = gr.Dropdown(names, value=low0, allow_custom_value=True, label="From afar (low freq.)")
        high = gr.Dropdown(names, value=high0, allow_custom_value=True, label="Up close (high freq.)")
    sigma = gr.Slider(0, 4, value=sigma0, step=0.25, label="Blur sigma (px)",
                      info="0: split by exactly what survives from afar (best); above 0: a Gaussian blur")
    count = gr.Slider(1, 8, value=2, step=1, label="Images")
    candidates = gr.Slider(1, MAX_CANDIDATES, value=4, step=1, label="Candidates per image", elem_id="hybrid-candidates",
                           info="draw this many, keep the one the model's classifier reads best both ways")
    high_guidance = gr.Slider(0, 10, value=illusions.DEFAULT_HIGH_GUIDANCE, step=0.5, label="Up-close guidance",
                              info="the fine class's own guidance (the coarse one uses Guidance)")
    sampling = sampling_controls(steps=20, guidance=illusions.DEFAULT_ILLUSION_GUIDANCE)
    with gr.Row():
        run = gr.Button("Make hybrid", variant="primary", elem_id="hybrid-run")
        stop = gr.Button("Stop", variant="stop", elem_id="hybrid-stop")
        whole = gr.Button(visible=False)  # /hybrid: the run returned whole (streaming.events)
    status = gr.Textbox(label="Status", interactive=False, elem_id="hybrid-status")
    large = gr.Image(label="Up close", type="pil", elem_id="hybrid-large", format="png", height=240, interactive=False, buttons=["download"],
                     elem_classes="picture")
    small = gr.Image(label="From afar", type="pil", format="png", height=80, interactive=False,
                     elem_id="hybrid-small", buttons=[])
    repro = reproduce.panel(ui, "hybrid", run, {"low": low, "high": high, "sigma": sigma, "count": count,
                                                "candidates": candidates, "high_guidance": high_guidance}, sampling)
    rows = [[name, *r] for name, m in ui.lab.models.items() for r in presets(m, HYBRIDS, 0.0)[:2]]
    gr.Examples(rows, [ui.model, low, high, sigma], label="Examples",
                example_labels=[f"{m}: {lo} from afar, {hi} up close" for m, lo, hi, _ in rows])
    outputs = {"large": large, "small": small, "status": status, "run": ui.last_run, **repro.outputs}
    event = events(run, whole, hybrid, ui.lab,
                   [ui.model, low, high, sigma, count, *sampling.inputs, candidates, high_guidance, ui.session],
                   outputs, "hybrid", show_progress_on=status, concurrency_id="model")
    stops(stop, event, status)
    follow_illusion(ui, low, high, sigma, HYBRIDS, 0.0)
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
