"""Generate: sample a grid of the classes picked; the preview streams each step's predicted x0."""
from __future__ import annotations

import math
import time
from functools import partial
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

import ddpm
from ddpm import explore
from ddpm import images as im

from .. import compute, reproduce
from ..follow import follow_model, model_sampling_controls
from ..inputs import class_list, plural, run_text, user_errors, whole
from ..lab import UI, Lab, out_dir
from ..runs import Replay, Run, chart_lines, frame_steps, generate_job, tracks_from
from ..streaming import SO_FAR, events, stream_job, stops, ticker

MAX_PER_CLASS = 8
MAX_COLUMNS = 12
GIF_SCALE = 2  # the GIF's tiles: 56 px for mnist, half the grid's


def layout(model: ddpm.DiffusionModel, names: list[str], per_class: int) -> tuple[list[str] | None, list[str], int]:
    """Labels in display order (None: unconditional), a caption per image, and the grid's columns, so the
    grid is wider than tall: a column per class while there are at least as many classes as images per
    class, else a row per class (2 classes x 8: two rows of 8, not a thin strip of 8 rows); with more
    than 12 classes, each class's images side by side, as many classes to a row as fit in 12 columns, the
    rows filled evenly (26 letters x 1: rows of 9, 9, 8)."""
    if not model.conditional:
        return None, [f"#{i + 1}" for i in range(per_class)], min(per_class, 8)
    if len(names) <= MAX_COLUMNS and per_class <= len(names):
        labels = [c for _ in range(per_class) for c in names]
        return labels, labels, len(names)
    labels = [c for c in names for _ in range(per_class)]
    if len(names) <= MAX_COLUMNS:
        return labels, labels, per_class
    per_row = max(1, MAX_COLUMNS // per_class)
    rows = math.ceil(len(names) / per_row)
    return labels, labels, per_class * math.ceil(len(names) / rows)


def sampling_order(names: list[str], per_class: int, shown: list[str] | None) -> tuple[list[str] | None, list[int]]:
    """The labels in the order the CLI samples them (``explore.per_class_labels``: interleaved, image i seeded
    ``image_seed(seed, i)``), and for each picture of the grid (``shown``, layout's order) the index of its image
    in that order, so the app's grid holds exactly the images ``python -m ddpm sample --per-class`` gives."""
    if shown is None:
        return None, list(range(per_class))
    labels = explore.per_class_labels(names, per_class)
    if shown == labels:
        return labels, list(range(len(labels)))
    k = len(names)  # shown is grouped by class: picture c * per_class + j is image j * k + c
    return labels, [j * k + c for c in range(k) for j in range(per_class)]


def gif_frame(x: torch.Tensor, x0: torch.Tensor, captions: list[str], ncol: int) -> Image.Image:
    """One frame of the denoising GIF: the noisy x_t grid with the predicted x0 grid beside it (x_t alone
    is pure noise for the first half of a run; x0 shows what the model already sees)."""
    left, right = (im.captioned_grid(v, captions, ncol, GIF_SCALE) for v in (x, x0))
    head, gap = 18, 8
    sheet = Image.new("RGB", (left.width + gap + right.width, head + left.height), (255, 255, 255))
    sheet.paste(left, (0, head))
    sheet.paste(right, (left.width + gap, head))
    draw = ImageDraw.Draw(sheet)
    for text, centre in (("noisy x_t", left.width / 2), ("predicted x0", left.width + gap + right.width / 2)):
        draw.text((centre, 3), text, fill=(40, 40, 40), font=ImageFont.load_default(size=12), anchor="ma")
    return sheet


class GifSheet:
    """``gif_frame``'s picture drawn once (captions, headings, background) and where each of its tiles lies,
    so a run's frames only paste their tiles: the same pixels as ``gif_frame``, at a fraction of the cost
    (drawing the captions of every frame cost more than sampling's last steps)."""

    def __init__(self, like: torch.Tensor, captions: list[str], ncol: int):
        dark, light = (np.asarray(gif_frame(v, v, captions, ncol)) for v in (-torch.ones_like(like),
                                                                          torch.ones_like(like)))
        tiles = (dark != light).any(-1)  # only tile pixels change with the images
        rows, cols = _runs(tiles.any(1)), _runs(tiles.any(0))
        boxes = [(r, c) for r, _ in rows for c, _ in cols if tiles[r, c]]
        half = dark.shape[1] / 2
        self.left = [b for b in boxes if b[1] < half]
        self.right = [b for b in boxes if b[1] >= half]
        self.template = dark
        if len(self.left) != len(like) or len(self.right) != len(like):
            raise AssertionError(f"found {len(self.left)}+{len(self.right)} tiles for {len(like)} images")

    def frame(self, x: torch.Tensor, x0: torch.Tensor) -> np.ndarray:
        sheet = self.template.copy()
        for boxes, v in ((self.left, x), (self.right, x0)):
            tiles = im.to_display(v, GIF_SCALE)
            h, w = tiles.shape[1:3]
            for (r, c), tile in zip(boxes, tiles, strict=True):
                sheet[r:r + h, c:c + w] = tile
        return sheet


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """The [start, end) runs of True in a 1-D bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    return list(zip(edges[::2], edges[1::2]))


def gif_palette(frames: list[np.ndarray], grey: bool) -> list[Image.Image]:
    """RGB frames -> palette images for the GIF: grey ones as "L" (exact), colour ones mapped to ONE adaptive
    palette taken from the first, middle and last frames, without dithering. PIL otherwise quantizes every
    frame on its own, which took most of the GIF's time (0.45 of 0.56 s for mnist's 21 frames)."""
    if grey:
        return [Image.fromarray(f[..., 0], "L") for f in frames]
    sample = Image.fromarray(np.concatenate([frames[0], frames[len(frames) // 2], frames[-1]]))
    palette = sample.quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    return [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]


def save_gif(png: str, frames: dict, final: torch.Tensor, captions: list[str], ncol: int) -> list[str]:
    """The downloads of a result whose grid is already the PNG ``png``: it and the run as an animated GIF (x_t
    beside predicted x0), ending on the result, written beside it."""
    sheet = GifSheet(final, captions, ncol)
    gif = [sheet.frame(x, x0) for x, x0 in zip(frames["x"], frames["x0"], strict=True)]
    gif.append(sheet.frame(final, final))
    path = Path(png).with_name("denoising.gif")
    im.save_gif(gif_palette(gif, grey=final.shape[1] == 1), path)
    return [png, str(path)]


class Downloads:
    """A result's downloads, made when they are asked for: the PNG the result already wrote, and its GIF (0.15 s
    for mnist's 20-image grid, off the result's path: docs/MEASUREMENTS.md, "The app over the library").
    Compared by identity, so every new result is a change of the tab's state."""

    def __init__(self, png: str, frames: dict, final: torch.Tensor, captions: list[str], ncol: int):
        self.png, self._args, self._files = png, (frames, final, captions, ncol), None

    def files(self) -> list[str]:
        if self._files is None:
            self._files = save_gif(self.png, *self._args)
        return self._files


def downloads(pending: Downloads | None) -> list[str]:
    """The PNG and GIF of this session's last Generate result (``/generate_downloads``), drawn on the torch thread
    (``compute``) but never on a borrowed GPU: nothing here needs one."""
    if pending is None:
        raise ValueError("no Generate result in this session yet: run /generate first, with the same client")
    return compute.call(pending.files)


def generate(lab: Lab, model, classes, per_class, sampler, steps, guidance, seed, session, progress=gr.Progress()):
    name = str(model or "").strip()  # what rebuilds this run for a branch (the steps tab)
    model, s, _ = lab.begin(model, session, sampler, steps, guidance, seed)
    per_class = whole(per_class, 1, MAX_PER_CLASS, "images per class")
    picked = class_list(model, classes)
    shown, captions, ncol = layout(model, picked, per_class)
    labels, order = sampling_order(picked, per_class, shown)
    job = explore.generate_each(model, labels, n=None if labels else per_class, settings=s)
    scale, start = im.display_scale(model.image_size) // 2, time.perf_counter()

    def preview(step, status, first):
        return {"image": im.captioned_grid(step.x0[order], captions, ncol, scale), "status": status + SO_FAR}
    x, frames = yield from stream_job(job, ticker(progress), preview)
    x = x[order]
    frames = {key: value[:, order] if key in ("x", "x0", "eps") else value for key, value in frames.items()}
    seconds = time.perf_counter() - start
    grid = im.captioned_grid(x, captions, ncol, scale)
    what = f"{plural(len(captions), 'image')} · {run_text(s)}"
    names = [f"{c} #{captions[:i].count(c) + 1}" for i, c in enumerate(captions)] if shown else captions
    png = out_dir() / "samples.png"
    grid.save(png, compress_level=1)
    yield {"image": str(png), "downloads": Downloads(str(png), frames, x, captions, ncol),  # PNG: encoded once
           "status": f"Done: {model.name} · {what} · {seconds:.1f} s",
           "run": Run(f"Generate · {model.name} · {what}", tracks_from(frames, names, x), len(captions), ncol,
                      partial(chart_lines, model, frames, x, shown),
                      Replay(name, s, generate_job, dict(labels=labels, n=per_class), frame_steps(job), order, shown)),
           **reproduce.result(lab, session, model, "generate", {"labels": labels, "n": None if labels else per_class},
                              s)}


def create(ui: UI):
    lab, names = ui.lab, ui.lab.default_classes
    with gr.Tab("Generate", id="generate"):
        gr.Markdown("Sample new images of the classes you pick. The preview shows the model's current guess "
                    "of the clean image (predicted x0) at every step; the same seed gives the same grid.",
                    elem_classes="help")
        with gr.Row():
            with gr.Column(scale=2, min_width=300):
                classes = gr.Dropdown(names, value=names[:10], multiselect=True, allow_custom_value=True,
                                      label="Classes", elem_id="gen-classes")
                per_class = gr.Slider(1, MAX_PER_CLASS, value=2, step=1, label="Images per class",
                                      elem_id="gen-per-class")
                sampling = model_sampling_controls(ui, speed=True, open=True, elem_id="gen")
                with gr.Row():
                    run = gr.Button("Generate", variant="primary", elem_id="gen-run")
                    stop = gr.Button("Stop", variant="stop", elem_id="gen-stop")
                    whole = gr.Button(visible=False)  # /generate: the run returned whole (streaming.events)
            with gr.Column(scale=3, min_width=300):
                status = gr.Textbox(label="Status", interactive=False, elem_id="gen-status")
                image = gr.Image(label="Samples", type="pil", format="png", elem_id="gen-image", height=440,
                                 interactive=False, buttons=["download", "fullscreen"], elem_classes="picture")
                files = gr.File(label="Downloads: the grid (PNG) and the denoising (GIF)", file_count="multiple",
                                interactive=False, elem_id="gen-files", height=150)
                repro = reproduce.panel(ui, "generate", run, {"classes": classes, "per_class": per_class}, sampling)
                # the last result's Downloads (its GIF is drawn once the result is out); inside the tab: a State
                # left between the tabs made Gradio draw the selected tab's button twice, in its neighbour's place
                pending = gr.State(None)
        rows = [[name, m.classes[:10], 2, m.default_sampler, 20, m.default_guidance, 0]
                for name, m in lab.models.items()]
        if rows:
            labels = [f"{r[0]}: {', '.join(r[1][:4])}{', ...' if len(r[1]) > 4 else ''}" for r in rows]
            gr.Examples(rows, [ui.model, classes, per_class, *sampling.inputs], label="Examples", example_labels=labels)
    outputs = {"image": image, "status": status, "run": ui.last_run, "downloads": pending, **repro.outputs}
    run.click(lambda: None, None, files, api_visibility="private", queue=False)  # not the last run's files
    event = events(run, whole, generate, lab, [ui.model, classes, per_class, *sampling.inputs, ui.session], outputs,
                   "generate", show_progress_on=status, concurrency_id="model")
    pending.change(user_errors(downloads), pending, files, api_name="generate_downloads",
                   concurrency_id="model", show_progress="hidden")
    stops(stop, event, status)
    follow_model(ui, classes, lambda m: m.classes, lambda m: m.classes[:10], multiselect=True)
    ui.runs.append(event)


if __name__ == "__main__":
    from ..page import serve

    serve(create)
