"""What made the app cheaper keeps its results: the GIF drawn from one sheet and one palette is the GIF it was,
an API client still gets every final picture, the background compile switch is safe, and the fast preset
comes from a model's measured steps. (No timings here: ``python -m diffusion_lab.bench_app`` measures.)"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from app_fixtures import DIGITS, EMOJI, tiny
from diffusion_lab import controls, lab, streaming
from diffusion_lab.tabs import generate


# -- 1. the downloads ------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch, channels, captions, ncol", [
    (20, 1, DIGITS * 2, 10),                                  # mnist's default grid
    (7, 3, EMOJI * 2 + ["Flags"], 3),                         # colour, a short last row, two-line captions
    (26, 1, [chr(ord("a") + i) for i in range(26)], 9)])      # letters: rows of 9, 9, 8
def test_the_gif_sheet_draws_the_frames_gif_frame_draws(batch, channels, captions, ncol):
    g = torch.Generator().manual_seed(0)
    size = 28 if channels == 1 else 32
    x, x0 = (torch.rand(batch, channels, size, size, generator=g) * 2 - 1 for _ in range(2))
    sheet = generate.GifSheet(x, captions, ncol)
    assert np.array_equal(sheet.frame(x, x0), np.asarray(generate.gif_frame(x, x0, captions, ncol)))
    assert np.array_equal(sheet.frame(x0, x), np.asarray(generate.gif_frame(x0, x, captions, ncol))), "reusable"


def test_grey_gif_frames_are_exact_and_colour_ones_share_one_palette():
    g = torch.Generator().manual_seed(1)
    grey = [np.asarray(generate.gif_frame(*(torch.rand(4, 1, 8, 8, generator=g) * 2 - 1 for _ in range(2)),
                                          list("abcd"), 2)) for _ in range(3)]
    frames = generate.gif_palette(grey, grey=True)
    assert all(f.mode == "L" and np.array_equal(np.asarray(f.convert("RGB")), rgb) for f, rgb in zip(frames, grey))
    colour = [np.asarray(generate.gif_frame(*(torch.rand(4, 3, 8, 8, generator=g) * 2 - 1 for _ in range(2)),
                                            list("abcd"), 2)) for _ in range(3)]
    frames = generate.gif_palette(colour, grey=False)
    assert {f.mode for f in frames} == {"P"} and len({bytes(f.getpalette()) for f in frames}) == 1
    error = np.abs(np.asarray(frames[1].convert("RGB"), np.int16) - colour[1]).mean()
    assert error < 12, f"a palette of the first, middle and last frames fits the middle one ({error:.1f} levels)"


def test_downloads_are_the_result_png_and_a_gif_ending_on_the_result_made_once(tmp_path):
    g = torch.Generator().manual_seed(2)
    frames = {"x": torch.rand(5, 3, 1, 28, 28, generator=g) * 2 - 1, "x0": torch.rand(5, 3, 1, 28, 28, generator=g)}
    final = torch.rand(3, 1, 28, 28, generator=g) * 2 - 1
    png = tmp_path / "samples.png"
    Image.new("RGB", (40, 30), (1, 2, 3)).save(png)
    pending = generate.Downloads(str(png), frames, final, ["1", "2", "3"], 3)
    assert not (tmp_path / "denoising.gif").exists(), "nothing is drawn before the downloads are asked for"
    files = pending.files()
    assert files == [str(png), str(tmp_path / "denoising.gif")]
    with Image.open(files[1]) as anim:
        assert anim.n_frames == 6
        anim.seek(5)
        last = np.asarray(anim.convert("RGB"))
    assert np.array_equal(last, np.asarray(generate.gif_frame(final, final, ["1", "2", "3"], 3)))
    (tmp_path / "denoising.gif").unlink()
    assert pending.files() == files and not (tmp_path / "denoising.gif").exists(), "asked again: made once"
    with pytest.raises(ValueError, match="no Generate result in this session yet"):
        generate.downloads(None)


# -- 2. an API client: statuses streamed, pictures only at the end ------------------------------------------
def test_an_api_client_is_streamed_statuses_and_only_the_last_pictures():
    import gradio as gr

    outputs = {"status": gr.Textbox(render=False), "image": gr.Image(render=False)}

    def fn(lab_, value, progress=None):
        yield {"status": "step 1", "image": "preview-1"}
        yield {"status": "step 2", "image": "preview-2"}
        yield {"status": "done", "image": "final"}
    event = streaming.handler(fn, None, outputs)
    status, image = outputs["status"], outputs["image"]
    page = list(event(1, None, gr.Request(headers={})))
    assert [r.get(image) for r in page] == ["preview-1", "preview-2", "final"], "the page gets every preview"
    api = list(event(1, None, gr.Request(headers={"x-gradio-user": "api"})))
    assert api == [{status: "step 1"}, {status: "step 2"}, {status: "done", image: "final"}]
    assert list(event(1)) == page, "called without a request (a test, a script): as the page"


def test_a_handler_keeps_its_inputs_annotations_beside_the_request():
    import typing

    import gradio as gr

    def fn(lab_, value, evt: gr.EventData, progress=None):
        return {}
    hints = typing.get_type_hints(streaming.handler(fn, None, {}))  # what Gradio reads to inject evt and request
    assert hints == {"evt": gr.EventData, "request": gr.Request}


# -- 3. compiling in the background -------------------------------------------------------------------------
def test_compile_is_wanted_by_default_never_on_zerogpu_and_the_env_var_decides(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.delenv(lab.COMPILE_ENV, raising=False)
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert lab.compile_wanted(cpu) and lab.compile_wanted(cuda), "a niced subprocess builds it: on by default"
    monkeypatch.setenv(lab.COMPILE_ENV, "0")
    assert not lab.compile_wanted(cpu)
    monkeypatch.setenv(lab.COMPILE_ENV, "1")
    assert lab.compile_wanted(cpu)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert not lab.compile_wanted(cuda), "ZeroGPU lends its GPU per call: nothing is compiled there"
    monkeypatch.delenv("SPACES_ZERO_GPU")
    monkeypatch.setenv(lab.COMPILE_ENV, "0")
    assert not lab.compile_wanted(cuda)


def test_a_request_runs_compiled_only_once_its_model_is_warm(monkeypatch):
    monkeypatch.setenv(lab.COMPILE_ENV, "0")
    mnist = tiny("mnist", 28, 1, DIGITS, "mnist")
    the_lab = lab.Lab({"mnist": mnist})
    assert the_lab.start_compiling() is None, "switched off: no thread"
    _, before, _ = the_lab.begin("mnist", {}, "dpm++", 3, 1.5, 0)
    the_lab.compiled = frozenset({"mnist"})  # what the compile thread publishes, in one assignment, when warm
    _, after, _ = the_lab.begin("mnist", {}, "dpm++", 3, 1.5, 0)
    assert not before.compile and after.compile, "a request started before the switch keeps its eager settings"
    other = tiny("mnist", 28, 1, DIGITS, "mnist", seed=1)  # a user's own model under a bundled name
    model, settings, _ = the_lab.begin("mnist", {"mnist": other}, "dpm++", 3, 1.5, 0)
    assert model is mnist and settings.compile, "a bundled name is the bundled model"
    _, settings, _ = the_lab.begin("me/mnist", {"me/mnist": other}, "dpm++", 3, 1.5, 0)
    assert not settings.compile, "a model loaded by a user is never compiled in their request"


# -- 4. the fast preset -------------------------------------------------------------------------------------
def test_the_fast_preset_is_the_models_measured_fewest_steps_and_else_none():
    mnist, emoji = tiny("mnist", 28, 1, DIGITS, "mnist"), tiny("emoji", 32, 3, EMOJI, "emoji")
    assert controls.fast_preset(mnist) == controls.FAST_FALLBACK["mnist"]
    assert controls.fast_preset(emoji) is None
    choices, shown = controls.speed_choices(emoji)
    assert not shown and [v for _, v in choices] == [controls.QUALITY]
    card_steps = pytest.importorskip("ddpm.card_steps")  # the library's steps sweeps (issue 22)
    rows = [{"sampler": s, "steps": n, "accuracy": a, "fid": f} for s, n, a, f in [
        ("dpm++", 20, 0.99, 4.0), ("dpm++", 8, 0.99, 4.1), ("dpm++", 6, 0.97, 6.0),
        ("unipc", 8, 0.99, 4.0), ("unipc", 6, 0.99, 4.2), ("unipc", 4, 0.90, 9.0)]]
    assert card_steps.fewest_steps(rows)["unipc"] == 6
    emoji.meta["metrics"] = {"steps": {"rows": rows}}
    assert controls.fast_preset(emoji) == ("unipc", 6)
    rows.append({"sampler": "dpm++", "steps": 6, "accuracy": 0.99, "fid": 4.0})
    rows.remove(rows[2])
    assert controls.fast_preset(emoji) == ("dpm++", 6), "a tie goes to the model's own sampler"
    emoji.meta["metrics"]["steps"]["looked"] = "the 6-step grid is grainier than the 20-step one."
    assert controls.fast_preset(emoji) is None, "a look at the grids overrules the numbers"
    emoji.meta["metrics"]["steps"]["looked_fewest"] = 8
    assert controls.fast_preset(emoji) == ("dpm++", 8), "the count the look kept, on the reference sampler"
    del emoji.meta["metrics"]["steps"]["looked_fewest"]
    assert [v for _, v in controls.speed_choices(emoji)[0]] == [controls.QUALITY]
