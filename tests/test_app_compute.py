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


def test_watchers_hear_when_the_thread_gets_work_and_when_it_has_none_a_whole_run_counting_once(monkeypatch):
    heard = []
    monkeypatch.setattr(compute, "_watchers", [heard.append])
    assert compute.call(lambda: compute.busy()) is True and heard == [True, False]
    heard.clear()

    def run():
        for i in range(3):
            compute.call(lambda: None)  # a call from the thread itself: inline, no new transition
            yield i
    steps = compute.iterate(run())
    assert next(steps) == 0 and compute.busy() and heard == [True], "busy between the steps too"
    assert list(steps) == [1, 2] and not compute.busy() and heard == [True, False]
    heard.clear()
    stopped = compute.iterate(run())
    next(stopped)
    stopped.close()  # a Stop: idle again
    assert heard == [True, False] and not compute.busy()


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="job control, read from /proc")
def test_the_background_build_is_stopped_while_a_request_computes(monkeypatch, tmp_path):
    import sys
    import time
    from pathlib import Path

    from app_fixtures import DIGITS, tiny
    from diffusion_lab import lab

    def state(pid):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]

    the_lab = lab.Lab({"tiny": tiny("mnist", 28, 1, DIGITS, "mnist")})
    the_lab.build_command = lambda name: [sys.executable, "-c", "import time; time.sleep(60)"]
    monkeypatch.setattr(compute, "_watchers", [the_lab._pause_build])
    done = threading.Thread(target=the_lab._build, args=("tiny",), daemon=True)
    done.start()
    for _ in range(100):
        if the_lab._building is not None:
            break
        time.sleep(0.05)
    pid = the_lab._building.pid
    try:
        import os
        assert os.getpgid(pid) == pid, "a process group of its own: it and its compiler stop together"
        assert os.getsid(pid) == os.getsid(0), "not a session of its own: autogroup would ignore its nice 19"
        assert os.getpriority(os.PRIO_PROCESS, pid) == 19
        assert state(pid) in "RS"
        assert compute.call(lambda: state(pid)) == "T", "stopped while the torch thread works"
        time.sleep(0.1)
        assert state(pid) in "RS", "and going on once it is idle"
    finally:
        lab._end_build(the_lab._building)
        done.join(10)
    assert the_lab._building is None
