"""A run as the step scrubber shows it: per sample, the recorded steps as pictures, then the result.

A ``Track`` holds one picture per step for each *panel* (``PANELS``: x_t, predicted x0, noise estimate); a
new per-step view (a score, a class-probability chart) is a new panel key, filled in ``tracks_from`` and
drawn by the page from the same value (assets/scrubber.*), with no change to the template's loops.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import numpy as np
import torch

from ddpm import images as im

ASSETS = Path(__file__).resolve().parent / "assets"
MAX_TRACKS = 40          # samples of one run kept for the scrubber
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
class Run:
    """The last run of a user (kept in gr.State): what the Denoising steps tab scrubs through."""

    title: str
    tracks: list[Track] = field(default_factory=list)
    total: int = 0  # images in the run, when more than the MAX_TRACKS kept


def tracks_from(frames: dict, captions: list[str], result: torch.Tensor) -> list[Track]:
    """A Recorder's frames (S, B, C, H, W) -> one Track per sample (the first MAX_TRACKS), ending on the run's
    ``result`` (B, C, H, W), the clean image, as a frame of its own (t = -1; no noise left, shown grey)."""
    def u8(x):
        arr = im.to_uint8(x.flatten(0, 1), rgb=False)
        return arr.reshape(*x.shape[:2], *arr.shape[1:])

    end = result.detach().to("cpu", torch.float32)[None]
    panels = {"x": u8(torch.cat([frames["x"], end])[:, :MAX_TRACKS]),
              "x0": u8(torch.cat([frames["x0"], end])[:, :MAX_TRACKS]),
              "eps": u8(im.show_noise(torch.cat([frames["eps"], torch.zeros_like(end)])[:, :MAX_TRACKS]))}
    t = [int(v) for v in frames["t"]] + [-1]
    return [Track(captions[b], t, {key: arr[:, b] for key, arr in panels.items()}) for b in range(panels["x"].shape[1])]


def scrub_value(run: Run | None, rows: list[int] | None = None, px: int = 168) -> dict | None:
    """The step scrubber's value: the panels, and per row (sample) a caption and data-URI frames."""
    if run is None or not run.tracks:
        return None
    out = []
    for i in rows if rows is not None else range(len(run.tracks)):
        tr = run.tracks[i]
        frames = [{"t": f"t = {tr.t[s]}" if tr.t[s] >= 0 else "the result",
                   **{key: im.png_data_uri(tr.images[key][s]) for key, _ in PANELS}} for s in range(len(tr.t))]
        out.append({"caption": html.escape(tr.caption), "frames": frames})
    return {"title": html.escape(run.title), "panels": [{"key": k, "label": label} for k, label in PANELS],
            "rows": out, "px": px, "n": max(len(r["frames"]) for r in out)}


def scrubber(elem_id: str, empty: str = EMPTY) -> gr.HTML:
    """The scrubber: frames live in the page, so a move of its slider swaps pictures with no server call."""
    template = (ASSETS / "scrubber.html").read_text().replace("EMPTY", html.escape(empty))
    return gr.HTML(None, html_template=template, css_template=(ASSETS / "scrubber.css").read_text(),
                   js_on_load=(ASSETS / "scrubber.js").read_text(), elem_id=elem_id, padding=True)
