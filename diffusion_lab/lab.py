"""The models the app serves, which names the Model box may load, and what every tab builder is handed."""
from __future__ import annotations

import atexit
import ctypes
import functools
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

import ddpm
from ddpm.checkpoint import HUB_ID
from ddpm.data import DATASETS
from ddpm.device import dtype_name, pick_device

from . import compute
from .inputs import settings, user_errors, whole

PREFERRED = ("mnist", "fashion", "letters", "emoji")  # the default model is the first of these found
MAX_IMAGES = 16          # per SDEdit / inpaint / illusion run
FILE_TTL = 3600          # seconds the downloadable PNG/GIF files are kept
LOCAL_MODELS_ENV = "DDPM_ALLOW_LOCAL_MODELS"
COMPILE_ENV = "DIFFUSION_LAB_COMPILE"  # 1 / 0 / auto (the default: on, except on ZeroGPU)


def local_models_allowed() -> bool:
    """Whether the Model box may load folders of this machine: $DDPM_ALLOW_LOCAL_MODELS (1/0, true/false,
    yes/no) when set, else off on a Hugging Face Space ($SPACE_ID is set there) and on elsewhere."""
    value = os.environ.get(LOCAL_MODELS_ENV, "").strip().lower()
    if value:
        return value in ("1", "true", "yes", "on")
    return not os.environ.get("SPACE_ID")


def compile_wanted(device) -> bool:
    """Whether the app builds and loads compiled forwards of its bundled models in the background: never on
    ZeroGPU ($SPACES_ZERO_GPU: its GPU is lent per call, in another process), else $DIFFUSION_LAB_COMPILE
    (1/0) when set, else yes. The build runs in a subprocess at the lowest priority and the package loads in
    milliseconds, so a visitor's run is not slowed by it (docs/MEASUREMENTS.md, "The app over the library");
    compiled bfloat16 measured 1.6x eager on a 2-core CPU. Without a C++ compiler the build fails and the app
    stays eager."""
    if os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in ("1", "true"):
        return False
    value = os.environ.get(COMPILE_ENV, "auto").strip().lower()
    return value not in ("0", "false", "no", "off")


def _warm(forward, model, device) -> None:
    import torch

    with torch.inference_mode():
        forward(torch.zeros(4, model.channels, model.image_size, model.image_size, device=device),
                torch.zeros(4, dtype=torch.long, device=device), None)


def _build_child() -> None:
    """In the build subprocess, before it runs (POSIX): nice 19; a process group of its own (it and its C++
    compiler are what ``Lab._pause_build`` stops) but not a session of its own: Linux's autogroup scheduler gives
    every session an equal share whatever its nice, and a build started with ``start_new_session`` made a
    10 s sampling process beside it take 36 s; and on Linux a SIGKILL when the app's thread that started it
    dies, so a build never outlives an app killed by a signal (atexit then never runs). Not SCHED_IDLE either:
    beside a build at SCHED_IDLE one 1.3 s grid in another process took 20.8 s."""
    os.nice(19)
    os.setpgid(0, 0)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_DEATHSIG
        except (OSError, AttributeError):
            pass


def _end_build(process: subprocess.Popen) -> None:
    """Kill a build and its compiler, stopped (paused) or not."""
    try:
        os.killpg(process.pid, signal.SIGKILL) if hasattr(os, "killpg") else process.kill()
    except (ProcessLookupError, PermissionError):
        pass


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


class Lab:
    """The models loaded at start (read-only after __init__) and the loading of others by name. Per-user
    things, the model a user loads from a folder or the Hub and the last run, travel in gr.State."""

    def __init__(self, models: dict[str, ddpm.DiffusionModel], problems: list[str] | None = None):
        self.device = pick_device()
        self.models = {name: m.to(self.device) for name, m in models.items()}
        self.problems = list(problems or [])
        self.compiled: frozenset[str] = frozenset()  # bundled models whose compiled forward is loaded
        self.compiled_dtype = dtype_name("auto", self.device)  # the precision requests run in, compiled for
        self.compiling: threading.Thread | None = None
        self._building: subprocess.Popen | None = None  # the build subprocess now running, if any

    def start_compiling(self) -> threading.Thread | None:
        """Give the bundled models compiled forwards in the background (where ``compile_wanted``), so the page
        is up at once and its first clicks run eager. A model whose package (``ddpm.aot``) is not in the
        compile cache gets one built by ``python -m ddpm compile`` in a subprocess at nice 19, stopped while a
        request computes (``_pause_build``); torch.compile in this process would hold the GIL for its tracing
        (a first click took 14 s instead of 3). The
        package is then loaded (milliseconds) and the model named in ``compiled``; a request reads it once,
        in ``begin``: one in flight keeps the forward it started with."""
        if self.compiling is not None or not self.models or not compile_wanted(self.device):
            return None
        self.compiling = threading.Thread(target=self._compile_all, name="diffusion-lab-compile", daemon=True)
        compute.watch(self._pause_build)
        self.compiling.start()
        return self.compiling

    def _pause_build(self, busy: bool) -> None:
        """Stop the build (its whole process group: the C++ compiler too) while the torch thread has work, and
        let it go on when it has none: even at nice 19 it took a first click from 2.3 to 2.4-2.5 s on two cores,
        and a stopped build takes nothing."""
        process = self._building
        if process is None or process.poll() is not None or not hasattr(signal, "SIGSTOP"):
            return
        try:
            os.killpg(process.pid, signal.SIGSTOP if busy else signal.SIGCONT)
        except (ProcessLookupError, PermissionError):
            pass

    def build_command(self, name: str) -> list[str]:
        return [sys.executable, "-m", "ddpm", "compile", "--model", name, "--dtype", self.compiled_dtype,
                "--device", str(self.device)]

    def _build(self, name: str) -> subprocess.CompletedProcess:
        """``python -m ddpm compile`` for one bundled model, at the lowest priority and stopped while a request
        computes (``_pause_build``), ended with the app (atexit, and ``_build_child``'s death signal when the
        app is killed)."""
        import torch

        env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # its kernels use as many threads
        posix = hasattr(os, "nice")
        try:  # its own process group (``_build_child``): it and its compiler are what a pause stops
            process = subprocess.Popen(self.build_command(name), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True, env=env, preexec_fn=_build_child if posix else None)
        except OSError as err:
            return subprocess.CompletedProcess([], 1, "", f"{type(err).__name__}: {err}")
        self._building = process
        self._pause_build(compute.busy())  # a click already running: it starts stopped
        end = functools.partial(_end_build, process)
        atexit.register(end)  # a build outliving the app would hold the CPU for nothing
        try:
            out, err = process.communicate(timeout=3600)
        except subprocess.TimeoutExpired:
            end()
            out, err = process.communicate()
        finally:
            self._building = None
        atexit.unregister(end)
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)

    def _compile_all(self) -> None:
        from ddpm import aot

        start = time.perf_counter()
        for name, model in self.models.items():
            if not aot.built(model, self.compiled_dtype):
                built = self._build(name)
                if built.returncode != 0:
                    why = (built.stderr.strip().splitlines() or ["no output"])[-1]
                    print(f"diffusion lab: {name} stays eager (building its compiled forward failed: {why})")
                    continue
            try:  # loading and the first call (the package's set-up) on the torch thread: see compute
                forward = compute.call(model.compiled, self.compiled_dtype, build=False)  # never compiles here
                if forward is not None:
                    compute.call(_warm, forward, model, self.device)
            except Exception as err:  # noqa: BLE001 - a package this torch cannot run: the model stays eager
                print(f"diffusion lab: {name} stays eager (its compiled forward did not load: {err})")
                continue
            if forward is None:
                print(f"diffusion lab: {name} stays eager (its compiled forward was built, but not where "
                      f"{aot.cache_dir()} has it)")
                continue
            self.compiled = self.compiled | {name}  # one assignment: a request sees the old set or the new
            print(f"diffusion lab: {name} runs compiled ({self.compiled_dtype}) after "
                  f"{time.perf_counter() - start:.0f} s")

    @property
    def default(self) -> str:
        return next(iter(self.models), "")

    @property
    def default_model(self) -> ddpm.DiffusionModel | None:
        return self.models.get(self.default)

    @property
    def default_classes(self) -> list[str]:
        """Class names of the default model (what the class dropdowns start with)."""
        return self.default_model.classes if self.models else []

    def model(self, name, session: dict | None) -> ddpm.DiffusionModel:
        """A loaded model by name, else a folder (where allowed) or a Hub id loaded once into the user's session."""
        name = str(name or "").strip()
        if not name:
            raise ValueError("no model: pick one, or type a checkpoint folder or a Hub id in the Model box")
        if name in self.models:
            return self.models[name]
        if session is not None and name in session:
            return session[name]
        model = self._load(name)
        if session is not None:
            session.clear()  # one custom model per user is plenty on a shared Space
            session[name] = model
        return model

    def _load(self, name: str) -> ddpm.DiffusionModel:
        local = local_models_allowed()
        if not local:
            # decided on the text alone, before any file is looked at: the answer never tells a visitor
            # whether a path exists on this server
            if not HUB_ID.match(name) or ".." in name or name.startswith((".", "/", "~")):
                raise ValueError(f"no model {name!r}: this server loads bundled models "
                                 f"({', '.join(self.models) or 'none'}) and Hugging Face Hub ids (owner/name), "
                                 f"not folders ({LOCAL_MODELS_ENV}=1 allows them)")
        try:
            return compute.call(ddpm.load, name, device=self.device, local=local)  # the torch thread (compute)
        except FileNotFoundError as err:
            if local:
                raise
            raise ValueError(f"no model {name!r} on the Hugging Face Hub (or the Hub is out of reach): "
                             f"{str(err).rsplit(' id ', 1)[-1]}") from None
        except (OSError, RuntimeError, KeyError) as err:  # unreadable files, bad configs
            raise ValueError(f"could not load model {name!r}: {err}") from None

    def runs_compiled(self, name: str, model, s: ddpm.Settings | None = None) -> bool:
        """Whether a request for ``model`` (by ``name``) in ``s``'s precision runs the compiled forward now: a
        bundled model whose package is loaded (a user's own model never is: it would compile in the request)."""
        dtype = dtype_name((s or ddpm.Settings()).dtype, self.device)
        return name in self.compiled and self.models.get(name) is model and dtype == self.compiled_dtype

    def begin(self, model, session, sampler, steps, guidance, seed_value, count=None):
        """What every sampling handler starts with: the model, checked Settings and (given ``count``) the
        number of images."""
        name = str(model or "").strip()
        model, s = self.model(name, session), settings(sampler, steps, guidance, seed_value)
        s = s.with_(compile=self.runs_compiled(name, model, s))  # the app decides, never the cache ("auto")
        return model, s, None if count is None else whole(count, 1, MAX_IMAGES, "number of images")


def describe(model: ddpm.DiffusionModel) -> str:
    """The Model box's description: shape, classes, size, schedule and the card's measured quality."""
    names = model.classes
    classes = ", ".join(names[:12]) + (f", ... ({len(names)})" if len(names) > 12 else "") or "unconditional"
    params = model.denoiser.num_parameters() / 1e6
    metrics = model.meta.get("metrics", {}).get("rows") or []
    quality = ""
    if metrics:  # the headline row: the one at the model's default guidance, else the card's first
        first = next((row for row in metrics if row.get("guidance") == model.default_guidance), metrics[0])
        floor = f", floor {first['fid_floor']:.1f}" if first.get("fid_floor") is not None else ""
        quality = f" · class accuracy {first['accuracy']:.3f}, FID {first['fid']:.1f}{floor} ({first['setting']})"
    # the credit the data's licences ask for (CC BY 4.0 for emoji's Twemoji), where the model says its dataset
    data = DATASETS.get(model.dataset or "")
    credit = f" · training images: {data.licence}" if data is not None else ""
    return (f"**{model.name}** · {model.channels}×{model.image_size}×{model.image_size} · classes: {classes} · "
            f"`{model.denoiser.family}` {params:.2f} M params · {model.schedule.kind} schedule, "
            f"T = {model.schedule.num_timesteps} · on {model.device.type}{quality}{credit}")


def out_dir() -> Path:
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


@dataclass
class UI:
    """What every tab builder is handed: the models and the components shared by all tabs."""

    lab: Lab
    model: gr.Dropdown
    session: gr.State                # the user's own loaded model (folder / Hub id)
    last_run: gr.State               # the user's last run, for the Denoising steps tab
    model_ready: object              # the Model box's change event: tabs follow the model on its success
    runs: list = field(default_factory=list)  # every tab's run events (the steps tab shows what they leave)
    links: dict = field(default_factory=dict)  # recipe -> {name: control} a link fills (diffusion_lab.reproduce)
    followed: dict = field(default_factory=dict)  # control -> its 'set by the user' State (follow.follow_default)

    def select_model(self, name, session):
        return describe(self.lab.model(name, session))


def header(lab: Lab) -> UI:
    """The title, the Model box and its description (stacked: they read on a phone too)."""
    gr.Markdown("# Diffusion Lab\nSmall class-conditioned diffusion models, trained from scratch: generate, "
                "watch every denoising step, edit sketches and photos, and make illusions. "
                "Every button is also an API call (see *Use via API* at the bottom).", elem_id="intro")
    if not lab.models:
        gr.Markdown("**No bundled model yet** (checkpoints/ is empty). Train one with "
                    "`python -m ddpm train mnist`, or type a checkpoint folder or a Hub id of a "
                    "`UNet2DModel` in the Model box.", elem_id="no-models")
    for problem in lab.problems:
        gr.Markdown(f"**A bundled checkpoint could not be loaded:** {problem}")
    with gr.Row(equal_height=True, elem_id="model-row"):
        model = gr.Dropdown(list(lab.models), value=lab.default, allow_custom_value=True, label="Model",
                            info="a bundled model, or a Hub id" + (", or a checkpoint folder"
                                                                  if local_models_allowed() else ""),
                            scale=1, min_width=220, elem_id="model")
        info = gr.Markdown(describe(lab.default_model) if lab.models else "", elem_id="model-info")
    session, last_run = gr.State({}), gr.State(None)
    # queued: a model that fails to load (a typo, a Hub id offline) shows its error as a toast, which an
    # unqueued event does not (it shows a bare "Error" badge); the class lists etc. follow only a success
    ui = UI(lab, model, session, last_run, None)
    ui.model_ready = model.change(user_errors(ui.select_model), [model, session], info, api_visibility="private",
                                  show_progress="minimal")
    return ui
