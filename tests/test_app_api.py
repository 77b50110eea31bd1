"""The app through a real server and gradio_client, with tiny random models (noise images are fine: sizes,
types, statuses and error messages are what is checked): every endpoint, streaming and Stop, uploads and
sketches, bad input, and which models the Model box may load."""
from __future__ import annotations

import json
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

import app
import ddpm
from app_fixtures import DIGITS, EMOJI, FAST, app_error, digit_picture, editor, layer, png, serve, tiny_models
from ddpm import images as im
from diffusion_lab.lab import Lab, load_bundled
from diffusion_lab.streaming import stopped
from diffusion_lab.tabs.sdedit import STRENGTHS


@pytest.fixture(scope="module")
def models():
    return tiny_models()


@pytest.fixture(scope="module")
def client(models):
    import torch
    from gradio_client import Client

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    demo, url = serve(models)
    yield Client(url, verbose=False)
    demo.close()
    torch.set_num_threads(threads)


# -- every endpoint with its defaults ------------------------------------------------------------------
def test_api_names(client):
    names = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {"/generate", "/forward", "/sdedit", "/inpaint", "/anagram", "/hybrid"} <= names
    assert not any(n.startswith(("/lambda", "/f_", "/on_", "/update")) for n in names), names


def test_the_api_parameters_stay_as_they_were(client):
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    sampling = ["sampler", "steps", "guidance", "seed"]
    expected = {"/generate": ["model", "classes", "per_class", *sampling],
                "/forward": ["model", "image", "t", "seed", "blur_sigma"],
                "/sdedit": ["model", "image", "target", "strengths", *sampling],
                "/inpaint": ["model", "image", "target", "repaint", "count", *sampling],
                "/anagram": ["model", "class_a", "class_b", "view", "count", *sampling, "candidates", "view_guidance"],
                "/hybrid": ["model", "low", "high", "sigma", "count", *sampling, "candidates", "high_guidance"]}
    for name, params in expected.items():
        assert [p["parameter_name"] for p in api[name]["parameters"]] == params, name
        if name != "/forward":  # a run: its streamed twin takes the same
            assert [p["parameter_name"] for p in api[f"{name}_stream"]["parameters"]] == params, name


def test_generate_defaults_stream_a_preview_then_a_labelled_grid_and_a_gif(client):
    job = client.submit(api_name="/generate_stream")
    outputs = list(job)
    assert len(outputs) >= 2, "a preview must be streamed before the final grid"
    assert outputs[0][1].startswith("step 1/20")
    image, status = job.result()
    assert status.startswith("Done: mnist · 20 images") and "seed 0" in status and "dpm++ 20 steps" in status
    grid = Image.open(image)
    tile = 28 * (im.display_scale(28) // 2)
    assert grid.mode == "RGB" and grid.width == 4 + 10 * (tile + 4) and 2 * tile < grid.height < 3 * tile  # a column per class
    # the downloads are asked for apart (the page asks as soon as the result is out): the result's PNG and a GIF
    files = client.predict(api_name="/generate_downloads")
    names = [p.rsplit("/", 1)[-1] for p in files]
    assert names == ["samples.png", "denoising.gif"]
    assert np.array_equal(np.asarray(Image.open(files[0])), np.asarray(grid)), "the grid shown is the PNG"
    gif = Image.open(files[1])
    assert gif.n_frames == 21  # 20 recorded steps and the result
    # x_t is noise for half a run: each frame shows the predicted x0 beside it (two grids at the GIF's scale)
    one = 4 + 10 * (28 * 2 + 4)
    assert gif.width == 2 * one + 8, gif.size


def test_generate_returns_the_streamed_run_whole_in_one_message(client):
    """/generate is /generate_stream's run (the page's) without its steps: one message, the same grid and
    status, the same session state (its downloads, its texts)."""
    args = {"classes": ["3", "8"], "per_class": 1, **FAST, "seed": 4}
    streamed = client.submit(**args, api_name="/generate_stream")
    streamed.result()
    texts = client.predict(api_name="/generate_texts")
    job = client.submit(**args, api_name="/generate")
    image, status = job.result()
    assert len(job.outputs()) == 1, "one message: the result"
    assert status.split(" · ")[:-1] == streamed.outputs()[-1][1].split(" · ")[:-1]  # all but the seconds
    assert np.array_equal(np.asarray(Image.open(image)), np.asarray(Image.open(streamed.outputs()[-1][0])))
    assert client.predict(api_name="/generate_texts") == texts
    png, gif = client.predict(api_name="/generate_downloads")
    assert np.array_equal(np.asarray(Image.open(png)), np.asarray(Image.open(image)))
    assert Image.open(gif).n_frames == FAST["steps"] + 1


def test_two_classes_of_eight_make_two_rows_not_a_strip(client):
    image, status = client.predict(classes=["1", "7"], per_class=8, **FAST, api_name="/generate")
    grid = Image.open(image)
    assert status.startswith("Done: mnist · 16 images") and grid.width > 3 * grid.height, grid.size


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
    assert [g["caption"] for g in gallery] == [f"{s:g}" for s in STRENGTHS]
    assert all(Image.open(g["image"]).size == (224, 224) for g in gallery)
    assert Image.open(seen).size == (224, 224) and status.startswith("Done") and " ran " not in status


def test_sdedit_says_which_strengths_ran_the_same_steps(client):
    gallery, _, status = client.predict(steps=3, api_name="/sdedit")
    assert len(gallery) == len(STRENGTHS) == 5
    assert status.endswith("· strengths 0.2 and 0.4 both ran 1 of 3 steps; 0.6 and 0.8 both ran 2 of 3 steps "
                           "(more steps tell them apart)")


def test_inpaint_defaults_keep_the_unmasked_half(client):
    seen, result, status = client.predict(api_name="/inpaint")
    assert "392 of 784 pixels" in status and "RePaint" in status  # the preset mask: the lower half
    overlay = np.asarray(Image.open(seen).convert("RGB")).astype(int)
    assert overlay.shape == (224, 224, 3)
    assert (overlay[150:, :, 0] - overlay[150:, :, 1]).mean() > 50, "the masked half is tinted"
    assert Image.open(result).width > 224


def test_status_and_captions_name_what_ran(client):
    _, status = client.predict(class_a="(none)", class_b="(none)", count=1, steps=1, api_name="/anagram")
    assert status.startswith("Done: mnist · any / any rot180 · dpm++ 1 step · guidance 3 · seed 0"), status


def test_anagram_and_hybrid_defaults(client):
    grid, status = client.predict(api_name="/anagram")
    assert status.startswith("Done: mnist · 6 / 9 rot180") and Image.open(grid).width > 224
    assert "no scores: this model ships no classifier" in status  # a tiny test model has none
    assert "transformed view guidance" not in status  # 0 by default: the same guidance for both views
    _, status = client.predict(view_guidance=4, steps=2, api_name="/anagram")
    assert "6 / 9 rot180 · transformed view guidance 4 · dpm++ 2 steps · guidance 3" in status, status
    large, small, status = client.predict(api_name="/hybrid")
    big, little = Image.open(large), Image.open(small)
    assert big.width > 2 * little.width and little.height < 80  # from afar: the image shrunk, as the score sees it
    assert "8 from afar, 3 up close · split at 1/4 · up-close guidance 6" in status, status


def test_illusions_keep_the_best_candidates_by_the_models_classifier(models, client):
    """With a classifier, n images x k candidates are drawn, every candidate is scored in both readings, the
    best of each k is kept, and the status and captions say how they scored."""
    import torch

    from ddpm.classifier import Classifier, ClassifierConfig

    torch.manual_seed(0)
    models["mnist"]._classifier = Classifier(ClassifierConfig(channels=1, num_classes=10)).eval()
    try:
        grid, status = client.predict(count=2, candidates=3, **FAST, api_name="/anagram")
        assert " of 6 candidates read as intended in every view by the mnist classifier, the best of each 3 kept" \
            in status, status
        large, small, status = client.predict(count=1, candidates=2, **FAST, api_name="/hybrid")
        assert " of 2 candidates read as intended" in status, status
        assert app_error(lambda: client.predict(count=8, candidates=9, api_name="/anagram"))
    finally:
        models["mnist"]._classifier = None


@pytest.mark.parametrize("view", ["flip_v", "patches:7", "negate"])
def test_anagram_views(client, view):
    _, status = client.predict(class_a="1", class_b="7", view=view, count=1, **FAST, api_name="/anagram")
    assert f"1 / 7 {view} ·" in status  # the jigsaw with its tile size


# -- streaming and Stop ------------------------------------------------------------------------------
def wait_for_output(job, seconds=60):
    deadline = time.time() + seconds
    while not job.outputs() and time.time() < deadline:
        time.sleep(0.05)
    return job.outputs()


@pytest.mark.parametrize("api, args, at", [
    ("/sdedit_stream", {"strengths": [1.0]}, 2), ("/inpaint_stream", {"repaint": False}, 2), ("/anagram_stream", {}, 1),
    ("/hybrid_stream", {}, 2)])
def test_every_run_streams_its_step_and_can_be_stopped(client, api, args, at):
    """Each tab's run reports "step k/N" while it works, and a Stop (a cancel) ends it there."""
    job = client.submit(sampler="ddpm", steps=1000, **args, api_name=api)
    outputs = wait_for_output(job)
    assert outputs and "step 1/1000 · t = 999" in outputs[0][at]
    assert job.cancel()
    _, status = client.predict(classes=["1"], per_class=1, **FAST, api_name="/generate")
    assert status.startswith("Done") and job.status().code.name == "CANCELLED"
    assert stopped("strength 0.5: step 3/10 · t = 400") == "Stopped at strength 0.5: step 3/10 · t = 400"
    assert not isinstance(stopped("Done: mnist · 2 images"), str), "a finished run keeps its status"


def test_generate_can_be_stopped_and_the_queue_moves_on(client):
    job = client.submit(sampler="ddpm", steps=1000, api_name="/generate_stream")
    outputs = wait_for_output(job)
    assert outputs and outputs[0][1].startswith("step 1/1000")
    assert job.cancel()
    _, status = client.predict(classes=["1"], per_class=1, **FAST, api_name="/generate")
    assert status.startswith("Done") and job.status().code.name == "CANCELLED"


def test_repaint_says_why_it_counts_more_steps_than_asked(client):
    job = client.submit(sampler="ddim", steps=30, api_name="/inpaint_stream")
    job.result()
    first = job.outputs()[0][2]
    assert first.startswith("step 1/80 · t = ") and first.endswith(" (RePaint: 30 steps, going back to redo stretches)")


def test_sdedit_shows_each_strength_as_it_finishes(client):
    job = client.submit(strengths=[0.2, 1.0], **FAST, api_name="/sdedit_stream")
    outputs = list(job)
    second = next(o for o in outputs if o[2].startswith("strength 1: step 1/"))
    assert len(second[0]) == 1, "the strength-0.2 result is shown while strength 1 runs"
    assert len(job.result()[0]) == 2


# -- uploads and sketches ----------------------------------------------------------------------------
def test_sdedit_with_a_sketch_on_blank_paper(client, tmp_path):
    stroke = np.zeros((256, 256, 4), np.uint8)
    stroke[60:200, 120:136] = (0, 0, 0, 255)  # a black "1"
    gallery, seen, _ = client.predict(image=editor(None, [png(tmp_path, stroke, "stroke.png")]), strengths=[0.5],
                                      **FAST, api_name="/sdedit")
    model_view = np.asarray(Image.open(seen).convert("L"))[::8, ::8]
    assert len(gallery) == 1 and model_view[5:23, 10:18].max(1).min() > 200 and model_view[:, :6].max() < 30


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "CMYK", "I;16", "1"])
def test_odd_image_modes_are_accepted(client, tmp_path, mode):
    path = tmp_path / ("odd.tiff" if mode == "CMYK" else "odd.png")
    picture = Image.fromarray(digit_picture())
    (picture.convert("I;16") if mode == "I;16" else picture.convert(mode)).save(path)
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


def test_a_stroke_on_a_preset_mask_adds_to_it(client, tmp_path):
    """An example's preset (its lower half, painted into the picture) and the user's stroke count together."""
    from diffusion_lab.examples import EXAMPLES_DIR, preset_mask

    preset = preset_mask(str(sorted((EXAMPLES_DIR / "mnist").glob("*.png"))[0]))
    *_, status = client.predict(image=editor(preset, [png(tmp_path, layer(rows=slice(0, 56)), "top.png")]),
                                repaint=False, count=1, **FAST, api_name="/inpaint")
    assert "588 of 784 pixels" in status, status  # 14 + 7 of 28 rows


# -- bad input: a readable error, and the app keeps serving ---------------------------------------------
def tall_png_header(tmp_path, side=20000) -> str:
    """A PNG that says it is side x side (a header and no pixel data): a 20000x20000 upload, in 57 bytes."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path = tmp_path / "huge.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IEND", b""))
    return str(path)


def truncated_png(tmp_path) -> str:
    full = tmp_path / "full.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (128, 128), np.uint8)).save(full)
    path = tmp_path / "truncated.png"
    path.write_bytes(full.read_bytes()[:3000])
    return str(path)


def text_file(tmp_path, name, text) -> str:
    (tmp_path / name).write_text(text)
    return str(tmp_path / name)


def corrupt_checkpoint(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text("{ not json")
    return folder


BAD_INPUTS = {  # expected words of the message: (endpoint, tmp_path -> the call's arguments)
    "no image": ("/forward", lambda d: {"image": None}),
    "upload one, pick an example": ("/sdedit", lambda d: {"image": editor(png(d, digit_picture()))["background"]}),
    "sketch is empty": ("/sdedit", lambda d: {"image": editor(None, [png(d, np.zeros((64, 64, 4), np.uint8))])}),
    "blank": ("/forward", lambda d: {"image": editor(png(d, np.full((64, 64, 3), 255, np.uint8)))}),
    "too small": ("/forward", lambda d: {"image": editor(png(d, np.zeros((1, 1), np.uint8)))}),
    "too large": ("/forward", lambda d: {"image": editor(png(d, np.zeros((8, 5000), np.uint8)))}),
    "mask is empty": ("/inpaint", lambda d: {"image": editor(png(d, digit_picture())), **FAST}),
    "covers the whole image": ("/inpaint", lambda d: {
        "image": editor(png(d, digit_picture()), [png(d, layer(rows=slice(None)), "full.png")]), **FAST}),
    "no image to inpaint": ("/inpaint", lambda d: {"image": editor(None, [png(d, layer(), "m.png")])}),
    "cannot resample": ("/inpaint", lambda d: {"sampler": "dpm++", "repaint": True, "steps": 20}),
    "unknown class": ("/generate", lambda d: {"classes": ["banana"], **FAST}),
    "pick at least one class": ("/generate", lambda d: {"classes": [], **FAST}),
    "at least one strength": ("/sdedit", lambda d: {"strengths": []}),
    "unknown view": ("/anagram", lambda d: {"view": "sideways"}),
    "patch size": ("/anagram", lambda d: {"view": "patches:5"}),
    "no model": ("/generate", lambda d: {"model": "/nowhere/at/all", **FAST}),
    "not valid JSON": ("/generate", lambda d: {"model": str(corrupt_checkpoint(d)), **FAST}),
    # files no decoder reads: each gets its reason, not Gradio's "upstream app has raised an exception"
    "is not a picture this app can read": ("/forward", lambda d: {"image": editor(text_file(d, "notes.png", "hi"))}),
    "is not a picture this app can read ": ("/sdedit", lambda d: {"image": editor(text_file(d, "empty.png", ""))}),
    "SVG": ("/forward", lambda d: {"image": editor(text_file(
        d, "drawing.svg", '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><circle r="9"/></svg>'))}),
    "damaged or cut short": ("/inpaint", lambda d: {"image": editor(truncated_png(d), [png(d, layer(), "m.png")])}),
    "far too large (at most 4096 px a side)": ("/forward", lambda d: {"image": editor(tall_png_header(d))}),
}


@pytest.mark.parametrize("expected", list(BAD_INPUTS))
def test_bad_inputs_give_readable_errors(client, tmp_path, expected):
    endpoint, args = BAD_INPUTS[expected]
    message = app_error(lambda: client.predict(**args(tmp_path), api_name=endpoint), expected)
    assert expected.strip() in message and "\n" not in message.strip(), message
    assert "gradio" not in message, "no server path of an upload in the message"


def test_the_app_still_serves_after_bad_input(client, tmp_path):
    app_error(lambda: client.predict(image=editor(text_file(tmp_path, "x.png", "x")), api_name="/forward"))
    _, status = client.predict(per_class=1, classes=["3"], **FAST, api_name="/generate")
    assert status.startswith("Done")


@pytest.mark.parametrize("endpoint, args", [
    ("/generate", {"steps": 5000}), ("/generate", {"steps": 0}), ("/generate", {"guidance": -1}),
    ("/generate", {"seed": -5}), ("/generate", {"per_class": 100}), ("/forward", {"t": 1000}),
    ("/hybrid", {"sigma": -1}), ("/hybrid", {"candidates": 0}), ("/anagram", {"candidates": 99}),
    ("/anagram", {"view_guidance": -1}), ("/anagram", {"view_guidance": 1e9}),
    ("/inpaint", {"count": 99}), ("/sdedit", {"strengths": [1.5]}),
])
def test_out_of_range_numbers_are_refused(client, endpoint, args):
    message = app_error(lambda: client.predict(**args, api_name=endpoint))
    assert any(word in message for word in ("less than", "greater than", "between", "from", "must", "not in")), message


# -- which models the Model box loads ---------------------------------------------------------------------
def test_a_checkpoint_folder_loads_into_the_session(client, models, tmp_path):
    folder = models["mnist"].save(tmp_path / "mine")
    _, status = client.predict(model=str(folder), classes=["1", "2"], per_class=1, **FAST, api_name="/generate")
    assert status.startswith(f"Done: {ddpm.load(folder).name} · 2 images")


def test_an_unconditional_diffusers_unet_folder_generates(client, tmp_path):
    from diffusers import UNet2DModel

    unet = UNet2DModel(sample_size=16, in_channels=1, out_channels=1, block_out_channels=(8, 16),
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       layers_per_block=1, norm_num_groups=8)
    unet.save_pretrained(tmp_path / "unet")
    image, status = client.predict(model=str(tmp_path / "unet"), classes=[], per_class=3, **FAST,
                                   api_name="/generate")
    assert " · 3 images · " in status and Image.open(image).width > 3 * 16


def test_a_space_loads_no_local_folder_and_never_says_whether_one_exists(models, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # tests never reach the network
    lab = Lab(models)
    folder = models["mnist"].save(tmp_path / "mine")
    monkeypatch.setenv("SPACE_ID", "someone/diffusion-lab")
    monkeypatch.delenv("DDPM_ALLOW_LOCAL_MODELS", raising=False)

    def refusal(name):
        with pytest.raises(ValueError) as err:
            lab.model(name, {})
        return str(err.value).replace(repr(name), "NAME")
    paths = [str(folder), str(tmp_path / "nothing"), "../checkpoints/mnist", "/etc", "~/x", "./mine"]
    said = {refusal(name) for name in paths}
    assert len(said) == 1 and "DDPM_ALLOW_LOCAL_MODELS=1" in said.pop()
    monkeypatch.chdir(tmp_path)  # "tmp/mine" is a folder here, and also reads as a Hub id: it goes to the Hub
    (tmp_path / "tmp").mkdir()
    models["mnist"].save(tmp_path / "tmp" / "mine")
    assert refusal("tmp/mine") == refusal("tmp/absent") and "Hugging Face Hub" in refusal("tmp/mine")
    assert lab.model("mnist", {}) is lab.models["mnist"], "bundled names stay"
    monkeypatch.setenv("DDPM_ALLOW_LOCAL_MODELS", "1")  # the documented switch
    assert lab.model(str(folder), {}).image_size == 28
    monkeypatch.delenv("SPACE_ID")
    monkeypatch.setenv("DDPM_ALLOW_LOCAL_MODELS", "0")
    assert "not folders" in refusal(str(folder))


def test_downloads_before_any_result_say_what_to_do_first(client):
    from gradio_client import Client

    fresh = Client(client.src, verbose=False)  # a session of its own: no Generate result yet
    assert "run /generate first" in app_error(lambda: fresh.predict(api_name="/generate_downloads"))


def test_app_starts_without_models_and_says_so():
    from gradio_client import Client

    demo, url = serve({})
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
    loaded, problems = load_bundled()
    assert list(loaded) == ["mnist"] and len(problems) == 1 and problems[0].startswith("`emoji`")


def test_app_py_is_the_entry_point():
    assert app.build_demo.__module__ == "diffusion_lab.demo" and callable(app.launch)
    assert DIGITS == tiny_models()["mnist"].classes
