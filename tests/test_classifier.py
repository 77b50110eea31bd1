"""ddpm.classifier on synthetic quadrant images: training, its uses, its folder and its cache."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ddpm import classifier as clf_module
from ddpm import data
from ddpm.testing import quadrant_images

CLASSES = 4


def test_classifier_learns_quadrants(quadrant_classifier):
    images, labels = quadrant_images(64, seed=1)  # unseen images
    assert clf_module.accuracy(quadrant_classifier, images, labels) == 1.0
    feats = clf_module.features(quadrant_classifier, images, batch=16)
    assert feats.shape == (64, quadrant_classifier.config.feature_dim) and feats.dtype == np.float64


def test_class_accuracies_count_each_class_on_its_own():
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 3])
    predicted = torch.tensor([0, 0, 0, 2, 0, 1, 3])
    assert clf_module.class_accuracies(predicted, labels, 4) == [0.75, 0.5, None, 1.0]


def test_classifier_takes_uint8_and_32px():
    clf = clf_module.Classifier(clf_module.ClassifierConfig(channels=3, num_classes=9)).eval()
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    assert clf_module.predict(clf, images).shape == (5,)
    assert clf(clf_module._model_range(images)).shape == (5, 9)


def test_random_shift_moves_content_and_keeps_shape():
    x = torch.zeros(3, 1, 8, 8)
    x[:, :, 4, 4] = 1
    shifted = clf_module.random_shift(x, 2, torch.Generator().manual_seed(0))
    assert shifted.shape == x.shape and torch.equal(shifted.sum(dim=(1, 2, 3)), x.sum(dim=(1, 2, 3)))


def test_classifier_cache_round_trips(tmp_path, monkeypatch):
    images, labels = quadrant_images(64)
    uint8 = ((images + 1) * 127.5).round().to(torch.uint8)

    def fake_load(name, split="train", root=None):
        return data.ImageSet(name, uint8, labels, [f"q{k}" for k in range(CLASSES)])

    monkeypatch.setattr(data, "load", fake_load)
    recipe = clf_module.TrainingRecipe(epochs=1, batch_size=32)
    first = clf_module.classifier_for("toy", cache_dir=tmp_path, recipe=recipe, log=lambda _: None)
    assert first.meta["trained_now"] and 0 <= first.meta["test_accuracy"] <= 1
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".safetensors"]

    def no_training(*args, **kwargs):
        raise AssertionError("the cached classifier should have been loaded")

    monkeypatch.setattr(clf_module, "train_classifier", no_training)
    second = clf_module.classifier_for("toy", cache_dir=tmp_path, recipe=recipe)
    assert not second.meta["trained_now"]
    assert second.meta["test_accuracy"] == first.meta["test_accuracy"]
    torch.testing.assert_close(clf_module.features(second, images), clf_module.features(first, images))
    # with no recipe given, the dataset's own entry in RECIPES names the cached classifier
    monkeypatch.setitem(clf_module.RECIPES, "toy", recipe)
    assert not clf_module.classifier_for("toy", cache_dir=tmp_path).meta["trained_now"]
    # a different recipe (or architecture version) is a different key: it would train again
    with pytest.raises(AssertionError, match="cached"):
        clf_module.classifier_for("toy", cache_dir=tmp_path, recipe=clf_module.TrainingRecipe(epochs=2))


def test_a_classifier_folder_round_trips_and_bad_folders_are_named(tmp_path, quadrant_classifier):
    """A classifier is a folder of its own (config.json + model.safetensors), so a checkpoint can carry one."""
    images, _ = quadrant_images(32, seed=3)
    quadrant_classifier.meta = {"key": "q1", "test_accuracy": 1.0}
    folder = quadrant_classifier.save(tmp_path / "judge")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    back = clf_module.load(folder, device="cpu")
    assert back.config == quadrant_classifier.config and back.meta["test_accuracy"] == 1.0
    assert np.array_equal(clf_module.features(back, images), clf_module.features(quadrant_classifier, images))
    with pytest.raises(FileNotFoundError, match="holds no classifier"):
        clf_module.load(tmp_path / "nothing")
    (folder / "config.json").write_text('{"format": "ddpm-checkpoint/1"}')
    with pytest.raises(ValueError, match="is not a ddpm classifier config"):
        clf_module.load(folder)


def _stripes(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """16 px images of two classes told apart only within 4x4 blocks: 1-px stripes, vertical or horizontal,
    plus noise. From afar (``views.area_lowpass``) both classes are the same grey."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    rows = (torch.arange(16) % 2 * 2 - 1.0)[:, None].expand(16, 16)  # +-1 by row: horizontal stripes
    images = torch.where(labels[:, None, None] == 0, rows.T, rows) * 0.8
    return (images[:, None] + 0.1 * torch.randn(n, 1, 16, 16, generator=g)).clamp(-1, 1), labels


def test_afar_trains_on_the_far_view_instead_of_the_image():
    """afar=1 replaces every training image by what is seen of it from afar, in which these two classes are
    the same: nothing can be learnt. afar=0 (the same seed and data) learns them."""
    from ddpm.views import area_lowpass

    images, labels = _stripes(256, seed=0)
    assert torch.allclose(area_lowpass(images[labels == 0][:1]), area_lowpass(images[labels == 1][:1]), atol=0.2)
    config = clf_module.ClassifierConfig(channels=1, num_classes=2, widths=(8, 16), feature_dim=16, dropout=0.0)
    test_images, test_labels = _stripes(128, seed=1)
    trained = {afar: clf_module.train_classifier(images, labels, 2, epochs=3, batch_size=32, max_shift=0, afar=afar,
                                                 config=config, progress=False) for afar in (0.0, 1.0)}
    assert clf_module.accuracy(trained[0.0], test_images, test_labels) == 1.0
    assert clf_module.accuracy(trained[1.0], test_images, test_labels) < 0.7
    with pytest.raises(ValueError, match="afar"):
        clf_module.train_classifier(images, labels, 2, afar=1.5, config=config, progress=False)


def test_a_recipe_without_afar_keeps_its_old_cache_key():
    """Cached evaluation classifiers (FID's features) stay valid: ``afar`` enters the key only when set."""
    config = clf_module.ClassifierConfig()
    assert clf_module.cache_key(config, clf_module.TrainingRecipe()) == "43000e354847"
    shipped = clf_module.shipped_recipe("mnist")
    assert shipped.afar == clf_module.SHIPPED_AFAR > 0
    assert clf_module.cache_key(config, shipped) != "43000e354847"
