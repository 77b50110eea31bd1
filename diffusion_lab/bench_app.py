"""``python -m diffusion_lab.bench_app``: what the app costs over the library, timed through a real client.

One run starts the app in this process (on a free port, the bundled model only), then times, interleaved,
``/generate`` with the tab's defaults through ``gradio_client`` and the same ``ddpm.generate`` call in the same
process (same labels, sampler, steps, guidance, seed and precision), and prints both medians and their ratio
(the target: at most 1.2x). ``--first`` instead times the first ``/generate`` after start, with the app's
background build of compiled forwards on or off (``DIFFUSION_LAB_COMPILE``; with an empty $DDPM_COMPILE_CACHE the
build subprocess runs during that click), against a second one. ``--wait-compiled S`` waits (up to S seconds) for
the app to load its compiled forward and then times both sides compiled.

    python -m diffusion_lab.bench_app --model mnist --repeats 5
    DDPM_COMPILE_CACHE=$(mktemp -d) python -m diffusion_lab.bench_app --model mnist --first --compile 1
    python -m diffusion_lab.bench_app --model mnist --compile 1 --wait-compiled 300
    python -m diffusion_lab.bench_app --model mnist --no-downloads   # without the client's file downloads
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import time


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


def tab_defaults(model) -> dict:
    """What the Generate tab sends when its button is pressed untouched (tabs/generate.py)."""
    return {"classes": model.classes[:10], "per_class": 2, "sampler": model.default_sampler, "steps": 20,
            "guidance": model.default_guidance, "seed": 0}


def library_call(model, d: dict, compiled: bool = False):
    """The same grid as the tab's defaults, as a library user samples it (labels in the tab's order), on the
    app's torch thread: called from any other thread of this process it would share the two cores with that
    thread's OpenMP team (diffusion_lab.compute) and measure slower than in a process of its own."""
    from . import compute

    return compute.call(_library_call, model, d, compiled)


def _library_call(model, d: dict, compiled: bool):
    import ddpm

    labels = [c for _ in range(d["per_class"]) for c in d["classes"]] if model.conditional else None
    settings = ddpm.Settings(sampler=d["sampler"], steps=d["steps"], guidance=d["guidance"], seed=d["seed"],
                             compile=compiled)
    return ddpm.generate(model, labels, n=None if labels else d["per_class"], settings=settings).run()


def app_call(client, name: str, d: dict):
    return client.predict(name, d["classes"], d["per_class"], d["sampler"], d["steps"], d["guidance"], d["seed"],
                          api_name="/generate")


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
                   help="the client leaves the result's files on the server (gradio_client's download_files=False): "
                        "what the client's downloads cost shows against a run without")
    args = p.parse_args(argv)
    if args.compile is not None:
        os.environ["DIFFUSION_LAB_COMPILE"] = args.compile
    import torch
    from gradio_client import Client

    import ddpm

    if args.threads:
        torch.set_num_threads(args.threads)
    from . import compute

    model = compute.call(ddpm.load, args.model)  # on the torch thread, as the app loads its models
    d = tab_defaults(model)
    if args.second_thread:
        return second_thread(model, d, args.repeats)
    began = time.perf_counter()
    demo, url = start({args.model: model})
    client = Client(url, verbose=False, download_files=not args.no_downloads)
    print(f"{args.model}: /generate defaults {len(d['classes']) * d['per_class']} images, {d['sampler']} "
          f"{d['steps']} steps, guidance {d['guidance']}, {torch.get_num_threads()} threads; app up in "
          f"{time.perf_counter() - began:.1f} s", flush=True)
    compiled = False
    try:
        if args.wait_compiled:
            waited = time.perf_counter()
            while args.model not in demo.lab.compiled and time.perf_counter() - waited < args.wait_compiled:
                time.sleep(0.5)
            compiled = args.model in demo.lab.compiled
            print(f"app's compiled forward {'loaded' if compiled else 'NOT loaded'} after "
                  f"{time.perf_counter() - began:.0f} s from start: both sides run {'compiled' if compiled else 'eager'}")
        if args.first:
            first = timed(lambda: app_call(client, args.model, d))[0]
            second = timed(lambda: app_call(client, args.model, d))[0]
            lib = timed(lambda: library_call(model, d))[0]
            print(f"first /generate after start {first:.2f} s, second {second:.2f} s, library {lib:.2f} s "
                  f"(DIFFUSION_LAB_COMPILE={os.environ.get('DIFFUSION_LAB_COMPILE', '')!r})")
            return 0
        app_call(client, args.model, d)  # warm-up of both
        library_call(model, d, compiled)
        app_times, lib_times = [], []
        for _ in range(args.repeats):
            app_times.append(timed(lambda: app_call(client, args.model, d)))
            lib_times.append(timed(lambda: library_call(model, d, compiled)))
        for i, what in enumerate(("wall", "CPU")):
            a, b = (statistics.median(t[i] for t in times) for times in (app_times, lib_times))
            print(f"{what:>4s}: app /generate median {a:.3f} s, ddpm.generate median {b:.3f} s, app / library "
                  f"{a / b:.2f}x   (app {', '.join(f'{t[i]:.2f}' for t in app_times)}; "
                  f"library {', '.join(f'{t[i]:.2f}' for t in lib_times)})")
        print("target: wall at most 1.2x (CPU time is the steadier measure on a shared machine)")
    finally:
        demo.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
