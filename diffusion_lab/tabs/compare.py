"""Compare: one starting noise through several settings side by side (samplers, step counts or a guidance
sweep), scrubbed together on a shared "how far along" axis. The frames live in the page (assets/compare.*),
so a move of the slider swaps pictures with no server call; the library's ``ddpm.explore.compare`` runs the
columns round robin, so short columns are done (and scrubbable) while a long one streams on."""
from __future__ import annotations

import base64
import html
import io
import math
import re
import time
import uuid
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from PIL import Image, ImageDraw

import ddpm
from ddpm import explore
from ddpm import images as im
from ddpm.defaults import DEFAULT_SAMPLER

from ..controls import SAMPLERS as SAMPLER_LABELS
from ..follow import follow_model, model_sampling_controls
from ..inputs import class_list, plural, real, whole
from ..lab import UI, Lab, out_dir
from ..streaming import Stopped, events, halt, stop_asked, stops

ASSETS = Path(__file__).resolve().parent.parent / "assets"
VARY = [("Sampler", "sampler"), ("Steps", "steps"), ("Guidance", "guidance")]
DEFAULT_VALUES = {"sampler": ", ".join(ddpm.SAMPLERS), "steps": "200, 50, 20, 5", "guidance": "0, 1, 3, 7"}
DEFAULT_STEPS = 10       # the fixed step count of a sampler or guidance comparison: where samplers differ
DEFAULT_IMAGES = 8       # images per column: the shared batch the classifier scores
MAX_IMAGES = 16
MAX_COLUMNS = 8
MAX_WORK = 3000          # image-steps per run; 1000 + 20 steps x 2 mnist images (2,040): 92 s on a busy 2-core box
FRAMES = 20              # frames kept per column (evenly thinned), then the result
STREAM_SECONDS = 1.0     # at most one streamed update a second (each carries the newly finished columns)
NOUN = {"sampler": "sampler", "steps": "step count", "guidance": "guidance scale"}
LABEL = {name: text for text, name in SAMPLER_LABELS}
EMPTY = "Press Compare: the columns appear here, each from the same starting noise, and scrub together."


# -- 1. what the user asked: the values of the setting that varies --------------------------------------------
def parse_values(vary: str, text) -> list:
    """The comma-separated values of ``vary`` (empty: its defaults), each once, in the order given."""
    if vary not in DEFAULT_VALUES:
        raise ValueError(f"what to vary must be one of {', '.join(DEFAULT_VALUES)}, got {vary!r}")
    items = text if isinstance(text, (list, tuple)) else re.split(r"[,;\s]+", str(text or "").strip())
    items = [str(v).strip() for v in items if str(v).strip()] or DEFAULT_VALUES[vary].split(", ")
    values = [_value(vary, v) for v in items]
    values = list(dict.fromkeys(values))
    if len(values) > MAX_COLUMNS:
        raise ValueError(f"at most {MAX_COLUMNS} columns, got {len(values)} values of {vary}")
    return values


def _value(vary: str, text: str):
    if vary == "steps":
        return whole(text, 1, 1000, "steps")
    if vary == "guidance":
        return real(text, 0, 30, "guidance")
    by_name = {n.lower(): n for n in ddpm.SAMPLERS} | {LABEL.get(n, n).lower(): n for n in ddpm.SAMPLERS}
    if text.lower() not in by_name:
        raise ValueError(f"unknown sampler {text!r}: choose from {', '.join(ddpm.SAMPLERS)}")
    return by_name[text.lower()]


def column_label(vary: str, value) -> str:
    if vary == "sampler":
        return LABEL.get(value, value)
    return plural(value, "step") if vary == "steps" else f"guidance {value:g}"


def fixed_text(vary: str, s: ddpm.Settings) -> str:
    """The settings every column shares, for the title: "10 steps · guidance 1.5 · seed 0"."""
    parts = {"sampler": LABEL.get(s.sampler, s.sampler), "steps": plural(s.steps, "step"),
             "guidance": f"guidance {s.guidance:g}"}
    return " · ".join([v for k, v in parts.items() if k != vary] + [f"seed {s.seed}"])


def grid_shape(n: int) -> int:
    """Tiles per row of a column's grid: near square, wider than tall (8: 4 x 2, 6: 3 x 2, 9: 3 x 3)."""
    return math.ceil(n / max(1, math.isqrt(n)))


# -- 2. the page's value: frames encoded once, as they are recorded ----------------------------------------------
def _tiles(x: torch.Tensor, ncol: int) -> np.ndarray:
    """(B, C, H, W) in [-1, 1] -> one uint8 grid (H', W') or (H', W', 3), 1 px gaps, at the model's size."""
    g = im.grid(x.detach().float().cpu(), nrow=ncol, padding=1)
    arr = (g * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return arr[..., 0] if x.shape[1] == 1 else arr


def _uri(arr: np.ndarray, lossy: bool) -> str:
    """A data URI: lossy WebP for noisy x_t (noise does not compress: a third of the PNG's size), else PNG."""
    if not lossy:
        return im.png_data_uri(arr)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "WEBP", quality=80)
    return "data:image/webp;base64," + base64.b64encode(buf.getvalue()).decode()


class Board:
    """The compare view as it fills in: per column its thinned frames ({"a": along, "t", "k", "x", "x0"}),
    a live frame while it runs, its time and accuracy. ``value()`` is what the page's gr.HTML gets, every
    frame so far: Gradio streams a generator's yields as diffs, so only the new frames travel. (The frame
    lists only grow: gradio 6.31's diff mis-numbers a delete inside a nested list, and its client then
    hangs.)"""

    def __init__(self, comparison: explore.Comparison, labels: list[str], title: str, n: int):
        self.comparison, self.title, self.n, self.run = comparison, title, n, uuid.uuid4().hex[:8]
        self.ncol = grid_shape(n)
        self.T = comparison.model.schedule.num_timesteps
        self.labels = labels
        self.frames: list[list[dict]] = [[] for _ in comparison.columns]
        self.latest: list[explore.Update | None] = [None] * len(comparison.columns)

    def frame(self, x: torch.Tensor, x0: torch.Tensor, t: int, k: int) -> dict:
        a = 1.0 if t < 0 else explore.along(t, self.T)
        return {"a": round(a, 4), "t": int(t), "k": int(k), "x": _uri(_tiles(x, self.ncol), t >= 0),
                "x0": _uri(_tiles(x0, self.ncol), False)}

    def add(self, u: explore.Update) -> None:
        column, step = self.comparison.columns[u.column], u.step
        stride = max(1, math.ceil(step.total / FRAMES))
        if step.index % stride == 0 or step.index == step.total - 1:
            self.frames[u.column].append(self.frame(step.x, step.x0, step.t, step.index))
        self.latest[u.column] = u
        if u.done:
            self.frames[u.column].append(self.frame(column.images, column.images, -1, step.total))

    def value(self, final: bool = False) -> dict:
        out = []
        for i, col in enumerate(self.comparison.columns):
            u = self.latest[i]
            live = None
            if not col.done and u is not None:  # the step just taken, for a column still running
                live = self.frame(u.step.x, u.step.x0, u.step.t, u.step.index)
            out.append({"label": self.labels[i], "steps": len(col.timesteps), "done_steps": col.steps_done,
                        "seconds": round(col.seconds, 2), "shared": col.shared, "done": col.done,
                        "accuracy": col.accuracy, "correct": None if col.accuracy is None else
                        round(col.accuracy * self.n), "frames": list(self.frames[i]), "live": live})
        return {"run": self.run, "title": self.title, "T": self.T, "n": self.n, "final": final, "columns": out}


def summary_png(board: Board, scale: int) -> str:
    """The finished columns side by side, each headed by its label, time and accuracy: a PNG file."""
    heads, grids = [], []
    for label, col in zip(board.labels, board.comparison.columns, strict=True):
        g = Image.fromarray(_tiles(col.images, board.ncol)).convert("RGB")
        grids.append(g.resize((g.width * scale, g.height * scale), Image.NEAREST))
        heads.append([label, f"{col.seconds:.1f} s" + (f" · {col.accuracy:.0%} right" if col.accuracy is not None
                                                         else "")])
    gap, head = 12, 36
    width = sum(g.width for g in grids) + gap * (len(grids) + 1)
    sheet = Image.new("RGB", (width, head + max(g.height for g in grids) + gap), (255, 255, 255))
    draw, x = ImageDraw.Draw(sheet), gap
    for g, lines in zip(grids, heads, strict=True):
        for row, text in enumerate(lines):
            draw.text((x + g.width / 2, 4 + 15 * row), text, fill=(30, 30, 30), anchor="ma")
        sheet.paste(g, (x, head))
        x += g.width + gap
    path = out_dir() / "compare.png"
    sheet.save(path)
    return str(path)


# -- 3. the handler -------------------------------------------------------------------------------------------
def compare(lab: Lab, model, classes, vary, values, n, sampler, steps, guidance, seed, session,
            progress=gr.Progress()):
    vary = str(vary or "").strip().lower()
    vals = parse_values(vary, values)
    if vary == "steps":  # the fixed box is ignored: any number there must not refuse the run
        steps = 20
    model, base, _ = lab.begin(model, session, sampler if vary != "sampler" else DEFAULT_SAMPLER, steps,
                               guidance if vary != "guidance" else 1.0, seed)
    n = whole(n, 1, MAX_IMAGES, "images per column")
    names = class_list(model, classes)
    labels = [names[i % len(names)] for i in range(n)] if model.conditional else None
    variants = [base.with_(**{vary: v}) for v in vals]
    comparison = explore.compare(model, labels, variants, n=None if labels else n,
                                 classifier=model.classifier if labels else None)
    if comparison.cost > MAX_WORK:
        raise ValueError(f"this comparison is {comparison.cost:,} image-steps ({n} images x "
                         f"{sum(len(c.timesteps) for c in comparison.columns):,} steps over its columns); "
                         f"the limit here is {MAX_WORK:,}: ask for fewer images or fewer steps")
    shown = list(dict.fromkeys(labels or []))
    what = f"{plural(len(vals), NOUN[vary])} · {plural(n, 'image')} each" + (
        "" if not shown else f" ({', '.join(shown)})" if len(shown) <= 4 else f" ({len(shown)} classes)")
    what = f"{what} · {fixed_text(vary, base)}"
    board = Board(comparison, [column_label(vary, v) for v in vals], f"{model.name} · {what}", n)
    yield {"status": f"starting: {what}", "view": board.value(), "files": None}
    total = sum(len(c.timesteps) for c in comparison.columns)
    ends = {cols[-1] for cols in comparison.groups.values()}  # a batched sweep's columns move together
    done, last, start = 0, time.perf_counter(), time.perf_counter()
    for u in comparison:
        board.add(u)
        done += 1
        progress((done, total), desc="comparing")
        running = [board.labels[i] for i, c in enumerate(comparison.columns) if not c.done]
        status = f"step {done}/{total} over all columns · still running: {', '.join(running)}"
        if stop_asked():
            yield {"status": halt(status), "view": board.value()}
            raise Stopped
        if running and u.column in ends and (u.done or time.perf_counter() - last >= STREAM_SECONDS):
            yield {"status": status, "view": board.value()}
            last = time.perf_counter()
    seconds = time.perf_counter() - start
    files = summary_png(board, max(1, im.display_scale(model.image_size) // 3))
    yield {"status": f"Done: {model.name} · {what} · {seconds:.1f} s", "view": board.value(final=True),
           "files": files}


def compare_view(elem_id: str) -> gr.HTML:
    """The columns and the shared slider: a static template; assets/compare.js draws each value into it."""
    template = (ASSETS / "compare.html").read_text().replace("EMPTY", html.escape(EMPTY))
    return gr.HTML(None, html_template=template, css_template=(ASSETS / "compare.css").read_text(),
                   js_on_load=(ASSETS / "compare.js").read_text(), elem_id=elem_id, padding=True)


def create(ui: UI):
    lab, names = ui.lab, ui.lab.default_classes
    with gr.Tab("Compare", id="compare"):
        gr.Markdown(
            "Run **one starting noise** through several settings side by side, then scrub them together: the "
            "slider is *how far along* each run is, from pure noise (0 %) to the clean image (100 %), so a "
            "5-step and a 200-step run line up. Vary the **sampler** (every one the library has), the number "
            "of **steps** (a 1000-step column streams on while the short ones are done), or the **guidance** "
            "scale (a sweep runs as one batched pass). Each column shows its time and how many of its images "
            "the model's own classifier reads as the class asked for. The varied setting's box under "
            "*Sampler* is ignored; the others hold for every column.", elem_classes="help")
        with gr.Row():
            with gr.Column(min_width=260):
                classes = gr.Dropdown(names, value=names[:DEFAULT_IMAGES], multiselect=True, allow_custom_value=True,
                                      label="Classes", info="the images cycle through them", elem_id="cmp-classes")
                n = gr.Slider(1, MAX_IMAGES, value=DEFAULT_IMAGES, step=1, label="Images per column",
                              info="the same images in every column: the batch the classifier scores",
                              elem_id="cmp-n")
            with gr.Column(min_width=260):
                vary = gr.Radio(VARY, value="sampler", label="What to vary", elem_id="cmp-vary")
                values = gr.Textbox(DEFAULT_VALUES["sampler"], label="Values (one column each, comma-separated)",
                                    info=f"at most {MAX_COLUMNS} columns and {MAX_WORK:,} image-steps in all",
                                    elem_id="cmp-values")
            with gr.Column(min_width=260):
                sampling = model_sampling_controls(ui, steps=DEFAULT_STEPS, elem_id="cmp", open=True)
                with gr.Row():
                    run = gr.Button("Compare", variant="primary", elem_id="cmp-run")
                    stop = gr.Button("Stop", variant="stop", elem_id="cmp-stop")
                    whole = gr.Button(visible=False)  # /compare: the run returned whole (streaming.events)
        gr.Examples([["sampler", DEFAULT_VALUES["sampler"], DEFAULT_STEPS, DEFAULT_IMAGES],
                     ["steps", DEFAULT_VALUES["steps"], DEFAULT_STEPS, 4], ["steps", "1000, 20", 20, 2],
                     ["guidance", DEFAULT_VALUES["guidance"], DEFAULT_STEPS, DEFAULT_IMAGES]],
                    [vary, values, sampling.steps, n], label="Examples",
                    example_labels=["every sampler at 10 steps", "200 / 50 / 20 / 5 steps",
                                    "1000 steps beside 20 (streams)", "guidance 0 / 1 / 3 / 7"])
        status = gr.Textbox(label="Status", interactive=False, elem_id="cmp-status")
        view = compare_view("cmp-view")
        files = gr.DownloadButton("Download the results side by side (PNG)", None, size="sm", elem_id="cmp-files")
    vary.input(lambda v: DEFAULT_VALUES.get(v, ""), vary, values, api_visibility="private", queue=False)
    held = [sampling.sampler, sampling.steps, sampling.guidance]  # the varied one's box is greyed: it is ignored
    vary.change(lambda v: [gr.update(interactive=v != key) for key in ("sampler", "steps", "guidance")], vary, held,
                api_visibility="private", queue=False)
    outputs = {"status": status, "view": view, "files": files}
    event = events(run, whole, compare, lab, [ui.model, classes, vary, values, n, *sampling.inputs, ui.session],
                   outputs, "compare", show_progress_on=status, concurrency_id="model")
    stops(stop, event, status)
    follow_model(ui, classes, lambda m: m.classes, lambda m: m.classes[:DEFAULT_IMAGES], multiselect=True)


if __name__ == "__main__":
    from ..page import serve

    serve(create)
