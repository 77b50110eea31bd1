"""One thread for the app's torch work.

On a CPU, PyTorch's parallel kernels run on OpenMP, and every thread that enters a parallel region keeps its own
team of worker threads for as long as it lives. Gradio runs handlers on a pool of worker threads that stay alive,
so the app soon held several teams on two cores, and libgomp, seeing more of its threads than CPUs, stops spinning
between parallel regions: every region then pays a futex wake-up. Measured on the 2-core CPU, mnist's 20-image grid
compiled in bfloat16 (docs/MEASUREMENTS.md, "The app over the library"): 0.69 s alone, 1.16 s while another live
thread had run torch once. So the app loads its models, samples, draws and compiles on this one thread: handlers
(``streaming.handler``) step their generators here, and anything else that touches a model calls ``call``.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor

_pool: ThreadPoolExecutor | None = None
_pid: int | None = None
_lock = threading.Lock()
_ident: int | None = None  # the compute thread's id: a call from it runs inline (no waiting on itself)


def _mark() -> None:
    global _ident
    _ident = threading.get_ident()


def _executor() -> ThreadPoolExecutor:
    global _pool, _pid
    with _lock:
        if _pool is None or _pid != os.getpid():  # a forked worker (ZeroGPU) gets its own thread
            _pool = ThreadPoolExecutor(1, thread_name_prefix="diffusion-lab-torch", initializer=_mark)
            _pid = os.getpid()
        return _pool


def on_compute_thread() -> bool:
    return threading.get_ident() == _ident


# -- who else wants to know when there is torch work (the background build pauses meanwhile: lab.Lab) --------
_busy_lock = threading.Lock()
_busy = 0
_watchers: list[Callable[[bool], None]] = []


def watch(fn: Callable[[bool], None]) -> None:
    """Call ``fn(True)`` when the compute thread gets work (a call, or a generator's whole run, Stop included)
    and ``fn(False)`` when it has none left; ``fn`` runs under a lock: it must be quick and not raise."""
    with _busy_lock:
        _watchers.append(fn)


def busy() -> bool:
    return _busy > 0


@contextlib.contextmanager
def _working():
    global _busy
    with _busy_lock:
        _busy += 1
        if _busy == 1:
            for fn in _watchers:
                fn(True)
    try:
        yield
    finally:
        with _busy_lock:
            _busy -= 1
            if _busy == 0:
                for fn in _watchers:
                    fn(False)


def call(fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)`` on the compute thread, in the caller's context (Gradio's request and progress
    live in context variables); its result or its exception comes back here."""
    if on_compute_thread():
        return fn(*args, **kwargs)
    with _working():
        return _executor().submit(contextvars.copy_context().run, fn, *args, **kwargs).result()


def iterate(generator: Generator) -> Iterator:
    """A generator stepped on the compute thread: each item is made there and yielded here; closing this one
    (a Stop, a client gone) closes it there. The compute thread counts as busy from the first step to the
    close, the waits between steps included (a run is in progress)."""
    if on_compute_thread():
        yield from generator
        return
    end = object()
    with _working():
        try:
            while (item := call(next, generator, end)) is not end:
                yield item
        finally:
            call(generator.close)
