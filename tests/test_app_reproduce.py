"""Reproduce anything, through the app: every tab's result carries Python text, a command line and a link, and
each gives exactly that result. The app runs on tiny models saved to folders (so the texts' ``ddpm.load(folder)``
works), the Python text is executed here and compared pixel for pixel with what the app returned, the command
line is run through the real parser and command, and the link's query reads back as the same recipe.
"""
from __future__ import annotations

import shlex

import numpy as np
import pytest
import torch
from app_fixtures import DIGITS, digit_picture, editor, layer, png, serve, tiny
from PIL import Image

import ddpm
from ddpm import cli
from ddpm import images as im
from ddpm.classifier import train_classifier
from ddpm.reproduce import from_query
from diffusion_lab import reproduce
from diffusion_lab.lab import Lab
from diffusion_lab.tabs import generate, illusions

FAST = dict(sampler="dpm++", steps=3, guidance=2.0)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """(folder name of a tiny 28-px digit model that ships a classifier, the model, the app's client)."""
    from gradio_client import Client

    folder = tmp_path_factory.mktemp("zoo") / "digits"
    model = tiny("digits", 28, 1, DIGITS, "mnist")
    model.save(folder)
    g = torch.Generator().manual_seed(0)
    shapes = torch.rand(60, 1, 28, 28, generator=g) * 2 - 1
    train_classifier(shapes, torch.arange(60) % 10, 10, epochs=1, progress=False).save(folder / "classifier")
    model = ddpm.load(folder)
    assert model.classifier is not None
    demo, url = serve({str(folder): model})
    yield str(folder), model, Client(url, verbose=False)
    demo.close()


def run_python(text: str, where) -> dict:
    namespace: dict = {}
    cwd = __import__("os").getcwd()
    __import__("os").chdir(where)  # the text saves result.png
    try:
        exec(compile(text, "<reproduce>", "exec"), namespace)
    finally:
        __import__("os").chdir(cwd)
    return namespace


def run_cli(text: str, out) -> np.ndarray:
    """The command line, run by the real parser and command, writing .npz: its images."""
    words = shlex.split(text)
    assert words[:3] == ["python", "-m", "ddpm"] and words[-2] == "--out"
    assert cli.main([*words[3:-1], str(out)]) == 0
    return np.load(out)["images"]


def picture(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_generate_texts_give_the_apps_grid_pixel_for_pixel(zoo, tmp_path):
    folder, model, client = zoo
    grid, status = client.predict(
        folder, ["3", "1", "7"], 2, FAST["sampler"], FAST["steps"], FAST["guidance"], 5, api_name="/generate")
    python, command, link = client.predict(api_name="/generate_texts")  # this session's last result
    assert link.startswith(("http://127.0.0.1", "http://localhost")) and "/?recipe=generate&" in link
    assert status.startswith("Done")
    images = run_python(python, tmp_path)["images"]
    shown, captions, ncol = generate.layout(model, ["3", "1", "7"], 2)
    _, order = generate.sampling_order(["3", "1", "7"], 2, shown)
    expected = im.captioned_grid(images[order], captions, ncol, im.display_scale(28) // 2)
    np.testing.assert_array_equal(picture(grid), np.asarray(expected.convert("RGB")))
    np.testing.assert_array_equal(run_cli(command, tmp_path / "g.npz"), im.to_numpy(images))
    recipe, name, args, s = from_query(link.split("?", 1)[1])
    assert (recipe, name, args["labels"], s.seed, s.steps, s.dtype) == ("generate", folder, ["3", "1", "7"] * 2,
                                                                       5, 3, "float32")


def test_sdedit_texts_name_the_saved_input_and_give_each_strength(zoo, tmp_path):
    folder, model, client = zoo
    upload = png(tmp_path, digit_picture())
    gallery, _, status = client.predict(folder, editor(upload), "4", [0.4, 0.8], *FAST.values(), 9, api_name="/sdedit")
    python, command, link, inputs = client.predict(api_name="/sdedit_texts")
    assert status.startswith("Done") and len(inputs) == 1
    assert f"prepare_image({inputs[0]!r}" not in python  # a served copy is not the saved file the text names
    images = run_python(python, tmp_path)["images"]
    k = im.display_scale(28)
    for shown, x in zip(gallery, images, strict=True):
        np.testing.assert_array_equal(picture(shown["image"]), im.to_display(x, k))
    np.testing.assert_array_equal(run_cli(command, tmp_path / "s.npz"), im.to_numpy(images))
    assert from_query(link.split("?", 1)[1])[2]["strengths"] == [0.4, 0.8]


def test_inpaint_texts_give_the_same_images_and_mask(zoo, tmp_path):
    folder, model, client = zoo
    upload, paint = png(tmp_path, digit_picture()), png(tmp_path, layer(), "layer.png")
    _, grid, status = client.predict(folder, editor(upload, [paint]), "(none)", True, 2, "ddim", 4, 2.0, 3,
                                     api_name="/inpaint")
    python, command, link, inputs = client.predict(api_name="/inpaint_texts")
    assert status.startswith("Done") and len(inputs) == 2 and "# the picture" not in python
    images = run_python(python, tmp_path)["images"]
    expected = im.captioned_grid(images, ["seed 3 #1", "seed 3 #2"], 2, im.display_scale(28) // 2)
    np.testing.assert_array_equal(picture(grid), np.asarray(expected.convert("RGB")))
    np.testing.assert_array_equal(run_cli(command, tmp_path / "i.npz"), im.to_numpy(images))
    assert "--repaint 3 --jump-length 5" in command


def test_forward_python_gives_the_three_panels(zoo, tmp_path):
    folder, model, client = zoo
    *panels, _ = client.predict(folder, editor(png(tmp_path, digit_picture())), 500, 77, 1.5, api_name="/forward")
    python, command, link, inputs = client.predict(api_name="/forward_texts")
    images = run_python(python, tmp_path)["images"]
    k = im.display_scale(28)
    for shown, x in zip(panels[1:], images, strict=True):  # panels[0] is the input
        np.testing.assert_array_equal(picture(shown), im.to_display(x, k))
    assert command.startswith("# the forward process has no command-line verb")
    assert from_query(link.split("?", 1)[1])[3].seed == 77


def test_hybrid_texts_give_the_apps_from_afar_picture(zoo, tmp_path):
    folder, model, client = zoo
    _, small, status = client.predict(folder, "8", "3", 0.0, 2, *FAST.values(), 1, 2, 6.0, api_name="/hybrid")
    python, command, link = client.predict(api_name="/hybrid_texts")
    images = run_python(python, tmp_path)["images"]
    expected = im.captioned_grid(ddpm.illusions.from_afar(images, 4), None, 2, 1, pad=2)
    np.testing.assert_array_equal(picture(small), np.asarray(expected.convert("RGB")))
    assert "sample_best" in python and "--best-of 2" in command and "--high-guidance 6.0" in command


def handler_result(fn, lab, *args) -> dict:
    """A tab handler's last yield, called in this process (its Run holds the result's pixels)."""
    *_, last = fn(lab, *args)
    return last


@pytest.mark.parametrize("recipe", ["anagram", "anagram-view-guidance", "hybrid"])
def test_an_illusions_python_and_cli_give_the_kept_candidates(zoo, tmp_path, monkeypatch, recipe):
    folder, model, _ = zoo
    lab = Lab({folder: model})
    if recipe.startswith("anagram"):
        second = 5.0 if recipe == "anagram-view-guidance" else 0.0  # 0: the same as Guidance
        last = handler_result(illusions.anagram, lab, folder, "6", "9", "rot180", 2, *FAST.values(), 4, 3, second, {})
    else:
        last = handler_result(illusions.hybrid, lab, folder, "8", "3", 0.0, 2, *FAST.values(), 4, 3, 5.0, {})
    kept = np.stack([track.images["x"][-1] for track in last["run"].tracks])  # the app's own result, uint8
    python, command, link = reproduce.texts(last["reproduce"])
    assert link.startswith("?recipe=")  # no request: a link relative to the page
    if recipe.startswith("anagram"):  # the transformed view's own guidance is part of the result's recipe
        assert ("guidances=[2.0, 5.0]" in python, "--view-guidance 2.0,5.0" in command) == (bool(second),) * 2
    images = run_python(python, tmp_path)["images"]
    np.testing.assert_array_equal(im.to_uint8(images, rgb=False), kept)
    import ddpm.classifier  # the CLI ranks with the model's own classifier, as the app does: no dataset needed

    def no_dataset(*args, **kwargs):
        raise AssertionError("the illusion verb reached for the dataset's classifier")
    monkeypatch.setattr(ddpm.classifier, "classifier_for", no_dataset)
    np.testing.assert_array_equal(run_cli(command, tmp_path / "a.npz"), im.to_numpy(images))


def test_a_mask_picture_reads_back_as_the_models_mask_at_any_size_twice_the_models():
    from ddpm.cli.edit import load_mask

    model = tiny("digits", 28, 1, DIGITS, "mnist")
    mask = np.random.default_rng(0).random((28, 28)) > 0.6
    for size in [(224, 224), (60, 90), (100, 57), (256, 256)]:
        import io
        buffer = io.BytesIO()
        reproduce.mask_picture(mask, size).save(buffer, "PNG")
        assert torch.equal(load_mask(buffer, model), torch.from_numpy(mask)), size


def test_a_link_names_only_files_of_this_apps_results(tmp_path):
    outside = png(tmp_path, digit_picture())
    with pytest.raises(ValueError, match="not one of this server's results"):
        reproduce._picture_file(outside)
    with pytest.raises(ValueError, match="is gone"):
        reproduce._picture_file(str(reproduce.RESULTS / "nothere" / "image.png"))
    with pytest.raises(ValueError, match="not one of this server's results"):
        reproduce._picture_file(str(reproduce.RESULTS / ".." / "etc" / "passwd"))


def test_fill_turns_a_links_recipe_into_the_tabs_controls_or_says_why_not():
    model = tiny("digits", 28, 1, DIGITS, "mnist")
    s = ddpm.Settings(seed=4, steps=7)
    values = reproduce.fill("generate", {"labels": ["1", "2"] * 3, "n": None}, s, model)
    assert values == {"sampler": "dpm++", "steps": 7, "guidance": 1.5, "seed": 4, "classes": ["1", "2"],
                      "per_class": 3}
    with pytest.raises(ValueError, match="same number of each class"):
        reproduce.fill("generate", {"labels": ["1", "1", "2"], "n": None}, s, model)
    with pytest.raises(ValueError, match="no control for eta"):
        reproduce.fill("generate", {"labels": ["1"], "n": None}, s.with_(eta=0.5), model)
    # compiled is how the server ran it, not a control: the page opens it (and warns where it runs otherwise now)
    assert reproduce.fill("generate", {"labels": ["1"], "n": None}, s.with_(compile=True), model)["seed"] == 4
    # the page samples in its machine's default precision (float32 under the tests' pin): a link made in
    # another is refused, not silently given other pixels
    assert reproduce.fill("generate", {"labels": ["1"], "n": None}, s.with_(dtype="float32"), model)["seed"] == 4
    with pytest.raises(ValueError, match="sampled in bfloat16, this server samples in float32"):
        reproduce.fill("generate", {"labels": ["1"], "n": None}, s.with_(dtype="bfloat16"), model)
    hybrid = reproduce.fill("hybrid", {"low_label": "8", "high_label": "3", "sigma": None, "factor": 4,
                                       "high_guidance": None, "n": 2, "best_of": 4}, s, model)
    assert (hybrid["sigma"], hybrid["high_guidance"], hybrid["candidates"]) == (0.0, 1.5, 4)
    anagram = {"parts": [("3", "identity"), ("8", "negate")], "n": 2, "best_of": 4, "view_guidance": None, "repeats": 0}
    assert reproduce.fill("anagram", anagram, s, model)["view_guidance"] == 0.0  # the slider's "same as Guidance"
    assert reproduce.fill("anagram", {**anagram, "view_guidance": [1.5, 4.0]}, s, model)["view_guidance"] == 4.0
    for refused in ({"view_guidance": [8.0, 4.0]}, {"repeats": 2}):  # no control for them: refused, not dropped
        with pytest.raises(ValueError, match="use the link's Python text"):
            reproduce.fill("anagram", {**anagram, **refused}, s, model)
    assert reproduce.unknown_keys({"recipe": 1, "steps": 1, "foo": 1, "__theme": 1, "label": 1}) == ["foo"]
