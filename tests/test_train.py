"""The Trainer on tiny models (CPU, seconds): steps, divergence, resumable state, time budgets, init_from."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import ddpm
from ddpm.testing import squares_dataset
from ddpm.train import TrainConfig, Trainer

TINY = dict(widths=(8, 16), attention=(False, True), layers_per_block=1, batch_size=8, lr=1e-3, warmup=1,
            sample_every=0, log_every=1, checkpoint_every=10**6, checkpoint_minutes=1e6)


@pytest.mark.parametrize("family", ["scratch", "unet2d-class", "unet2d-concat"])
def test_two_training_steps_give_a_finite_loss_and_move_the_weights(tmp_path, family):
    images, labels, names = squares_dataset()
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
    images, labels, names = squares_dataset(n=64)
    config = TrainConfig(name="toy", family="scratch", steps=60, out_dir=str(tmp_path / "run"),
                         **{**TINY, "lr": 3e-3, "batch_size": 16})
    trainer = Trainer(config, images, labels, names)
    trainer.fit()
    first = np.mean([loss for _, loss in trainer.losses[:10]])
    last = np.mean([loss for _, loss in trainer.losses[-10:]])
    assert last < 0.7 * first, (first, last)


def test_a_diverging_run_stops_with_a_clear_error_and_never_saves_a_nan_state(tmp_path):
    images, labels, names = squares_dataset()
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
    images, labels, names = squares_dataset()
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
    images, labels, names = squares_dataset()
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
    images, labels, names = squares_dataset()
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
    images, labels, names = squares_dataset()
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
    images, labels, names = squares_dataset()
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
    images, labels, names = squares_dataset()
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
    images, labels, names = squares_dataset()
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


@pytest.mark.parametrize("family", ["scratch", "unet2d-class", "unet2d-concat"])
def test_init_from_maps_a_checkpoints_classes_onto_new_ones(tmp_path, family):
    """emoji v2 starts from v1 with other classes: each new class starts as its parent class(es) of the
    checkpoint (one parent: exactly its predictions; two: their mean embedding), the null class as the
    null class, every other weight copied; a table that misses a class or names an unknown one is refused."""
    images, labels, names = squares_dataset(classes=3)
    source = ddpm.load(Trainer(TrainConfig(name="toy", family=family, steps=2, out_dir=str(tmp_path / "a"), **TINY),
                               images, labels, names).fit()).denoiser
    new_names = ["wide", "left", "middle", "right"]
    table = {"wide": ("c0", "c2"), "left": ("c0",), "middle": ("c1",), "right": ("c2",)}
    config = TrainConfig(name="toy2", family=family, steps=4, out_dir=str(tmp_path / "b"),
                         init_from=str(tmp_path / "a" / "final"), init_classes=table, **TINY)
    trainer = Trainer(config, images, labels % 4, new_names)
    target = trainer.accelerator.unwrap_model(trainer.model)
    assert trainer.step == 2
    x, t = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([500, 20])
    with torch.no_grad():
        for new, old in ((1, 0), (2, 1), (3, 2), (None, None)):  # None: the null class
            want = source(x, t, None if old is None else torch.tensor([old, old]))
            got = target(x, t, None if new is None else torch.tensor([new, new]))
            assert torch.allclose(got, want, atol=1e-6), (new, old)
    key, axis = target.class_table
    mine, theirs = target.state_dict()[key], source.state_dict()[key]
    assert torch.allclose(mine.select(axis, 0), (theirs.select(axis, 0) + theirs.select(axis, 2)) / 2)
    trainer.fit()
    config.steps = 5  # the map survives a resume; a same-class continuation ignores the table
    meta = ddpm.load(Trainer(config, images, labels % 4, new_names).fit()).meta["training"]
    assert meta["steps"] == 5 and meta["init_classes"]["wide"] == ["c0", "c2"]
    assert meta["continued_from"].endswith("each class started from the class(es) its init_classes entry names there")
    again = TrainConfig(**{**vars(config), "out_dir": str(tmp_path / "e"), "init_from": str(tmp_path / "b" / "final"),
                           "steps": 6})
    meta = ddpm.load(Trainer(again, images, labels % 4, new_names).fit()).meta["training"]
    assert "init_classes" not in meta and "each class" not in meta["continued_from"]
    for bad, match in (({k: v for k, v in table.items() if k != "wide"}, r"no entry for \['wide'\]"),
                       ({**table, "up": ("c0",)}, r"names no class of the data: \['up'\]"),
                       ({**table, "left": ("c9",)}, r"source lacks: \['c9'\]")):
        with pytest.raises(ValueError, match=match):
            Trainer(TrainConfig(**{**vars(config), "out_dir": str(tmp_path / "c"), "init_classes": bad}),
                    images, labels % 4, new_names)
    with pytest.raises(ValueError, match="should be a table of class name"):
        TrainConfig(init_classes={"wide": "c0"})


def test_a_batch_bigger_than_the_data_is_refused_at_once(tmp_path):
    images, labels, names = squares_dataset(n=10)
    with pytest.raises(ValueError, match="batch_size 16 is more than the 10 training images: use 10 or less"):
        Trainer(TrainConfig(name="toy", family="scratch", steps=2, out_dir=str(tmp_path / "run"),
                            **{**TINY, "batch_size": 16}), images, labels, names)
