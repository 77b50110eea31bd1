"""The Denoising steps tab's data and its branches: the grid sheets and the chart the scrubber draws, the app's
"Continue from here" (which must reproduce the run exactly with the same settings, and cost no more than the
run), and /branch through a real server and gradio_client."""
from __future__ import annotations

import base64
import io
import math

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

import ddpm
from app_fixtures import DIGITS, app_error, serve, tiny_models
from ddpm import explore, illusions
from diffusion_lab import runs, streaming
from diffusion_lab.lab import Lab
from diffusion_lab.tabs import generate as gen
from diffusion_lab.tabs import steps


def progress(*args, **kwargs):
    pass


def decode(uri: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))


def crop(column: dict, sheet: np.ndarray, b: int) -> np.ndarray:
    """Tile b of a grid sheet, as the page crops it (scrubber.js ``box``)."""
    (w, h), pad, ncol = column["tile"], column["pad"], column["ncol"]
    r, c = divmod(b, ncol)
    return sheet[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w]


@pytest.fixture(scope="module")
def lab():
    return Lab(tiny_models())


def generate_run(lab, classes=("1", "2", "3"), per_class=2, sampler="dpm++", steps_=8, guidance=1.5, seed=0):
    out = list(gen.generate(lab, "mnist", list(classes), per_class, sampler, steps_, guidance, seed, {},
                            progress=progress))
    return out[-1]["run"]


def continue_run(lab, run, frame, label=steps.SAME, guidance=None, seed=None, sampler=steps.SAME):
    s = run.replay.settings if run.replay is not None else ddpm.Settings()
    out = list(steps.continue_from(lab, run, label, s.guidance if guidance is None else guidance,
                                   s.seed if seed is None else seed, sampler, {}, gr.EventData(None, {"frame": frame}),
                                   progress=progress))
    return out[-1]


# -- the scrubber's value: grid sheets and the chart ----------------------------------------------------------
def test_every_step_of_the_grid_is_one_sheet_per_panel_whose_tiles_are_the_samples(lab):
    run = generate_run(lab, classes=DIGITS[:5], per_class=2)
    value = runs.scrub_value(run)
    column = value["columns"][0]
    assert value["grid"] and value["branch"] and len(value["columns"]) == 1
    assert column["ncol"] == run.ncol == 5 and len(column["captions"]) == 10
    assert len(column["sheets"]) == value["n"] == len(run.tracks[0].t) == 9  # 8 steps, then the result
    for j in (0, 4, 8):
        for key, _ in runs.PANELS:
            sheet = decode(column["sheets"][j][key])
            assert sheet.shape[:2] == tuple(column["size"][::-1])
            for b in (0, 3, 9):
                assert np.array_equal(crop(column, sheet, b), run.tracks[b].images[key][j][..., 0]), (j, key, b)
    assert column["t"][0][-1] == -1 and column["t"][0][0] == run.tracks[0].t[0]
    assert runs.scrub_value(run)["columns"][0]["sheets"] is column["sheets"], "encoded once per run, then kept"


def test_samples_with_fewer_frames_move_proportionally_in_one_grid():
    def track(m, value):
        return runs.Track(f"{m} frames", list(range(m - 1, 0, -1)) + [-1],
                          {key: np.stack([np.full((4, 4, 1), value + j, np.uint8) for j in range(m)])
                           for key, _ in runs.PANELS})
    run = runs.Run("sdedit-like", [track(9, 0), track(3, 100)])
    column = runs.scrub_value(run, grid=False)["columns"][0]
    assert len(column["sheets"]) == 9
    short = [int(crop(column, decode(column["sheets"][j]["x"]), 1)[0, 0]) - 100 for j in range(9)]
    assert short == [math.floor(j * 2 / 8 + 0.5) for j in range(9)], \
        "frame j of 9 shows frame j * 2 / 8 of 3, rounded half up as the page's Math.round"
    assert column["t"][1] == [[2, 1, -1][f] for f in short]


def test_frame_steps_name_the_model_step_of_every_frame_the_stream_keeps(lab):
    job = ddpm.generate(lab.models["mnist"], ["1"], settings=ddpm.Settings(sampler="ddim", steps=150))
    seen = []
    recorder = ddpm.Recorder(streaming.every(job))
    job.run(lambda step: (recorder(step), seen.append(step.index) if len(recorder.t) > len(seen) else None))
    assert runs.frame_steps(job) == seen + [150] and len(seen) == len(recorder.t) <= streaming.MAX_FRAMES + 1


@pytest.fixture
def classified(quadrant_model, quadrant_classifier, monkeypatch):
    """The quadrant model with a trained classifier of its four classes as the one it ships."""
    monkeypatch.setattr(quadrant_model, "_classifier", quadrant_classifier)
    return quadrant_model


def test_the_chart_is_the_classifier_on_every_kept_predicted_x0_and_the_result(classified, quadrant_classifier):
    job = explore.generate_each(classified, ["q0", "q1", "q2"], settings=ddpm.Settings(sampler="ddim", steps=6))
    recorder = ddpm.Recorder()
    x = job.run(recorder)
    frames = recorder.frames()
    target, runner = runs.chart_lines(classified, frames, x, ["q0", "q1", "q2"])
    assert target.p.shape == runner.p.shape == (3, 7) and not target.dash and runner.dash
    with torch.no_grad():
        probs = torch.softmax(quadrant_classifier(torch.cat([frames["x0"][3], x])), -1)
    assert np.allclose(target.p[:, 3], probs[:3, [0, 1, 2]].diagonal(), atol=1e-5)
    assert np.allclose(target.p[:, -1], probs[3:, [0, 1, 2]].diagonal(), atol=1e-5), "the last point is the result"
    assert target.names[1] == ["q1"] * 7 and (target.p + runner.p <= 1 + 1e-6).all()
    best_other = probs[3:].clone()
    best_other[range(3), [0, 1, 2]] = -1
    assert runner.names[2][-1] == f"q{int(best_other[2].argmax())}"
    column = runs.scrub_value(runs.Run("r", runs.tracks_from(frames, ["a", "b", "c"], x), chart=[target, runner]))
    assert [len(line["p"][0]) for line in column["columns"][0]["chart"]] == [7, 7]


def test_an_illusion_chart_has_one_line_per_reading(classified, quadrant_classifier):
    job = explore.generate_each(classified, ["q0", "q0"], settings=ddpm.Settings(sampler="ddim", steps=4))
    recorder = ddpm.Recorder()
    x = job.run(recorder)
    readings = illusions.anagram_readings(classified, [("q0", "identity"), ("q3", "rot180")])
    lines = runs.reading_lines(classified, recorder.frames(), x, readings)
    assert [line.names[0][0] for line in lines] == ["q0 (identity)", "q3 (rot180)"]
    with torch.no_grad():
        turned = torch.softmax(quadrant_classifier(ddpm.get_view("rot180")(x)), -1)[:, 3]
    assert np.allclose(lines[1].p[:, -1], turned.numpy(), atol=1e-5)
    assert runs.chart_lines(tiny_models()["mnist"], recorder.frames(), x) is None, "no classifier, no chart"


# -- Continue from here, in the app ---------------------------------------------------------------------------
@pytest.mark.parametrize("sampler", ["dpm++", "ddpm"])
def test_continuing_from_a_middle_frame_with_the_same_settings_reproduces_the_run_exactly(lab, sampler):
    run = generate_run(lab, sampler=sampler)
    out = continue_run(lab, run, frame=4)
    branch = out["run"].branches[0]
    assert out["run"].tracks is run.tracks and branch.label.startswith("branch at step 4 (t = ")
    assert branch.label.endswith("same settings")
    for a, b in zip(run.tracks, branch.tracks, strict=True):
        assert a.caption == b.caption and a.t == b.t
        assert all(np.array_equal(a.images[k], b.images[k]) for k in a.images), a.caption
    value = out["scrub"]
    assert [c["sheets"] for c in value["columns"][1:]] == [value["columns"][0]["sheets"]], "the same pictures"


def test_another_class_changes_only_what_comes_after_the_branch_frame(lab):
    run = generate_run(lab, sampler="ddim")
    out = continue_run(lab, run, frame=3, label="7")
    branch = out["run"].branches[0]
    assert branch.tracks[0].caption.endswith("→ 7") and "class 7" in out["status"]
    for a, b in zip(run.tracks, branch.tracks, strict=True):
        assert np.array_equal(a.images["x"][:4], b.images["x"][:4]), "x_t up to the branch frame is the original's"
        assert not np.array_equal(a.images["x"][-1], b.images["x"][-1])
    again = continue_run(lab, out["run"], frame=6, guidance=4.0, sampler="dpm++")
    assert len(again["run"].branches) == 2 and "guidance 4, sampler dpm++" in again["run"].branches[1].label
    many = again["run"]
    for _ in range(steps.MAX_BRANCHES):
        many = continue_run(lab, many, frame=2, seed=5)["run"]
    assert len(many.branches) == steps.MAX_BRANCHES


def test_a_branch_costs_what_the_run_costs(lab):
    """16 images, 20 steps: a branch at step 10 evaluates the model as often as the generation did."""
    model, calls = lab.models["mnist"], []
    hook = model.denoiser.register_forward_hook(lambda *args: calls.append(1))
    try:
        run = generate_run(lab, classes=DIGITS[:8], per_class=2, steps_=20)
        generated = len(calls)
        continue_run(lab, run, frame=10, guidance=3.0)
    finally:
        hook.remove()
    assert generated == 20 and len(calls) - generated == generated


def test_a_run_that_cannot_branch_or_a_bad_frame_is_a_one_line_error(lab):
    run = generate_run(lab)
    with pytest.raises(ValueError, match="frame must be a whole number from 0 to 8"):
        continue_run(lab, run, frame=9)
    with pytest.raises(ValueError, match="cannot start at an arbitrary step"):
        continue_run(lab, run, frame=2, sampler="unipc")
    with pytest.raises(ValueError, match="cannot be continued"):
        continue_run(lab, runs.Run("SDEdit", run.tracks), frame=2)


# -- /branch through a real server ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client():
    from gradio_client import Client

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    demo, url = serve(tiny_models())
    yield Client(url, verbose=False)
    demo.close()
    torch.set_num_threads(threads)


def test_branch_takes_the_original_settings_the_step_and_the_changes(client):
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    for name in ("/branch", "/branch_stream"):
        assert [p["parameter_name"] for p in api[name]["parameters"]] == [
            "model", "classes", "per_class", "sampler", "steps", "guidance", "seed", "at_step",
            "class_after", "guidance_after", "seed_after", "sampler_after"], name


def test_branch_with_the_same_settings_gives_the_generated_grid(client):
    args = {"model": "mnist", "classes": ["1", "2", "3"], "per_class": 2, "sampler": "dpm++", "steps": 6,
            "guidance": 1.5, "seed": 3}
    grid, _ = client.predict(**args, api_name="/generate")
    image, status = client.predict(**args, at_step=3, api_name="/branch")
    assert status.startswith("Done: mnist · branch at step 3 (t = ") and "same settings" in status
    assert np.array_equal(np.asarray(Image.open(image)), np.asarray(Image.open(grid)))
    changed, status = client.predict(**args, at_step=3, class_after="7", seed_after=9, api_name="/branch")
    assert "class 7, seed 9" in status
    assert not np.array_equal(np.asarray(Image.open(changed)), np.asarray(Image.open(grid)))


@pytest.mark.parametrize("change, message", [({"sampler_after": "deis"}, "cannot start at an arbitrary step"),
                                             ({"at_step": 21}, "branch step must be a whole number from 0 to 20"),
                                             ({"class_after": "cat"}, "cat")])
def test_a_bad_branch_is_a_readable_error(client, change, message):
    text = app_error(lambda: client.predict(**{"at_step": 10, **change}, api_name="/branch"), str(change))
    assert message in text and "\n" not in text
