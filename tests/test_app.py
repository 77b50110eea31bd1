"""The Gradio app through a real server and gradio_client, with tiny random models (noise images are
fine: sizes, types and error messages are what is checked); the image preparation in ddpm.images; and
publishing to a Space with a fake Hub API."""
from __future__ import annotations

import functools
import json
import socket
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import app
import ddpm
from ddpm import images as im
from ddpm import publish

DIGITS = [str(i) for i in range(10)]
EMOJI = ["Smileys & Emotion", "People & Body", "Animals & Nature"]
FAST = {"steps": 3}  # sampler steps for calls that check behaviour rather than defaults


def tiny(name: str, size: int, channels: int, classes: list[str], dataset: str, seed: int = 0) -> ddpm.DiffusionModel:
    """A scratch UNet with widths (8, 16, 16); weights nudged so the zero-initialised head does not answer 0."""
    torch.manual_seed(seed)
    denoiser = ddpm.build("scratch", image_size=size, channels=channels, num_classes=len(classes), widths=(8, 16, 16),
                          attention=(False, False, True), layers_per_block=1)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in denoiser.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return ddpm.DiffusionModel(denoiser.eval(), ddpm.NoiseSchedule(), classes, dataset, name=name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def models():
    return {"mnist": tiny("mnist", 28, 1, DIGITS, "mnist"), "emoji": tiny("emoji", 32, 3, EMOJI, "emoji")}


@pytest.fixture(scope="module")
def server(models):
    """The app on a free port, in this process. One torch thread: tiny models gain nothing from two, and
    on a shared 2-core machine two threads spin against each other."""
    from gradio_client import Client

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    demo = app.build_demo(models)
    _, url, _ = app.launch(demo, server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    yield url, Client(url, verbose=False)
    demo.close()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def client(server):
    return server[1]


def png(tmp_path, arr, name="img.png", mode=None) -> str:
    path = tmp_path / name
    image = Image.fromarray(arr) if mode is None else Image.fromarray(arr).convert(mode)
    image.save(path)
    return str(path)


def editor(background: str | None, layers=(), composite=None) -> dict:
    from gradio_client import handle_file

    return {"background": handle_file(background) if background else None,
            "layers": [handle_file(p) for p in layers], "composite": composite}


def digit_picture(size=224) -> np.ndarray:
    """A dark '7'-ish stroke on white paper, like a photo of a handwritten digit."""
    arr = np.full((size, size), 255, np.uint8)
    s = size // 8
    arr[2 * s:3 * s, 2 * s:6 * s] = 20
    for k in range(4 * s):
        c = 6 * s - k // 2
        arr[3 * s + k, c - s // 2:c + s // 2] = 20
    return arr


def layer(size=224, rows=slice(112, None), alpha=200) -> np.ndarray:
    arr = np.zeros((size, size, 4), np.uint8)
    arr[rows] = (255, 40, 90, alpha)
    return arr


def app_error(call, case: str = "") -> str:
    """The message of the gr.Error that ``call`` must raise."""
    from gradio_client.exceptions import AppError

    try:
        call()
    except AppError as err:
        return str(err)
    pytest.fail(f"no error raised{' for ' + case if case else ''}")


# -- every endpoint with its defaults ------------------------------------------------------------------
def test_api_names(client):
    names = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {"/generate", "/forward", "/sdedit", "/inpaint", "/anagram", "/hybrid"} <= names
    assert not any(n.startswith(("/lambda", "/f_", "/on_", "/update")) for n in names), names


def test_generate_defaults_stream_a_preview_then_a_labelled_grid_and_a_gif(client):
    job = client.submit(api_name="/generate")
    outputs = list(job)
    assert len(outputs) >= 2, "a preview must be streamed before the final grid"
    assert outputs[0][2].startswith("step 1/20")
    image, files, status = job.result()
    assert status.startswith("Done: mnist · 20 images") and "seed 0" in status and "dpm++ 20 steps" in status
    grid = Image.open(image)
    tile = 28 * (im.display_scale(28) // 2)
    assert grid.mode == "RGB" and grid.width == 4 + 10 * (tile + 4) and 2 * tile < grid.height < 3 * tile  # a column per class
    names = sorted(p.rsplit("/", 1)[-1] for p in files)
    assert names == ["denoising.gif", "samples.png"]
    gif = Image.open(next(p for p in files if p.endswith(".gif")))
    assert gif.n_frames == 21  # 20 recorded steps and the result


def test_every_library_sampler_is_offered():
    assert sorted(value for _, value in app.SAMPLERS) == sorted(ddpm.SAMPLERS)


@pytest.mark.parametrize("sampler", ["ddim", "dpm++sde"])  # a stochastic one draws its step noise from the seed too
def test_generate_colour_model_and_reproducible_seed(client, sampler):
    args = {"model": "emoji", "classes": EMOJI[:2], "per_class": 1, "sampler": sampler, "steps": 4, "guidance": 2,
            "seed": 7, "api_name": "/generate"}
    first = np.asarray(Image.open(client.predict(**args)[0]))
    second = np.asarray(Image.open(client.predict(**args)[0]))
    assert first.shape[2] == 3 and np.array_equal(first, second)
    tiles = first[4:4 + 32 * (im.display_scale(32) // 2), 4:4 + 32 * (im.display_scale(32) // 2)]
    assert tiles.std(axis=2).mean() > 1, "a colour model gives colour tiles"


def test_forward_defaults(client):
    *pictures, note = client.predict(api_name="/forward")
    sizes = {Image.open(p).size for p in pictures}
    assert len(pictures) == 4 and sizes == {(28 * im.display_scale(28),) * 2}
    assert note.startswith("t = 500")


def test_every_seed_the_box_allows_is_used_exactly(client):
    def noisy(seed):
        *pictures, note = client.predict(seed=seed, api_name="/forward")
        return np.asarray(Image.open(pictures[1])), note
    top, note = noisy(2**63 - 1)  # the seed box's maximum
    assert f"seed {2**63 - 1}" in note
    (a, _), (b, note) = noisy(2**62), noisy(2**62 + 1)  # one apart, above float64's whole numbers
    assert f"seed {2**62 + 1}" in note and not np.array_equal(a, b)


def test_sdedit_defaults_give_one_result_per_strength(client):
    gallery, seen, status = client.predict(api_name="/sdedit")
    assert [g["caption"] for g in gallery] == [f"{s:g}" for s in app.STRENGTHS]
    assert all(Image.open(g["image"]).size == (224, 224) for g in gallery)
    assert Image.open(seen).size == (224, 224) and status.startswith("Done") and " ran " not in status


def test_sdedit_says_which_strengths_ran_the_same_steps(client):
    gallery, _, status = client.predict(steps=3, api_name="/sdedit")
    assert len(gallery) == len(app.STRENGTHS) == 5
    assert status.endswith("· strengths 0.2 and 0.4 both ran 1 of 3 steps; 0.6 and 0.8 both ran 2 of 3 steps "
                           "(more steps tell them apart)")


def test_inpaint_defaults_keep_the_unmasked_half(client):
    seen, result, status = client.predict(api_name="/inpaint")
    assert "392 of 784 pixels" in status and "RePaint" in status  # the preset mask: the lower half
    overlay = np.asarray(Image.open(seen).convert("RGB")).astype(int)
    assert overlay.shape == (224, 224, 3)
    assert (overlay[150:, :, 0] - overlay[150:, :, 1]).mean() > 50, "the masked half is tinted"
    assert Image.open(result).width > 224


def test_status_and_captions_name_what_ran(client, models):
    """Classes given by index or in any case are shown as the model spells them; a run with no class says
    "any", not None; one step is "1 step"."""
    assert app._classes(models["emoji"], ["1", "smileys & emotion"]) == ["People & Body", "Smileys & Emotion"]
    assert app._classes(models["emoji"], ["1", "0", "people & body"]) == ["People & Body", "Smileys & Emotion"]  # once
    assert app._target(models["emoji"], "2") == "Animals & Nature" and app._target(models["emoji"], "(none)") is None
    assert app.run_text(ddpm.Settings(steps=1, seed=4)) == "dpm++ 1 step · guidance 1.5 · seed 4"
    _, status = client.predict(class_a="(none)", class_b="(none)", count=1, steps=1, api_name="/anagram")
    assert status.startswith("Done: mnist · any / any flip_v · dpm++ 1 step · guidance 3 · seed 0"), status


def test_anagram_and_hybrid_defaults(client):
    grid, status = client.predict(api_name="/anagram")
    assert status.startswith("Done: mnist · 2 / 5 flip_v") and Image.open(grid).width > 224
    large, small, status = client.predict(api_name="/hybrid")
    big, little = Image.open(large), Image.open(small)
    assert big.width > 4 * little.width and little.height < 40  # from afar: model resolution


@pytest.mark.parametrize("view", ["flip_v", "patches:7", "negate"])
def test_anagram_views(client, view):
    _, status = client.predict(class_a="1", class_b="7", view=view, count=1, **FAST, api_name="/anagram")
    assert f"1 / 7 {view} ·" in status  # the jigsaw with its tile size


# -- uploads and sketches through the API ----------------------------------------------------------------
def test_sdedit_with_a_sketch_on_blank_paper(client, tmp_path):
    stroke = np.zeros((256, 256, 4), np.uint8)
    stroke[60:200, 120:136] = (0, 0, 0, 255)  # a black "1"
    gallery, seen, _ = client.predict(image=editor(None, [png(tmp_path, stroke, "stroke.png")]), strengths=[0.5],
                                      **FAST, api_name="/sdedit")
    model_view = np.asarray(Image.open(seen).convert("L"))[::8, ::8]
    assert len(gallery) == 1 and model_view[5:23, 10:18].max(1).min() > 200 and model_view[:, :6].max() < 30


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "CMYK", "I;16", "1"])
def test_odd_image_modes_are_accepted(client, tmp_path, mode):
    path = tmp_path / "odd.png"
    picture = Image.fromarray(digit_picture())
    picture = picture.convert("I;16") if mode == "I;16" else picture.convert(mode)
    picture.save(path.with_suffix(".tiff" if mode == "CMYK" else ".png"))
    path = path.with_suffix(".tiff" if mode == "CMYK" else ".png")
    *pictures, _ = client.predict(image=editor(str(path)), t=100, api_name="/forward")
    seen = np.asarray(Image.open(pictures[0]).convert("L"))[::8, ::8]
    assert seen.max() > 200 and seen[0].max() < 30, f"{mode}: a light-paper digit becomes white on black"


def test_inpaint_with_an_upload_and_a_painted_stroke(client, tmp_path):
    *_, status = client.predict(
        image=editor(png(tmp_path, digit_picture()), [png(tmp_path, layer(rows=slice(0, 56)), "mask.png")]),
        target="3", repaint=False, count=2, sampler="dpm++", **FAST, api_name="/inpaint")
    assert "196 of 784 pixels" in status and "target 3" in status and "centre" not in status
    wide, paint = np.full((224, 320), 255, np.uint8), np.zeros((224, 320, 4), np.uint8)
    wide[40:180, 150:170], paint[:, :48] = 0, (255, 40, 90, 255)  # paint only outside the centre square
    with pytest.raises(Exception, match="outside the centre 224x224 square"):  # said, not silently ignored
        client.predict(image=editor(png(tmp_path, wide, "wide.png"), [png(tmp_path, paint, "side.png")]), **FAST,
                       api_name="/inpaint")
    paint[:, 48:160] = (255, 40, 90, 255)
    *_, status = client.predict(image=editor(png(tmp_path, wide, "wide.png"), [png(tmp_path, paint, "left.png")]),
                                **FAST, api_name="/inpaint")
    assert "used the centre 224×224 of the 320×224 picture" in status


# -- bad input: a readable error, and the app keeps serving ---------------------------------------------
def test_bad_inputs_give_readable_errors(client, tmp_path):
    blank = png(tmp_path, np.zeros((64, 64, 4), np.uint8), "blank.png")
    white = png(tmp_path, np.full((64, 64, 3), 255, np.uint8), "white.png")
    digit = png(tmp_path, digit_picture(), "digit.png")
    cases = {
        "no image": lambda: client.predict(image=None, api_name="/forward"),
        "upload one, pick an example": lambda: client.predict(  # a bare file, not the editor's dict
            image=editor(digit)["background"], api_name="/sdedit"),
        "sketch is empty": lambda: client.predict(image=editor(None, [blank]), api_name="/sdedit"),
        "blank": lambda: client.predict(image=editor(white), api_name="/forward"),
        "too small": lambda: client.predict(image=editor(png(tmp_path, np.zeros((1, 1), np.uint8), "dot.png")),
                                             api_name="/forward"),
        "too large": lambda: client.predict(image=editor(png(tmp_path, np.zeros((8, 5000), np.uint8), "wide.png")),
                                            api_name="/forward"),
        "mask is empty": lambda: client.predict(image=editor(digit), **FAST, api_name="/inpaint"),
        "covers the whole image": lambda: client.predict(
            image=editor(digit, [png(tmp_path, layer(rows=slice(None)), "full.png")]), **FAST, api_name="/inpaint"),
        "no image to inpaint": lambda: client.predict(image=editor(None, [png(tmp_path, layer(), "m.png")]),
                                                      api_name="/inpaint"),
        "cannot resample": lambda: client.predict(sampler="dpm++", repaint=True, steps=20, api_name="/inpaint"),
        "unknown class": lambda: client.predict(classes=["banana"], **FAST, api_name="/generate"),
        "pick at least one class": lambda: client.predict(classes=[], **FAST, api_name="/generate"),
        "at least one strength": lambda: client.predict(strengths=[], api_name="/sdedit"),
        "unknown view": lambda: client.predict(view="sideways", api_name="/anagram"),
        "patch size": lambda: client.predict(view="patches:5", api_name="/anagram"),
        "no model": lambda: client.predict(model="/nowhere/at/all", **FAST, api_name="/generate"),
        "not valid JSON": lambda: client.predict(model=str(corrupt_checkpoint(tmp_path)), **FAST, api_name="/generate"),
    }
    for expected, call in cases.items():
        message = app_error(call, expected)
        assert expected in message, f"{expected!r} not in {message!r}"
    _, _, status = client.predict(per_class=1, classes=["3"], **FAST, api_name="/generate")
    assert status.startswith("Done"), "the app still serves after the errors"


@pytest.mark.parametrize("endpoint, args", [
    ("/generate", {"steps": 5000}), ("/generate", {"steps": 0}), ("/generate", {"guidance": -1}),
    ("/generate", {"seed": -5}), ("/generate", {"per_class": 100}), ("/forward", {"t": 1000}),
    ("/hybrid", {"sigma": 0}), ("/inpaint", {"count": 99}), ("/sdedit", {"strengths": [1.5]}),
])
def test_out_of_range_numbers_are_refused(client, endpoint, args):
    message = app_error(lambda: client.predict(**args, api_name=endpoint))
    assert any(word in message for word in ("less than", "greater than", "between", "from", "must", "not in")), message


def corrupt_checkpoint(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text("{ not json")
    return folder


def test_a_checkpoint_folder_loads_into_the_session(client, models, tmp_path):
    folder = models["mnist"].save(tmp_path / "mine")
    _, _, status = client.predict(model=str(folder), classes=["1", "2"], per_class=1, **FAST, api_name="/generate")
    assert status.startswith(f"Done: {ddpm.load(folder).name} · 2 images")


def test_an_unconditional_diffusers_unet_folder_generates(client, tmp_path):
    from diffusers import UNet2DModel

    unet = UNet2DModel(sample_size=16, in_channels=1, out_channels=1, block_out_channels=(8, 16),
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       layers_per_block=1, norm_num_groups=8)
    unet.save_pretrained(tmp_path / "unet")
    image, _, status = client.predict(model=str(tmp_path / "unet"), classes=[], per_class=3, **FAST,
                                      api_name="/generate")
    assert " · 3 images · " in status and Image.open(image).width > 3 * 16


# -- the app with no model, and with a broken bundled checkpoint -----------------------------------------
def test_app_starts_without_models_and_says_so():
    from gradio_client import Client

    demo = app.build_demo({})
    _, url, _ = app.launch(demo, server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        assert any("No bundled model" in str(getattr(b, "value", "")) for b in demo.blocks.values())
        assert "no model" in app_error(lambda: Client(url, verbose=False).predict(api_name="/generate"))
    finally:
        demo.close()


def test_load_bundled_reports_a_broken_checkpoint(monkeypatch, tmp_path, models):
    import ddpm.checkpoint as ckpt

    models["mnist"].save(tmp_path / "mnist")
    (tmp_path / "emoji").mkdir()
    (tmp_path / "emoji" / "config.json").write_text(json.dumps({"format": ckpt.FORMAT, "family": "scratch"}))
    monkeypatch.setattr(ckpt, "CHECKPOINTS_DIR", tmp_path)
    loaded, problems = app.load_bundled()
    assert list(loaded) == ["mnist"] and len(problems) == 1 and problems[0].startswith("`emoji`")


@pytest.mark.parametrize("classes, per_class, ncol", [(10, 3, 10), (13, 1, 7), (26, 1, 9), (26, 2, 12), (26, 5, 10),
                                                        (26, 8, 8)])
def test_a_grid_of_many_classes_keeps_each_class_in_one_row_and_stays_wide(classes, per_class, ncol):
    names = [f"c{i}" for i in range(classes)]
    labels, captions, got = app._layout(SimpleNamespace(conditional=True), names, per_class)
    assert got == ncol and labels == captions and len(labels) == classes * per_class
    rows = [labels[i:i + ncol] for i in range(0, len(labels), ncol)]
    if classes <= 12:  # a column per class
        assert all(row == names for row in rows)
    else:  # a class's images side by side, never split over two rows; as few rows as 12 columns allow
        assert all(len(row) % per_class == 0 and row[::per_class] == sorted(set(row), key=row.index) for row in rows)
        assert ncol <= max(12, per_class) and len(rows) == -(-classes // max(1, 12 // per_class))


# -- the step scrubber's data ----------------------------------------------------------------------------
def test_runs_keep_at_most_max_frames_and_render_data_uris(models):
    model = models["mnist"]
    job = ddpm.generate(model, ["1", "2"], settings=ddpm.Settings(sampler="ddpm", steps=150))
    ticks, run_job = [], app.stream_job(job, lambda step: ticks.append(step.index),
                                       lambda step, status, first: (status, first))
    assert next(run_job) == ("step 1/150 · t = 999", True), "the first step is reported at once"
    with pytest.raises(StopIteration) as done:
        while True:
            assert next(run_job)[1] is False
    x, frames = done.value.value
    assert ticks == list(range(150))
    run = app.Run("test", app.tracks_from(frames, ["1", "2"], x))
    assert len(run.tracks) == 2 and len(run.tracks[0].t) <= app.MAX_FRAMES + 2
    assert run.tracks[0].t[0] == 999 and run.tracks[0].x.dtype == np.uint8 and run.tracks[0].x.shape[1:] == (28, 28, 1)
    last = run.tracks[1]  # ends on the result: x_t and x0 are the sample itself, no noise left
    assert last.t[-1] == -1 and min(last.t[:-1]) >= 0
    assert np.array_equal(last.x[-1], im.to_uint8(x[1:2], rgb=False)[0]) and np.array_equal(last.x0[-1], last.x[-1])
    assert not np.array_equal(last.x[-2], last.x[-1])
    value = app.scrub_value(run, [1])
    assert value["rows"][0]["caption"] == "2" and value["rows"][0]["frames"][0]["x0"].startswith("data:image/png;base64,")
    assert [f["t"] for f in value["rows"][0]["frames"]][-2:] == [f"t = {last.t[-2]}", "the result"]
    assert app.scrub_value(None) is None


# -- ddpm.images: preparing uploads, sketches and masks ---------------------------------------------------
def centre_of_mass(x: torch.Tensor) -> tuple[float, float]:
    ink = (x[0] + 1) / 2
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    return float((ink * ys).sum() / ink.sum()), float((ink * xs).sum() / ink.sum())


def test_prepare_image_makes_an_mnist_like_glyph(models):
    paper = np.full((300, 500), 255, np.uint8)
    paper[40:140, 350:380] = 0  # a small dark bar, far off centre, on white paper
    x = im.prepare_image(paper, models["mnist"])
    assert x.shape == (1, 28, 28) and x.min() >= -1 and x.max() <= 1
    assert x[0, 0].max() == -1 and x.max() > 0.9, "inverted to white on black"
    rows = torch.nonzero((x[0] > 0).any(1)).flatten()
    assert 18 <= rows[-1] - rows[0] + 1 <= 20, "fitted into a 20-px box"
    cy, cx = centre_of_mass(x)
    assert abs(cy - 13.5) < 1 and abs(cx - 13.5) < 1, "centred by centre of mass"


def test_an_illusion_keeps_its_classes_and_transform_together_across_a_model_switch():
    letters = tiny("letters", 28, 1, [chr(c) for c in range(65, 91)], "letters")
    preset = app._illusions(letters, app.ANAGRAMS, "rot180")[0]
    assert preset[2] != "flip_v"
    after = functools.partial(app.illusion_after_switch, letters, app.ANAGRAMS, "rot180")
    assert after("2", "5", "flip_v", True) == preset, "mnist's pair gone: its transform goes with it"
    assert after("N", "Z", "flip_v", True) == ("N", "Z", "flip_v"), "a pair that fits keeps its transform"
    assert after("N", "Z", "patches:8", True) == preset, "a transform the model cannot take is reset"
    hybrid = app.illusion_after_switch(letters, app.HYBRIDS, 1.0, "0", "1", 2.5)
    assert hybrid == app._illusions(letters, app.HYBRIDS, 1.0)[0]
    assert app.illusion_after_switch(letters, app.HYBRIDS, 1.0, "O", "I", 2.5) == ("O", "I", 2.5)


def test_prepare_image_keeps_a_fashion_item_where_the_dataset_put_it():
    """Fashion-MNIST fits an item's bounding box (not its centre of mass) into the canvas: a boot, heavy at
    the sole, shown at 8x as the app's examples are, reaches a fashion model where it was."""
    boot = np.zeros((28, 28), np.float32)
    boot[7:12, 20:28], boot[12:22, 0:28] = 0.5, 1.0  # rows 7..21, the mass low and to the right
    x = im.prepare_image(np.kron(1 - boot, np.ones((8, 8), np.float32)), tiny("fashion", 28, 1, DIGITS, "fashion"))
    ink = (x[0].numpy() + 1) / 2
    rows = np.flatnonzero((ink > 0.1).any(1))
    assert (rows[0], rows[-1]) == (7, 21)
    assert np.abs(ink - boot).mean() < 0.02


def test_prepare_image_for_colour_and_keep_layout(models):
    rgba = np.zeros((100, 60, 4), np.uint8)
    rgba[..., 0], rgba[40:60, :, 3] = 255, 255  # a red band on transparent: composited on white
    x = im.prepare_image(rgba, models["emoji"])
    assert x.shape == (3, 32, 32)
    assert torch.allclose(x[:, 0, 0], torch.ones(3)) and x[1, 16, 16] < -0.9 < 0.9 < x[0, 16, 16]
    kept = im.prepare_image(digit_picture(), models["mnist"], keep_layout=True)
    assert kept.shape == (1, 28, 28) and kept[0, 0].max() == -1 and kept[0, 7:10, 8:20].mean() > 0.5


@pytest.mark.parametrize("bad, message", [
    (None, "no image"), (np.zeros((1, 1), np.uint8), "too small"), (np.zeros((10, 4100), np.uint8), "too large"),
    (np.full((64, 64), 128, np.uint8), "blank"), (np.zeros((4, 4, 5), np.uint8), "shaped"),
    (np.full((32, 32), np.nan, np.float32), "NaN"),
])
def test_prepare_image_refuses_bad_pictures(models, bad, message):
    with pytest.raises(ValueError, match=message):
        im.prepare_image(bad, models["mnist"])


def test_a_huge_image_file_is_refused_before_it_is_decoded(models, tmp_path, monkeypatch):
    Image.fromarray(np.zeros((8, 5000), np.uint8)).save(tmp_path / "wide.png")
    from PIL import ImageFile

    decoded, load = [], ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self) or load(self))
    with pytest.raises(ValueError, match=r"the image is 5000x8 px: too large \(at most 4096 px a side\)"):
        im.prepare_image(str(tmp_path / "wide.png"), models["mnist"])
    assert decoded == []
    Image.fromarray(np.zeros((100, 100), np.uint8)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # so 100x100 is what 40000x40000 is: PIL refuses it
    with pytest.raises(ValueError, match=r"bomb.png' is far too large \(at most 4096 px a side\)"):
        im.prepare_image(str(tmp_path / "bomb.png"), models["mnist"])


def test_prepare_sketch_and_mask_from_editor(models):
    empty = {"background": None, "layers": [np.zeros((256, 256, 4), np.uint8)], "composite": None}
    with pytest.raises(ValueError, match="sketch is empty"):
        im.prepare_sketch(empty, models["mnist"])
    stroke = np.zeros((256, 256, 4), np.uint8)
    stroke[40:220, 100:140] = (200, 30, 30, 255)
    x = im.prepare_sketch({"background": None, "layers": [stroke], "composite": None}, models["emoji"])
    assert x.shape == (3, 32, 32) and x[0].mean() > x[1].mean(), "a red sketch stays red"
    flat = np.full((256, 256, 3), 255, np.uint8)
    flat[..., 1:][stroke[..., 3] > 0] = 30  # the red stroke flattened onto white paper
    only = im.prepare_sketch({"background": None, "layers": [], "composite": flat}, models["emoji"])
    as_upload = im.prepare_sketch({"background": flat, "layers": [], "composite": None}, models["emoji"])
    assert torch.equal(only, as_upload)  # a composite alone (an API client's) is taken as the upload
    with pytest.raises(ValueError, match="no image: upload one"):
        im.prepare_sketch({"background": None, "layers": [], "composite": None}, models["emoji"])
    painted = np.zeros((224, 224, 4), np.uint8)
    painted[:11, :, 3] = 255      # 11 of 224 rows: all of model row 0 and 37% of row 1
    painted[100:103, :, 3] = 255  # 3 rows: 37% of one model row
    mask = im.mask_from_editor({"background": np.zeros((224, 224, 4), np.uint8), "layers": [painted]}, models["mnist"])
    assert mask.shape == (28, 28) and mask.dtype == bool
    assert mask[0].all() and mask[1].all() and not mask[2].any() and mask[12].all() and mask.sum() == 3 * 28
    with pytest.raises(ValueError, match="mask is empty"):
        im.mask_from_editor({"background": None, "layers": [np.zeros((8, 8, 4), np.uint8)]}, models["mnist"])


def test_an_untouched_example_follows_the_model_and_a_user_picture_stays():
    """After a model switch the image boxes show the new model's first example, but only while they show
    another model's example untouched: a stroke, a painted mask or an upload is never replaced."""
    pictures = {name: sorted(str(p) for p in (app.EXAMPLES_DIR / name).glob("*.png"))[:3]
                for name in ("mnist", "fashion")}

    def as_sent(path):  # what the editor sends for an untouched picture
        return {"background": app._picture(path), "layers": [], "composite": app._picture(path)}

    def masked(path):  # ... and for an untouched preset mask
        return as_sent(app.preset_mask(path)["composite"])

    for value_of, sent in ((lambda p: p, as_sent), (app.preset_mask, masked)):
        own = {name: [value_of(p) for p in paths] for name, paths in pictures.items()}
        every = own["mnist"] + own["fashion"]
        digit, coat = pictures["mnist"][1], pictures["fashion"][2]
        assert app.next_example(sent(digit), own["fashion"], every) == own["fashion"][0]
        assert app.next_example(sent(coat), own["fashion"], every) is None, "already one of this model's"
        assert app.next_example(sent(coat), own["mnist"], every) == own["mnist"][0]
        stroked = sent(digit)
        stroked["composite"] = stroked["composite"].copy()
        stroked["composite"][100:110, 100:140] = (229, 57, 53, 255)
        assert app.next_example(stroked, own["fashion"], every) is None, "the user's stroke stays"
        assert app.next_example(None, own["fashion"], every) is None
        assert app.next_example(sent(digit), [], every) is None, "a model without examples leaves the box alone"
    assert app.shows_example({"composite": app._picture(digit)[..., 0]}, digit), "a grey composite"
    assert not app.shows_example({"composite": app._picture(digit)[:100]}, digit)


def test_model_info_states_the_cards_measured_quality_with_its_floor(models):
    bundled = ddpm.load("checkpoints/mnist")
    row = bundled.meta["metrics"]["rows"][0]
    info = app.describe(bundled)
    assert f"class accuracy {row['accuracy']:.3f}, FID {row['fid']:.1f}, floor {row['fid_floor']:.1f}" in info
    assert "**mnist**" in info and "1×28×28" in info
    assert "accuracy" not in app.describe(models["emoji"])  # untrained: nothing measured, nothing claimed


def test_model_info_headlines_the_row_at_the_models_own_guidance(models):
    model = models["emoji"]
    rows = [{"setting": f"dpm++ 20 steps, guidance {g:g}", "guidance": g, "accuracy": acc, "fid": fid,
             "fid_floor": 60.0} for g, acc, fid in ((1.5, 0.71, 50.0), (3.0, 0.998, 55.5))]
    model.meta.update(metrics={"rows": rows}, sampling={"guidance": 3.0})
    try:
        assert "class accuracy 0.998, FID 55.5, floor 60.0 (dpm++ 20 steps, guidance 3)" in app.describe(model)
        model.meta["sampling"] = {"guidance": 2.0}  # no row at its default: the card's first
        assert "class accuracy 0.710, FID 50.0" in app.describe(model)
    finally:
        del model.meta["metrics"], model.meta["sampling"]


def test_display_helpers(tmp_path):
    x = torch.linspace(-1, 1, 2 * 3 * 8 * 8).reshape(2, 3, 8, 8)
    assert im.to_display(x, 4).shape == (2, 32, 32, 3)
    sheet = im.captioned_grid(x, ["a", "a very long caption indeed"], ncol=2, scale=4)
    assert sheet.width == 4 + 2 * (32 + 4) and sheet.height > 32 + 8
    one_line = im.captioned_grid(x, ["a", "b"], ncol=2, scale=4)
    assert sheet.height == one_line.height + 12, "a caption too wide for its tile takes a second line"
    fits = lambda s: len(s) <= 9  # noqa: E731 (9 characters a line)
    assert im.caption_lines("Smileys & Emotion", fits) == ["Smileys &", "Emotion"]
    assert im.caption_lines("People & Body", fits) == ["People", "& Body"]
    assert im.caption_lines("Flags", fits) == ["Flags"]
    assert im.caption_lines("Objects · as is", fits) == ["Objects", "as is"]  # no line starts or ends on ·
    assert im.caption_lines("Extraordinarily long", fits) == ["Extraord…", "long"]
    path = im.save_gif([im.to_display(x[0], 2), im.to_display(x[1], 2)], tmp_path / "a.gif")
    assert Image.open(path).n_frames == 2
    overlay = im.mask_overlay(x[0], np.eye(8, dtype=bool), 2)
    assert overlay.shape == (16, 16, 3) and overlay[0, 0, 0] > overlay[0, 0, 1]
    assert im.png_data_uri(np.zeros((4, 4, 1), np.uint8)).startswith("data:image/png;base64,")


# -- publishing to a Space, up to the network ---------------------------------------------------------------
class FakeHfApi:
    def __init__(self):
        self.calls = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs["repo_id"], kwargs))


def space_folder(tmp_path, front_matter=True):
    (tmp_path / "app.py").write_text("print('hi')\n")
    (tmp_path / "requirements.txt").write_text("gradio\n")
    header = "---\ntitle: Diffusion Lab\nsdk: gradio\napp_file: app.py\n---\n" if front_matter else ""
    (tmp_path / "README.md").write_text(header + "# Diffusion Lab\n")
    return tmp_path


def test_publish_creates_the_space_and_uploads_the_app(tmp_path):
    api = FakeHfApi()
    url = publish.publish("someone/diffusion-lab", root=space_folder(tmp_path), api=api)
    assert url == "https://huggingface.co/spaces/someone/diffusion-lab"
    (create, repo, kw), (upload, _, up) = api.calls
    assert (create, repo, kw["repo_type"], kw["space_sdk"]) == ("create_repo", "someone/diffusion-lab", "space", "gradio")
    assert upload == "upload_folder" and up["repo_type"] == "space" and up["folder_path"] == str(tmp_path)
    assert {"app.py", "checkpoints/*/*", "ddpm/*.py", "examples/*/*.png"} <= set(up["allow_patterns"])


@pytest.mark.parametrize("repo_id, front_matter, message", [
    ("no-slash", True, "USER/NAME"), ("a/b/c", True, "USER/NAME"), ("me/space", False, "front matter")])
def test_publish_refuses_what_would_not_work(tmp_path, repo_id, front_matter, message):
    api = FakeHfApi()
    with pytest.raises(ValueError, match=message):
        publish.publish(repo_id, root=space_folder(tmp_path, front_matter), api=api)
    assert api.calls == []


def test_publish_command_line_dry_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(publish, "REPO_ROOT", space_folder(tmp_path))
    assert publish.main(["me/lab", "--dry-run"]) == 0
    assert "would publish" in capsys.readouterr().out


@pytest.mark.parametrize("api, args, at", [
    ("/sdedit", {"strengths": [1.0]}, 2), ("/inpaint", {"repaint": False}, 2), ("/anagram", {}, 1), ("/hybrid", {}, 2)])
def test_every_run_streams_its_step_and_can_be_stopped(client, api, args, at):
    """Each tab's run reports "step k/N" while it works, and a Stop (a cancel) ends it there."""
    import time

    job = client.submit(sampler="ddpm", steps=1000, **args, api_name=api)
    deadline = time.time() + 60
    while not job.outputs() and time.time() < deadline:
        time.sleep(0.05)
    assert job.outputs() and "step 1/1000 · t = 999" in job.outputs()[0][at]
    assert job.cancel()
    _, _, status = client.predict(classes=["1"], per_class=1, **FAST, api_name="/generate")
    assert status.startswith("Done") and job.status().code.name == "CANCELLED"
    assert app.stopped("strength 0.5: step 3/10 · t = 400") == "Stopped at strength 0.5: step 3/10 · t = 400"
    assert not isinstance(app.stopped("Done: mnist · 2 images"), str), "a finished run keeps its status"


def test_repaint_says_why_it_counts_more_steps_than_asked(client):
    job = client.submit(sampler="ddim", steps=30, api_name="/inpaint")
    job.result()
    first = job.outputs()[0][2]
    assert first.startswith("step 1/80 · t = ") and first.endswith(" (RePaint: 30 steps, going back to redo stretches)")


def test_sdedit_shows_each_strength_as_it_finishes(client):
    job = client.submit(strengths=[0.2, 1.0], **FAST, api_name="/sdedit")
    outputs = list(job)
    second = next(o for o in outputs if o[2].startswith("strength 1: step 1/"))
    assert len(second[0]) == 1, "the strength-0.2 result is shown while strength 1 runs"
    assert len(job.result()[0]) == 2


def test_generate_can_be_stopped_and_the_queue_moves_on(client):
    import time

    job = client.submit(sampler="ddpm", steps=1000, api_name="/generate")
    deadline = time.time() + 60
    while not job.outputs() and time.time() < deadline:
        time.sleep(0.05)
    assert job.outputs() and job.outputs()[0][2].startswith("step 1/1000")
    assert job.cancel()
    _, _, status = client.predict(classes=["1"], per_class=1, **FAST, api_name="/generate")
    assert status.startswith("Done") and job.status().code.name == "CANCELLED"
