"""Fast by default: the one precision decision (ddpm.device.default_dtype), "auto" recorded as what ran,
and bench's pieces (its FLOP count, its diffusers peer loop, its modes)."""
from __future__ import annotations

import argparse

import pytest
import torch

import ddpm
import ddpm.device
from ddpm import bench
from ddpm.device import cpu_has_native_bfloat16, default_dtype

ZEN4 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
SAPPHIRE_RAPIDS = "flags\t\t: fpu avx512f amx_bf16 amx_tile\n"
SKYLAKE = "flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512vl\n"
GRAVITON3 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"


@pytest.mark.parametrize("cpuinfo,native", [(ZEN4, True), (SAPPHIRE_RAPIDS, True), (SKYLAKE, False),
                                            (GRAVITON3, True), ("", False)])
def test_native_bfloat16_is_read_from_the_cpu_flags(cpuinfo, native):
    assert cpu_has_native_bfloat16(cpuinfo) is native  # AVX512 alone emulates bfloat16: slower than float32


@pytest.mark.parametrize("native,expected", [(True, "bfloat16"), (False, "float32")])
def test_auto_is_bfloat16_on_a_cpu_that_has_it_and_float32_elsewhere(monkeypatch, native, expected):
    monkeypatch.setattr(ddpm.device, "cpu_has_native_bfloat16", lambda: native)
    assert default_dtype("cpu") == default_dtype() == expected
    assert ddpm.device.resolve_dtype("auto", "cpu") == ddpm.device.DTYPES[expected]


@pytest.mark.parametrize("bf16,expected", [(True, "bfloat16"), (False, "float16")])
def test_auto_is_half_precision_on_a_gpu(monkeypatch, bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert default_dtype(torch.device("cuda")) == expected


@pytest.mark.parametrize("native,expected", [(True, "bfloat16"), (False, "float32")])
def test_a_job_records_the_precision_auto_ran_at(tiny_model, monkeypatch, native, expected):
    monkeypatch.setattr(ddpm.device, "cpu_has_native_bfloat16", lambda: native)
    model = tiny_model()
    assert ddpm.Settings().dtype == ddpm.defaults.DEFAULT_DTYPE
    job = ddpm.generate(model, [0, 1], settings=ddpm.Settings(steps=3, dtype="auto"))
    assert job.settings.dtype == expected and job.settings.compile is False, "no package in this run's cache: eager"
    assert job.settings.with_(dtype="auto", compile="auto") == ddpm.Settings(steps=3, dtype="auto")
    same = ddpm.generate(model, [0, 1], settings=ddpm.Settings(steps=3, dtype=expected)).run()
    torch.testing.assert_close(job.run(), same, rtol=0, atol=0)  # auto is exactly that precision


def test_bfloat16_sampling_really_runs_in_bfloat16(tiny_model):
    model = tiny_model()
    run = {d: ddpm.generate(model, [0, 1], settings=ddpm.Settings(steps=3, dtype=d)).run()
           for d in ("float32", "bfloat16")}
    assert (run["float32"] - run["bfloat16"]).abs().max() > 1e-4


def grid(model, n=3, steps=4, sampler="dpm++"):
    args = argparse.Namespace(n=n, steps=steps, sampler=sampler, guidance=2.0)
    return bench.Grid(model, args)


def test_the_diffusers_peer_loop_gives_our_images(tiny_model):
    """The plain loop a diffusers user writes (scheduler.step, guidance in one batch) and our loop agree."""
    g = grid(tiny_model(), steps=5)
    torch.testing.assert_close(g.run("diffusers-float32"), g.run("float32"), rtol=0, atol=1e-5)


def test_flops_are_counted_on_every_guided_network_call(tiny_model):
    """Twice the steps, twice the FLOPs; guidance runs 2n rows, each costing what one unguided row costs."""
    from torch.utils.flop_counter import FlopCounterMode

    model = tiny_model()
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model.denoiser(torch.zeros(6, 1, 8, 8), torch.zeros(6, dtype=torch.long), torch.zeros(6, dtype=torch.long))
    per_call = counter.get_total_flops()
    assert per_call > 0
    assert bench.count_flops(grid(model, n=3, steps=4)) == 4 * per_call
    assert bench.count_flops(grid(model, n=3, steps=8)) == 8 * per_call


@pytest.mark.parametrize("mode,parsed", [("float32", ("ours", None, "float32")),
                                         ("compile-bfloat16", ("ours", "default", "bfloat16")),
                                         ("compile:reduce-overhead-bfloat16", ("ours", "reduce-overhead", "bfloat16")),
                                         ("aot-bfloat16", ("ours", "aot", "bfloat16")),
                                         ("diffusers-bfloat16", ("diffusers", None, "bfloat16"))])
def test_bench_modes_name_the_loop_compilation_and_precision(mode, parsed):
    assert bench.parse_mode(mode) == parsed


def test_a_bench_mode_typo_is_one_clear_error():
    with pytest.raises(ValueError, match="unknown bench mode 'bfloat61'"):
        bench.parse_mode("bfloat61")


def test_bench_refuses_float16_on_a_cpu_at_once(capsys):
    """float16 on a CPU is emulated: the matmul peak alone would take minutes. One line, nothing timed."""
    from ddpm.cli import main

    assert main(["bench", "--device", "cpu", "--modes", "bfloat16,compile-float16", "--n", "2", "--steps", "1"]) != 0
    err = capsys.readouterr().err
    assert "'compile-float16': float16 is for GPUs" in err and "use bfloat16 or float32 here" in err


def test_matmul_peak_is_a_positive_rate():
    assert bench.matmul_peak(torch.float32, torch.device("cpu"), size=64, repeats=2) > 0


def test_bench_times_round_robin_and_reports_the_default_against_the_best(tiny_model, tmp_path, monkeypatch, capsys):
    """Every mode warms up first, then each is timed once a round (a drifting load moves them together); the
    last line gives the default mode's time over the best mode's and over each precision's limit."""
    folder = tiny_model().save(tmp_path / "tiny")
    order = []
    real_run = bench.Grid.run
    monkeypatch.setattr(bench.Grid, "run", lambda self, mode: order.append(mode) or real_run(self, mode))
    monkeypatch.setattr(bench, "matmul_peak", lambda dtype, device, **_: 1e9)  # not the 2048-square timing
    args = argparse.Namespace(model=str(folder), device=None, n=2, steps=2, sampler="dpm++", guidance=2.0,
                              repeats=2, modes="float32,bfloat16,default", threads=None, profile=None)
    assert bench.run(args) == 0
    out = capsys.readouterr().out
    assert order[1:] == ["float32", "bfloat16", "default"] * 3  # after count_flops' grid: warm-ups, then two rounds
    # Settings() as they resolve here: float32 in tests (conftest), eager (this run's cache holds no package)
    assert "the library's default, Settings() (float32, eager): " in out and "x the bfloat16 limit" in out
    assert "x the best mode (float32)" in out or "x the best mode (bfloat16)" in out, "the best of the modes"
