"""Fashion-MNIST: the original IDX files in the Debian package dataset-fashion-mnist."""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

import numpy as np

from .downloads import Log, download_debs, extract_deb
from .formats import read_idx

FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

FASHION_DEB = "dataset-fashion-mnist"
FASHION_DIR = "usr/share/datasets/fashion-mnist"


def download_fashion(raw_dir: Path, log: Log) -> Path:
    """The Debian package shipping the original Fashion-MNIST IDX files."""
    return download_debs([FASHION_DEB], raw_dir, log)[0]


def convert_fashion_idx(idx_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read ``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` from ``idx_dir``.

    Returns images uint8 (N, 1, 28, 28) and labels int64 (N,) per split.
    """
    splits = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(gzip.decompress((idx_dir / f"{prefix}-images-idx3-ubyte.gz").read_bytes()), 3)
        labels = read_idx(gzip.decompress((idx_dir / f"{prefix}-labels-idx1-ubyte.gz").read_bytes()), 1)
        if len(images) != len(labels):
            raise ValueError(f"fashion {split}: {len(images)} images but {len(labels)} labels")
        splits[split] = (images[:, None, :, :], labels.astype(np.int64))
    return splits


def convert_fashion(deb: Path, log: Log) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Unpack the .deb into a temporary folder and read its IDX files."""
    with tempfile.TemporaryDirectory() as tmp:
        return convert_fashion_idx(extract_deb(deb, Path(tmp)) / FASHION_DIR)
