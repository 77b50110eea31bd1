"""Forward process: noise a picture to step t, and see the model's one-step estimate of x0 beside a blur; a
chart of the model's noise schedule marks where t lies on it."""
from __future__ import annotations

import html

import gradio as gr
import torch

import ddpm
from ddpm import images as im

from .. import reproduce
from ..controls import sketch_input
from ..examples import example_images, image_examples
from ..follow import follow_examples, model_or_none
from ..inputs import MAX_SEED, real, seed_number, whole
from ..lab import UI, Lab
from ..streaming import handler
from ..uploads import sketch, sketch_picture

PANELS = ("input, as the model sees it", "noisy x_t", "one-step estimate of x0", "Gaussian blur of x_t")
CHART_W, CHART_H, PAD = 440, 190, (38, 12, 14, 30)  # px: the chart, and its left, right, top, bottom margins
CURVES = (("signal scale √ᾱ_t", "#1e88e5"), ("noise scale √(1−ᾱ_t)", "#e65100"))


def forward(lab: Lab, model, image, t, seed, blur_sigma, session):
    model = lab.model(model, session)
    x0 = sketch(image, model)
    t = whole(t, 0, model.schedule.num_timesteps - 1, "t")
    sigma = real(blur_sigma, 0.1, model.image_size, "blur sigma")
    noise_seed = seed_number(seed)
    out = ddpm.forward_process(model, x0, t, seed=noise_seed, blur_sigma=sigma)
    abar = float(model.schedule.alphas_cumprod[t])
    k = im.display_scale(model.image_size)
    note = (f"t = {t}: x_t = {abar ** 0.5:.3f} · x0 + {(1 - abar) ** 0.5:.3f} · noise "
            f"(signal-to-noise {abar / max(1 - abar, 1e-12):.3g}) · seed {noise_seed}")
    pictures = [x0, out["x_t"][0], out["x0_pred"][0], out["blurred"][0]]
    return {**{f"panel{i}": im.to_display(p, k) for i, p in enumerate(pictures)}, "note": note,
            **reproduce.result(lab, session, model, "forward",
                               {"image": sketch_picture(image, model), "t": t, "blur_sigma": sigma},
                               ddpm.Settings(seed=noise_seed))}


def schedule_chart(model: ddpm.DiffusionModel, t: int) -> str:
    """An inline SVG of the model's schedule: how much of x0 (signal scale sqrt(alpha_bar_t)) and how much
    noise (sqrt(1 - alpha_bar_t)) make up x_t, against t, with ``t`` marked and its values written."""
    abar = model.schedule.alphas_cumprod.detach().to("cpu", dtype=torch.float64)
    top = len(abar) - 1
    t = min(max(int(t), 0), top)
    left, right, up, down = PAD
    w, h = CHART_W - left - right, CHART_H - up - down

    def xy(step, value):
        return f"{left + w * step / top:.1f},{up + h * (1 - value):.1f}"
    stride = max(1, top // 220)
    steps = list(range(0, top + 1, stride)) + ([top] if top % stride else [])
    scales = [abar.sqrt(), (1 - abar).sqrt()]
    parts = [f'<line x1="{left}" y1="{up + h}" x2="{left + w}" y2="{up + h}" stroke="#888"/>',
             f'<line x1="{left}" y1="{up}" x2="{left}" y2="{up + h}" stroke="#888"/>']
    for value in (0, 0.5, 1):
        y = up + h * (1 - value)
        parts.append(f'<text x="{left - 5}" y="{y + 4:.1f}" text-anchor="end">{value:g}</text>')
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + w}" y2="{y:.1f}" stroke="#8884"/>')
    for frac in (0, 0.25, 0.5, 0.75, 1):
        step = round(top * frac)
        parts.append(f'<text x="{left + w * frac:.1f}" y="{up + h + 16}" text-anchor="middle">{step}</text>')
    for (label, colour), scale in zip(CURVES, scales, strict=True):
        points = " ".join(xy(s, float(scale[s])) for s in steps)
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2.2"/>')
    x = left + w * t / top
    parts.append(f'<line x1="{x:.1f}" y1="{up}" x2="{x:.1f}" y2="{up + h}" stroke="currentColor" '
                 f'stroke-dasharray="4 3"/>')
    for (label, colour), scale in zip(CURVES, scales, strict=True):
        cx, cy = xy(t, float(scale[t])).split(",")
        parts.append(f'<circle cx="{cx}" cy="{cy}" r="4" fill="{colour}"/>')
    anchor = "end" if t > top * 0.6 else "start"
    shift = -6 if anchor == "end" else 6
    snr = float(abar[t] / max(1 - abar[t], 1e-12))
    parts.append(f'<text x="{x + shift:.1f}" y="{up + 12}" text-anchor="{anchor}">t = {t} · signal '
                 f'{float(scales[0][t]):.2f} · noise {float(scales[1][t]):.2f} · SNR {snr:.2g}</text>')
    parts.append(f'<text x="{left + w / 2}" y="{CHART_H - 1}" text-anchor="middle">t</text>')
    legend = " ".join(f'<span style="color:{c}">━ {html.escape(label)}</span>' for label, c in CURVES)
    kind = html.escape(f"{model.name}: {model.schedule.kind} schedule, T = {top + 1}")
    return (f'<div class="schedule-chart" id="forward-schedule-chart"><div style="font-size:0.85em">{kind} · '
            f'{legend}</div><svg viewBox="0 0 {CHART_W} {CHART_H}" width="100%" role="img" '
            f'aria-label="noise schedule, t = {t} marked" style="max-width:{CHART_W * 1.4:.0f}px;font-size:11px;'
            f'fill:currentColor">{"".join(parts)}</svg></div>')


def create(ui: UI):
    examples = example_images(ui.lab.models)
    model = ui.lab.default_model
    with gr.Tab("Forward process", id="forward"):
        gr.Markdown("Add noise to an image up to step t of the forward process, then see what one model call "
                    "recovers (its one-step estimate of x0) next to a plain Gaussian blur of x_t.",
                    elem_classes="help")
        with gr.Row():
            with gr.Column(scale=2, min_width=300):
                image = sketch_input("forward-image", examples[0][1] if examples else None,
                                     "Upload, pick an example, or draw")
                t = gr.Slider(0, model.schedule.num_timesteps - 1 if model else 999, value=500, step=1,
                              label="Noise level t", info="0: almost clean · 999: pure noise", elem_id="forward-t")
                with gr.Row():
                    noise_seed = gr.Number(0, label="Noise seed", precision=0, minimum=0, maximum=MAX_SEED)
                    blur = gr.Slider(0.25, 4, value=1.0, step=0.25, label="Blur sigma (px)")
                run = gr.Button("Add noise", variant="primary", elem_id="forward-run")
            with gr.Column(scale=3, min_width=300):
                shown = []
                for row in (PANELS[:2], PANELS[2:]):
                    with gr.Row():
                        shown += [gr.Image(label=label, type="numpy", format="png", height=240, interactive=False,
                                           buttons=["download"], min_width=150, elem_id=f"forward-{i}",
                                           elem_classes="picture")
                                  for i, label in enumerate(row, len(shown))]
                note = gr.Textbox(label="What happened", interactive=False, elem_id="forward-note")
                chart = gr.HTML(schedule_chart(model, 500) if model else "", elem_id="forward-schedule",
                                label="Noise schedule")
                gr.Markdown("x_t = √ᾱ_t · x0 + √(1−ᾱ_t) · noise: where the two curves cross the picture is "
                            "already more noise than signal. On the linear schedule the signal scale has fallen "
                            "to about 0.28 by t = 500, so half way the picture already looks like noise; a "
                            "cosine schedule keeps the signal longer.", elem_classes="help")
                repro = reproduce.panel(ui, "forward", run, {"image": image, "t": t, "noise_seed": noise_seed,
                                                             "blur": blur})
        image_examples(ui.model, image, examples)
    follow_examples(ui, image, examples)
    outputs = {**{f"panel{i}": box for i, box in enumerate(shown)}, "note": note, **repro.outputs}
    inputs = [ui.model, image, t, noise_seed, blur, ui.session]
    run_forward = handler(forward, ui.lab, outputs)
    run.click(run_forward, inputs, list(outputs.values()), api_name="forward", concurrency_id="model")
    t.release(run_forward, inputs, list(outputs.values()), api_visibility="private", concurrency_id="model",
              show_progress="minimal")

    def t_range(name, session, current):
        found = model_or_none(ui, name, session)
        if found is None:
            return gr.skip()
        top = found.schedule.num_timesteps - 1
        return gr.Slider(maximum=top, value=min(int(current or 0), top))
    ui.model_ready.success(t_range, [ui.model, ui.session, t], t, api_visibility="private", queue=False)

    def chart_of(name, session, step):
        found = model_or_none(ui, name, session)
        try:
            return gr.skip() if found is None else schedule_chart(found, whole(step, 0, 10**6, "t"))
        except ValueError:  # a t typed half way: the chart waits for a number
            return gr.skip()
    t.change(chart_of, [ui.model, ui.session, t], chart, api_visibility="private", queue=False, show_progress="hidden")
    ui.model_ready.success(chart_of, [ui.model, ui.session, t], chart, api_visibility="private", queue=False)


if __name__ == "__main__":
    from ..page import serve

    serve(create)
