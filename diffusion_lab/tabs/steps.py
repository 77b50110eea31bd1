"""Denoising steps: scrub the last run of any tab (the whole grid at every step, one sample enlarged, the
classifier's chart), and continue it from any step with another class, guidance, seed or sampler."""
from __future__ import annotations

import time
from functools import partial

import gradio as gr

from ddpm import explore
from ddpm import images as im
from ddpm.defaults import DEFAULT_GUIDANCE, DEFAULT_SAMPLER

from ..controls import SAMPLERS
from ..inputs import class_list, real, run_text, seed_number, target_class, whole
from ..lab import UI, Lab
from ..runs import Replay, Run, chart_lines, generate_job, scrub_value, scrubber, tracks_from
from ..streaming import events, handler, stream_job, ticker
from . import generate as gen

SAME = "(same)"       # a branch control's "keep the original's"
KEEP = -1             # the same, for /branch's guidance_after and seed_after
MAX_BRANCHES = 3      # branches kept beside a run (the oldest goes)


# -- a branch: the original re-run up to a step, then finished changed ---------------------------------------
def changes(model, replay: Replay, label, guidance, seed, sampler):
    """The class every image switches to (None: keep) and the Settings after the branch, from the controls
    (SAME / None / "" keep the original's)."""
    s, kept = replay.settings, (None, "", SAME, KEEP)
    target = None if label in kept else target_class(model, label)
    if target is not None and not replay.relabel:
        raise ValueError("this run's classes cannot be swapped in a branch: change its guidance, seed or sampler")
    after = s.with_(guidance=s.guidance if guidance in kept else real(guidance, 0, 30, "guidance"),
                    seed=s.seed if seed in kept else seed_number(seed),
                    sampler=s.sampler if sampler in kept else str(sampler))
    return target, after


def describe(s, after, target) -> str:
    parts = [f"class {target}"] if target else []
    parts += [f"{name} {getattr(after, name):g}" if name == "guidance" else f"{name} {getattr(after, name)}"
              for name in ("guidance", "seed", "sampler") if getattr(after, name) != getattr(s, name)]
    return ", ".join(parts) or "same settings"


def branch_steps(model, replay: Replay, at_step: int, target, after, progress):
    """Run the branch (``explore.branch_job`` over the run's Replay) inside a handler's generator: returns its
    result and frames in the order the run shows its pictures."""
    job = explore.branch_job(replay.build(model), replay.settings, at_step, after,
                             replay.build(model, target) if target else None)
    x, frames = yield from stream_job(job, ticker(progress),
                                      lambda step, status, first: {"status": f"branch: {status}"})
    if replay.order is not None:
        x = x[replay.order]
        frames = {key: value if key == "t" else value[:, replay.order] for key, value in frames.items()}
    return job, x, frames


def branch_run(model, replay: Replay, job, x, frames, at_step: int, target, after, captions, ncol) -> Run:
    t = job.plan[at_step] if at_step < len(job.plan) else -1
    where = f"branch at step {at_step}" + (f" (t = {t})" if t >= 0 else " (the end)")
    what = describe(replay.settings, after, target)
    captions = [f"{c} → {target}" for c in captions] if target else captions
    targets = [target] * len(captions) if target else replay.targets
    return Run(f"{where} · {what}", tracks_from(frames, captions, x), ncol=ncol,
               chart=partial(chart_lines, model, frames, x, targets), label=f"{where}: {what}")


def continue_from(lab, run, label, guidance, seed, sampler, session, evt: gr.EventData, progress=gr.Progress()):
    """The scrubber's "Continue from here": the frame shown (``evt.frame``, of the original) -> a branch beside it.
    (Gradio finds ``evt`` by its annotation, resolved in the wrappers' modules: so no other annotation here.)"""
    if run is None or run.replay is None:
        raise ValueError("this run cannot be continued: continue a Generate or Inpaint run")
    replay, start = run.replay, time.perf_counter()
    frame = whole((getattr(evt, "_data", None) or {}).get("frame"), 0, len(replay.steps) - 1, "frame")
    model = lab.model(replay.model, session)
    target, after = changes(model, replay, label, guidance, seed, sampler)
    at = replay.steps[frame]
    job, x, frames = yield from branch_steps(model, replay, at, target, after, progress)
    branch = branch_run(model, replay, job, x, frames, at, target, after, [tr.caption for tr in run.tracks], run.ncol)
    run = run.with_branch(branch, MAX_BRANCHES)
    yield {"run": run, "scrub": scrub_value(run),
           "status": f"Done: {branch.label} · {time.perf_counter() - start:.1f} s"}


def branch(lab: Lab, model, classes, per_class, sampler, steps, guidance, seed, at_step, class_after,
           guidance_after, seed_after, sampler_after, session, progress=gr.Progress()):
    """/branch: the Generate run of these settings (as /generate makes it), re-run up to model step ``at_step``
    and finished with ``class_after`` / ``guidance_after`` / ``seed_after`` / ``sampler_after`` ("(same)", or -1
    for the numbers: the original's). Gives the branch's grid; the steps tab scrubs it."""
    name, start = str(model or "").strip(), time.perf_counter()
    model, s, _ = lab.begin(model, session, sampler, steps, guidance, seed)
    per_class = whole(per_class, 1, gen.MAX_PER_CLASS, "images per class")
    shown, captions, ncol = gen.layout(model, class_list(model, classes), per_class)
    labels, order = gen.sampling_order(class_list(model, classes), per_class, shown)
    replay = Replay(name, s, generate_job, {"labels": labels, "n": per_class}, [], order, shown)
    at = whole(at_step, 0, 100_000, "branch step")
    target, after = changes(model, replay, class_after, guidance_after, seed_after, sampler_after)
    job, x, frames = yield from branch_steps(model, replay, at, target, after, progress)
    names = [f"{c} #{captions[:i].count(c) + 1}" for i, c in enumerate(captions)] if shown else captions
    run = branch_run(model, replay, job, x, frames, at, target, after, names, ncol)
    shown_captions = [f"{c} → {target}" for c in captions] if target else captions
    grid = im.captioned_grid(x, shown_captions, ncol, im.display_scale(model.image_size) // 2)
    run.title = f"Branch · {model.name} · {run_text(s)} · {run.title}"
    seconds = time.perf_counter() - start
    yield {"image": grid, "run": run, "status": f"Done: {model.name} · {run.label} · {seconds:.1f} s"}


# -- the tab --------------------------------------------------------------------------------------------------
def show_run(lab: Lab, run, session):
    """A run just finished: the scrubber shows it; the branch controls appear, set to its settings, when it can
    be continued."""
    value = scrub_value(run)
    replay = run.replay if run is not None else None
    if replay is None:
        return value, gr.Column(visible=False), gr.skip(), gr.skip(), gr.skip(), gr.skip()
    classes = lab.model(replay.model, session).classes if replay.relabel else []
    return (value, gr.Column(visible=True), gr.Dropdown(choices=[SAME] + classes, value=SAME),
            replay.settings.guidance, replay.settings.seed, SAME)


def create(ui: UI):
    """Builds the tab; returns ``follow(event)``, which makes the tab show the run ``event`` leaves."""
    lab, default = ui.lab, ui.lab.default_model
    with gr.Tab("Denoising steps", id="steps"):
        gr.Markdown("Scrub through every stored step of the last run (from any tab): the whole grid at that step "
                    "(noisy input x_t, the model's predicted clean image x0, or its noise estimate), one sample "
                    "enlarged (click a picture), and, where the model ships a classifier, how sure it is of the "
                    "class asked for at every step. The frames live in the page, so moving the slider is instant; "
                    "▶ plays the run. **Continue from here** finishes the run again from the frame shown with "
                    "the settings below: it shows when the shape is decided and when the class can still change.",
                    elem_classes="help")
        html = scrubber("steps-scrubber")
        with gr.Column(visible=False) as controls:
            with gr.Row():
                label = gr.Dropdown([SAME], value=SAME, allow_custom_value=True, label="Class after the branch",
                                    elem_id="branch-class", info="every image switches to this class")
                sampler = gr.Dropdown([SAME] + SAMPLERS, value=SAME, label="Sampler after", elem_id="branch-sampler",
                                      info="UniPC and DEIS cannot start mid-run")
                guidance = gr.Slider(0, 10, value=DEFAULT_GUIDANCE, step=0.5, label="Guidance after",
                                     elem_id="branch-guidance")
                seed = gr.Number(0, label="Seed after", precision=0, minimum=0, elem_id="branch-seed",
                                 info="the noise drawn after the branch (DDPM, SDE samplers)")
            status = gr.Textbox(label="Status", interactive=False, elem_id="branch-status")
        with gr.Column(visible=False):  # /branch's own inputs: the original's settings as /generate takes them
            names = default.classes[:10] if default else []
            sampler0 = default.default_sampler if default else DEFAULT_SAMPLER
            guidance0 = default.default_guidance if default else DEFAULT_GUIDANCE
            api_inputs = [gr.Textbox(lab.default),
                          gr.Dropdown(names, value=names, multiselect=True, allow_custom_value=True),
                          gr.Number(2, precision=0), gr.Textbox(sampler0), gr.Number(20, precision=0),
                          gr.Number(guidance0), gr.Number(0, precision=0), gr.Number(10, precision=0),
                          gr.Textbox(SAME), gr.Number(KEEP), gr.Number(KEEP, precision=0), gr.Textbox(SAME)]
            api_image = gr.Image(type="pil", format="png")
            api_button, api_whole = gr.Button(), gr.Button()  # /branch_stream, /branch (streaming.events)
    shown = [html, controls, label, guidance, seed, sampler]
    html.submit(handler(continue_from, lab, {"run": ui.last_run, "scrub": html, "status": status}),
                [ui.last_run, label, guidance, seed, sampler, ui.session], [ui.last_run, html, status],
                api_visibility="private", show_progress_on=status, concurrency_id="model")
    events(api_button, api_whole, branch, lab, [*api_inputs, ui.session],
           {"image": api_image, "run": ui.last_run, "status": status}, "branch", show_progress_on=status,
           concurrency_id="model")

    def follow(event):
        event.success(lambda run, session: show_run(lab, run, session), [ui.last_run, ui.session], shown,
                      api_visibility="private", queue=False)
    return follow


if __name__ == "__main__":
    from ..page import serve

    def both(ui):  # alone this tab would have no run to show: Generate beside it
        gen.create(ui)
        return create(ui)
    serve(both)
