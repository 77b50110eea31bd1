"""Emoji: Google Noto PNGs from the npm package emoji-datasource-google, by CLDR category."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np

from .downloads import Log, download_npm

# CLDR emoji categories in their canonical order ("Component" is dropped).
EMOJI_CATEGORIES = (
    "Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink",
    "Travel & Places", "Activities", "Objects", "Symbols", "Flags",
)

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
