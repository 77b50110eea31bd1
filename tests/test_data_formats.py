"""ddpm.data's file formats: the restricted unpickler (mnist's pickle) and IDX (fashion)."""

from __future__ import annotations

import gzip
import io
import os
import pickle

import numpy as np
import pytest

from ddpm.data.fashion import convert_fashion_idx
from ddpm.data.formats import load_numpy_pickle, read_idx
from ddpm.data.mnist import convert_mnist_pickle, mnist_floats_to_uint8


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
