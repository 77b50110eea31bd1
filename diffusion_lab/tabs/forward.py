"""Forward process: noise a picture to step t, and see the model's one-step estimate of x0 beside a blur."""
from __future__ import annotations

import gradio as gr

import ddpm
from ddpm import images as im

from ..controls import sketch_input
from ..examples import example_images, image_examples
from ..follow import follow_examples, model_or_none
from ..inputs import MAX_SEED, real, seed_number, whole
from ..lab import UI, Lab
from ..streaming import handler
from ..uploads import sketch

PANELS = ("input, as the model sees it", "noisy x_t", "one-step estimate of x0", "Gaussian blur of x_t")


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
    return {**{f"panel{i}": im.to_display(p, k) for i, p in enumerate(pictures)}, "note": note}


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
        image_examples(ui.model, image, examples)
    follow_examples(ui, image, examples)
    outputs = {**{f"panel{i}": box for i, box in enumerate(shown)}, "note": note}
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


if __name__ == "__main__":
    from ..page import serve

    serve(create)
