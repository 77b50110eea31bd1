"""A run as the step scrubber shows it: the whole grid at every recorded step, one sample enlarged, the
classifier's chart, and the branches continued from it.

A ``Track`` holds one sample's pictures per step for each *panel* (``PANELS``: x_t, predicted x0, noise
estimate). A ``Run`` is the tracks of one run (a *column*), its chart (``chart_lines``: one line per class
probability followed, per sample and step), how to rebuild its Job (``Replay``, for a branch), and the
branches continued from it, each a Run of its own. ``scrub_value`` turns it into the page's data: per column
and step one grid *sheet* per panel (one PNG holds every sample, encoded once per Run and kept), which the page
crops to enlarge a sample, so a move of the slider swaps pictures with no server call and no decoding of
per-tile images (assets/scrubber.*).
"""
from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import gradio as gr
import numpy as np
import torch

import ddpm
from ddpm import explore
from ddpm import images as im

from . import compute

ASSETS = Path(__file__).resolve().parent / "assets"
MAX_TRACKS = 80          # samples of one run kept for the scrubber (Generate's 10 classes x 8)
PAD = 1                  # pixels between the tiles of a grid sheet
PANELS = [("x", "noisy x<sub>t</sub>"), ("x0", "predicted x<sub>0</sub>"), ("eps", "noise estimate &epsilon;")]
EMPTY = "Run something in any tab (Generate, SDEdit, Inpaint, Illusions): its denoising steps appear here."


@dataclass
class Track:
    """One sample's recorded steps: ``images[panel]`` uint8 (S, H, W[, 3]) per panel of PANELS; ``t`` the
    timestep of each, -1 for the last, the result."""

    caption: str
    t: list[int]
    images: dict[str, np.ndarray]


@dataclass
class Line:
    """One line of the chart: per sample (B) and frame (S), a probability and the name of its class."""

    p: np.ndarray                  # (B, S) float in [0, 1]
    names: list[list[str]]         # B lists of S names (the runner-up's changes from step to step)
    dash: bool = False


@dataclass
class Replay:
    """What rebuilds a run's Job, so a branch can re-run it: ``recipe(model, settings, label, **args) -> Job``
    is a module-level function (a Run must pickle into a ZeroGPU worker; a lambda would not), ``model`` the
    name the Model box resolves, ``label`` a class every image switches to (None: the original's). ``order``:
    the Job's row of each picture shown (None: the same); ``steps``: the model step of each kept frame, the
    last (the result) the number of model steps."""

    model: str
    settings: ddpm.Settings
    recipe: Callable
    args: dict
    steps: list[int]
    order: list[int] | None = None
    targets: list[str] | None = None  # the class asked of each picture shown, for the chart (None: none asked)
    relabel: bool = True             # whether a branch may ask for another class

    def build(self, model: ddpm.DiffusionModel, label: str | None = None) -> Callable[[ddpm.Settings], ddpm.Job]:
        return lambda s: self.recipe(model, s, label, **self.args)


@dataclass
class Run:
    """The last run of a user (kept in gr.State): what the Denoising steps tab scrubs through."""

    title: str
    tracks: list[Track] = field(default_factory=list)
    total: int = 0  # images in the run, when more than the MAX_TRACKS kept
    ncol: int = 0   # columns of its grid (0: up to 8)
    chart: list[Line] | Callable[[], list[Line] | None] | None = None  # a callable: drawn when first shown
    replay: Replay | None = None
    label: str = "original"
    branches: list[Run] = field(default_factory=list)
    sheets: list[dict[str, str]] | None = field(default=None, repr=False)  # encoded on first show, then kept

    def lines(self) -> list[Line] | None:
        """The chart. A tab leaves it as a callable (the classifier over every kept frame: 70 ms of a 20-image
        mnist run), drawn here on the torch thread when the run is first shown, after its result is out."""
        if callable(self.chart):
            self.chart = compute.call(self.chart)
        return self.chart

    def with_branch(self, branch: Run, keep: int = 3) -> Run:
        """This run with ``branch`` beside it (the last ``keep`` branches kept); its encoded sheets are kept too."""
        return replace(self, branches=[*self.branches, branch][-keep:])


# -- what the tabs call at the end of a run ------------------------------------------------------------------
def tracks_from(frames: dict, captions: list[str], result: torch.Tensor) -> list[Track]:
    """A Recorder's frames (S, B, C, H, W) -> one Track per sample (the first MAX_TRACKS), ending on the run's
    ``result`` (B, C, H, W), the clean image, as a frame of its own (t = -1; no noise left, shown grey)."""
    def u8(x):
        arr = im.to_uint8(x.flatten(0, 1), rgb=False)
        return arr.reshape(*x.shape[:2], *arr.shape[1:])

    end = result.detach().to("cpu", torch.float32)[None, :MAX_TRACKS]
    panels = {"x": u8(torch.cat([frames["x"][:, :MAX_TRACKS], end])),
              "x0": u8(torch.cat([frames["x0"][:, :MAX_TRACKS], end])),
              "eps": u8(im.show_noise(torch.cat([frames["eps"][:, :MAX_TRACKS], torch.zeros_like(end)])))}
    t = [int(v) for v in frames["t"]] + [-1]
    return [Track(captions[b], t, {key: arr[:, b] for key, arr in panels.items()}) for b in range(panels["x"].shape[1])]


def frame_steps(job) -> list[int]:
    """The model step of each frame ``streaming.stream_job`` keeps of ``job``, then the result's (its last)."""
    from .streaming import every  # streaming imports nothing of ours but inputs: no cycle

    total, stride = job.num_model_steps, every(job)
    return [i for i in range(total) if i % stride == 0 or i == total - 1] + [total]


def _kept(frames: dict, result: torch.Tensor) -> torch.Tensor:
    """The predicted x0 of every kept frame and the result: (S + 1, B', C, H, W), B' <= MAX_TRACKS."""
    end = result.detach().to("cpu", torch.float32)[None, :MAX_TRACKS]
    return torch.cat([frames["x0"][:, :MAX_TRACKS], end])


def chart_lines(model: ddpm.DiffusionModel, frames: dict, result: torch.Tensor,
                targets: Sequence[str] | None = None) -> list[Line] | None:
    """The chart of a run: the model's classifier on the predicted x0 of every kept frame (and the result), in
    one batched call; per sample the probability of the class asked for (``targets``, a name per image; None:
    the class its result reads as) and of the runner-up. None when the model ships no classifier."""
    if model.classifier is None:
        return None
    x0 = _kept(frames, result)
    ids = None if targets is None else model.label_ids(list(targets)[:x0.shape[1]])
    trace = explore.target_trace(explore.class_trace(model.classifier, x0), ids)
    names = model.classes
    asked = [[f"{names[int(c)]}"] * x0.shape[0] for c in trace.target]
    runner = [[names[int(c)] for c in row] for row in trace.runner_up.T]
    return [Line(trace.p_target.T.numpy(), asked), Line(trace.p_runner_up.T.numpy(), runner, dash=True)]


def reading_lines(model: ddpm.DiffusionModel, frames: dict, result: torch.Tensor, readings) -> list[Line] | None:
    """An illusion's chart: one line per reading (``ddpm.illusions.Reading``: a view and the class it should
    read as), the classifier's probability of that class in that view, for every kept frame."""
    if model.classifier is None or not readings:
        return None
    x0 = _kept(frames, result)
    flat = x0.flatten(0, 1)
    seen = torch.cat([r.view(flat) for r in readings]).reshape(len(readings) * x0.shape[0], *x0.shape[1:])
    probs = explore.class_trace(model.classifier, seen)  # one batched call for every reading
    lines = []
    for k, r in enumerate(readings):
        p = probs[k * x0.shape[0]:(k + 1) * x0.shape[0], :, r.label]
        name = f"{model.classes[r.label]} ({r.name})"
        lines.append(Line(p.T.numpy(), [[name] * x0.shape[0]] * x0.shape[1]))
    return lines


def generate_job(model: ddpm.DiffusionModel, settings: ddpm.Settings, label: str | None, labels, n) -> ddpm.Job:
    """Generate's Job (``explore.generate_each``; ``labels`` in its sampling order), every image of class
    ``label`` instead when given."""
    if label is not None and labels is not None:
        labels = [label] * len(labels)
    return explore.generate_each(model, labels, None if labels else n, settings)


def inpaint_job(model: ddpm.DiffusionModel, settings: ddpm.Settings, label: str | None, x0, mask, target,
                jump_length: int, jump_n_sample: int) -> ddpm.Job:
    """Inpaint's Job, with class ``label`` instead of ``target`` when given."""
    return ddpm.inpaint(model, x0, mask, labels=label or target, settings=settings, jump_length=jump_length,
                        jump_n_sample=jump_n_sample)


# -- the page's data ------------------------------------------------------------------------------------------
def _ncol(run: Run) -> int:
    return max(1, min(run.ncol or 8, len(run.tracks)))


def _frame(j: int, m: int, n: int) -> int:
    """Frame of a track of ``m`` frames at position ``j`` of ``n`` (shorter tracks move proportionally), rounded
    half up as the page's Math.round does."""
    return math.floor(j * (m - 1) / (n - 1) + 0.5) if n > 1 else 0


def _sheet(tiles: list[np.ndarray], ncol: int) -> np.ndarray:
    """uint8 tiles (H, W[, C]) -> one grid sheet, PAD pixels of mid grey between and around them."""
    h, w = tiles[0].shape[:2]
    rows = math.ceil(len(tiles) / ncol)
    sheet = np.full((PAD + rows * (h + PAD), PAD + ncol * (w + PAD), *tiles[0].shape[2:]), 128, np.uint8)
    for b, tile in enumerate(tiles):
        r, c = divmod(b, ncol)
        sheet[PAD + r * (h + PAD):PAD + r * (h + PAD) + h, PAD + c * (w + PAD):PAD + c * (w + PAD) + w] = tile
    return sheet


def sheets(run: Run) -> list[dict[str, str]]:
    """One data-URI grid sheet per frame and panel (every sample of the run at that step), encoded once."""
    if run.sheets is None:
        n, ncol = max(len(tr.t) for tr in run.tracks), _ncol(run)
        run.sheets = [{key: im.png_data_uri(_sheet([tr.images[key][_frame(j, len(tr.t), n)] for tr in run.tracks],
                                                   ncol)) for key, _ in PANELS} for j in range(n)]
    return run.sheets


def _column(run: Run, name: str) -> dict:
    n, ncol = max(len(tr.t) for tr in run.tracks), _ncol(run)
    h, w = run.tracks[0].images["x"].shape[1:3]
    rows = math.ceil(len(run.tracks) / ncol)
    chart = None
    if lines := run.lines():
        chart = [{"dash": line.dash, "p": np.round(line.p.astype(float), 3).tolist(), "names": line.names}
                 for line in lines]
    return {"label": html.escape(run.label), "name": name, "ncol": ncol, "tile": [w, h], "pad": PAD,
            "size": [PAD + ncol * (w + PAD), PAD + rows * (h + PAD)], "sheets": sheets(run),
            "captions": [html.escape(tr.caption) for tr in run.tracks],
            "t": [[tr.t[_frame(j, len(tr.t), n)] for j in range(n)] for tr in run.tracks], "chart": chart}


def scrub_value(run: Run | None, grid: bool = True, px: int = 128) -> dict | None:
    """The scrubber's value: per column (the run, then its branches) the grid sheets of every frame, the
    samples' captions and timesteps, and the chart; ``grid`` False shows every sample as a row instead of the
    grid (SDEdit's strengths side by side)."""
    if run is None or not run.tracks:
        return None
    columns = [_column(r, "original" if k == 0 else f"branch {k}")
               for k, r in enumerate([run, *run.branches]) if r.tracks]
    return {"title": html.escape(run.title), "panels": [{"key": k, "label": label} for k, label in PANELS],
            "columns": columns, "grid": grid, "px": px, "branch": run.replay is not None and grid,
            "n": max(len(c["sheets"]) for c in columns)}


def scrubber(elem_id: str, empty: str = EMPTY) -> gr.HTML:
    """The scrubber: frames live in the page, so a move of its slider swaps pictures with no server call."""
    template = (ASSETS / "scrubber.html").read_text().replace("EMPTY", html.escape(empty))
    return gr.HTML(None, html_template=template, css_template=(ASSETS / "scrubber.css").read_text(),
                   js_on_load=(ASSETS / "scrubber.js").read_text(), elem_id=elem_id, padding=True)
