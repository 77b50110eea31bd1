"""``python -m diffusion_lab.bench_app``: what the app costs over the library, timed through a real client.

One run starts the app in a process of its own (on a free port, the bundled model only), as a visitor's server
runs, then times, interleaved, from this plain process: ``/generate`` with the tab's defaults through
``gradio_client``, the same call through a minimal HTTP client (one kept-open connection and session, the queue's
join and event stream, the result's picture fetched: what the server itself costs), the page's streamed run of it
(``/generate_stream``, through gradio_client, and through that client as the page does: previews drawn and
fetched), and the same ``ddpm.generate`` call here (same labels, sampler, steps, guidance, seed and precision),
the app's process stopped meanwhile so that its idle polling does not slow the library. It prints the medians
and their ratios (the target: at most 1.2x). ``--first`` instead times the first ``/generate`` after start, with the
app's background build of compiled forwards on or off (``DIFFUSION_LAB_COMPILE``; with an empty
$DDPM_COMPILE_CACHE the build subprocess runs during that click), against a second one. ``--wait-compiled S``
waits (up to S seconds) for the app to load its compiled forward and then times both sides compiled.

    python -m diffusion_lab.bench_app --model mnist --repeats 5
    DDPM_COMPILE_CACHE=$(mktemp -d) python -m diffusion_lab.bench_app --model mnist --first --compile 1
    python -m diffusion_lab.bench_app --model mnist --compile 1 --wait-compiled 300
    python -m diffusion_lab.bench_app --model mnist --no-downloads   # without the client's file downloads
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid

READY, COMPILED = "bench_app: serving ", "bench_app: compiled"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(models) -> tuple[object, str]:
    """The app on a free port, in this process: (demo, url)."""
    from .demo import build_demo
    from .page import launch

    demo = build_demo(models)
    _, url, _ = launch(demo, server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True, quiet=True)
    return demo, url


def serve(name: str) -> int:
    """The child: the app on ``name`` alone, its URL on stdout, then a line once its compiled forward is loaded;
    it ends when its parent closes stdin."""
    import ddpm

    from . import compute

    demo, url = start({name: compute.call(ddpm.load, name)})
    print(READY + url, flush=True)

    def watch():
        while name not in demo.lab.compiled:
            time.sleep(0.2)
        print(COMPILED, flush=True)
    threading.Thread(target=watch, daemon=True).start()
    sys.stdin.read()
    demo.close()
    return 0


class Server:
    """``serve`` in a subprocess: its URL, and whether it has said its compiled forward is loaded."""

    def __init__(self, name: str):
        self.process = subprocess.Popen([sys.executable, "-m", "diffusion_lab.bench_app", "--serve", name],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(line) for line in self.process.stdout], daemon=True).start()
        self.url, self.compiled = None, False
        while self.url is None:
            self._read(timeout=300)

    def _read(self, timeout: float) -> None:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            return
        if line.startswith(READY):
            self.url = line[len(READY):].strip()
        elif line.startswith(COMPILED):
            self.compiled = True
        elif self.process.poll() is not None:
            raise RuntimeError(f"the app ended (exit {self.process.returncode}) before it served")

    def wait_compiled(self, seconds: float) -> bool:
        end = time.perf_counter() + seconds
        while not self.compiled and time.perf_counter() < end:
            self._read(timeout=max(0.0, end - time.perf_counter()))
        return self.compiled

    @contextlib.contextmanager
    def paused(self):
        """The app's process stopped (SIGSTOP) meanwhile: an idle Gradio server still polls its queue every
        millisecond, which slowed a library call in another process by 10 % on a 2-core machine."""
        os.kill(self.process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.process.pid, signal.SIGCONT)

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


class RawClient:
    """A minimal client over one kept-open connection and one session (as one page is): join the queue, read the
    event stream to the result, fetching each picture once, when a message first names it (the page shows every
    streamed preview). gradio_client adds its own cost to every call (a poll loop, a new HTTPS-ready client for
    each file): the difference of the rows."""

    def __init__(self, url: str, api_name: str = "generate"):
        import httpx

        self.base = url.rstrip("/") + "/gradio_api"
        self.http = httpx.Client(timeout=600)
        config = self.http.get(url.rstrip("/") + "/config").json()
        self.fn_index = next(d["id"] for d in config["dependencies"] if d.get("api_name") == api_name)
        self.session = uuid.uuid4().hex[:12]  # a new one per call would build the session's state every time

    def __call__(self, *data):
        self.http.post(self.base + "/queue/join", json={"data": [*data, None], "fn_index": self.fn_index,
                                                         "session_hash": self.session}).raise_for_status()
        seen = set()
        with self.http.stream("GET", self.base + "/queue/data", params={"session_hash": self.session}) as events:
            for line in events.iter_lines():
                message = json.loads(line[5:]) if line.startswith("data:") else {}
                for url in set(_urls(message.get("output"))) - seen:
                    self.http.get(url).raise_for_status()  # the picture, as the page shows it
                    seen.add(url)
                if message.get("msg") == "process_completed":
                    if not message.get("success", True):
                        raise RuntimeError(f"the app failed: {message.get('output')}")
                    return message["output"]["data"]
        raise RuntimeError("the event stream ended without a result")


def _urls(value):
    """The file URLs anywhere in a message's output (a streamed message's diffs hold them too)."""
    if isinstance(value, dict):
        if isinstance(value.get("url"), str) and "path" in value:
            yield value["url"]
        for v in value.values():
            yield from _urls(v)
    elif isinstance(value, list):
        for v in value:
            yield from _urls(v)


def tab_defaults(model) -> dict:
    """What the Generate tab sends when its button is pressed untouched (tabs/generate.py)."""
    return {"classes": model.classes[:10], "per_class": 2, "sampler": model.default_sampler, "steps": 20,
            "guidance": model.default_guidance, "seed": 0}


def library_call(model, d: dict, compiled: bool = False):
    """The same grid as the tab's defaults, as a library user samples it (labels in the tab's order), on the
    app's torch thread when this process serves the app too: called from any other thread of such a process it
    would share the two cores with that thread's OpenMP team (diffusion_lab.compute)."""
    from . import compute

    return compute.call(_library_call, model, d, compiled)


def _library_call(model, d: dict, compiled: bool):
    import ddpm

    labels = [c for _ in range(d["per_class"]) for c in d["classes"]] if model.conditional else None
    settings = ddpm.Settings(sampler=d["sampler"], steps=d["steps"], guidance=d["guidance"], seed=d["seed"],
                             compile=compiled)
    return ddpm.generate(model, labels, n=None if labels else d["per_class"], settings=settings).run()


def app_call(client, name: str, d: dict, api_name: str = "/generate"):
    return client.predict(name, d["classes"], d["per_class"], d["sampler"], d["steps"], d["guidance"], d["seed"],
                          api_name=api_name)


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this whole process: the server's, the client's and torch's threads)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def second_thread(model, d: dict, repeats: int) -> int:
    """The library call on the torch thread: alone, then while a second live thread has run one call (its OpenMP
    team stays while it lives), then after that thread has ended."""
    import threading

    def median() -> float:
        return statistics.median(timed(lambda: library_call(model, d))[0] for _ in range(repeats))

    library_call(model, d)
    alone = median()
    done, ran = threading.Event(), threading.Event()

    def other():
        _library_call(model, d, False)  # on this thread, not the torch thread
        ran.set()
        done.wait()
    thread = threading.Thread(target=other, daemon=True)
    thread.start()
    ran.wait()
    beside = median()
    done.set()
    thread.join()
    after = median()
    print(f"library call alone {alone:.3f} s; while another live thread has run torch {beside:.3f} s "
          f"({beside / alone:.2f}x); after it ended {after:.3f} s")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m diffusion_lab.bench_app", description=__doc__.split("\n")[0])
    p.add_argument("--model", default="mnist", help="bundled model (default mnist)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls of each (median reported)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--first", action="store_true", help="time the first /generate after start instead")
    p.add_argument("--compile", default=None, help="sets DIFFUSION_LAB_COMPILE for this run (1, 0 or auto)")
    p.add_argument("--second-thread", action="store_true",
                   help="no app: time the library call alone, then while another live thread has run torch once "
                        "(why the app runs its torch work on one thread, diffusion_lab.compute)")
    p.add_argument("--wait-compiled", type=float, default=0, metavar="S",
                   help="wait up to S seconds for the app's compiled forward, then time both sides compiled")
    p.add_argument("--no-downloads", action="store_true",
                   help="gradio_client leaves the result's files on the server (download_files=False): what its "
                        "downloads cost shows against a run without")
    p.add_argument("--serve", metavar="MODEL", help=argparse.SUPPRESS)  # the app's process (``serve``)
    args = p.parse_args(argv)
    if args.compile is not None:
        os.environ["DIFFUSION_LAB_COMPILE"] = args.compile
    if args.serve:
        return serve(args.serve)
    import torch
    from gradio_client import Client

    import ddpm

    if args.threads:
        torch.set_num_threads(args.threads)
    from . import compute

    model = compute.call(ddpm.load, args.model)
    d = tab_defaults(model)
    if args.second_thread:
        return second_thread(model, d, args.repeats)
    began = time.perf_counter()
    server = Server(args.model)
    try:
        client = Client(server.url, verbose=False, download_files=not args.no_downloads)
        print(f"{args.model}: /generate defaults {len(d['classes']) * d['per_class']} images, {d['sampler']} "
              f"{d['steps']} steps, guidance {d['guidance']}, {torch.get_num_threads()} threads; app up in its own "
              f"process in {time.perf_counter() - began:.1f} s", flush=True)
        if args.first:
            first = timed(lambda: app_call(client, args.model, d))[0]
            second = timed(lambda: app_call(client, args.model, d))[0]
            lib = timed(lambda: library_call(model, d))[0]
            print(f"first /generate after start {first:.2f} s, second {second:.2f} s, library {lib:.2f} s "
                  f"(DIFFUSION_LAB_COMPILE={os.environ.get('DIFFUSION_LAB_COMPILE', '')!r})")
            return 0
        compiled = False
        if args.wait_compiled:
            compiled = server.wait_compiled(args.wait_compiled)
            print(f"app's compiled forward {'loaded' if compiled else 'NOT loaded'} after "
                  f"{time.perf_counter() - began:.0f} s from start: both sides run {'compiled' if compiled else 'eager'}")
        inputs = (args.model, d["classes"], d["per_class"], d["sampler"], d["steps"], d["guidance"], d["seed"])
        raw, page = RawClient(server.url), RawClient(server.url, "generate_stream")
        sides = {"app /generate, gradio_client": lambda: app_call(client, args.model, d),
                 "app /generate, minimal HTTP client": lambda: raw(*inputs),
                 "app /generate_stream, gradio_client": lambda: app_call(client, args.model, d, "/generate_stream"),
                 "app /generate_stream (the page's run)": lambda: page(*inputs),
                 "ddpm.generate, this process": lambda: library_call(model, d, compiled)}
        paused = {"ddpm.generate, this process"}  # the library on a quiet machine: the app's process stopped
        for fn in sides.values():  # warm-up
            fn()
        times = {name: [] for name in sides}
        for _ in range(args.repeats):
            for name, fn in sides.items():
                with server.paused() if name in paused else contextlib.nullcontext():
                    times[name].append(timed(fn))
        library = [statistics.median(t[i] for t in times["ddpm.generate, this process"]) for i in (0, 1)]
        for name, ts in times.items():
            wall, cpu = (statistics.median(t[i] for t in ts) for i in (0, 1))
            print(f"{name:38s} median {wall:.3f} s ({wall / library[0]:.2f}x the library; this process's CPU "
                  f"{cpu:.3f} s)   ({', '.join(f'{t[0]:.2f}' for t in ts)})")
        print("target: gradio_client at most 1.2x the library")
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
