"""Ahead-of-time compiled forwards (ddpm.aot): one package built for a tiny model, the same numbers as the
eager denoiser, found again by any model with the same weights and never by one with others; and the app
loads a package without compiling in its own process."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

import ddpm
from ddpm import aot
from ddpm.testing import tiny_model


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One package of the tiny scratch model, float32, in a temporary cache (a C++ build: ~20 s)."""
    folder = tmp_path_factory.mktemp("compiled")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(aot.CACHE_ENV, str(folder))
        model = tiny_model()
        try:
            path = aot.build(model, "float32")
        except Exception as err:  # noqa: BLE001 - no C++ compiler on this machine: nothing here can be tested
            pytest.skip(f"AOTInductor cannot build here: {type(err).__name__}: {err}")
        yield folder, path


def _inputs(model, rows, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, model.channels, model.image_size, model.image_size, generator=g)
    t = torch.randint(0, 50, (rows,), generator=g)
    y = torch.randint(0, len(model.classes) + 1, (rows,), generator=g)  # the null label too
    return x, t, y


@torch.inference_mode()
def test_the_package_computes_what_the_denoiser_computes_at_every_batch_size(cache):
    model = tiny_model()
    forward = aot.load(model, "float32")
    assert forward is not None and forward.package == cache[1]
    assert forward.rows[0][0] <= 2 and forward.rows[-1][1] == aot.MAX_ROWS, "one package spans the batch sizes"
    for rows in (1, 2, 5, 33, 70):  # 1 row: outside the exported range, run eagerly
        x, t, y = _inputs(model, rows, seed=rows)
        torch.testing.assert_close(forward(x, t, y), model.denoiser(x, t, y), atol=1e-5, rtol=1e-5)
    x, t, _ = _inputs(model, 3)
    null = torch.full((3,), len(model.classes))
    torch.testing.assert_close(forward(x, t, None), model.denoiser(x, t, null), atol=1e-5, rtol=1e-5)


def test_a_package_is_named_by_the_weights_and_the_precision(cache):
    same, other = tiny_model(), tiny_model(seed=1)
    assert aot.package_path(same, "float32") == cache[1]
    assert aot.package_path(other, "float32") != cache[1], "other weights: another package"
    assert aot.package_path(same, "bfloat16") != cache[1]
    assert aot.built(same, "float32") and not aot.built(other, "float32")
    assert aot.load(other, "float32") is None, "nothing built for it: None, not a stale forward"
    assert other.compiled("float32", build=False) is None


def test_sampling_with_compile_loads_the_package_and_gives_the_eager_images(cache, monkeypatch):
    model = tiny_model()
    monkeypatch.setattr(aot, "build", lambda *a, **k: pytest.fail("the cache has it: nothing to build"))
    s = ddpm.Settings(steps=4, guidance=2.0, seed=3, dtype="float32")
    eager = ddpm.generate(model, ["zero", "one", "two", "zero"], settings=s.with_(compile=False)).run()
    compiled = ddpm.generate(model, ["zero", "one", "two", "zero"], settings=s.with_(compile=True)).run()
    assert hasattr(model.compiled("float32"), "package"), "the AOT package, not torch.compile"
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-5)


def test_compile_auto_runs_the_package_where_the_cache_has_one_and_says_so(cache, monkeypatch, tmp_path):
    labels, s = ["zero", "one", "two", "zero"], ddpm.Settings(steps=4, guidance=2.0, seed=3, dtype="float32")
    assert ddpm.Settings().compile == "auto" == s.compile, "the default"
    monkeypatch.setattr(aot, "build", lambda *a, **k: pytest.fail("auto never builds"))
    job = ddpm.generate(tiny_model(), labels, settings=s)
    assert job.settings.compile is True, "the cache has this model's package: the job runs it and records so"
    exact = ddpm.generate(tiny_model(), labels, settings=s.with_(compile=True)).run()
    torch.testing.assert_close(job.run(), exact, atol=0, rtol=0)  # the same forward as compile=True
    assert ddpm.recipes.resolve(tiny_model(), s).compile is True
    monkeypatch.setenv(aot.CACHE_ENV, str(tmp_path))  # a machine whose cache holds nothing
    job = ddpm.generate(tiny_model(), labels, settings=s)
    assert job.settings.compile is False
    torch.testing.assert_close(job.run(), ddpm.generate(tiny_model(), labels, settings=s.with_(compile=False)).run(),
                               atol=0, rtol=0)


def test_a_model_trained_further_never_runs_the_forward_of_its_old_weights(cache, monkeypatch):
    model = tiny_model()
    monkeypatch.setattr(aot, "build", lambda *a, **k: pytest.fail("auto never builds"))
    s = ddpm.Settings(steps=3, seed=1, dtype="float32")
    assert ddpm.generate(model, ["one"], settings=s).settings.compile is True and model.holds_compiled("float32")
    with torch.no_grad():  # what a training step does: the weights change in place (a fused optimizer says nothing)
        next(model.denoiser.parameters()).add_(0.05)
    job = ddpm.generate(model, ["one"], settings=s)
    assert job.settings.compile is False and not model.holds_compiled("float32"), "no package for these weights"
    torch.testing.assert_close(job.run(), ddpm.generate(model, ["one"], settings=s.with_(compile=False)).run(),
                               atol=0, rtol=0)


@pytest.mark.parametrize("value", [1, 0, "yes", None, "Auto"])
def test_compile_is_true_false_or_auto(value):
    with pytest.raises(ValueError, match="compile must be True, False or 'auto'"):
        ddpm.Settings(compile=value)


def test_autocast_keeps_no_cast_cache():
    """The cache's release takes the GIL under a process-wide mutex: with torch.compile tracing in another
    thread, a request's autocast exit deadlocked the app (both threads waiting, load 0)."""
    with ddpm.device.autocast(torch.device("cpu"), "bfloat16"):
        assert torch.is_autocast_enabled("cpu") and not torch.is_autocast_cache_enabled()


def test_the_app_loads_a_built_package_without_compiling_in_its_process(cache, monkeypatch):
    from diffusion_lab import lab

    monkeypatch.setenv(lab.COMPILE_ENV, "1")
    model = tiny_model()
    the_lab = lab.Lab({"tiny": model})
    the_lab.compiled_dtype = "float32"  # the tests' precision (conftest): the package above
    monkeypatch.setattr(the_lab, "_build", lambda name: pytest.fail("the package is there: no build"))
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: pytest.fail("no subprocess either"))
    monkeypatch.setattr(torch, "compile", lambda *a, **k: pytest.fail("never torch.compile in the app"))
    thread = the_lab.start_compiling()
    assert isinstance(thread, threading.Thread)
    thread.join(60)
    assert the_lab.compiled == {"tiny"}
    _, s, _ = the_lab.begin("tiny", {}, "dpm++", 3, 1.5, 0)
    assert s.compile


def test_a_failed_build_leaves_the_app_eager(tmp_path, monkeypatch, capsys):
    from diffusion_lab import lab

    monkeypatch.setenv(aot.CACHE_ENV, str(tmp_path))  # empty: the build subprocess runs
    monkeypatch.setenv(lab.COMPILE_ENV, "1")
    the_lab = lab.Lab({"tiny": tiny_model()})
    monkeypatch.setattr(the_lab, "build_command", lambda name: ["python3", "-c", "import sys; "
                        "sys.stderr.write('error: no C++ compiler\\n'); sys.exit(2)"])
    the_lab.start_compiling().join(60)
    assert the_lab.compiled == frozenset()
    out = capsys.readouterr().out
    assert "tiny stays eager" in out and "no C++ compiler" in out, out
    _, s, _ = the_lab.begin("tiny", {}, "dpm++", 3, 1.5, 0)
    assert not s.compile


def test_the_compile_command_builds_once_and_then_says_so(cache, monkeypatch, tmp_path, capsys):
    from ddpm.cli import main

    folder = tiny_model().save(tmp_path / "tiny")  # the same weights as the package above
    monkeypatch.setattr(aot, "build", lambda *a, **k: pytest.fail("the cache has it: nothing to build"))
    assert main(["compile", "--model", str(folder), "--dtype", "float32"]) == 0
    assert "(already built)" in capsys.readouterr().out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_DEATHSIG is Linux's")
def test_a_build_dies_with_an_app_killed_by_a_signal(tmp_path):
    """atexit never runs when the app is killed; the build subprocess must not go on holding the CPU."""
    import signal
    import time

    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time; from diffusion_lab.lab import _build_child; "
        "p = subprocess.Popen(['sleep', '60'], preexec_fn=_build_child); print(p.pid, flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True, cwd=str(Path(__file__).resolve().parent.parent))
    child = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for _ in range(100):  # the child is reparented and killed; gone (or a zombie) within moments
        try:
            state = Path(f"/proc/{child}/stat").read_text().split()[2]
        except FileNotFoundError:
            break
        if state == "Z":
            break
        time.sleep(0.05)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the build outlived the app")
