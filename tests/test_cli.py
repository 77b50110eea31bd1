"""The command line on tiny models: ``sample``'s documented files, ``train`` from a TOML, ``bench-train``."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import ddpm
from ddpm.cli import main
from ddpm.testing import squares_dataset


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    denoiser = ddpm.build("scratch", image_size=8, channels=1, num_classes=3, widths=(8, 16),
                          attention=(False, True), layers_per_block=1)
    model = ddpm.DiffusionModel(denoiser, ddpm.NoiseSchedule(), ["cat", "dog", "owl"], "toy", name="tiny")
    return model.save(tmp_path_factory.mktemp("ckpt") / "tiny")


def test_cli_sample_writes_the_documented_npz(tmp_path, tiny_checkpoint):
    out = tmp_path / "s.npz"
    assert main(["sample", "--model", str(tiny_checkpoint), "--labels", "dog,0,owl", "--steps", "3",
                 "--sampler", "ddim", "--guidance", "2", "--seed", "5", "--out", str(out)]) == 0
    data = np.load(out)
    assert data["images"].dtype == np.float32 and data["images"].shape == (3, 8, 8)
    assert 0 <= data["images"].min() and data["images"].max() <= 1
    assert data["labels"].tolist() == [1, 0, 2]
    again = tmp_path / "t.npz"
    main(["sample", "--model", str(tiny_checkpoint), "--labels", "dog,0,owl", "--steps", "3", "--sampler", "ddim",
          "--guidance", "2", "--seed", "5", "--out", str(again)])
    assert np.array_equal(np.load(again)["images"], data["images"])  # same settings, same images


def test_cli_sample_uses_the_models_own_guidance_and_sampler_unless_told(tmp_path, tiny_checkpoint, capsys):
    def run(*flags):
        assert main(["sample", "--model", str(tiny_checkpoint), "--labels", "dog", "--steps", "2", *flags,
                     "--out", str(tmp_path / "g.npz")]) == 0
        return capsys.readouterr().out

    assert f"dpm++ 2 steps, guidance {ddpm.recipes.DEFAULT_GUIDANCE:g}," in run()
    config = json.loads((tiny_checkpoint / "ddpm_config.json").read_text())
    try:
        (tiny_checkpoint / "ddpm_config.json").write_text(json.dumps({**config, "sampling": {"guidance": 4}}))
        assert "dpm++ 2 steps, guidance 4," in run()
        assert "guidance 0.5," in run("--guidance", "0.5")
        (tiny_checkpoint / "ddpm_config.json").write_text(json.dumps({**config, "sampling": {"sampler": "dpm++sde"}}))
        assert "dpm++sde 2 steps, guidance 1.5," in run()
        assert "ddim 2 steps, guidance 2," in run("--sampler", "ddim", "--guidance", "2")
    finally:
        (tiny_checkpoint / "ddpm_config.json").write_text(json.dumps(config))


def test_cli_sample_says_which_forward_ran_and_how_to_build_the_compiled_one(tmp_path, tiny_checkpoint, capsys):
    def run(*flags):
        assert main(["sample", "--model", str(tiny_checkpoint), "--labels", "dog", "--steps", "2", *flags,
                     "--out", str(tmp_path / f"f{len(flags)}.npz")]) == 0
        return capsys.readouterr()

    default = run()  # this run's compile cache holds nothing (conftest): eager, and a note on how to build one
    assert "seed 0, float32, eager)" in default.out
    assert f"python -m ddpm compile --model {tiny_checkpoint}" in default.err and "--no-compile" in default.err
    eager = run("--no-compile")
    assert "float32, eager)" in eager.out and eager.err == "", "asked for eager: nothing to suggest"
    assert np.array_equal(np.load(tmp_path / "f0.npz")["images"], np.load(tmp_path / "f1.npz")["images"]), \
        "the default resolved to eager: the very images of --no-compile"


def test_cli_sample_per_class_png_and_batches(tmp_path, tiny_checkpoint):
    out = tmp_path / "grid.png"
    assert main(["sample", "--model", str(tiny_checkpoint), "--per-class", "2", "--steps", "2", "--batch", "4",
                 "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    npz = tmp_path / "pc.npz"
    main(["sample", "--model", str(tiny_checkpoint), "--per-class", "2", "--steps", "2", "--out", str(npz)])
    assert np.load(npz)["labels"].tolist() == [0, 1, 2, 0, 1, 2]  # interleaved, as the app orders them


def test_cli_sample_images_do_not_depend_on_the_batch_and_match_the_apps_generation(tmp_path, tiny_checkpoint):
    """Each image has its own seed: --batch 1 and --batch 64 give the same images, and they are
    ``explore.generate_each``'s, the call the app's Generate tab makes for the same classes and seed."""
    import ddpm
    from ddpm.explore import generate_each, per_class_labels

    got = {}
    for batch in ("1", "64"):
        npz = tmp_path / f"b{batch}.npz"
        assert main(["sample", "--model", str(tiny_checkpoint), "--per-class", "2", "--steps", "2", "--seed", "5",
                     "--batch", batch, "--out", str(npz)]) == 0
        got[batch] = np.load(npz)["images"]
    np.testing.assert_array_equal(got["1"], got["64"])
    model = ddpm.load(tiny_checkpoint)
    settings = ddpm.Settings(steps=2, seed=5, guidance=model.default_guidance, sampler=model.default_sampler)
    direct = generate_each(model, per_class_labels([0, 1, 2], 2), settings=settings).run()
    np.testing.assert_allclose(got["64"], ddpm.images.to_numpy(direct), atol=1e-6)


@pytest.mark.parametrize("argv, message", [
    (["--labels", "zebra"], "unknown class 'zebra'"),
    (["--labels", ""], "--labels is empty"),
    (["--labels", " , "], "--labels is empty"),
    (["--labels", "1", "--steps", "5000"], "steps must be between 1 and 1000"),
    (["--labels", "1", "--guidance", "1e9"], "guidance must be between"),
    (["--labels", "1", "--out-suffix", ".jpg"], "--out must end in .npz or .png"),
])
def test_cli_sample_bad_inputs_give_clear_errors(tmp_path, tiny_checkpoint, capsys, argv, message):
    suffix = ".npz"
    if "--out-suffix" in argv:
        suffix = argv[-1]
        argv = argv[:-2]
    code = main(["sample", "--model", str(tiny_checkpoint), *argv, "--out", str(tmp_path / f"x{suffix}")])
    assert code == 2
    assert message in capsys.readouterr().err


def test_cli_sample_writes_where_it_says_or_fails_before_sampling(tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "UPPER.NPZ"
    assert main(["sample", "--model", str(tiny_checkpoint), "--labels", "1", "--steps", "2", "--out", str(out)]) == 0
    assert f"to {out} " in capsys.readouterr().out and np.load(out)["images"].shape[0] == 1  # not UPPER.NPZ.npz
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "file").write_text("")
    for target, message in [(tmp_path / "folder.png", "is a folder: name a file"),
                            (tmp_path / "file" / "x.npz", "File exists")]:
        assert main(["sample", "--model", "no/such-model", "--out", str(target)]) == 2  # fails before the load
        assert message in capsys.readouterr().err


def test_cli_sample_missing_model_is_a_clear_error(tmp_path, capsys):
    assert main(["sample", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "x.npz")]) == 2
    assert "no model" in capsys.readouterr().err


def test_cli_rejects_negative_numbers_before_loading(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["sample", "--model", "x", "--steps", "-3", "--out", str(tmp_path / "x.npz")])
    assert "positive integer" in capsys.readouterr().err


def test_cli_train_from_a_toml_then_export_a_snapshot(tmp_path, capsys):
    from ddpm.data import write_split_npz

    images, labels, _ = squares_dataset(n=16, size=28, classes=10)
    names = [str(k) for k in range(10)]  # the loader checks shapes and classes against mnist's
    write_split_npz(tmp_path / "data" / "mnist" / "train.npz", images.numpy(), labels.numpy(), names)
    config = tmp_path / "toy.toml"
    config.write_text(f'name = "toy"\ndataset = "mnist"\nfamily = "scratch"\nwidths = [8, 16]\n'
                      f'attention = [false, true]\nlayers_per_block = 1\nbatch_size = 8\nsteps = 2\n'
                      f'sample_every = 0\nout_dir = "{tmp_path / "run"}"\ndata_root = "{tmp_path / "data"}"\n')
    early = tmp_path / "early"
    assert main(["train", str(config), "--minutes", "0", "--export-to", str(early)]) == 0
    out = capsys.readouterr().out
    assert "stopped at step 1 of 2; the same command again continues" in out
    assert f"copied to {early} (a snapshot at step 1 of 2)" in out  # not to be mistaken for the finished model
    assert main(["train", str(config), "--export-to", str(early)]) == 0
    out = capsys.readouterr().out
    assert "stopped at" not in out and out.rstrip().endswith(f"copied to {early}")
    snapshot = tmp_path / "snapshot"
    assert main(["train", str(config), "--export-now", "--export-to", str(snapshot)]) == 0
    model = ddpm.load(snapshot)
    assert model.class_names == names and model.meta["training"]["steps"] == 2
    assert model.weights_dtype == "float32"
    size = (snapshot / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size
    assert main(["train", str(config), "--export-now", "--weights-dtype", "float16", "--export-to", str(snapshot)]) == 0
    assert ddpm.load(snapshot).weights_dtype == "float16"
    assert (snapshot / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size < 0.6 * size
    fresh = tmp_path / "fresh.toml"
    fresh.write_text(config.read_text().replace(str(tmp_path / "run"), str(tmp_path / "other")))
    assert main(["train", str(fresh), "--export-now"]) == 2
    assert "holds no training state" in capsys.readouterr().err


def test_bench_train_times_each_batch_size_and_mode_on_random_data(tmp_path, capsys):
    config = tmp_path / "toy.toml"
    config.write_text('name = "toy"\ndataset = "mnist"\nfamily = "scratch"\nwidths = [8, 16]\n'
                      'attention = [false, true]\nlayers_per_block = 1\n')
    assert main(["bench-train", str(config), "--batch-sizes", "2,4", "--modes", "eager", "--timed-steps", "2",
                 "--untimed-steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "toy: " in out and "widths [8, 16], 1x28x28" in out
    rows = [line.split() for line in out.splitlines() if line.split()[:2] in (["2", "eager"], ["4", "eager"])]
    assert [r[:2] for r in rows] == [["2", "eager"], ["4", "eager"]]
    assert all(float(r[2]) > 0 for r in rows) and rows[0][5] == "1.00x"
    assert main(["bench-train", str(config), "--modes", "jit"]) == 2
    assert "unknown mode(s) 'jit': compile, compile:default, compile:max-autotune" in capsys.readouterr().err
    assert main(["bench-train", str(config), "--modes", "compile:fast"]) == 2
    assert "compile:reduce-overhead" in capsys.readouterr().err
    # every config setting is a flag, lists included, as for train
    assert main(["bench-train", str(config), "--widths", "4,8", "--attention", "false,false", "--modes", "eager",
                 "--timed-steps", "1", "--untimed-steps", "0", "--batch-sizes", "2"]) == 0
    assert "widths [4, 8]" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["bench-train", str(config), "--widths", "wide"])
    assert "expected a comma-separated list of ints, got 'wide'" in capsys.readouterr().err
