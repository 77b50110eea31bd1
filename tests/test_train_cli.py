"""Training steps, resumable state, export, and the command line on tiny models (CPU, seconds)."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

import ddpm
from ddpm.cli import main
from ddpm.train import TrainConfig, Trainer

TINY = dict(widths=(8, 16), attention=(False, True), layers_per_block=1, batch_size=8, lr=1e-3, warmup=1,
            sample_every=0, log_every=1, checkpoint_every=10**6, checkpoint_minutes=1e6)


def _toy_data(n=32, size=8, channels=1, classes=3, seed=0):
    """Class c is a bright square in a class-specific place: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    images = torch.zeros(n, channels, size, size, dtype=torch.uint8)
    for i, c in enumerate(labels.tolist()):
        images[i, :, 2 * c:2 * c + 3, 1:5] = 255
    return images, labels, [f"c{k}" for k in range(classes)]


@pytest.mark.parametrize("family", ["scratch", "unet2d-class", "unet2d-concat"])
def test_two_training_steps_give_a_finite_loss_and_move_the_weights(tmp_path, family):
    images, labels, names = _toy_data()
    trainer = Trainer(TrainConfig(name="toy", family=family, steps=2, out_dir=str(tmp_path / "run"), **TINY),
                      images, labels, names)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    folder = trainer.fit()
    assert trainer.step == 2
    assert all(np.isfinite(loss) for _, loss in trainer.losses)
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    model = ddpm.load(folder)
    assert model.class_names == names and model.denoiser.family == family
    assert json.loads((folder / "ddpm_config.json").read_text())["training"]["steps"] == 2
    assert "\n---\n\n# toy\n" in (folder / "README.md").read_text()  # the title, under the Hub front matter


def test_loss_falls_on_a_learnable_toy_set(tmp_path):
    images, labels, names = _toy_data(n=64)
    config = TrainConfig(name="toy", family="scratch", steps=60, out_dir=str(tmp_path / "run"),
                         **{**TINY, "lr": 3e-3, "batch_size": 16})
    trainer = Trainer(config, images, labels, names)
    trainer.fit()
    first = np.mean([loss for _, loss in trainer.losses[:10]])
    last = np.mean([loss for _, loss in trainer.losses[-10:]])
    assert last < 0.7 * first, (first, last)


def test_a_diverging_run_stops_with_a_clear_error_and_never_saves_a_nan_state(tmp_path):
    images, labels, names = _toy_data()
    config = TrainConfig(name="toy", family="scratch", steps=6, out_dir=str(tmp_path / "run"),
                         **{**TINY, "log_every": 50, "checkpoint_every": 1})
    trainer = Trainer(config, images, labels, names)
    real_loss = trainer.loss

    def loss(*args):  # fine for two steps, then the loss blows up
        value = real_loss(*args)
        return value if trainer.step < 2 else value * float("nan")

    trainer.loss = loss
    with pytest.raises(FloatingPointError, match="loss became nan by step 3; lower lr"):
        trainer.fit()
    saved = json.loads((tmp_path / "run" / "state" / "train_state.json").read_text())
    assert saved["step"] == 2


def test_training_resumes_from_its_saved_state(tmp_path):
    images, labels, names = _toy_data()
    config = TrainConfig(name="toy", family="scratch", steps=3, out_dir=str(tmp_path / "run"), **TINY)
    first = Trainer(config, images, labels, names)
    first.fit()
    state = tmp_path / "run" / "state"
    assert json.loads((state / "train_state.json").read_text())["step"] == 3
    config.steps = 5
    second = Trainer(config, images, labels, names)
    assert second.step == 3
    for a, b in zip(first.accelerator.unwrap_model(first.model).parameters(), second.model.parameters()):
        assert torch.equal(a, b)
    second.fit()
    assert second.step == 5 and len(second.losses) == 5


def test_a_time_budget_stops_with_a_resumable_state_and_a_snapshot(tmp_path):
    """``fit(minutes=0)`` ends after the one step that overran: state saved, loss logged and finite, the
    EMA snapshot exported; the next call resumes there and finishes. A negative or NaN budget is refused."""
    images, labels, names = _toy_data()
    config = TrainConfig(name="toy", family="scratch", steps=4, out_dir=str(tmp_path / "run"),
                         **{**TINY, "log_every": 50})
    first = Trainer(config, images, labels, names)
    folder = first.fit(minutes=0)
    assert first.step == 1 and len(first.losses) == 1 and np.isfinite(first.losses[0][1])
    assert json.loads((tmp_path / "run" / "state" / "train_state.json").read_text())["step"] == 1
    assert ddpm.load(folder).meta["training"]["steps"] == 1
    second = Trainer(config, images, labels, names)
    assert second.step == 1
    second.fit(minutes=60)
    assert second.step == 4
    for bad in (-1, float("nan")):
        with pytest.raises(ValueError, match="minutes must be >= 0"):
            Trainer(config, images, labels, names).fit(minutes=bad)


def test_a_run_folder_of_another_model_is_refused_with_a_clear_error(tmp_path):
    """Resuming needs the saved state's shape: other widths (say, a wider model pointed at the small one's
    runs/emoji) is a one-line error naming the difference, not torch's list of a hundred missing keys."""
    images, labels, names = _toy_data()
    config = TrainConfig(name="toy", family="scratch", steps=2, out_dir=str(tmp_path / "run"), **TINY)
    Trainer(config, images, labels, names).fit()
    wider = TrainConfig(**{**vars(config), "widths": (16, 16), "lr": 5e-4, "steps": 4})
    with pytest.raises(ValueError, match=r"holds the training state of another model \(widths \[8, 16\] there, "
                                         r"\[16, 16\] here\): give this run its own --out-dir"):
        Trainer(wider, images, labels, names)
    assert Trainer(TrainConfig(**{**vars(config), "lr": 5e-4, "steps": 4}), images, labels, names).step == 2


def test_init_from_continues_a_finished_checkpoint(tmp_path):
    """A checkpoint without training state (a bundled model) can be trained further: its weights are the
    start, the step count continues from its own, the lr warms up again and decays to the new end, and
    the continued run itself resumes like any other."""
    images, labels, names = _toy_data()
    first = Trainer(TrainConfig(name="toy", family="scratch", steps=3, out_dir=str(tmp_path / "a"), **TINY),
                    images, labels, names)
    folder = first.fit()
    config = TrainConfig(name="toy", family="scratch", steps=7, out_dir=str(tmp_path / "b"), init_from=str(folder),
                         **{**TINY, "warmup": 2})
    second = Trainer(config, images, labels, names)
    assert second.step == 3 and second.start_step == 3
    exported = ddpm.load(folder).denoiser.state_dict()
    for key, value in second.accelerator.unwrap_model(second.model).state_dict().items():
        assert torch.equal(value, exported[key]), key
    lrs = []
    for _ in range(4):  # the schedule counts from the start of this run: warmup 2, cosine over 7 - 3
        lrs.append(second.lr_schedule.get_last_lr()[0])
        second.lr_schedule.step()
    assert lrs[:3] == pytest.approx([0.0, 0.5e-3, 1e-3]) and 0 < lrs[3] < 1e-3
    config.steps = 5
    second = Trainer(config, images, labels, names)
    second.fit()
    assert second.step == 5
    config.steps = 7  # resuming the continued run keeps its start, not the checkpoint's weights again
    third = Trainer(config, images, labels, names)
    assert third.step == 5 and third.start_step == 3
    third.fit()
    meta = json.loads((tmp_path / "b" / "final" / "ddpm_config.json").read_text())["training"]
    assert meta["steps"] == 7 and meta["continued_from"] == f"{folder} at step 3"
    assert "continued from" in (tmp_path / "b" / "final" / "README.md").read_text()


def test_a_continued_run_keeps_the_sampling_defaults_of_the_model_it_continues(tmp_path):
    """The bundled emoji samples at guidance 3 (its measured best); a run continued from it exports with
    that default too, also after a resume, so `sample --model runs/NAME/final` is not silently at 1.5."""
    images, labels, names = _toy_data()
    source = ddpm.load(Trainer(TrainConfig(name="toy", family="scratch", steps=2, out_dir=str(tmp_path / "a"),
                                           **TINY), images, labels, names).fit())
    assert "sampling" not in source.meta and source.default_guidance == 1.5
    source.meta["sampling"] = {"guidance": 3.0, "sampler": "ddim"}
    folder = source.save(tmp_path / "tuned")
    config = TrainConfig(name="toy", family="scratch", steps=3, out_dir=str(tmp_path / "b"), init_from=str(folder),
                         **TINY)
    assert ddpm.load(Trainer(config, images, labels, names).fit()).default_guidance == 3.0
    config.steps = 4  # resumed from its state, where the init-from checkpoint is no longer read
    exported = Trainer(config, images, labels, names).fit()
    assert ddpm.load(exported).meta["sampling"] == {"guidance": 3.0, "sampler": "ddim"}
    assert "| default guidance | 3 " in (exported / "README.md").read_text()


def test_a_run_that_moves_between_machines_names_every_device_it_trained_on(tmp_path):
    """Trained on a GPU, resumed on this CPU: the state and the exported card say both, in order; a run
    continued from that checkpoint keeps the list."""
    images, labels, names = _toy_data()
    config = TrainConfig(name="toy", family="scratch", steps=2, out_dir=str(tmp_path / "a"), **TINY)
    Trainer(config, images, labels, names).fit()
    state = tmp_path / "a" / "state" / "train_state.json"
    info = json.loads(state.read_text())
    assert info["devices"] == ["cpu"]
    state.write_text(json.dumps({**info, "devices": ["cuda"]}))  # as the GPU machine wrote it
    config.steps = 3
    folder = Trainer(config, images, labels, names).fit()
    assert json.loads(state.read_text())["devices"] == ["cuda", "cpu"]
    assert ddpm.load(folder).meta["training"]["device"] == "cuda, cpu"
    assert "| trained on | cuda, cpu |" in (folder / "README.md").read_text()
    more = TrainConfig(name="toy", family="scratch", steps=4, out_dir=str(tmp_path / "b"), init_from=str(folder),
                       **TINY)
    assert ddpm.load(Trainer(more, images, labels, names).fit()).meta["training"]["device"] == "cuda, cpu"


def test_init_from_refuses_a_checkpoint_of_another_shape(tmp_path):
    images, labels, names = _toy_data()
    folder = Trainer(TrainConfig(name="toy", family="scratch", steps=1, out_dir=str(tmp_path / "a"), **TINY),
                     images, labels, names).fit()
    wider = TrainConfig(name="toy", family="scratch", steps=3, out_dir=str(tmp_path / "b"), init_from=str(folder),
                        **{**TINY, "widths": (8, 24)})
    with pytest.raises(ValueError, match="cannot continue from .*other shapes"):
        Trainer(wider, images, labels, names)
    with pytest.raises(ValueError, match="cannot continue from .*classes"):
        Trainer(TrainConfig(name="toy", family="scratch", steps=3, out_dir=str(tmp_path / "c"), init_from=str(folder),
                            **TINY), images, labels, ["x", "y", "z"])
    with pytest.raises(ValueError, match="must be more than the 1"):
        Trainer(TrainConfig(name="toy", family="scratch", steps=1, out_dir=str(tmp_path / "d"), init_from=str(folder),
                            **TINY), images, labels, names)


def test_config_files_are_validated(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nsteppz = 3\n')
    with pytest.raises(ValueError, match="unknown setting"):
        TrainConfig.from_file(bad)
    with pytest.raises(FileNotFoundError, match="bundled ones: .*mnist"):
        TrainConfig.from_file(tmp_path / "missing.toml")
    assert TrainConfig.from_file("mnist", steps=7).steps == 7  # bundled config by name, with an override
    with pytest.raises(ValueError, match="weights_dtype must be one of float32, float16, got 'int8'"):
        TrainConfig.from_file("mnist", weights_dtype="int8")
    with pytest.raises(ValueError, match="compile_mode must be one of default, reduce-overhead, .*got 'fast'"):
        TrainConfig.from_file("mnist", compile_mode="fast")
    with pytest.raises(ValueError, match=r"widths \[64, 128\] need one attention flag each \(got 3"):
        TrainConfig.from_file("emoji", widths=(64, 128))  # the config's attention has three
    with pytest.raises(ValueError, match="every width must be positive"):
        TrainConfig.from_file("emoji", widths=(64, 0, 64))
    for line, message in [('steps = "ten"', "steps should be a whole number, got 'ten'"),
                          ("widths = 5", "widths should be a list of whole numbers, got 5"),
                          ("lr = true", "lr should be a number, got True"),
                          ("log_every = 0", "log_every must be at least 1, got 0"),
                          ("checkpoint_every = 0", "checkpoint_every must be at least 1, got 0"),
                          ("ema_decay = 2", "ema_decay and dropout in [0, 1) (got 2, ")]:
        bad.write_text(f'name = "x"\n{line}\n')
        with pytest.raises(ValueError, match=re.escape(message)):
            TrainConfig.from_file(bad)
    with pytest.raises(FileNotFoundError, match=r"no training config '\.'; bundled ones"):
        TrainConfig.from_file("")  # (the current folder is no config)


def test_a_batch_bigger_than_the_data_is_refused_at_once(tmp_path):
    images, labels, names = _toy_data(n=10)
    with pytest.raises(ValueError, match="batch_size 16 is more than the 10 training images: use 10 or less"):
        Trainer(TrainConfig(name="toy", family="scratch", steps=2, out_dir=str(tmp_path / "run"),
                            **{**TINY, "batch_size": 16}), images, labels, names)


@pytest.mark.parametrize("name", ["mnist", "fashion", "letters", "emoji"])
def test_bundled_configs_build_models_that_fit_a_space(name):
    """A Space's git takes files over 10 MB only through LFS: each config's weights, as stored, must fit."""
    from ddpm.data import dataset_info

    c, info = TrainConfig.from_file(name), dataset_info(TrainConfig.from_file(name).dataset)
    model = ddpm.build(c.family, image_size=info.image_size, channels=info.channels,
                       num_classes=len(info.class_names), widths=c.widths, attention=c.attention,
                       layers_per_block=c.layers_per_block, class_emb_size=c.class_emb_size, dropout=c.dropout)
    bytes_per_weight = {"float32": 4, "float16": 2}[c.weights_dtype]
    assert bytes_per_weight * model.num_parameters() <= 10 * 1024 * 1024


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


def test_cli_sample_per_class_png_and_batches(tmp_path, tiny_checkpoint):
    out = tmp_path / "grid.png"
    assert main(["sample", "--model", str(tiny_checkpoint), "--per-class", "2", "--steps", "2", "--batch", "4",
                 "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    npz = tmp_path / "pc.npz"
    main(["sample", "--model", str(tiny_checkpoint), "--per-class", "2", "--steps", "2", "--out", str(npz)])
    assert np.load(npz)["labels"].tolist() == [0, 0, 1, 1, 2, 2]


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

    images, labels, _ = _toy_data(n=16, size=28, classes=10)
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
