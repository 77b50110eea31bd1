"""ddpm.evaluate on a tiny model and a quadrant classifier: sampling, settings, rows."""
from __future__ import annotations

import math

import pytest
import torch

import ddpm
import ddpm.device
from ddpm import evaluate as ev
from ddpm.tables import format_class_table, format_table
from ddpm.testing import quadrant_images

SIZE, CLASSES = 16, 4


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


def test_sample_images_is_balanced_and_seeded(quadrant_model):
    settings = ddpm.Settings(sampler="ddim", steps=2, guidance=2.0, seed=3)
    images, labels = ev.sample_images(quadrant_model, 6, settings, batch=4, progress=False)
    again, _ = ev.sample_images(quadrant_model, 6, settings, batch=4, progress=False)
    assert images.shape == (6, 1, SIZE, SIZE) and torch.bincount(labels).tolist() == [2, 2, 1, 1]
    assert torch.equal(images, again)


def test_evaluate_rows(quadrant_model, quadrant_classifier, monkeypatch):
    test_images, test_labels = quadrant_images(40, seed=2)
    settings = ev.settings_from_spec("ddim:2,dpm++:3", guidance=2.0, dtype="auto")
    monkeypatch.setattr(quadrant_classifier, "meta", {"key": "q1234", "test_accuracy": 0.99})  # as if cached
    rows = ev.evaluate(quadrant_model, settings, n=8, classifier=quadrant_classifier, test_images=test_images,
                       test_labels=test_labels, batch=4, progress=False, log=lambda _: None)
    # each row names the precision "auto" ran at (float32 in tests: conftest), never "auto"
    assert [(r["setting"], r["dtype"]) for r in rows] == [("ddim 2 steps, guidance 2", "float32"),
                                                          ("dpm++ 3 steps, guidance 2", "float32")]
    monkeypatch.setattr(ddpm.device, "cpu_has_native_bfloat16", lambda: True)  # as on an AVX512-BF16 CPU
    native = ev.evaluate(quadrant_model, settings[:1], n=8, classifier=quadrant_classifier, test_images=test_images,
                         test_labels=test_labels, batch=4, progress=False, log=lambda _: None)
    assert [(r["setting"], r["dtype"]) for r in native] == [("ddim 2 steps, guidance 2, bfloat16", "bfloat16")]
    for row in rows:
        assert {"setting", "n", "accuracy", "fid", "fid_floor", "seconds"} <= row.keys()
        assert row["n"] == 8 and row["floor_n"] == 8 and row["reference_n"] == 32
        assert row["classifier"] == {"key": "q1234", "test_accuracy": 0.99}  # which classifier judged it
        assert 0 <= row["accuracy"] <= 1 and row["accuracy_real"] == 1.0
        assert all(math.isfinite(row[k]) and row[k] >= 0 for k in ("fid", "fid_floor", "seconds"))
    table = format_table(rows)
    assert table.count("\n") == 3 and "ddim 2 steps, guidance 2" in table
    for row in rows:  # the overall accuracy is the class-balanced mean of the per-class ones
        per_class = row["class_accuracy"]
        assert list(per_class) == quadrant_model.class_names
        assert row["accuracy"] == pytest.approx(sum(per_class.values()) / len(per_class), abs=1e-3)
        assert row["class_accuracy_real"] == {name: 1.0 for name in quadrant_model.class_names}  # quadrants: all right
    per_class_table = format_class_table(rows)
    assert per_class_table.count("\n") == 1 + len(quadrant_model.class_names)
    assert per_class_table.startswith("| class | ddim 2 steps, guidance 2 | dpm++ 3 steps, guidance 2 | real test images |")


def test_evaluate_rejects_bad_input(quadrant_model, quadrant_classifier):
    test_images, _ = quadrant_images(40)
    kwargs = dict(classifier=quadrant_classifier, test_images=test_images, progress=False)
    with pytest.raises(ValueError, match="n >= 4"):
        ev.evaluate(quadrant_model, [ddpm.Settings(steps=2)], n=3, **kwargs)
    with pytest.raises(ValueError, match="at most 50 steps"):
        ev.evaluate(quadrant_model, [ddpm.Settings(steps=51)], n=8, **kwargs)
    with pytest.raises(ValueError, match="test images are"):
        ev.evaluate(quadrant_model, [ddpm.Settings(steps=2)], n=8, classifier=quadrant_classifier,
                    test_images=torch.zeros(40, 1, 28, 28), progress=False)
    with pytest.raises(ValueError, match="unknown sampler"):
        ev.settings_from_spec("foo:10")
    with pytest.raises(ValueError, match="bad guidance 'x'"):
        ev.settings_from_spec("dpm++:20", guidance="1,x")
    with pytest.raises(ValueError, match="guidance must be between"):
        ev.settings_from_spec("dpm++:20", guidance="1,-2")


def test_sample_images_is_the_cli_s_batched_sampling(quadrant_model):
    """evaluate and ``python -m ddpm sample`` share one batched sampler: batch i runs with seed + i."""
    from ddpm.batched import generate_in_batches

    settings = ddpm.Settings(sampler="ddim", steps=2, seed=5)
    images, labels = ev.sample_images(quadrant_model, 6, settings, batch=4, progress=False)
    first = ddpm.generate(quadrant_model, labels[:4].tolist(), settings=settings).run()
    second = ddpm.generate(quadrant_model, labels[4:].tolist(), settings=settings.with_(seed=6)).run()
    assert torch.equal(images, torch.cat([first, second]))
    assert torch.equal(generate_in_batches(quadrant_model, labels.tolist(), settings=settings, batch=4), images)
    with pytest.raises(ValueError, match="batch must be between 1 and 256"):
        generate_in_batches(quadrant_model, [0], settings=settings, batch=0)
