"""Pictures in and out: ddpm.images preparing uploads and sketches for a model, decoding files with a reason
for what it cannot read, masks, and the result grids; and the app's reading of editor values into them."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from app_fixtures import DIGITS, digit_picture, tiny_models, tiny
from ddpm import images as im
from diffusion_lab import uploads


@pytest.fixture(scope="module")
def models():
    return tiny_models()


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


@pytest.mark.parametrize("content, message", [
    (b"hello, not a picture", "is not a picture this app can read"), (b"", "is not a picture this app can read"),
    (b'<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"), ("truncated", "damaged or cut short")])
def test_open_image_gives_one_line_reasons(tmp_path, content, message):
    if content == "truncated":
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)).save(tmp_path / "f.png")
        content = (tmp_path / "f.png").read_bytes()[:900]
    (tmp_path / "upload.png").write_bytes(content)
    for source in (str(tmp_path / "upload.png"), content):  # a file, or a browser blob's bytes
        with pytest.raises(ValueError, match=message) as err:
            im.open_image(source, "the upload")
        assert str(err.value).startswith("the upload ") and "\n" not in str(err.value) and "/tmp" not in str(err.value)


# -- editor values -> pictures and masks ----------------------------------------------------------------------
def test_a_sketch_on_blank_paper_and_an_editor_value(models):
    empty = {"background": None, "layers": [np.zeros((256, 256, 4), np.uint8)], "composite": None}
    with pytest.raises(ValueError, match="sketch is empty"):
        uploads.sketch(empty, models["mnist"])
    stroke = np.zeros((256, 256, 4), np.uint8)
    stroke[40:220, 100:140] = (200, 30, 30, 255)
    x = uploads.sketch({"background": None, "layers": [stroke], "composite": None}, models["emoji"])
    assert x.shape == (3, 32, 32) and x[0].mean() > x[1].mean(), "a red sketch stays red"
    flat = np.full((256, 256, 3), 255, np.uint8)
    flat[..., 1:][stroke[..., 3] > 0] = 30  # the red stroke flattened onto white paper
    only = uploads.sketch({"background": None, "layers": [], "composite": flat}, models["emoji"])
    as_upload = uploads.sketch({"background": flat, "layers": [], "composite": None}, models["emoji"])
    assert torch.equal(only, as_upload)  # a composite alone (an API client's) is taken as the upload
    with pytest.raises(ValueError, match="no image: upload one"):
        uploads.sketch({"background": None, "layers": [], "composite": None}, models["emoji"])
    drawn = im.prepare_sketch(Image.fromarray(flat), models["emoji"])
    opaque = np.concatenate([flat, np.full_like(flat[..., :1], 255)], -1)  # the same, drawn as one layer
    assert torch.equal(drawn, uploads.sketch({"background": None, "layers": [opaque]}, models["emoji"])), \
        "the library's prepare_sketch takes the plain picture"


def test_masks_from_a_painted_layer_and_from_a_preset(models):
    painted = np.zeros((224, 224, 4), np.uint8)
    painted[:11, :, 3] = 255      # 11 of 224 rows: all of model row 0 and 37% of row 1
    painted[100:103, :, 3] = 255  # 3 rows: 37% of one model row
    value = {"background": np.zeros((224, 224, 4), np.uint8) + 255, "layers": [painted], "composite": None}
    _, mask, size = uploads.inpaint_input(value, models["mnist"])
    assert mask.shape == (28, 28) and mask.dtype == bool and size == (224, 224)
    assert mask[0].all() and mask[1].all() and not mask[2].any() and mask[12].all() and mask.sum() == 3 * 28
    assert np.array_equal(im.fit_mask(painted[..., 3] > 0, models["mnist"]), mask), "the library takes a bool array"
    with pytest.raises(ValueError, match="mask is empty"):
        uploads.inpaint_input({"background": np.full((8, 8, 4), 255, np.uint8), "layers": []}, models["mnist"])
    preset = np.full((224, 224, 4), 255, np.uint8)
    preset[112:, :, :3] = uploads.MASK_RGB  # the examples' lower half, painted into the picture
    _, mask, _ = uploads.inpaint_input({"background": preset, "layers": [painted]}, models["mnist"])
    assert mask.sum() == 14 * 28 + 2 * 28 + 28, "the preset and the stroke together"


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
