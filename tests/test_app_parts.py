"""The app package's pieces without a server: input parsing, the grid layout, the scrubber's data, examples
that follow the model, the model description, illusion presets, named outputs, and the page's CSS."""
from __future__ import annotations

import functools
import inspect
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import ddpm
from app_fixtures import tiny, tiny_models
from ddpm import images as im
from diffusion_lab import controls, examples, inputs, runs, streaming
from diffusion_lab.lab import describe
from diffusion_lab.tabs import generate, illusions


@pytest.fixture(scope="module")
def models():
    return tiny_models()


def test_every_library_sampler_is_offered():
    assert sorted(value for _, value in controls.SAMPLERS) == sorted(ddpm.SAMPLERS)


def test_classes_are_named_as_the_model_spells_them(models):
    """Classes given by index or in any case are shown as the model spells them; "(none)" is no class."""
    emoji = models["emoji"]
    assert inputs.class_list(emoji, ["1", "smileys & emotion"]) == ["People & Body", "Smileys & Emotion"]
    assert inputs.class_list(emoji, ["1", "0", "people & body"]) == ["People & Body", "Smileys & Emotion"]  # once
    assert inputs.target_class(emoji, "2") == "Animals & Nature" and inputs.target_class(emoji, "(none)") is None
    assert inputs.run_text(ddpm.Settings(steps=1, seed=4)) == "dpm++ 1 step · guidance 1.5 · seed 4"


@pytest.mark.parametrize("value, ok", [(3, True), ("3", True), (3.0, True), ("3.0", True), (3.5, False),
                                       ("x", False), (None, False), (11, False), (str(2**63 - 1), None)])
def test_whole_numbers(value, ok):
    if ok is None:  # a 19-digit seed stays exact
        assert inputs.seed_number(value) == 2**63 - 1
    elif ok:
        assert inputs.whole(value, 0, 10, "n") == 3
    else:
        with pytest.raises(ValueError, match="n must be"):
            inputs.whole(value, 0, 10, "n")


@pytest.mark.parametrize("classes, per_class, ncol", [(10, 3, 10), (13, 1, 7), (26, 1, 9), (26, 2, 12), (26, 5, 10),
                                                        (26, 8, 8), (2, 8, 8), (1, 5, 5), (3, 3, 3)])
def test_a_grid_keeps_each_class_together_and_is_wider_than_tall(classes, per_class, ncol):
    names = [f"c{i}" for i in range(classes)]
    labels, captions, got = generate.layout(SimpleNamespace(conditional=True), names, per_class)
    assert got == ncol and labels == captions and len(labels) == classes * per_class
    rows = [labels[i:i + ncol] for i in range(0, len(labels), ncol)]
    assert classes > 12 or len(rows) <= ncol, "never a tall strip"
    if classes <= 12 and per_class <= classes:  # a column per class
        assert all(row == names for row in rows)
    else:  # a class's images side by side, never split over two rows; as few rows as 12 columns allow
        assert all(len(row) % per_class == 0 and row[::per_class] == sorted(set(row), key=row.index) for row in rows)
        assert ncol <= max(12, per_class) and len(rows) == -(-classes // max(1, 12 // per_class))


@pytest.mark.parametrize("picked, per_class", [(["1", "7", "3"], 2), (["1", "7"], 3)])  # a column / a row per class
def test_the_app_grid_holds_the_images_the_cli_samples(models, picked, per_class):
    """The app samples as ``python -m ddpm sample --per-class`` does (interleaved labels, a seed per image) and
    only regroups for display: each picture of its grid is the CLI's image of that class and index."""
    from ddpm.explore import per_class_labels, sample_batches
    from diffusion_lab.lab import Lab

    model = models["mnist"]
    handler = generate.generate(Lab(models), "mnist", picked, per_class, "dpm++", 3, 2.0, 5, {}, progress=lambda *a, **k: None)
    run = [out for out in handler][-1]["run"]
    labels = per_class_labels(picked, per_class)
    cli = im.to_uint8(sample_batches(model, labels, ddpm.Settings(sampler="dpm++", steps=3, guidance=2.0, seed=5)), rgb=False)
    for track in run.tracks:
        name, number = track.caption.split(" #")
        index = [i for i, c in enumerate(labels) if c == name][int(number) - 1]
        assert np.array_equal(track.images["x0"][-1], cli[index]), track.caption
    assert len(run.tracks) == len(labels)


def test_the_gif_shows_predicted_x0_beside_x_t():
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    x0 = -x
    frame = np.asarray(generate.gif_frame(x, x0, ["a", "b"], 2))
    left = np.asarray(im.captioned_grid(x, ["a", "b"], 2, 2))
    right = np.asarray(im.captioned_grid(x0, ["a", "b"], 2, 2))
    assert frame.shape[1] == left.shape[1] + 8 + right.shape[1]
    assert np.array_equal(frame[18:, :left.shape[1]], left) and np.array_equal(frame[18:, -right.shape[1]:], right)


# -- the step scrubber's data ----------------------------------------------------------------------------
def test_runs_keep_at_most_max_frames_and_render_data_uris(models):
    model = models["mnist"]
    job = ddpm.generate(model, ["1", "2"], settings=ddpm.Settings(sampler="ddpm", steps=150))
    ticks, run_job = [], streaming.stream_job(job, lambda step: ticks.append(step.index),
                                              lambda step, status, first: {"status": status, "first": first})
    assert next(run_job) == {"status": "step 1/150 · t = 999", "first": True}, "the first step is reported at once"
    with pytest.raises(StopIteration) as done:
        while True:
            assert next(run_job)["first"] is False
    x, frames = done.value.value
    assert ticks == list(range(150))
    run = runs.Run("test", runs.tracks_from(frames, ["1", "2"], x))
    first, last = run.tracks
    assert len(first.t) <= streaming.MAX_FRAMES + 2 and first.t[0] == 999
    assert set(first.images) == {key for key, _ in runs.PANELS}
    assert first.images["x"].dtype == np.uint8 and first.images["x"].shape[1:] == (28, 28, 1)
    assert last.t[-1] == -1 and min(last.t[:-1]) >= 0  # ends on the result: no noise left
    assert np.array_equal(last.images["x"][-1], im.to_uint8(x[1:2], rgb=False)[0])
    assert np.array_equal(last.images["x0"][-1], last.images["x"][-1])
    assert not np.array_equal(last.images["x"][-2], last.images["x"][-1])
    value = runs.scrub_value(run)
    assert [p["key"] for p in value["panels"]] == ["x", "x0", "eps"]
    column = value["columns"][0]  # the grid sheets: tests/test_app_branch.py
    assert column["captions"] == ["1", "2"] and column["sheets"][0]["x0"].startswith("data:image/png;base64,")
    assert column["t"][1][-2:] == [last.t[-2], -1]
    assert runs.scrub_value(None) is None


def test_handlers_send_named_outputs_and_refuse_unknown_names(models):
    outputs = {"status": "STATUS-BOX", "image": "IMAGE-BOX"}

    def fn(lab, value, progress=None):
        yield {"status": f"got {value}"}
        yield {"status": "done", "image": lab}
    event = streaming.handler(fn, "LAB", outputs)
    assert list(event(1)) == [{"STATUS-BOX": "got 1"}, {"STATUS-BOX": "done", "IMAGE-BOX": "LAB"}]
    assert list(inspect.signature(event).parameters) == ["value", "progress", "request"], "what Gradio reads"

    def unknown(lab):
        yield {"chart": 1}
    with pytest.raises(KeyError, match="chart"):
        list(streaming.handler(unknown, None, outputs)())



def test_a_run_returned_whole_merges_its_yields_and_draws_no_previews(models):
    """``streaming.plain``: the last value of every name any yield gave, and no preview drawn meanwhile."""
    job_settings = ddpm.Settings(sampler="ddim", steps=4)
    drawn = []

    def preview(step, status, first):
        drawn.append(step)
        return {"status": status}

    def fn(lab, value, progress=None):
        yield {"status": "starting", "image": "PREVIEW"}
        job = ddpm.generate(models["mnist"], ["1"], settings=job_settings)
        x, _ = yield from streaming.stream_job(job, lambda step: None, preview)
        yield {"status": f"done {value}", "seen": x.shape[0]}
    outputs = {"status": "STATUS-BOX", "image": "IMAGE-BOX", "seen": "SEEN-BOX"}
    assert streaming.plain(fn, "LAB", outputs)(7) == {"STATUS-BOX": "done 7", "IMAGE-BOX": "PREVIEW", "SEEN-BOX": 1}
    assert drawn == [], "a run returned whole draws no previews"
    streamed = list(streaming.handler(fn, "LAB", outputs)(7))
    assert len(drawn) >= 1 and streamed[1] == {"STATUS-BOX": "step 1/4 · t = 999"}, "the streamed run does"
    assert list(inspect.signature(streaming.plain(fn, "LAB", outputs)).parameters) == ["value", "progress",
                                                                                        "request"]
    with pytest.raises(TypeError, match="not a generator"):
        streaming.plain(lambda lab: {}, "LAB", outputs)


def test_the_progress_bar_moves_at_most_ten_times_a_second(monkeypatch):
    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(streaming, "time", SimpleNamespace(perf_counter=lambda: clock.now))
    moves = []
    tick = streaming.ticker(lambda done, desc: moves.append(done[0]))
    for i in range(200):  # 200 steps in 1 s: one every 5 ms
        clock.now = i * 0.005
        tick(SimpleNamespace(index=i, total=200))
    assert moves[0] == 1 and moves[-1] == 200, "the first and the last step always show"
    assert 10 <= len(moves) <= 12 and moves == sorted(moves)


class Box:  # a status box as ``streaming`` sees one: its id names the tab's run for a Stop
    _id = 7


def test_a_stop_ends_the_run_at_its_next_step_with_where_it_stopped(models):
    """The Stop of a tab's run (``streaming.stops``) asks it to stop; it yields its next step with a "Stopped at"
    status, ends, and the Stop answers that same status; a later run is not stopped by it."""
    def fn(lab, value):
        job = ddpm.generate(models["mnist"], ["1"], settings=ddpm.Settings(sampler="ddpm", steps=200))
        yield from streaming.stream_job(job, lambda step: None, lambda step, status, first: {"status": status})
        yield {"status": "Done"}
    box = Box()
    event = streaming.handler(fn, "LAB", {"status": box})
    request = SimpleNamespace(session_hash="S", headers={})
    token = streaming.LocalContext.event_id.set("E1")  # what Gradio sets for each event
    try:
        run = event(5, request)
        assert next(run) == {box: "step 1/200 · t = 999"}
        asked = streaming.ask_stop("S", Box._id)
        assert asked is not None and streaming.ask_stop("other session", Box._id) is None
        last = list(run)
        assert last == [{box: "Stopped at step 2/200 · t = 994"}], "the next step, said, then the end"
        assert streaming.answer(asked, "step 1/200 · t = 999") == "Stopped at step 2/200 · t = 994"
        assert streaming.ask_stop("S", Box._id) is None, "a run over is no longer named"
        streaming.LocalContext.event_id.set("E2")
        assert list(event(5, request))[-1] == {box: "Done"}, "the next run is not stopped by the last one's Stop"

        def short(lab, value):  # its last step already done when the Stop comes
            yield {"status": "step 1/1 · t = 999"}
            yield {"status": "Done"}
        streaming.LocalContext.event_id.set("E3")
        run = streaming.handler(short, "LAB", {"status": box})(5, request)
        next(run)
        asked = streaming.ask_stop("S", Box._id)
        assert list(run) == [{box: "Done"}]
        assert not isinstance(streaming.answer(asked, "step 1/1 · t = 999"), str), "a finished run keeps its Done"

        streaming.LocalContext.event_id.set("E4")  # the cancel closes a run between two steps, before it is asked
        run = event(5, request)
        next(run)
        asked = streaming.ask_stop("S", Box._id)
        run.close()
        assert streaming.answer(asked, "step 1/200 · t = 999") == "Stopped at step 1/200 · t = 999"
    finally:
        streaming.LocalContext.event_id.reset(token)
    assert streaming.answer(None, "step 9/20 · t = 500") == "Stopped at step 9/20 · t = 500"

# -- examples that follow the model -------------------------------------------------------------------------
def test_an_untouched_example_follows_the_model_and_a_user_picture_stays():
    """After a model switch the image boxes show the new model's first example, but only while they show
    another model's example untouched: a stroke, a painted mask or an upload is never replaced."""
    pictures = {name: sorted(str(p) for p in (examples.EXAMPLES_DIR / name).glob("*.png"))[:3]
                for name in ("mnist", "fashion")}

    def as_sent(path):  # what the editor sends for an untouched picture
        return {"background": path, "layers": [], "composite": path}

    for value_of in (lambda p: p, examples.preset_mask):
        own = {name: [value_of(p) for p in paths] for name, paths in pictures.items()}
        every = own["mnist"] + own["fashion"]
        digit, coat = own["mnist"][1], own["fashion"][2]
        assert examples.next_example(as_sent(digit), own["fashion"], every) == own["fashion"][0]
        assert examples.next_example(as_sent(coat), own["fashion"], every) is None, "already one of this model's"
        assert examples.next_example(as_sent(coat), own["mnist"], every) == own["mnist"][0]
        stroked = examples.picture(digit).copy()
        stroked[100:110, 100:140] = (229, 57, 53, 255)
        assert examples.next_example({"composite": stroked}, own["fashion"], every) is None, "the user's stroke stays"
        assert examples.next_example(None, own["fashion"], every) is None
        assert examples.next_example(as_sent(digit), [], every) is None, "a model without examples leaves the box alone"
    digit = pictures["mnist"][0]
    assert examples.shows_example({"composite": examples.picture(digit)[..., 0]}, digit), "a grey composite"
    assert not examples.shows_example({"composite": examples.picture(digit)[:100]}, digit)


def test_a_preset_mask_is_painted_into_the_picture():
    from diffusion_lab.uploads import MASK_RGB, preset_region

    path = sorted((examples.EXAMPLES_DIR / "emoji").glob("*.png"))[0]
    rgba = examples.picture(examples.preset_mask(str(path)))
    region = preset_region(rgba)
    h = rgba.shape[0]
    assert region[h // 2:].all() and not region[:h // 2].any()
    assert tuple(rgba[-1, 0, :3]) == MASK_RGB


# -- the model description and illusions ------------------------------------------------------------------
def test_model_info_states_the_cards_measured_quality_with_its_floor(models):
    bundled = ddpm.load("checkpoints/mnist")
    row = bundled.meta["metrics"]["rows"][0]
    info = describe(bundled)
    assert f"class accuracy {row['accuracy']:.3f}, FID {row['fid']:.1f}, floor {row['fid_floor']:.1f}" in info
    assert "**mnist**" in info and "1×28×28" in info
    assert "accuracy" not in describe(models["emoji"])  # untrained: nothing measured, nothing claimed


def test_model_info_credits_the_training_images_as_their_licences_ask(models):
    """The Space shows no card, so the Model box's description carries the data's credit (Twemoji's CC BY 4.0
    asks for its creator and a link to the licence)."""
    model = models["emoji"]
    assert "training images: Apache-2.0 (Noto Emoji" in describe(model)  # the tiny model says dataset emoji
    model.dataset = "emoji2"
    try:
        info = describe(model)
        assert "Twemoji (Twitter, Inc. and other contributors, CC BY 4.0: https://creativecommons.org/licenses/by/4.0/)" in info
        assert "Noto Emoji (Google, Apache-2.0)" in info and "Fluent Emoji flat (Microsoft, MIT)" in info
    finally:
        model.dataset = "emoji"


def test_model_info_headlines_the_row_at_the_models_own_guidance(models):
    model = models["emoji"]
    rows = [{"setting": f"dpm++ 20 steps, guidance {g:g}", "guidance": g, "accuracy": acc, "fid": fid,
             "fid_floor": 60.0} for g, acc, fid in ((1.5, 0.71, 50.0), (3.0, 0.998, 55.5))]
    model.meta.update(metrics={"rows": rows}, sampling={"guidance": 3.0})
    try:
        assert "class accuracy 0.998, FID 55.5, floor 60.0 (dpm++ 20 steps, guidance 3)" in describe(model)
        model.meta["sampling"] = {"guidance": 2.0}  # no row at its default: the card's first
        assert "class accuracy 0.710, FID 50.0" in describe(model)
    finally:
        del model.meta["metrics"], model.meta["sampling"]


def test_an_illusion_keeps_its_classes_and_transform_together_across_a_model_switch():
    letters = tiny("letters", 28, 1, [chr(c) for c in range(65, 91)], "letters")
    preset = illusions.presets(letters, illusions.ANAGRAMS, "rot180")[0]
    assert preset[2] != "rot180"  # not mnist's first (6/9 rot180)
    after = functools.partial(illusions.after_switch, letters, illusions.ANAGRAMS, "rot180")
    assert after("6", "9", "rot180", True) == preset, "mnist's pair gone: its transform goes with it"
    assert after("N", "Z", "flip_v", True) == ("N", "Z", "flip_v"), "a pair that fits keeps its transform"
    assert after("N", "Z", "patches:8", True) == preset, "a transform the model cannot take is reset"
    hybrid = illusions.after_switch(letters, illusions.HYBRIDS, 1.0, "0", "1", 2.5)
    assert hybrid == illusions.presets(letters, illusions.HYBRIDS, 1.0)[0]
    assert illusions.after_switch(letters, illusions.HYBRIDS, 1.0, "O", "I", 2.5) == ("O", "I", 2.5)


# -- the page's assets ------------------------------------------------------------------------------------
ASSETS = Path(runs.__file__).parent / "assets"


@pytest.mark.parametrize("name", ["scrubber.css", "style.css", "scrubber.html"])
def test_colours_come_from_the_theme_so_dark_mode_reads(name):
    """Spaces follow the visitor's system theme: a hard-coded colour (the scrubber's #f4f4f5 button with
    #222 text) is unreadable in one of the two."""
    text = (ASSETS / name).read_text()
    assert not re.findall(r"#[0-9a-fA-F]{3,8}\b|\brgba?\(|\b(?:white|black)\b(?!-)", text.replace("&#", "")), name
    if name.endswith(".css"):
        assert "var(--" in text


def test_the_scrubber_draws_every_panel_it_is_given():
    """The template and script loop over the value's panels (a new panel needs no template change)."""
    assert "value.panels.map" in (ASSETS / "scrubber.html").read_text()
    assert "v.panels" in (ASSETS / "scrubber.js").read_text()


def test_the_tab_bar_holds_tabs_only():
    """A gr.State left between the tabs (in gr.Tabs, outside any gr.Tab) made the page draw the selected tab's
    button twice, over its neighbour's: Illusions could no longer be clicked once Inpaint was open."""
    import gradio as gr

    import app
    from app_fixtures import tiny_models

    demo = app.build_demo(tiny_models())
    bars = [b for b in demo.blocks.values() if isinstance(b, gr.Tabs)]
    assert bars, "the page has a tab bar"
    for bar in bars:
        strays = [type(c).__name__ for c in bar.children if not isinstance(c, gr.Tab)]
        assert not strays, f"not tabs in the tab bar: {strays}"
