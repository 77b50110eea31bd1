"""The sdedit and inpaint command-line verbs (ddpm.cli.edit), called with argv on a tiny saved model and real PNGs."""
from __future__ import annotations


import numpy as np
import pytest
import torch
from PIL import Image

import ddpm
from ddpm import cli
from ddpm.cli import edit as edit_cli
from ddpm.images import prepare_image, to_numpy


def main(argv: list[str]) -> int:
    """``python -m ddpm`` itself, in this process."""
    return cli.main(argv)


@pytest.fixture
def files(edit_files):
    """(model folder, a 16x16 stroke picture, a mask of the top half, both PNG)."""
    folder, picture, mask = edit_files
    return str(folder), picture, mask


SAMPLING = ["--steps", "6", "--sampler", "ddim", "--guidance", "2", "--seed", "4"]


def test_sdedit_writes_one_result_per_strength_equal_to_the_library_call(files, tmp_path):
    folder, picture, _ = files
    out = tmp_path / "edit.npz"
    assert main(["sdedit", "--model", folder, "--image", str(picture), "--strengths", "0,0.5,1", "--target", "two",
                 *SAMPLING, "--out", str(out)]) == 0
    model = ddpm.load(folder)
    s = ddpm.Settings(sampler="ddim", steps=6, guidance=2.0, seed=4)
    x0 = prepare_image(picture, model)
    jobs = ddpm.sdedit(model, x0, [0, 0.5, 1], labels="two", settings=s)
    saved = np.load(out)
    np.testing.assert_array_equal(saved["images"], to_numpy(torch.cat([j.run() for j in jobs])))
    np.testing.assert_array_equal(saved["images"][0], to_numpy(x0[None])[0])  # strength 0 is the input
    assert saved["strengths"].tolist() == [0, 0.5, 1]


def test_inpaint_keeps_the_unmasked_pixels_and_equals_the_library_call(files, tmp_path):
    folder, picture, mask_file = files
    out = tmp_path / "fill.npz"
    assert main(["inpaint", "--model", folder, "--image", str(picture), "--mask", str(mask_file), "--n", "2",
                 "--repaint", "2", "--jump-length", "2", *SAMPLING, "--out", str(out)]) == 0
    model = ddpm.load(folder)
    mask = edit_cli.load_mask(mask_file, model)
    assert mask.shape == (8, 8) and mask[:4].all() and not mask[4:].any()
    x0 = prepare_image(picture, model, keep_layout=True)
    s = ddpm.Settings(sampler="ddim", steps=6, guidance=2.0, seed=4)
    expected = ddpm.inpaint(model, x0.expand(2, -1, -1, -1), mask, settings=s, jump_length=2, jump_n_sample=2).run()
    saved = np.load(out)
    np.testing.assert_array_equal(saved["images"], to_numpy(expected))
    np.testing.assert_array_equal(saved["images"][:, 4:], np.broadcast_to(to_numpy(x0[None])[:, 4:], (2, 4, 8)))
    assert main(["inpaint", "--model", folder, "--image", str(picture), "--mask", str(mask_file), *SAMPLING,
                 "--out", str(tmp_path / "grid.png")]) == 0
    assert Image.open(tmp_path / "grid.png").size[0] > 8


def test_a_transparent_mask_uses_its_alpha_and_a_white_one_its_brightness(tiny_model, tmp_path):
    model = tiny_model()
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[:, 8:, 3] = 255  # painted (opaque) right half, on a transparent layer; colour black
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    assert edit_cli.load_mask(tmp_path / "alpha.png", model)[:, 4:].all()
    assert not edit_cli.load_mask(tmp_path / "alpha.png", model)[:, :4].any()
    grey = np.zeros((20, 16), np.uint8)  # not square: the centre 16x16, as prepare_image(keep_layout=True) crops
    grey[2:10] = 255
    Image.fromarray(grey).save(tmp_path / "tall.png")
    assert edit_cli.load_mask(tmp_path / "tall.png", model)[:4].all()


@pytest.mark.parametrize("problem, message", [("mask-size", "the mask is 12x12 px but the image is 16x16"),
                                              ("no-image", "no such file"), ("out", "must end in .npz or .png"),
                                              ("target", "unknown class"), ("empty-mask", "the mask is empty")])
def test_bad_inputs_are_one_line_errors(files, tmp_path, capsys, problem, message):
    folder, picture, mask_file = files
    Image.fromarray(np.zeros((12, 12), np.uint8)).save(tmp_path / "small.png")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "black.png")
    argv = {"mask-size": ["--mask", str(tmp_path / "small.png")], "no-image": ["--image", str(tmp_path / "nope.png")],
            "out": ["--out", str(tmp_path / "x.jpg")], "target": ["--target", "seven"],
            "empty-mask": ["--mask", str(tmp_path / "black.png")]}[problem]
    base = {"--image": str(picture), "--mask": str(mask_file), "--out": str(tmp_path / "o.png")}
    for flag, value in zip(argv[::2], argv[1::2]):
        base[flag] = value
    assert main(["inpaint", "--model", folder, *[w for kv in base.items() for w in kv], *SAMPLING]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err


def test_strengths_outside_zero_to_one_are_refused_by_the_parser(files, capsys):
    folder, picture, _ = files
    with pytest.raises(SystemExit):
        main(["sdedit", "--model", folder, "--image", str(picture), "--strengths", "0.5,2", "--out", "x.png"])
    assert "strengths in [0, 1]" in capsys.readouterr().err
