"""Diffusion Lab: class-conditioned diffusion models you can watch, scrub, edit and fool.

    python app.py            # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT override)

The same file runs as a Hugging Face Space, on CPU or GPU (ZeroGPU too). Models load once at start
from checkpoints/ (``ddpm.bundled()``); the Model box also takes a checkpoint folder or a Hub id of
any ``UNet2DModel``, loaded for that user's session only.

Every action has an API name (``gradio_client.Client(url).predict(..., api_name="/generate")``):
/generate, /forward, /sdedit, /inpaint, /anagram, /hybrid. All diffusion maths lives in ``ddpm``;
this file only turns UI values into ``ddpm`` calls and the results back into pictures.
"""
from __future__ import annotations

import functools
import html
import inspect
import math
import random
import tempfile
import time
import uuid
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import numpy as np
import torch

import ddpm
from ddpm import images as im
from ddpm.device import pick_device

try:  # ZeroGPU Spaces: @spaces.GPU borrows a GPU per call; elsewhere it returns the function unchanged
    import spaces

    gpu = spaces.GPU
except ImportError:  # pragma: no cover - spaces is in requirements.txt
    def gpu(fn):
        return fn

ROOT = Path(__file__).resolve().parent
EXAMPLES_DIR = ROOT / "examples"
QUEUE_SIZE = 16          # waiting requests before "queue is full": one 2-vCPU Space runs one job at a time
MAX_FRAMES = 60          # steps kept per run for the scrubber (all up to 60, evenly thinned beyond)
MAX_TRACKS = 40          # samples of one run kept for the scrubber
MAX_PER_CLASS = 8
MAX_IMAGES = 16          # per SDEdit / inpaint / illusion run
PREVIEW_SECONDS = 0.25   # at most ~4 streamed previews a second
SO_FAR = " · predicted x0 so far"  # the end of a running Generate status
FILE_TTL = 3600          # seconds the downloadable PNG/GIF files are kept
NONE = "(none)"
SAMPLERS = [("DPM-Solver++", "dpm++"), ("DPM-Solver++ SDE", "dpm++sde"), ("DDIM", "ddim"),
            ("DDPM", "ddpm")]
STRENGTH_CHOICES = [round(0.1 * k, 1) for k in range(1, 11)]
STRENGTHS = [0.2, 0.4, 0.6, 0.8, 1.0]  # the default pick
VIEW_LABELS = {"identity": "as is", "flip_v": "upside down", "flip_h": "mirrored", "rot180": "rotated 180°",
               "rot90": "rotated 90°", "rot270": "rotated -90°", "transpose": "transposed", "negate": "negative",
               "patches": "jigsaw"}


# -- small helpers -------------------------------------------------------------------------------------
USER_ERRORS = (ValueError, FileNotFoundError, torch.cuda.OutOfMemoryError)


def _to_gr(err: Exception) -> gr.Error:
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return gr.Error("out of GPU memory: ask for fewer images or steps", title="Too big", print_exception=False)
    return gr.Error(str(err), title="Can't do that", print_exception=False)


def user_errors(fn):
    """Turn the library's ValueError / FileNotFoundError (bad input) into a gr.Error the user can read."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except USER_ERRORS as err:
                raise _to_gr(err) from err
        return generator

    @functools.wraps(fn)
    def plain(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as err:
            raise _to_gr(err) from err
    return plain


def _int(value, lo: int, hi: int, what: str) -> int:
    """A whole number in [lo, hi]; ints and digit strings stay exact (a 19-digit seed), 3.0 and "3.0" pass."""
    number = value
    if isinstance(number, str):
        try:
            number = int(number)
        except ValueError:
            pass  # "3.0", "1e3", "x": as a float below
    if not isinstance(number, int):
        try:
            number = float(number)
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be a number, got {value!r}") from None
    if not (isinstance(number, int) or number.is_integer()) or not lo <= number <= hi:
        raise ValueError(f"{what} must be a whole number from {lo} to {hi}, got {value!r}")
    return int(number)


def _float(value, lo: float, hi: float, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number) or not lo <= number <= hi:
        raise ValueError(f"{what} must be between {lo} and {hi}, got {value!r}")
    return number


def settings(sampler, steps, guidance, seed) -> ddpm.Settings:
    return ddpm.Settings(sampler=str(sampler), steps=_int(steps, 1, 1000, "steps"),
                         guidance=_float(guidance, 0, 30, "guidance"), seed=_int(seed, 0, 2**63 - 1, "seed"))


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def run_text(s: ddpm.Settings) -> str:
    """How a run sampled, for its status line: "dpm++ 20 steps · guidance 3 · seed 0"."""
    return f"{s.sampler} {plural(s.steps, 'step')} · guidance {s.guidance:g} · seed {s.seed}"


def random_seed() -> int:
    return random.randrange(2**31)


def _target(model: ddpm.DiffusionModel, value) -> str | None:
    """A class name from a dropdown, or None for "no class" (and for unconditional models)."""
    text = "" if value is None else str(value).strip()
    if text.lower() in ("", "none", NONE) or not model.conditional:
        return None
    return _canonical(model, [text])[0]  # raises a readable ValueError for an unknown class


def _canonical(model: ddpm.DiffusionModel, names: list[str]) -> list[str]:
    """Class names or indices, any case, as the model spells its classes ("3" is emoji's "Food & Drink")."""
    return [class_names(model)[i] for i in model.label_ids(names)]


def _classes(model: ddpm.DiffusionModel, value) -> list[str]:
    names = value.split(",") if isinstance(value, str) else list(value or [])
    names = [str(n).strip() for n in names if str(n).strip()]
    if model.conditional:
        if not names:
            raise ValueError("pick at least one class")
        names = list(dict.fromkeys(_canonical(model, names)))  # a class picked twice ("A", "a", "0") is one
    return names


def _every(job: ddpm.Job) -> int:
    return max(1, math.ceil(job.num_model_steps / MAX_FRAMES))


def _same_steps(levels: list[float], jobs: list[ddpm.Job], steps: int) -> str:
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


def _out_dir() -> Path:
    """A fresh folder for this result's files; folders older than FILE_TTL are swept away."""
    base = Path(tempfile.gettempdir()) / "diffusion-lab"
    base.mkdir(exist_ok=True)
    now = time.time()
    for old in base.iterdir():
        try:
            if now - old.stat().st_mtime > FILE_TTL:
                for f in old.iterdir():
                    f.unlink()
                old.rmdir()
        except OSError:
            pass
    folder = base / uuid.uuid4().hex[:12]
    folder.mkdir()
    return folder


def _layout(model: ddpm.DiffusionModel, names: list[str], per_class: int) -> tuple[list[str] | None, list[str], int]:
    """Labels in sampling order (None: unconditional), a caption per image, and the grid's columns: a column
    per class; with more than 12 classes, each class's images side by side, as many classes to a row as fit in
    12 columns, the rows filled evenly (26 letters x 1: rows of 9, 9, 8)."""
    if not model.conditional:
        return None, [f"#{i + 1}" for i in range(per_class)], min(per_class, 8)
    if len(names) <= 12:
        labels = [c for _ in range(per_class) for c in names]
        return labels, labels, len(names)
    labels = [c for c in names for _ in range(per_class)]
    per_row = max(1, 12 // per_class)
    rows = math.ceil(len(names) / per_row)
    return labels, labels, per_class * math.ceil(len(names) / rows)


def _save_downloads(grid, xs: torch.Tensor, final: torch.Tensor, captions: list[str], ncol: int) -> list[str]:
    """The grid as a PNG and the run as an animated GIF of x_t (S, B, C, H, W) ending on the result."""
    folder = _out_dir()
    grid.save(folder / "samples.png")
    frames = [im.captioned_grid(x, captions, ncol, 2) for x in xs] + [im.captioned_grid(final, captions, ncol, 2)]
    im.save_gif(frames, folder / "denoising.gif")
    return [str(folder / "samples.png"), str(folder / "denoising.gif")]


def _scale(model: ddpm.DiffusionModel) -> int:
    return im.display_scale(model.image_size)


def _view_label(view: str) -> str:
    v = ddpm.get_view(view)
    return VIEW_LABELS.get(v.name, v.description.split(" (")[0])


# -- the runs the step scrubber shows --------------------------------------------------------------------
@dataclass
class Track:
    """One sample's recorded steps: uint8 (S, H, W[, 3]) x_t, predicted x0 and noise estimate; t = -1 for the
    last, the result."""

    caption: str
    t: list[int]
    x: np.ndarray
    x0: np.ndarray
    eps: np.ndarray


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
    x = u8(torch.cat([frames["x"], end])[:, :MAX_TRACKS])
    x0 = u8(torch.cat([frames["x0"], end])[:, :MAX_TRACKS])
    eps = u8(im.show_noise(torch.cat([frames["eps"], torch.zeros_like(end)])[:, :MAX_TRACKS]))
    t = [int(v) for v in frames["t"]] + [-1]
    return [Track(captions[b], t, x[:, b], x0[:, b], eps[:, b]) for b in range(x.shape[1])]


def scrub_value(run: Run | None, rows: list[int] | None = None, px: int = 168) -> dict | None:
    """The step scrubber's value: per row (sample) a caption and data-URI frames, rendered in the page."""
    if run is None or not run.tracks:
        return None
    out = []
    for i in rows if rows is not None else range(len(run.tracks)):
        tr = run.tracks[i]
        out.append({"caption": html.escape(tr.caption), "frames": [
            {"x": im.png_data_uri(tr.x[s]), "x0": im.png_data_uri(tr.x0[s]), "eps": im.png_data_uri(tr.eps[s]),
             "t": f"t = {tr.t[s]}" if tr.t[s] >= 0 else "the result"} for s in range(len(tr.t))]})
    return {"title": html.escape(run.title), "rows": out, "px": px, "n": max(len(r["frames"]) for r in out)}


SCRUBBER_HTML = """
<div class="scrubber">
${value && value.rows && value.rows.length ? `
  <div class="title">${value.title}</div>
  ${value.rows.map((r, k) => `
    <div class="row" data-row="${k}">
      <div class="cap">${r.caption}</div>
      ${[["x", "noisy x<sub>t</sub>"], ["x0", "predicted x<sub>0</sub>"], ["eps", "noise estimate &epsilon;"]].map(
        ([key, label]) => `<figure><img class="${key}" style="width:${value.px}px"
          src="${r.frames[r.frames.length - 1][key]}"><figcaption>${label}</figcaption></figure>`).join("")}
      <div class="t">${r.frames[r.frames.length - 1].t}</div>
    </div>`).join("")}
  <div class="controls">
    <button class="play" type="button">&#9654; Play</button>
    <input type="range" min="0" max="${value.n - 1}" value="${value.n - 1}" step="1" aria-label="step">
    <span class="pos">frame ${value.n} / ${value.n}</span>
  </div>
` : `<div class="empty">EMPTY</div>`}
</div>"""

SCRUBBER_CSS = """
.scrubber { font-size: 14px; }
.scrubber .title { font-weight: 600; margin: 4px 0 8px; }
.scrubber .row { display: flex; align-items: center; gap: 12px; flex-wrap: wrap; margin-bottom: 6px; }
.scrubber .cap { min-width: 110px; max-width: 160px; font-weight: 600; }
.scrubber figure { margin: 0; text-align: center; }
.scrubber img { image-rendering: pixelated; display: block; border-radius: 4px; background: #000; }
.scrubber figcaption { font-size: 12px; opacity: 0.8; margin-top: 2px; }
.scrubber .t { font-family: monospace; min-width: 70px; }
.scrubber .controls { display: flex; align-items: center; gap: 12px; margin-top: 8px; }
.scrubber input[type=range] { flex: 1; max-width: 560px; }
.scrubber button.play { padding: 4px 14px; border-radius: 6px; border: 1px solid #bbb; cursor: pointer;
                        background: #f4f4f5; color: #222; }
.scrubber .pos { font-family: monospace; }
.scrubber .empty { opacity: 0.7; padding: 24px 8px; }
"""

# Frames live in the page: a move of the slider swaps <img> sources with no server round trip. Rows with
# fewer frames than the longest (SDEdit's low strengths) move proportionally.
SCRUBBER_JS = """
let timer = null;
function stop() {
  if (timer) { clearInterval(timer); timer = null; }
  const b = element.querySelector('button.play');
  if (b) b.innerHTML = '&#9654; Play';
}
function show(i) {
  const v = props.value;
  if (!v || !v.rows) return;
  element.querySelectorAll('.row').forEach(row => {
    const r = v.rows[+row.dataset.row], m = r.frames.length;
    const f = r.frames[v.n > 1 ? Math.round(i * (m - 1) / (v.n - 1)) : 0];
    for (const key of ['x', 'x0', 'eps']) row.querySelector('img.' + key).src = f[key];
    row.querySelector('.t').textContent = f.t;
  });
  const pos = element.querySelector('.pos');
  if (pos) pos.textContent = 'frame ' + (i + 1) + ' / ' + v.n;
}
element.addEventListener('input', e => {
  if (e.target.matches('input[type=range]')) { stop(); show(+e.target.value); }
});
element.addEventListener('click', e => {
  const b = e.target.closest('button.play');
  if (!b) return;
  if (timer) { stop(); return; }
  const s = element.querySelector('input[type=range]');
  if (+s.value >= +s.max) { s.value = 0; show(0); }
  b.innerHTML = '&#10074;&#10074; Pause';
  timer = setInterval(() => {
    if (+s.value >= +s.max) { stop(); return; }
    s.value = +s.value + 1; show(+s.value);
  }, Math.max(40, Math.min(250, 3000 / (+s.max + 1))));
});
// new frames arrive with the thumb on their last frame (the page keeps an <input>'s moved value otherwise)
function toEnd() {
  const s = element.querySelector('input[type=range]');
  if (s) s.value = s.max;
}
watch('value', () => { stop(); toEnd(); setTimeout(toEnd, 0); });
"""


def scrubber(elem_id: str, empty: str = "Run something in any tab (Generate, SDEdit, Inpaint, Illusions): "
             "its denoising steps appear here.") -> gr.HTML:
    return gr.HTML(None, html_template=SCRUBBER_HTML.replace("EMPTY", html.escape(empty)), css_template=SCRUBBER_CSS,
                   js_on_load=SCRUBBER_JS, elem_id=elem_id, padding=True)


# -- the handlers --------------------------------------------------------------------------------------
class Lab:
    """The app's handlers. Each parses UI values, runs one ``ddpm`` recipe, converts the result to pictures.

    Holds only the models loaded at start (read-only after __init__). Per-user things, the models a user
    loads from a folder or the Hub and the last run, travel in gr.State.
    """

    GPU_HANDLERS = ("generate", "forward", "sdedit", "inpaint", "anagram", "hybrid")

    def __init__(self, models: dict[str, ddpm.DiffusionModel], problems: list[str] | None = None):
        self.device = pick_device()
        self.models = {name: m.to(self.device) for name, m in models.items()}
        self.problems = list(problems or [])
        for name in self.GPU_HANDLERS:  # on ZeroGPU these run in a GPU worker; wrapping the *bound* method
            setattr(self, name, gpu(getattr(self, name)))  # keeps `self` (every model) out of what it pickles

    @property
    def default(self) -> str:
        return next(iter(self.models), "")

    # -- models
    def model(self, name, session: dict | None) -> ddpm.DiffusionModel:
        """A loaded model by name, else a folder / Hub id loaded once into the user's session."""
        name = str(name or "").strip()
        if not name:
            raise ValueError("no model: pick one, or type a checkpoint folder or a Hub id in the Model box")
        if name in self.models:
            return self.models[name]
        if session is not None and name in session:
            return session[name]
        try:
            model = ddpm.load(name, device=self.device)
        except (OSError, RuntimeError, KeyError) as err:  # unreadable files, bad configs
            raise ValueError(f"could not load model {name!r}: {err}") from None
        if session is not None:
            session.clear()  # one custom model per user is plenty on a shared Space
            session[name] = model
        return model

    def begin(self, model, session, sampler, steps, guidance, seed, count=None):
        """What every sampling handler starts with: the model, checked Settings and (given ``count``)
        the number of images."""
        model, s = self.model(model, session), settings(sampler, steps, guidance, seed)
        return model, s, None if count is None else _int(count, 1, MAX_IMAGES, "number of images")

    @user_errors
    def select_model(self, name, session):
        """Model box changed: load it if needed and describe it."""
        return describe(self.model(name, session))

    @property
    def default_classes(self) -> list[str]:
        """Class names of the default model (what the class dropdowns start with)."""
        return class_names(self.models[self.default]) if self.models else []

    # -- Generate
    @user_errors
    def generate(self, model, classes, per_class, sampler, steps, guidance, seed, session,
                 progress=gr.Progress()):
        model, s, _ = self.begin(model, session, sampler, steps, guidance, seed)
        per_class = _int(per_class, 1, MAX_PER_CLASS, "images per class")
        labels, captions, ncol = _layout(model, _classes(model, classes), per_class)
        job = ddpm.generate(model, labels, n=None if labels else per_class, settings=s)
        scale, start = _scale(model) // 2, time.perf_counter()
        x, frames = yield from stream_job(job, ticker(progress), lambda step, status, first: (
            im.captioned_grid(step.x0, captions, ncol, scale), None if first else gr.skip(), status + SO_FAR,
            gr.skip()))
        seconds = time.perf_counter() - start
        grid = im.captioned_grid(x, captions, ncol, scale)
        files = _save_downloads(grid, frames["x"], x, captions, ncol)
        what = f"{plural(len(captions), 'image')} · {run_text(s)}"
        names = [f"{c} #{captions[:i].count(c) + 1}" for i, c in enumerate(captions)] if labels else captions
        run = Run(f"Generate · {model.name} · {what}", tracks_from(frames, names, x), len(captions))
        yield grid, files, f"Done: {model.name} · {what} · {seconds:.1f} s", run

    # -- Forward process
    @user_errors
    def forward(self, model, image, t, seed, blur_sigma, session):
        model = self.model(model, session)
        x0 = im.prepare_sketch(image, model)
        t = _int(t, 0, model.schedule.num_timesteps - 1, "t")
        sigma = _float(blur_sigma, 0.1, model.image_size, "blur sigma")
        out = ddpm.forward_process(model, x0, t, seed=_int(seed, 0, 2**63 - 1, "seed"), blur_sigma=sigma)
        abar = float(model.schedule.alphas_cumprod[t])
        k = _scale(model)
        note = (f"t = {t}: x_t = {abar ** 0.5:.3f} · x0 + {(1 - abar) ** 0.5:.3f} · noise "
                f"(signal-to-noise {abar / max(1 - abar, 1e-12):.3g}) · seed {seed}")
        return (im.to_display(x0, k), im.to_display(out["x_t"][0], k), im.to_display(out["x0_pred"][0], k),
                im.to_display(out["blurred"][0], k), note)

    # -- SDEdit
    @user_errors
    def sdedit(self, model, image, target, strengths, sampler, steps, guidance, seed, session,
               progress=gr.Progress()):
        model, s, _ = self.begin(model, session, sampler, steps, guidance, seed)
        x0 = im.prepare_sketch(image, model)
        label = _target(model, target)
        given = strengths.split(",") if isinstance(strengths, str) else strengths or []
        levels = sorted({_float(v, 0, 1, "strength") for v in given})
        if not levels:
            raise ValueError("pick at least one strength (how much noise to add: 0 none, 1 all)")
        jobs = ddpm.sdedit(model, x0, levels, labels=label, settings=s)
        total, done, results, tracks = sum(max(j.num_model_steps, 1) for j in jobs), 0, [], []
        seen = im.to_display(x0, _scale(model))

        def tick(step):
            nonlocal done
            done += 1
            progress((done, total), desc="denoising")
        for level, job in zip(levels, jobs, strict=True):
            start_t = job.plan[0]
            x, frames = yield from stream_job(job, tick, lambda step, status, first: (  # the strengths done so far
                list(results), seen, f"strength {level:g}: {status}", gr.skip()))
            caption = f"strength {level:g} (from t={start_t})" if start_t >= 0 else f"strength {level:g} (input)"
            results.append((im.to_display(x[0], _scale(model)), f"{level:g}"))
            tracks += tracks_from(frames, [caption], x)
        what = f"target {NONE if label is None else label} · {run_text(s)}{_same_steps(levels, jobs, s.steps)}"
        run = Run(f"SDEdit · {model.name} · {what}", tracks)
        yield results, seen, f"Done: {model.name} · {what}", run

    # -- Inpaint
    @user_errors
    def inpaint(self, model, image, target, repaint, count, sampler, steps, guidance, seed, session,
                progress=gr.Progress()):
        model, s, n = self.begin(model, session, sampler, steps, guidance, seed, count)
        if not isinstance(image, dict) or image.get("background") is None:
            raise ValueError("no image to inpaint: upload one or pick an example, then paint the region to replace")
        x0 = im.prepare_image(image["background"], model, keep_layout=True)
        mask = im.mask_from_editor(image, model)
        h, w = np.asarray(image["background"]).shape[:2]
        square = f" · used the centre {min(h, w)}×{min(h, w)} of the {w}×{h} picture" if h != w else ""
        label = _target(model, target)
        job = ddpm.inpaint(model, x0.expand(n, -1, -1, -1), torch.from_numpy(mask), labels=label, settings=s,
                           jump_length=5 if repaint else 0, jump_n_sample=3 if repaint else 1)
        k = _scale(model)
        seen = im.mask_overlay(x0, mask, k)
        jumps = f" (RePaint: {s.steps} steps, going back to redo stretches)" if repaint else ""
        x, frames = yield from stream_job(job, ticker(progress), lambda step, status, first: (
            seen, None if first else gr.skip(), status + jumps, gr.skip()))
        captions = [f"#{i + 1}" for i in range(n)]
        what = (f"{int(mask.sum())} of {mask.size} pixels · target {NONE if label is None else label}"
                f"{' · RePaint' if repaint else ''} · {run_text(s)}{square}")
        run = Run(f"Inpaint · {model.name} · {what}", tracks_from(frames, captions, x))
        grid = im.captioned_grid(x, [f"seed {s.seed} #{i + 1}" for i in range(n)], min(n, 4), k // 2)
        yield seen, grid, f"Done: {model.name} · {what}", run

    # -- Illusions
    @user_errors
    def anagram(self, model, class_a, class_b, view, count, sampler, steps, guidance, seed, session,
                progress=gr.Progress()):
        model, s, n = self.begin(model, session, sampler, steps, guidance, seed, count)
        a, b = _target(model, class_a), _target(model, class_b)
        v = ddpm.get_view(view)
        job = ddpm.anagram(model, [(a, "identity"), (b, v)], n=n, settings=s)
        x, frames = yield from stream_job(job, ticker(progress), lambda step, status, first: (
            None if first else gr.skip(), status, gr.skip()))
        pairs = torch.stack([x, v(x)], 1).flatten(0, 1)
        captions = [c for _ in range(n) for c in (f"{a or 'any'} · as is", f"{b or 'any'} · {_view_label(view)}")]
        what = f"{a or 'any'} / {b or 'any'} {v.spec} · {run_text(s)}"
        run = Run(f"Anagram · {model.name} · {what}", tracks_from(frames, [f"#{i + 1}" for i in range(n)], x))
        yield im.captioned_grid(pairs, captions, 2 * min(n, 2), _scale(model) // 2), f"Done: {model.name} · {what}", run

    @user_errors
    def hybrid(self, model, low, high, sigma, count, sampler, steps, guidance, seed, session,
               progress=gr.Progress()):
        model, s, n = self.begin(model, session, sampler, steps, guidance, seed, count)
        sigma = _float(sigma, 0.1, model.image_size, "blur sigma")
        low, high = _target(model, low), _target(model, high)
        job = ddpm.hybrid(model, low, high, sigma=sigma, n=n, settings=s)
        x, frames = yield from stream_job(job, ticker(progress), lambda step, status, first: (
            *([None, None] if first else [gr.skip(), gr.skip()]), status, gr.skip()))
        captions = [f"#{i + 1}" for i in range(n)]
        what = f"{low or 'any'} from afar, {high or 'any'} up close · sigma {sigma:g} · {run_text(s)}"
        run = Run(f"Hybrid · {model.name} · {what}", tracks_from(frames, captions, x))
        up_close = im.captioned_grid(x, None, min(n, 4), _scale(model))
        from_afar = im.captioned_grid(x, None, min(n, 4), 1, pad=2)
        yield up_close, from_afar, f"Done: {model.name} · {what}", run


def stream_job(job: ddpm.Job, tick, pending) -> Generator[tuple, None, tuple[torch.Tensor, dict]]:
    """Run a job inside a handler's generator (``x, frames = yield from stream_job(...)``): ``tick(step)`` after
    every step, and now and then (the first step, then at most every PREVIEW_SECONDS) it yields the handler's
    outputs ``pending(step, status, first)`` for a "step k/N" status (and, for a preview, the step's x0). Those
    yields are where a Stop takes effect. Returns the result and the recorded frames."""
    recorder, last = ddpm.Recorder(every=_every(job)), None
    for step in job:
        recorder(step)
        tick(step)
        if last is None or time.perf_counter() - last >= PREVIEW_SECONDS:
            yield pending(step, f"step {step.index + 1}/{step.total} · t = {step.t}", last is None)
            last = time.perf_counter()
    return step.x_next, recorder.frames()


def ticker(progress):
    """A step callback that moves a gr.Progress bar."""
    return lambda step: progress((step.index + 1, step.total), desc="denoising")


def describe(model: ddpm.DiffusionModel) -> str:
    names = model.class_names or []
    classes = ", ".join(names[:12]) + (f", ... ({len(names)})" if len(names) > 12 else "") or "unconditional"
    params = model.denoiser.num_parameters() / 1e6
    metrics = model.meta.get("metrics", {}).get("rows") or []
    quality = ""
    if metrics:  # the headline row: the one at the model's default guidance, else the card's first
        first = next((row for row in metrics if row.get("guidance") == model.default_guidance), metrics[0])
        floor = f", floor {first['fid_floor']:.1f}" if first.get("fid_floor") is not None else ""
        quality = f" · class accuracy {first['accuracy']:.3f}, FID {first['fid']:.1f}{floor} ({first['setting']})"
    return (f"**{model.name}** · {model.channels}×{model.image_size}×{model.image_size} · classes: {classes} · "
            f"`{model.denoiser.family}` {params:.2f} M params · {model.schedule.kind} schedule, "
            f"T = {model.schedule.num_timesteps} · on {model.device.type}{quality}")


# -- the page ------------------------------------------------------------------------------------------
PREFERRED = ("mnist", "fashion", "letters", "emoji")  # the default model is the first of these found
MASK_RGBA = (255, 40, 90, 166)
MASK_COLOUR = "rgba(255, 40, 90, 0.65)"
CSS = """
#hybrid-small img, #hybrid-small .image-frame img { width: auto !important; height: auto !important;
  max-width: none !important; object-fit: none !important; image-rendering: auto; }
.help { opacity: 0.85; }
#gen-files { max-height: 200px; overflow-y: auto; }
footer { display: none !important; }
"""


@dataclass(frozen=True)
class UI:
    """What every tab builder needs: the handlers and the components shared by all tabs."""

    lab: Lab
    model: gr.Dropdown
    session: gr.State                # the user's own loaded models (folder / Hub id)
    last_run: gr.State               # the user's last run, for the Denoising steps tab
    model_ready: object              # the Model box's change event: tabs update their class lists on success


@dataclass(frozen=True)
class Sampling:
    sampler: gr.Dropdown
    steps: gr.Slider
    guidance: gr.Slider
    seed: gr.Number

    @property
    def inputs(self) -> list:
        return [self.sampler, self.steps, self.guidance, self.seed]


def load_bundled() -> tuple[dict[str, ddpm.DiffusionModel], list[str]]:
    """Every model under checkpoints/, once, at start; a broken folder is reported, not fatal."""
    names = sorted(ddpm.bundled(), key=lambda n: (PREFERRED.index(n) if n in PREFERRED else len(PREFERRED), n))
    models, problems = {}, []
    for name in names:
        try:
            models[name] = ddpm.load(name)
        except Exception as err:  # noqa: BLE001 - whatever is wrong with one checkpoint, the app still starts
            problems.append(f"`{name}`: {err}")
    return models, problems


def example_images(lab: Lab, per_model: int = 10) -> list[list[str]]:
    """[model name, picture] rows from examples/<dataset>/*.png (test-set images) for the loaded models."""
    rows = []
    for name, model in lab.models.items():
        folder = EXAMPLES_DIR / str(model.dataset or "-")
        rows += [[name, str(p)] for p in sorted(folder.glob("*.png"))[:per_model]]
    return rows


def image_examples(ui: UI, box, rows: list[list], label: str = "Test-set examples") -> None:
    """Example pictures as a gallery of thumbnails; a click also selects the model they belong to."""
    if not rows:
        return
    gr.Examples(rows, [ui.model, box], label=label, visible_columns=[1], examples_per_page=24)


def preset_mask(picture: str) -> dict:
    """An ImageMask value for an example: the picture with its lower half already painted."""
    from PIL import Image

    with Image.open(picture) as pic:
        background = pic.convert("RGBA")
    w, h = background.size
    layer = np.zeros((h, w, 4), np.uint8)
    layer[h // 2:] = MASK_RGBA
    # a fixed folder per picture (not swept like results): examples must outlive FILE_TTL
    folder = Path(tempfile.gettempdir()) / "diffusion-lab-masks" / uuid.uuid5(uuid.NAMESPACE_URL, picture).hex
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(layer).save(folder / "mask.png")
    # the editor draws the composite; without it the painted layer is sent but not shown
    Image.alpha_composite(background, Image.fromarray(layer)).save(folder / "composite.png")
    return {"background": picture, "layers": [str(folder / "mask.png")], "composite": str(folder / "composite.png")}


def sampling_controls(sampler: str = ddpm.recipes.DEFAULT_SAMPLER, steps: int = 20,
                      guidance: float = ddpm.recipes.DEFAULT_GUIDANCE, open: bool = False,
                      elem_id: str | None = None) -> Sampling:
    """The sampler accordion and the seed row; ``elem_id`` (a tab's prefix) names the sampler, steps and guidance."""
    with gr.Accordion("Sampler", open=open):
        with gr.Row():
            sampler_box = gr.Dropdown(SAMPLERS, value=sampler, label="Sampler", min_width=150,
                                      elem_id=f"{elem_id}-sampler" if elem_id else None)
            steps_box = gr.Slider(1, 1000, value=steps, step=1, label="Steps", min_width=200,
                                  elem_id=f"{elem_id}-steps" if elem_id else None)
        guidance_box = gr.Slider(0, 10, value=guidance, step=0.5, label="Guidance scale",
                                 elem_id=f"{elem_id}-guidance" if elem_id else None,
                                 info="0: unconditional · 1: plain conditional · higher: more typical of the class")
    with gr.Row(equal_height=True):
        seed = gr.Number(0, label="Seed", precision=0, minimum=0, maximum=2**63 - 1, min_width=120)
        dice = gr.Button("New seed", scale=0, min_width=140)
    dice.click(random_seed, None, seed, api_visibility="private", queue=False)
    return Sampling(sampler_box, steps_box, guidance_box, seed)


def sketch_input(elem_id: str, value, label: str) -> gr.ImageEditor:
    """Upload, paste, or draw (or draw over an upload): the value is an editor dict for prepare_sketch."""
    return gr.ImageEditor(value=value, type="numpy", sources=("upload", "clipboard"), layers=False, transforms=(),
                          brush=gr.Brush(default_size=10, colors=["#000000", "#ffffff", "#e53935", "#fbc02d",
                                                                  "#43a047", "#1e88e5", "#8e24aa"],
                                         color_mode="defaults"),
                          canvas_size=(256, 256), height=360, label=label, elem_id=elem_id)


def class_names(model: ddpm.DiffusionModel) -> list[str]:
    """The names a class dropdown offers ([] for an unconditional model)."""
    return model.classes


def _follow_model(ui: UI, box, choices_of, default_of, multiselect: bool = False) -> None:
    """Keep a dropdown in step with the Model box: new choices, the current pick kept while it still fits
    (so an example that sets model and classes together keeps its classes), else the model's default."""
    def update(name, session, current):
        try:
            model = ui.lab.model(name, session)
        except ValueError:
            return gr.skip()
        choices = choices_of(model)
        values = {c[1] if isinstance(c, tuple) else c for c in choices}
        if multiselect:
            keep = [c for c in (current or []) if c in values]
        else:
            keep = current if current in values else None
        return gr.Dropdown(choices=choices, value=keep or default_of(model))
    ui.model_ready.success(update, [ui.model, ui.session, box], box, api_visibility="private", queue=False)


def _follow_default(ui: UI, box, default_of) -> None:
    """Keep a control at the model's own default (``default_of(model)``: its ``default_guidance``, 3 for
    emoji and 1.5 for the digits, or its ``default_sampler``) until the user sets it; from then on a model
    switch leaves their value."""
    moved = gr.State(False)
    box.input(lambda: True, None, moved, api_visibility="private", queue=False)

    def update(name, session, touched):
        if touched:
            return gr.skip()
        try:
            return default_of(ui.lab.model(name, session))
        except ValueError:
            return gr.skip()
    ui.model_ready.success(update, [ui.model, ui.session, moved], box, api_visibility="private", queue=False)


@functools.lru_cache(maxsize=256)
def _picture(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as pic:
        return np.asarray(pic.convert("RGBA"))


def _composite_path(value) -> str:
    """The file an example value shows: the picture itself, or a preset mask's composite."""
    return value["composite"] if isinstance(value, dict) else value


def shows_example(current, value) -> bool:
    """Whether an editor's value still shows exactly the example ``value`` (nothing drawn, painted or uploaded).
    ``current`` is the editor's numpy dict; a few levels of tolerance absorb the browser's own compositing."""
    shown = current.get("composite") if isinstance(current, dict) else None
    if shown is None:
        return False
    ref = _picture(_composite_path(value))
    shown = np.asarray(shown)
    if shown.ndim == 2:
        shown = np.stack([shown] * 3 + [np.full_like(shown, 255)], -1)
    elif shown.shape[-1] == 3:
        shown = np.concatenate([shown, np.full_like(shown[..., :1], 255)], -1)
    return shown.shape == ref.shape and int(np.abs(shown.astype(np.int16) - ref).max()) <= 4


def next_example(current, own: list, every: list):
    """What an image box shows after a switch to a model whose example values are ``own`` (``every``: all
    models' examples): that model's first example while the box shows another model's example untouched,
    else None (leave it: no examples, one of its own already, or a picture the user drew or uploaded)."""
    shown = next((v for v in every if shows_example(current, v)), None)
    return own[0] if own and shown is not None and shown not in own else None


def _follow_examples(ui: UI, box, rows: list[list]) -> None:
    """Keep an untouched example picture in step with the Model box (see next_example); ``rows`` are the
    tab's [model name, example value] rows."""
    by_model: dict[str, list] = {}
    for name, value in rows:
        by_model.setdefault(name, []).append(value)
    every = [value for _, value in rows]

    def update(name, current):
        value = next_example(current, by_model.get(name, []), every)
        return gr.skip() if value is None else value
    if rows:
        ui.model_ready.success(update, [ui.model, box], box, api_visibility="private", queue=False)


def _follow_target(ui: UI, box) -> None:
    """A target-class dropdown: the model's classes after "(none)", which is the default."""
    _follow_model(ui, box, lambda m: [NONE] + class_names(m), lambda m: NONE)


def _header(lab: Lab) -> UI:
    gr.Markdown("# Diffusion Lab\nSmall class-conditioned diffusion models, trained from scratch: generate, "
                "watch every denoising step, edit sketches and photos, and make illusions. "
                "Every button is also an API call (see *Use via API* at the bottom).")
    if not lab.models:
        gr.Markdown("**No bundled model yet** (checkpoints/ is empty). Train one with "
                    "`python -m ddpm train mnist`, or type a checkpoint folder or a Hub id of a "
                    "`UNet2DModel` in the Model box.", elem_id="no-models")
    for problem in lab.problems:
        gr.Markdown(f"**A bundled checkpoint could not be loaded:** {problem}")
    with gr.Row(equal_height=True):
        model = gr.Dropdown(list(lab.models), value=lab.default, allow_custom_value=True, label="Model",
                            info="a bundled model, or a checkpoint folder / Hub id", scale=1, min_width=220,
                            elem_id="model")
        info = gr.Markdown(describe(lab.models[lab.default]) if lab.models else "", elem_id="model-info")
    session, last_run = gr.State({}), gr.State(None)
    # queued: a model that fails to load (a typo, a Hub id offline) shows its error as a toast, which an
    # unqueued event does not (it shows a bare "Error" badge); the class lists etc. follow only a success
    ready = model.change(lab.select_model, [model, session], info, api_visibility="private",
                         show_progress="minimal")
    return UI(lab, model, session, last_run, ready)


def _tab_generate(ui: UI):
    names = ui.lab.default_classes
    with gr.Tab("Generate", id="generate"):
        gr.Markdown("Sample new images of the classes you pick. The preview shows the model's current guess "
                    "of the clean image (predicted x0) at every step; the same seed gives the same grid.",
                    elem_classes="help")
        with gr.Row():
            with gr.Column(scale=2, min_width=320):
                classes = gr.Dropdown(names, value=names[:10], multiselect=True, allow_custom_value=True,
                                      label="Classes", elem_id="gen-classes")
                per_class = gr.Slider(1, MAX_PER_CLASS, value=2, step=1, label="Images per class")
                default = ui.lab.models.get(ui.lab.default)
                sampling = sampling_controls(
                    open=True, elem_id="gen",
                    sampler=default.default_sampler if default else ddpm.recipes.DEFAULT_SAMPLER,
                    guidance=default.default_guidance if default else ddpm.recipes.DEFAULT_GUIDANCE)
                # inside the tab: their States must not sit between tabs
                _follow_default(ui, sampling.guidance, lambda m: m.default_guidance)
                _follow_default(ui, sampling.sampler, lambda m: m.default_sampler)
                with gr.Row():
                    run = gr.Button("Generate", variant="primary", elem_id="gen-run")
                    stop = gr.Button("Stop", variant="stop", elem_id="gen-stop")
            with gr.Column(scale=3):
                status = gr.Textbox(label="Status", interactive=False, elem_id="gen-status")
                image = gr.Image(label="Samples", type="pil", format="png", elem_id="gen-image", height=440,
                                 interactive=False, buttons=["download", "fullscreen"])
                files = gr.File(label="Downloads: the grid (PNG) and the denoising (GIF)", file_count="multiple",
                                interactive=False, elem_id="gen-files", height=150)
        rows = [[name, class_names(m)[:10], 2, m.default_sampler, 20, m.default_guidance, 0]
                for name, m in ui.lab.models.items()]
        if rows:
            labels = [f"{r[0]}: {', '.join(r[1][:4])}{', ...' if len(r[1]) > 4 else ''}" for r in rows]
            gr.Examples(rows, [ui.model, classes, per_class, *sampling.inputs], label="Examples", example_labels=labels)
    event = run.click(ui.lab.generate, [ui.model, classes, per_class, *sampling.inputs, ui.session],
                      [image, files, status, ui.last_run], api_name="generate", show_progress_on=status,
                      concurrency_id="model")
    stops(stop, event, status)
    _follow_model(ui, classes, class_names, lambda m: class_names(m)[:10], multiselect=True)
    return event


def stopped(status: str):
    """A tab's status after Stop: the step the run got to ("step 12/200 · t = 944", or SDEdit's "strength 0.5:
    step ..." after the strengths already shown), and for Generate that its grid is not a finished sample.
    A run already over keeps its status."""
    status = str(status or "")
    if not status.startswith(("step ", "strength ")):
        return gr.skip()
    if status.endswith(SO_FAR):
        return f"Stopped at {status.removesuffix(SO_FAR)}: the grid is the predicted x0 there, not a finished sample"
    return f"Stopped at {status}"


def stops(button: gr.Button, event, status) -> None:
    """Make ``button`` cancel ``event`` (a generator handler's run, which stops at its next yield) and say where."""
    button.click(stopped, status, status, cancels=[event], api_visibility="private", queue=False)


def _tab_steps(ui: UI):
    with gr.Tab("Denoising steps", id="steps"):
        gr.Markdown("Scrub through every stored step of the last run (from any tab): the noisy input x_t, "
                    "the model's predicted clean image x0, and its noise estimate, then the result. The frames "
                    "live in the page, so moving the slider is instant; ▶ plays the run.", elem_classes="help")
        picker = gr.Dropdown([], label="Sample", elem_id="steps-sample", interactive=True)
        html = scrubber("steps-scrubber")

    def show_run(run):
        if run is None:
            return gr.Dropdown(choices=[], value=None, label="Sample"), None
        choices = [(f"{i + 1}. {tr.caption}", i) for i, tr in enumerate(run.tracks)]
        kept = len(run.tracks)
        label = f"Sample (the first {kept} of the run's {run.total} are kept)" if run.total > kept else "Sample"
        return gr.Dropdown(choices=choices, value=0, label=label), scrub_value(run, [0])

    def show_track(run, index):
        if run is None or index is None or not 0 <= int(index) < len(run.tracks):
            return gr.skip()
        return scrub_value(run, [int(index)])

    picker.input(show_track, [ui.last_run, picker], html, api_visibility="private", queue=False)

    def follow(event):
        event.success(show_run, ui.last_run, [picker, html], api_visibility="private", queue=False)
    return follow


def _tab_forward(ui: UI):
    examples = example_images(ui.lab)
    model = ui.lab.models.get(ui.lab.default)
    with gr.Tab("Forward process", id="forward"):
        gr.Markdown("Add noise to an image up to step t of the forward process, then see what one model call "
                    "recovers (its one-step estimate of x0) next to a plain Gaussian blur of x_t.",
                    elem_classes="help")
        with gr.Row():
            with gr.Column(scale=2, min_width=320):
                image = sketch_input("forward-image", examples[0][1] if examples else None,
                                     "Upload, pick an example, or draw")
                t = gr.Slider(0, model.schedule.num_timesteps - 1 if model else 999, value=500, step=1,
                              label="Noise level t", info="0: almost clean · 999: pure noise", elem_id="forward-t")
                with gr.Row():
                    seed = gr.Number(0, label="Noise seed", precision=0, minimum=0, maximum=2**63 - 1)
                    blur = gr.Slider(0.25, 4, value=1.0, step=0.25, label="Blur sigma (px)")
                run = gr.Button("Add noise", variant="primary", elem_id="forward-run")
            with gr.Column(scale=3):
                labels = ("input, as the model sees it", "noisy x_t", "one-step estimate of x0", "Gaussian blur of x_t")
                shown = []
                for row in (labels[:2], labels[2:]):
                    with gr.Row():
                        shown += [gr.Image(label=label, type="numpy", format="png", height=240, interactive=False,
                                           buttons=["download"], min_width=160, elem_id=f"forward-{i}")
                                  for i, label in enumerate(row, len(shown))]
                note = gr.Textbox(label="What happened", interactive=False, elem_id="forward-note")
        image_examples(ui, image, examples)
    _follow_examples(ui, image, examples)
    inputs = [ui.model, image, t, seed, blur, ui.session]
    run.click(ui.lab.forward, inputs, [*shown, note], api_name="forward", concurrency_id="model")
    t.release(ui.lab.forward, inputs, [*shown, note], api_visibility="private", concurrency_id="model",
              show_progress="minimal")

    def t_range(name, session, current):
        try:
            top = ui.lab.model(name, session).schedule.num_timesteps - 1
        except ValueError:
            return gr.skip()
        return gr.Slider(maximum=top, value=min(int(current or 0), top))
    ui.model_ready.success(t_range, [ui.model, ui.session, t], t, api_visibility="private", queue=False)


def _tab_sdedit(ui: UI):
    examples = example_images(ui.lab)
    names = ui.lab.default_classes
    with gr.Tab("SDEdit", id="sdedit"):
        gr.Markdown("SDEdit: noise your image part way, then let the model denoise it back, once per strength. "
                    "Low strength keeps your picture; high strength keeps only its rough layout. "
                    "A target class pulls the result toward that class. Sketches are centred and scaled like "
                    "the training data before the model sees them.", elem_classes="help")
        with gr.Row():
            with gr.Column(scale=2, min_width=320):
                image = sketch_input("sdedit-image", examples[0][1] if examples else None,
                                     "Upload, pick an example, or draw")
                with gr.Row():
                    target = gr.Dropdown([NONE] + names, value=NONE, allow_custom_value=True, label="Target class",
                                         elem_id="sdedit-target")
                    strengths = gr.CheckboxGroup(STRENGTH_CHOICES, value=STRENGTHS, label="Strengths (noise levels)")
                sampling = sampling_controls(guidance=3.0)
                with gr.Row():
                    run = gr.Button("Run SDEdit", variant="primary", elem_id="sdedit-run")
                    stop = gr.Button("Stop", variant="stop", elem_id="sdedit-stop")
            with gr.Column(scale=3):
                status = gr.Textbox(label="Status", interactive=False, elem_id="sdedit-status")
                with gr.Row():
                    seen = gr.Image(label="model input", type="numpy", format="png", height=200, buttons=[],
                                    interactive=False, scale=1, min_width=150)
                    gallery = gr.Gallery(label="Results by strength", columns=5, height=200, scale=4, format="png",
                                         object_fit="contain", elem_id="sdedit-gallery")
                steps = scrubber("sdedit-scrubber", "Run SDEdit: each strength's denoising steps appear here.")
        image_examples(ui, image, examples)
    _follow_examples(ui, image, examples)
    event = run.click(ui.lab.sdedit, [ui.model, image, target, strengths, *sampling.inputs, ui.session],
                      [gallery, seen, status, ui.last_run], api_name="sdedit", show_progress_on=status,
                      concurrency_id="model")
    run.click(lambda: None, None, steps, api_visibility="private", queue=False)  # not the last run's beside this one
    event.success(lambda run: scrub_value(run, px=84), ui.last_run, steps, api_visibility="private", queue=False)
    stops(stop, event, status)
    _follow_target(ui, target)
    return event


def _tab_inpaint(ui: UI):
    examples = [[name, preset_mask(path)] for name, path in example_images(ui.lab)]
    names = ui.lab.default_classes
    with gr.Tab("Inpaint", id="inpaint"):
        gr.Markdown("Paint over the part of the image to replace; the model regenerates it to fit the rest, "
                    "which is kept exactly. RePaint resampling goes back and forth in noise a few times so "
                    "the new part agrees better with the old (needs DDIM or DDPM; about 3x the work).",
                    elem_classes="help")
        with gr.Row():
            with gr.Column(scale=3, min_width=340):
                editor = gr.ImageMask(value=examples[0][1] if examples else None, type="numpy",
                                      sources=("upload", "clipboard"), layers=False, transforms=(),
                                      brush=gr.Brush(default_size=16, colors=[MASK_COLOUR], color_mode="fixed"),
                                      height=460, label="Image: paint the region to replace", elem_id="inpaint-editor")
                with gr.Row():
                    target = gr.Dropdown([NONE] + names, value=NONE, allow_custom_value=True, label="Target class")
                    count = gr.Slider(1, 8, value=4, step=1, label="Images")
                    repaint = gr.Checkbox(True, label="RePaint resampling")
                sampling = sampling_controls(sampler="ddim", steps=30, guidance=3.0)
                with gr.Row():
                    run = gr.Button("Inpaint", variant="primary", elem_id="inpaint-run")
                    stop = gr.Button("Stop", variant="stop", elem_id="inpaint-stop")
            with gr.Column(scale=2):
                status = gr.Textbox(label="Status", interactive=False, elem_id="inpaint-status")
                seen = gr.Image(label="image and mask as the model sees them", type="numpy", format="png",
                                height=230, interactive=False)
                result = gr.Image(label="Results", type="pil", format="png", height=260, interactive=False,
                                  elem_id="inpaint-result")
        image_examples(ui, editor, examples, "Test-set examples (lower half masked)")
    _follow_examples(ui, editor, examples)
    event = run.click(ui.lab.inpaint, [ui.model, editor, target, repaint, count, *sampling.inputs, ui.session],
                      [seen, result, status, ui.last_run], api_name="inpaint", show_progress_on=status,
                      concurrency_id="model")
    stops(stop, event, status)
    _follow_target(ui, target)
    return event


# Pairs that make good illusions with the bundled models; other models start from their first two classes.
ANAGRAMS = {"mnist": [("2", "5", "flip_v"), ("3", "8", "flip_h"), ("6", "9", "rot180")],
            "letters": [("N", "Z", "rot90"), ("M", "W", "flip_v")],
            "fashion": [("Trouser", "Dress", "flip_v"), ("Sandal", "Sneaker", "flip_h")]}
HYBRIDS = {"mnist": [("0", "1", 1.0), ("8", "3", 1.5)], "letters": [("O", "I", 1.0)]}


def _view_choices(model: ddpm.DiffusionModel | None) -> list[tuple[str, str]]:
    size = model.image_size if model is not None else 28
    views = [n for n in ddpm.VIEWS if n not in ("identity", "patches")] + [f"patches:{max(2, size // 4)}"]
    return [(f"{_view_label(v)} ({v})", v) for v in views]


def _illusions(model: ddpm.DiffusionModel | None, table: dict, tail) -> list[tuple]:
    """Good (class, class, extra) triples for a model: from ``table`` when its classes fit, else its first two."""
    names = class_names(model) if model is not None else []
    rows = [r for r in table.get(model.dataset if model else None, []) if r[0] in names and r[1] in names]
    return rows or [((names + [None, None])[0], (names + [None, None])[1], tail)]


def _tab_illusions(ui: UI):
    model = ui.lab.models.get(ui.lab.default)
    names = class_names(model) if model is not None else []
    a, b, view0 = _illusions(model, ANAGRAMS, "rot180")[0]
    low0, high0, sigma0 = _illusions(model, HYBRIDS, 1.0)[0]
    with gr.Tab("Illusions", id="illusions"), gr.Row():
        with gr.Column():
            gr.Markdown("### Visual anagram\nOne image that reads as class A as it is, and as class B "
                        "when transformed: at every step the model's noise estimates for both views are "
                        "averaged.", elem_classes="help")
            with gr.Row():
                class_a = gr.Dropdown(names, value=a, allow_custom_value=True, label="Class A (as is)")
                class_b = gr.Dropdown(names, value=b, allow_custom_value=True, label="Class B (transformed)")
            view = gr.Dropdown(_view_choices(model), value=view0, allow_custom_value=True, label="Transform",
                               elem_id="anagram-view")
            count = gr.Slider(1, 8, value=4, step=1, label="Images")
            sampling = sampling_controls(steps=30, guidance=3.0)
            with gr.Row():
                run = gr.Button("Make anagram", variant="primary", elem_id="anagram-run")
                stop = gr.Button("Stop", variant="stop", elem_id="anagram-stop")
            status = gr.Textbox(label="Status", interactive=False, elem_id="anagram-status")
            result = gr.Image(label="Each image as is, and transformed", type="pil", format="png",
                              height=300, interactive=False, elem_id="anagram-result", buttons=["download"])
            rows = [[name, *r] for name, m in ui.lab.models.items() for r in _illusions(m, ANAGRAMS, "rot180")][:8]
            # labels, not a table: a table shows a class only if the *current* model has it (blank cells)
            gr.Examples(rows, [ui.model, class_a, class_b, view], label="Examples",
                        example_labels=[f"{m}: {a} / {b} {_view_label(v)}" for m, a, b, v in rows])
        with gr.Column():
            gr.Markdown("### Hybrid image\nLow frequencies from one class, high frequencies from another: "
                        "up close you see the high-frequency class, from afar (small) the low one.",
                        elem_classes="help")
            with gr.Row():
                low = gr.Dropdown(names, value=low0, allow_custom_value=True, label="From afar (low freq.)")
                high = gr.Dropdown(names, value=high0, allow_custom_value=True, label="Up close (high freq.)")
            sigma = gr.Slider(0.25, 4, value=sigma0, step=0.25, label="Blur sigma (px)",
                              info="where low ends and high begins")
            h_count = gr.Slider(1, 8, value=4, step=1, label="Images")
            h_sampling = sampling_controls(steps=30, guidance=3.0)
            with gr.Row():
                h_run = gr.Button("Make hybrid", variant="primary", elem_id="hybrid-run")
                h_stop = gr.Button("Stop", variant="stop", elem_id="hybrid-stop")
            h_status = gr.Textbox(label="Status", interactive=False, elem_id="hybrid-status")
            large = gr.Image(label="Up close", type="pil", format="png", height=240, interactive=False,
                             buttons=["download"])
            small = gr.Image(label="From afar", type="pil", format="png", height=80, interactive=False,
                             elem_id="hybrid-small", buttons=[])
            rows = [[name, *r] for name, m in ui.lab.models.items() for r in _illusions(m, HYBRIDS, 1.0)][:8]
            gr.Examples(rows, [ui.model, low, high, sigma], label="Examples",
                        example_labels=[f"{m}: {lo} from afar, {hi} up close" for m, lo, hi, _ in rows])
    anagram = run.click(ui.lab.anagram, [ui.model, class_a, class_b, view, count, *sampling.inputs, ui.session],
                        [result, status, ui.last_run], api_name="anagram", show_progress_on=status,
                        concurrency_id="model")
    hybrid = h_run.click(ui.lab.hybrid, [ui.model, low, high, sigma, h_count, *h_sampling.inputs, ui.session],
                         [large, small, h_status, ui.last_run], api_name="hybrid", show_progress_on=h_status,
                         concurrency_id="model")
    stops(stop, anagram, status)
    stops(h_stop, hybrid, h_status)
    _follow_illusion(ui, class_a, class_b, view, ANAGRAMS, "rot180", views=True)
    _follow_illusion(ui, low, high, sigma, HYBRIDS, 1.0)
    return anagram, hybrid


def illusion_after_switch(model: ddpm.DiffusionModel, table: dict, tail, a, b, third, views: bool = False) -> tuple:
    """An illusion's (class A, class B, transform or blur) once the Model box shows ``model``: kept while
    both classes (and, given ``views``, the transform) fit it (so an example that sets model and classes
    together keeps all three), else the model's first preset, all three together: a transform chosen for one pair of classes
    never stays behind with another pair."""
    names = class_names(model)
    fits = a in names and b in names and (not views or third in {v for _, v in _view_choices(model)})
    return (a, b, third) if fits else _illusions(model, table, tail)[0]


def _follow_illusion(ui: UI, box_a, box_b, box_third, table: dict, tail, views: bool = False) -> None:
    """Keep an illusion's two class boxes and its transform (``views``: a dropdown of views) or blur (a
    slider) in step with the Model box, as one (see illusion_after_switch)."""
    def update(name, session, a, b, third):
        try:
            model = ui.lab.model(name, session)
        except ValueError:
            return gr.skip(), gr.skip(), gr.skip()
        a, b, third = illusion_after_switch(model, table, tail, a, b, third, views)
        names = class_names(model)
        third = gr.Dropdown(choices=_view_choices(model), value=third) if views else third
        return gr.Dropdown(choices=names, value=a), gr.Dropdown(choices=names, value=b), third
    ui.model_ready.success(update, [ui.model, ui.session, box_a, box_b, box_third], [box_a, box_b, box_third],
                           api_visibility="private", queue=False)


def build_demo(models: dict[str, ddpm.DiffusionModel] | None = None) -> gr.Blocks:
    """The whole app. ``models=None`` loads every bundled checkpoint (once, here)."""
    problems = []
    if models is None:
        models, problems = load_bundled()
    lab = Lab(models, problems)
    with gr.Blocks(title="Diffusion Lab", delete_cache=(FILE_TTL, FILE_TTL)) as demo:
        ui = _header(lab)
        with gr.Tabs():
            runs = [_tab_generate(ui)]
            show_steps = _tab_steps(ui)
            _tab_forward(ui)
            runs += [_tab_sdedit(ui), _tab_inpaint(ui), *_tab_illusions(ui)]
        for event in runs:
            show_steps(event)
    return demo


def launch(demo: gr.Blocks, **kwargs):
    """Queue sized for a 2-vCPU Space (one job at a time) and launch; kwargs go to ``Blocks.launch``."""
    return demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=1).launch(css=CSS, **kwargs)


if __name__ == "__main__":
    launch(build_demo())
