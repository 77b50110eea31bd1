"""The app's one torch thread (diffusion_lab.compute): every handler step runs there, whichever Gradio worker
thread asks; errors and Stop come through; a call made from it runs inline; a run's chart is drawn when shown."""
from __future__ import annotations

import threading

import gradio as gr
import numpy as np
import pytest

from diffusion_lab import compute, runs, streaming


def _in_thread(fn):
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("value", fn()))
    thread.start()
    thread.join(30)
    return out["value"]


def test_a_handlers_steps_all_run_on_the_compute_thread_whoever_iterates():
    seen, closed = [], []

    def fn(lab, n):
        try:
            for i in range(int(n)):
                seen.append(threading.get_ident())
                yield {"status": f"step {i}"}
        finally:
            closed.append(threading.get_ident())

    event = streaming.handler(fn, None, None)
    first = _in_thread(lambda: list(event(3)))  # two Gradio worker threads, one after the other
    second = _in_thread(lambda: list(event(2)))
    assert [r["status"] for r in first] == ["step 0", "step 1", "step 2"] and len(second) == 2
    assert len(set(seen)) == 1 and seen[0] not in (threading.get_ident(),), "one thread, not the callers'"
    assert set(closed) == set(seen), "the generator ends on the compute thread too"
    assert compute.call(threading.get_ident) == seen[0]


def test_a_stopped_handler_is_closed_on_the_compute_thread():
    closed = threading.Event()

    def fn(lab):
        try:
            while True:
                yield {"status": "running"}
        finally:
            closed.set()

    stream = streaming.handler(fn, None, None)()
    assert next(stream) == {"status": "running"}
    stream.close()  # what Gradio does on Stop, or when the client goes away
    assert closed.wait(5)


def test_errors_come_back_as_the_users_message_and_calls_from_the_thread_run_inline():
    def fn(lab, value):
        if value == "bad":
            raise ValueError("steps must be a whole number from 1 to 1000, got 'bad'")
        return compute.call(lambda: compute.on_compute_thread())  # nested: inline, no waiting on itself

    event = streaming.handler(fn, None, None)
    assert event("fine") is True
    with pytest.raises(gr.Error, match="steps must be a whole number"):
        event("bad")


def test_a_runs_chart_is_drawn_once_when_first_shown_on_the_compute_thread():
    calls = []

    def draw():
        calls.append(threading.get_ident())
        return [runs.Line(np.zeros((1, 2)), [["a", "a"]])]

    run = runs.Run("r", chart=draw)
    assert calls == [], "nothing drawn while the run's result goes out"
    first = run.lines()
    assert run.lines() is first and len(calls) == 1
    assert calls[0] == compute.call(threading.get_ident)
    assert runs.Run("r").lines() is None
