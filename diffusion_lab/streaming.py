"""Streaming a job to the page: a handler's steps, previews, status and Stop.

Handlers are generators that yield dicts keyed by output *names* ({"status": "step 3/20", "image": grid});
``handler`` maps the names to the tab's components, so an output is never a position in a tuple, a yield
leaves the outputs it does not name as they are, and a tab that gains an output (a per-view preview, a
chart) adds a name on both sides. The names stay plain values inside a ZeroGPU worker (components are not
sent there).
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import math
import threading
import time
from collections.abc import Callable, Generator

import gradio as gr
import torch
from gradio.context import LocalContext

import ddpm

from . import compute
from .inputs import user_errors

try:  # ZeroGPU Spaces: @spaces.GPU borrows a GPU per call; elsewhere it returns the function unchanged
    import spaces

    gpu = spaces.GPU
except ImportError:  # pragma: no cover - spaces is in requirements.txt
    def gpu(fn):
        return fn

MAX_FRAMES = 60          # steps kept per run for the scrubber (all up to 60, evenly thinned beyond)
PREVIEW_SECONDS = 0.5    # at most 2 streamed previews a second (each is drawn, encoded and fetched)
TICK_SECONDS = 0.1       # at most 10 progress-bar updates a second (each is a message to the client)
SO_FAR = " · predicted x0 so far"  # the end of a running Generate status
PICTURES = (gr.Image, gr.Gallery, gr.File)  # outputs that a client downloads, file by file


def handler(fn: Callable, lab, outputs: dict[str, gr.components.Component] | None = None) -> Callable:
    """``fn(lab, *inputs)`` -> the event function of ``inputs`` alone: run on the app's one torch thread
    (``compute``) and on a GPU where the Space lends one (``gpu``; ``lab`` and its models stay out of what ZeroGPU
    pickles), its ValueErrors shown as readable errors, and its yielded or returned ``{name: value}`` dicts sent
    to ``outputs[name]``.

    An API client (gradio_client marks its calls ``x-gradio-user: api``) is streamed a generator's statuses
    but only the last result's pictures: the client downloads every picture it is sent, opening a new HTTPS
    client each time (about 0.1 s of CPU on a 2-core machine, more than drawing the preview), for previews
    that ``predict`` never returns. The page gets every preview."""
    params = list(inspect.signature(fn).parameters.values())[1:]  # gr.Progress is found in the signature
    pictures = {name for name, c in (outputs or {}).items() if isinstance(c, PICTURES)}
    box = getattr((outputs or {}).get("status"), "_id", None)  # what a Stop names the run by (``stops``)

    def named(result):
        if outputs is None or not isinstance(result, dict):
            return result
        unknown = set(result) - set(outputs)
        if unknown:
            raise KeyError(f"{fn.__name__} named outputs it does not have: {sorted(unknown)}")
        return {outputs[name]: value for name, value in result.items()}

    def split(args, kwargs) -> tuple[tuple, gr.Request | None]:
        """(the inputs, the request): Gradio passes the request last, as one more positional argument."""
        if kwargs:
            raise TypeError(f"{fn.__name__} takes its inputs by position, got {sorted(kwargs)}")
        return (args[:-1], args[-1]) if len(args) == len(params) + 1 else (args, None)

    if inspect.isgeneratorfunction(fn):
        def run(*args, **kwargs):
            yield from compute.iterate(fn(lab, *args, **kwargs))
        on_gpu = gpu(run)

        def event(*args, **kwargs):
            args, request = split(args, kwargs)
            with _running(request, box), contextlib.suppress(Stopped):
                if not (pictures and from_api(request)):
                    for result in on_gpu(*args):
                        yield named(result)
                    return
                held = None  # a result is the last one only once the generator ends: each is sent one step late
                for result in on_gpu(*args):
                    if isinstance(held, dict) and (light := {k: v for k, v in held.items() if k not in pictures}):
                        yield named(light)
                    held = result
                if held is not None:
                    yield named(held)
    else:
        def run(*args, **kwargs):
            return compute.call(fn, lab, *args, **kwargs)
        on_gpu = gpu(run)

        def event(*args, **kwargs):
            return named(on_gpu(*split(args, kwargs)[0]))

    for f in (run, event):
        functools.update_wrapper(f, fn)
        del f.__wrapped__
        f.__signature__ = inspect.Signature(params)
    # Gradio passes the request to a positional parameter annotated gr.Request (after the inputs and Progress)
    event.__signature__ = inspect.Signature([*params, inspect.Parameter(
        "request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=gr.Request)])
    # the inputs' own annotations stay (gr.EventData is found by its annotation too); ``lab``'s would not resolve here
    names = {p.name for p in params}
    event.__annotations__ = {**{k: v for k, v in fn.__annotations__.items() if k in names}, "request": gr.Request}
    return user_errors(event)


_whole = contextvars.ContextVar("whole", default=False)  # set while ``plain`` runs a generator: no previews


def plain(fn: Callable, lab, outputs: dict[str, gr.components.Component]) -> Callable:
    """The event function of a generator handler ``fn`` (as ``handler`` makes it) that returns the run's result
    in one message, for an API caller that wants the result, not the run: ``stream_job`` draws no previews meanwhile
    (a gr.Progress still moves), and the outputs are every yield's names merged, the last value of each.

    A client downloads every picture of every message it is sent, and a generator's result comes twice (its
    last yield, then the end of the stream), so a plain call is the cheapest one (docs/MEASUREMENTS.md, "The app
    over the library"). It cannot be stopped midway: the streamed event is."""
    if not inspect.isgeneratorfunction(fn):
        raise TypeError(f"{fn.__name__} is not a generator: handler() already returns its result in one message")

    def whole(lab, *args):
        token = _whole.set(True)
        try:
            merged, last = {}, None
            for last in fn(lab, *args):
                if isinstance(last, dict):
                    merged.update(last)
            return merged if isinstance(last, dict) else last
        finally:
            _whole.reset(token)
    functools.update_wrapper(whole, fn)
    del whole.__wrapped__
    whole.__signature__ = inspect.signature(fn)
    return handler(whole, lab, outputs)


def events(button: gr.Button, hidden: gr.Button, fn: Callable, lab, inputs: list, outputs: dict, api_name: str,
           **kwargs):
    """A run's two events: ``button``'s (the page's run button) streams ``fn``'s steps and previews and can be
    stopped (``/{api_name}_stream``); ``hidden``'s (a button never shown) is ``/{api_name}``, the same run returned
    whole (``plain``), what ``predict`` wants. Returns the streamed event; ``kwargs`` go to both."""
    event = button.click(handler(fn, lab, outputs), inputs, list(outputs.values()), api_name=f"{api_name}_stream",
                         **kwargs)
    hidden.click(plain(fn, lab, outputs), inputs, list(outputs.values()), api_name=api_name, **kwargs)
    return event


def from_api(request: gr.Request | None) -> bool:
    """Whether a call comes from an API client (gradio_client), not the page."""
    return request is not None and (request.headers or {}).get("x-gradio-user") == "api"


def every(job: ddpm.Job) -> int:
    """The recording stride that keeps at most MAX_FRAMES of a job's steps."""
    return max(1, math.ceil(job.num_model_steps / MAX_FRAMES))


def stream_job(job: ddpm.Job, tick: Callable, preview: Callable) -> Generator[dict, None, tuple[torch.Tensor, dict]]:
    """Run a job inside a handler's generator (``x, frames = yield from stream_job(...)``): ``tick(step)`` after
    every step, and now and then (the first step, then at most every PREVIEW_SECONDS) it yields the handler's
    outputs ``preview(step, status, first)`` (a dict of names) for a "step k/N · t = T" status and, for a
    picture, the step's x0; a run returned whole (``plain``) draws none. A Stop takes effect at the end of a
    step: it is yielded with a "Stopped at" status (``halt``) and Stopped is raised. Returns the result and the
    recorded frames (``ddpm.Recorder.frames()``)."""
    recorder, last, quiet = ddpm.Recorder(every=every(job)), None, _whole.get()
    for step in job:
        recorder(step)
        tick(step)
        status = f"step {step.index + 1}/{step.total} · t = {step.t}"
        if stop_asked():
            shown = preview(step, status, last is None)
            yield {**shown, "status": halt(shown.get("status", status))}
            raise Stopped
        if not quiet and (last is None or time.perf_counter() - last >= PREVIEW_SECONDS):
            yield preview(step, status, last is None)
            last = time.perf_counter()
    return step.x_next, recorder.frames()


def ticker(progress) -> Callable:
    """A step callback that moves a gr.Progress bar: the first and last steps, and at most every TICK_SECONDS
    between (each update is a message; 20 steps in 0.6 s sent 20)."""
    last = -math.inf

    def tick(step):
        nonlocal last
        now = time.perf_counter()
        if step.index == 0 or step.index + 1 == step.total or now - last >= TICK_SECONDS:
            progress((step.index + 1, step.total), desc="denoising")
            last = now
    return tick


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


# -- Stop ---------------------------------------------------------------------------------------------------
STOP_WAIT = 10.0  # seconds a Stop waits for its run to reach the end of a step and say where it stopped


class Stopped(Exception):
    """Raised by a run once its Stop was pressed (after yielding where it stopped: ``halt``); ``handler`` ends
    the run there."""


class _Run:
    def __init__(self):
        self.asked, self.said, self.finished, self.over = False, None, False, threading.Event()


_lock = threading.Lock()
_runs: dict[tuple[str, int], _Run] = {}  # (session, the tab's status box) -> its run in progress
_events: dict[str, _Run] = {}            # the same runs by their Gradio event id


@contextlib.contextmanager
def _running(request: gr.Request | None, box: int | None):
    """Name the event in progress by its session and status box while it runs, for a Stop to find it."""
    event_id, key = LocalContext.event_id.get(None), (getattr(request, "session_hash", None), box)
    if event_id is None or None in key:
        yield
        return
    run = _Run()
    with _lock:
        _runs[key] = _events[event_id] = run
    try:
        yield
        run.finished = True  # not closed (a cancel at a yield) nor failed
    finally:
        run.over.set()
        with _lock:
            if _runs.get(key) is run:
                del _runs[key]
            _events.pop(event_id, None)


def stop_asked() -> bool:
    """Whether the Stop of the run in progress here was pressed (asked on the torch thread, in the run's context:
    a run that no Stop names, an API call's or one on a borrowed GPU, never is). A run that is asked yields its
    step with ``halt``'s status and raises Stopped."""
    run = _events.get(LocalContext.event_id.get(None))
    return run is not None and run.asked


def halt(status: str) -> str:
    """The status of the run in progress stopped at ``status`` ("Stopped at ..."), and the answer its Stop,
    waiting, gives."""
    said = stopped(status)
    said = said if isinstance(said, str) else status
    if (run := _events.get(LocalContext.event_id.get(None))) is not None:
        run.said = said
        run.over.set()
    return said


def stops(button: gr.Button, event, status) -> None:
    """Make ``button`` stop ``event`` (a generator handler's run) and say where. The run is asked to stop at the
    end of its step (``stop_asked``), yields that step with its "Stopped at" status, and the Stop's answer is that
    status, given once the run has said it: every preview the run sent before is on the page by then. The cancel
    takes a run still in the queue out of it and ends the stream. (The cancel alone lost the status now and then:
    a preview sent while the Stop was on its way came after the Stop's "Stopped at step 1" and left the box on
    "step 4/20", in about a third of the runs in Chromium, first runs after a server start most of all.)"""
    box = status._id

    def stop(text, request: gr.Request):
        return answer(ask_stop(getattr(request, "session_hash", None), box), text)
    button.click(stop, status, status, cancels=[event], api_visibility="private", queue=False)


def ask_stop(session: str | None, box: int) -> _Run | None:
    """Ask the run in progress of this session's tab (named by its status box) to stop; None: none is running."""
    with _lock:
        run = _runs.get((session, box))
        if run is not None:
            run.asked = True
    return run


def answer(run: _Run | None, status: str):
    """A Stop's status: where ``run`` stopped, once it has said so (at most STOP_WAIT seconds); the run's own if
    it finished first (its "Done" stays); else ``stopped`` of the status the page showed (no run: one still
    queued, which the cancel takes out, or over; or a run the cancel closed between two steps, or one on a
    borrowed GPU, which no Stop can ask)."""
    if run is not None and run.over.wait(STOP_WAIT):
        if run.said:
            return run.said
        if run.finished:
            return gr.skip()
    return stopped(status)
