"""ddpm.evaluate on synthetic data: Fréchet distance, classifier training and cache, evaluate rows."""
from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import torch

import ddpm
from ddpm import evaluate as ev
from ddpm.checkpoint import DiffusionModel
from ddpm.schedule import NoiseSchedule

SIZE, CLASSES = 16, 4


def exact_gaussian_samples(means, variances, n=64, seed=0) -> np.ndarray:
    """(n, D) samples whose sample mean is exactly ``means`` and whose (n-1)-normalised sample
    covariance is exactly diag(``variances``): orthonormal zero-mean columns, rescaled."""
    rng = np.random.default_rng(seed)
    d = len(means)
    q, _ = np.linalg.qr(np.column_stack([np.ones(n), rng.normal(size=(n, d))]))
    z = q[:, 1:] * math.sqrt(n - 1)  # orthogonal to the ones column: zero mean, unit variance, uncorrelated
    return np.asarray(means) + z * np.sqrt(variances)


def quadrant_images(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 1, SIZE, SIZE) images in [-1, 1]: dark noise with class k's quadrant bright; (n,) labels."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % CLASSES
    images = -0.8 + 0.2 * torch.rand(n, 1, SIZE, SIZE, generator=g)
    half = SIZE // 2
    for k in range(CLASSES):
        r, c = divmod(k, 2)
        images[labels == k, :, r * half:(r + 1) * half, c * half:(c + 1) * half] += 1.5
    return images.clamp(-1, 1), labels


@pytest.fixture(scope="module")
def quadrant_classifier():
    images, labels = quadrant_images(256)
    return ev.train_classifier(images, labels, CLASSES, epochs=3, seed=0, batch_size=32, progress=False)


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    denoiser = ddpm.build("scratch", image_size=SIZE, channels=1, num_classes=CLASSES, widths=(8, 16),
                          attention=(False, False), layers_per_block=1).eval()
    return DiffusionModel(denoiser, NoiseSchedule(num_timesteps=50), [f"q{k}" for k in range(CLASSES)],
                          "toy", name="tiny")


# -- Fréchet distance ---------------------------------------------------------------------------------
def test_frechet_of_identical_sets_is_zero():
    feats = np.random.default_rng(0).normal(size=(200, 8))
    assert ev.frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)


def test_frechet_is_symmetric():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 6)), rng.normal(0.5, 2.0, size=(200, 6))
    assert ev.frechet_distance(a, b) == pytest.approx(ev.frechet_distance(b, a), rel=1e-6)


def test_frechet_matches_1d_closed_form():
    m1, s1, m2, s2 = 0.5, 2.0, -1.0, 0.5  # means and variances
    a, b = exact_gaussian_samples([m1], [s1], seed=2), exact_gaussian_samples([m2], [s2], seed=3)
    expected = (m1 - m2) ** 2 + s1 + s2 - 2 * math.sqrt(s1 * s2)
    assert ev.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_frechet_matches_diagonal_closed_form():
    m1, v1 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 4.0, 0.25])
    m2, v2 = np.array([1.0, 1.0, 0.0]), np.array([9.0, 1.0, 0.25])
    a, b = exact_gaussian_samples(m1, v1, seed=4), exact_gaussian_samples(m2, v2, n=80, seed=5)
    expected = ((m1 - m2) ** 2).sum() + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum()
    assert ev.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_frechet_rejects_bad_features():
    with pytest.raises(ValueError, match="same D"):
        ev.frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="NaN"):
        ev.frechet_distance(np.full((5, 3), np.nan), np.zeros((5, 3)))


def test_frechet_is_finite_with_fewer_samples_than_dimensions():
    rng = np.random.default_rng(6)
    d = ev.frechet_distance(rng.normal(size=(8, 32)), rng.normal(size=(8, 32)))
    assert math.isfinite(d) and d >= 0


# -- classifier ---------------------------------------------------------------------------------------
def test_classifier_learns_quadrants(quadrant_classifier):
    images, labels = quadrant_images(64, seed=1)  # unseen images
    assert ev.accuracy(quadrant_classifier, images, labels) == 1.0
    feats = ev.features(quadrant_classifier, images, batch=16)
    assert feats.shape == (64, quadrant_classifier.config.feature_dim) and feats.dtype == np.float64


def test_class_accuracies_count_each_class_on_its_own():
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 3])
    predicted = torch.tensor([0, 0, 0, 2, 0, 1, 3])
    assert ev.class_accuracies(predicted, labels, 4) == [0.75, 0.5, None, 1.0]


def test_classifier_takes_uint8_and_32px():
    clf = ev.Classifier(ev.ClassifierConfig(channels=3, num_classes=9)).eval()
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    assert ev.predict(clf, images).shape == (5,)
    assert clf(ev._model_range(images)).shape == (5, 9)


def test_random_shift_moves_content_and_keeps_shape():
    x = torch.zeros(3, 1, 8, 8)
    x[:, :, 4, 4] = 1
    shifted = ev.random_shift(x, 2, torch.Generator().manual_seed(0))
    assert shifted.shape == x.shape and torch.equal(shifted.sum(dim=(1, 2, 3)), x.sum(dim=(1, 2, 3)))


def test_classifier_cache_round_trips(tmp_path, monkeypatch):
    from ddpm import data

    images, labels = quadrant_images(64)
    uint8 = ((images + 1) * 127.5).round().to(torch.uint8)

    def fake_load(name, split="train", root=None):
        return data.ImageSet(name, uint8, labels, [f"q{k}" for k in range(CLASSES)])

    monkeypatch.setattr(data, "load", fake_load)
    recipe = ev.TrainingRecipe(epochs=1, batch_size=32)
    first = ev.classifier_for("toy", cache_dir=tmp_path, recipe=recipe, log=lambda _: None)
    assert first.meta["trained_now"] and 0 <= first.meta["test_accuracy"] <= 1
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".safetensors"]

    def no_training(*args, **kwargs):
        raise AssertionError("the cached classifier should have been loaded")

    monkeypatch.setattr(ev, "train_classifier", no_training)
    second = ev.classifier_for("toy", cache_dir=tmp_path, recipe=recipe)
    assert not second.meta["trained_now"]
    assert second.meta["test_accuracy"] == first.meta["test_accuracy"]
    torch.testing.assert_close(ev.features(second, images), ev.features(first, images))
    # with no recipe given, the dataset's own entry in RECIPES names the cached classifier
    monkeypatch.setitem(ev.RECIPES, "toy", recipe)
    assert not ev.classifier_for("toy", cache_dir=tmp_path).meta["trained_now"]
    # a different recipe (or architecture version) is a different key: it would train again
    with pytest.raises(AssertionError, match="cached"):
        ev.classifier_for("toy", cache_dir=tmp_path, recipe=ev.TrainingRecipe(epochs=2))


# -- sampling and evaluate ----------------------------------------------------------------------------
def test_balanced_labels():
    assert torch.bincount(ev.balanced_labels(10, 4)).tolist() == [3, 3, 2, 2]
    with pytest.raises(ValueError, match="cannot cover all 4 classes"):
        ev.balanced_labels(3, 4)


def test_parse_samplers():
    assert ev.parse_samplers("ddpm:1000, ddim:50,dpm++:20") == [("ddpm", 1000), ("ddim", 50), ("dpm++", 20)]
    for bad, message in (("foo:10", "unknown sampler 'foo'"), ("ddim", "NAME:STEPS"), ("ddim:0", "NAME:STEPS"),
                         ("ddim:x", "NAME:STEPS"), ("", "no sampler")):
        with pytest.raises(ValueError, match=message):
            ev.parse_samplers(bad)


def test_sample_images_is_balanced_and_seeded(tiny_model):
    settings = ddpm.Settings(sampler="ddim", steps=2, guidance=2.0, seed=3)
    images, labels = ev.sample_images(tiny_model, 6, settings, batch=4, progress=False)
    again, _ = ev.sample_images(tiny_model, 6, settings, batch=4, progress=False)
    assert images.shape == (6, 1, SIZE, SIZE) and torch.bincount(labels).tolist() == [2, 2, 1, 1]
    assert torch.equal(images, again)


def test_evaluate_rows(tiny_model, quadrant_classifier, monkeypatch):
    test_images, test_labels = quadrant_images(40, seed=2)
    settings = ev.settings_from_spec("ddim:2,dpm++:3", guidance=2.0)
    monkeypatch.setattr(quadrant_classifier, "meta", {"key": "q1234", "test_accuracy": 0.99})  # as if cached
    rows = ev.evaluate(tiny_model, settings, n=8, classifier=quadrant_classifier, test_images=test_images,
                       test_labels=test_labels, batch=4, progress=False, log=lambda _: None)
    assert [r["setting"] for r in rows] == ["ddim 2 steps, guidance 2", "dpm++ 3 steps, guidance 2"]
    for row in rows:
        assert {"setting", "n", "accuracy", "fid", "fid_floor", "seconds"} <= row.keys()
        assert row["n"] == 8 and row["floor_n"] == 8 and row["reference_n"] == 32
        assert row["classifier"] == {"key": "q1234", "test_accuracy": 0.99}  # which classifier judged it
        assert 0 <= row["accuracy"] <= 1 and row["accuracy_real"] == 1.0
        assert all(math.isfinite(row[k]) and row[k] >= 0 for k in ("fid", "fid_floor", "seconds"))
    table = ev.format_table(rows)
    assert table.count("\n") == 3 and "ddim 2 steps, guidance 2" in table
    for row in rows:  # the overall accuracy is the class-balanced mean of the per-class ones
        per_class = row["class_accuracy"]
        assert list(per_class) == tiny_model.class_names
        assert row["accuracy"] == pytest.approx(sum(per_class.values()) / len(per_class), abs=1e-3)
        assert row["class_accuracy_real"] == {name: 1.0 for name in tiny_model.class_names}  # quadrants: all right
    per_class_table = ev.format_class_table(rows)
    assert per_class_table.count("\n") == 1 + len(tiny_model.class_names)
    assert per_class_table.startswith("| class | ddim 2 steps, guidance 2 | dpm++ 3 steps, guidance 2 | real test images |")


def test_evaluate_rejects_bad_input(tiny_model, quadrant_classifier):
    test_images, _ = quadrant_images(40)
    kwargs = dict(classifier=quadrant_classifier, test_images=test_images, progress=False)
    with pytest.raises(ValueError, match="n >= 4"):
        ev.evaluate(tiny_model, [ddpm.Settings(steps=2)], n=3, **kwargs)
    with pytest.raises(ValueError, match="at most 50 steps"):
        ev.evaluate(tiny_model, [ddpm.Settings(steps=51)], n=8, **kwargs)
    with pytest.raises(ValueError, match="test images are"):
        ev.evaluate(tiny_model, [ddpm.Settings(steps=2)], n=8, classifier=quadrant_classifier,
                    test_images=torch.zeros(40, 1, 28, 28), progress=False)
    with pytest.raises(ValueError, match="unknown sampler"):
        ev.settings_from_spec("foo:10")
    with pytest.raises(ValueError, match="bad guidance 'x'"):
        ev.settings_from_spec("dpm++:20", guidance="1,x")
    with pytest.raises(ValueError, match="guidance must be between"):
        ev.settings_from_spec("dpm++:20", guidance="1,-2")


def test_guidance_sweep_is_one_row_per_sampler_and_value(capsys):
    sweep = ev.settings_from_spec("ddim:50,dpm++:20", guidance=" 1, 1.5,3 ", seed=4)
    assert [(s.sampler, s.steps, s.guidance) for s in sweep] == [
        ("ddim", 50, 1.0), ("ddim", 50, 1.5), ("ddim", 50, 3.0), ("dpm++", 20, 1.0), ("dpm++", 20, 1.5), ("dpm++", 20, 3.0)]
    assert {s.seed for s in sweep} == {4}
    args = ev.add_arguments(argparse.ArgumentParser()).parse_args(["--model", "m", "--guidance", "1,1.50"])
    assert "--guidance 1,1.5 --seed 0" in ev.command_line(args)
    assert ev.run(ev.add_arguments(argparse.ArgumentParser()).parse_args(["--model", "m", "--guidance", "a"])) == 2
    assert "bad guidance 'a'" in capsys.readouterr().err


def test_cli_measures_at_the_models_own_guidance_unless_told(tmp_path, tiny_model, monkeypatch, capsys):
    """Without --guidance, evaluate samples at the checkpoint's default and the card's command names it;
    the card lists that default and the per-class accuracies."""
    tiny_model.meta["sampling"] = {"guidance": 4}
    folder = tiny_model.save(tmp_path / "tiny")
    del tiny_model.meta["sampling"]
    seen = []

    def fake_evaluate(model, settings, **_):  # the sampling itself is tested above
        seen.append([s.guidance for s in settings])
        return [{"setting": ev.settings_label(s), "guidance": s.guidance, "n": 8, "accuracy": 0.75, "fid": 3.0,
                 "fid_floor": 1.0, "seconds": 0.1, "class_accuracy": {"q0": 1.0, "q1": 0.5}} for s in settings]

    monkeypatch.setattr(ev, "evaluate", fake_evaluate)
    parser = ev.add_arguments(argparse.ArgumentParser())
    assert ev.run(parser.parse_args(["--model", str(folder), "--samplers", "ddim:2", "--write-card"])) == 0
    assert ev.run(parser.parse_args(["--model", str(folder), "--samplers", "ddim:2", "--guidance", "1"])) == 0
    assert seen == [[4.0], [1.0]]
    assert "| q1 | 0.50 |" in capsys.readouterr().out
    card = (folder / "README.md").read_text()
    assert "--samplers ddim:2 --guidance 4 --seed 0`" in card
    assert "| default guidance | 4 " in card
    assert "| class | ddim 2 steps, guidance 4 |" in card and "| q0 | 1.00 |" in card


def test_cli_measures_with_the_models_own_sampler_unless_told(tmp_path, tiny_model, monkeypatch):
    plain = tiny_model.save(tmp_path / "plain")
    tiny_model.meta["sampling"] = {"sampler": "dpm++sde"}
    folder = tiny_model.save(tmp_path / "tiny")
    del tiny_model.meta["sampling"]
    seen = []
    monkeypatch.setattr(ev, "evaluate", lambda model, settings, **_: seen.append(settings) or [])
    monkeypatch.setattr(ev, "format_table", lambda rows: "")
    parser = ev.add_arguments(argparse.ArgumentParser())
    assert ev.run(parser.parse_args(["--model", str(folder)])) == 0
    assert ev.run(parser.parse_args(["--model", str(folder), "--samplers", "ddim:3"])) == 0
    assert ev.run(parser.parse_args(["--model", str(plain)])) == 0
    assert [(s.sampler, s.steps, s.guidance) for [s] in seen] == [("dpm++sde", 20, 1.5), ("ddim", 3, 1.5),
                                                                  ("dpm++", 20, 1.5)]
    from ddpm.card import model_card
    card = model_card(ddpm.load(folder))
    assert "| default sampler | dpm++sde " in card and "default guidance" not in card


def test_cli_reports_bad_sampler(capsys):
    parser = ev.add_arguments(argparse.ArgumentParser())
    assert ev.run(parser.parse_args(["--model", "mnist", "--samplers", "foo:10"])) == 2
    assert "unknown sampler 'foo'" in capsys.readouterr().err
    assert ev.run(parser.parse_args(["--model", "mnist", "--samplers", ""])) == 2  # empty is not "the default"
    assert "no sampler given" in capsys.readouterr().err


def test_write_card(tmp_path, tiny_model):
    folder = tiny_model.save(tmp_path / "tiny")
    rows = [{"setting": "ddim 2 steps, guidance 2", "n": 8, "accuracy": 0.5, "fid": 3.25, "fid_floor": 1.5,
             "seconds": 0.1, "accuracy_real": float("nan")}]
    assert ev.local_folder(str(folder)) == folder
    ev.write_card(folder, ddpm.load(folder), rows, "python -m ddpm evaluate --model x")
    config = ddpm.load(folder).meta["metrics"]
    assert config["rows"][0]["fid"] == 3.25 and config["rows"][0]["accuracy_real"] is None
    card = (folder / "README.md").read_text()
    assert "| ddim 2 steps, guidance 2 | 8 | 0.500 | 3.25 | 1.50 |" in card
    assert "Measured with `python -m ddpm evaluate --model x`." in card
    # a second run adds its row and replaces the one it measured again; each row keeps its command
    again = [{**rows[0], "fid": 2.5}, {**rows[0], "setting": "ddpm 1000 steps, guidance 2", "fid": 1.75}]
    ev.write_card(folder, ddpm.load(folder), again[1:], "cmd B")
    ev.write_card(folder, ddpm.load(folder), again[:1], "cmd C")
    metrics = ddpm.load(folder).meta["metrics"]
    assert [(r["setting"], r["fid"], r["command"]) for r in metrics["rows"]] == [
        ("ddim 2 steps, guidance 2", 2.5, "cmd C"), ("ddpm 1000 steps, guidance 2", 1.75, "cmd B")]
    assert "Measured with:\n\n- `cmd C`\n- `cmd B`\n" in (folder / "README.md").read_text()
    assert "Evaluation classifier" not in (folder / "README.md").read_text()  # none recorded: none claimed
    # rows name the classifier that measured them; the card says when rows are not comparable
    judged = {**rows[0], "classifier": {"key": "k1", "test_accuracy": 0.99}}
    ev.write_card(folder, ddpm.load(folder), [judged], "cmd D")
    card = (folder / "README.md").read_text()
    assert "Evaluation classifier: `k1` (test accuracy 0.99). Rows measured by different classifiers" in card
    ev.write_card(folder, ddpm.load(folder), [{**judged, "setting": "ddpm 1000 steps, guidance 2"}], "cmd E")
    card = (folder / "README.md").read_text()
    assert "Evaluation classifier: `k1` (test accuracy 0.99).\n" in card  # one classifier for every row
    card = (folder / "README.md").read_text()
    with pytest.raises(ValueError, match=r"would replace the card's row 'ddim 2 steps, guidance 2', measured on 8 "
                                         r"samples, with one on 4: measure with --n 8 or more \(nothing was written\)"):
        ev.write_card(folder, ddpm.load(folder), [{**judged, "n": 4, "fid": 9.0}], "cmd F")
    assert (folder / "README.md").read_text() == card
    with pytest.raises(ValueError, match="bundled or local"):
        ev.local_folder(str(tmp_path / "missing"))
