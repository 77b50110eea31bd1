"""Letters dataset: render every chosen font face, split by font group, augment the train glyphs."""

from __future__ import annotations

import hashlib
import io
import os
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from .downloads import Log
from .fonts import FontFace, list_font_faces, read_font_files
from .glyphs import (
    GLYPH_CANVAS, LETTERS, RENDER_SIZE, alphabet_problem, augment_glyph, fit_glyph, render_letters, to_uint8,
)

LETTERS_TEST_FRACTION = 0.1
LETTERS_TRAIN_VARIANTS = 8
LETTERS_TEST_VARIANTS = 2
LETTERS_SEED = 0


def render_alphabet(face: FontFace) -> tuple[list[np.ndarray | None], str | None]:
    """Render A-Z of one face: (26 glyphs or None where missing, rejection reason or None)."""
    from PIL import ImageFont

    # BASIC layout: one glyph per character, no shaping surprises, no libraqm needed.
    font = ImageFont.truetype(io.BytesIO(face.data), RENDER_SIZE, layout_engine=ImageFont.Layout.BASIC)
    if face.instance is not None:
        font.set_variation_by_name(face.instance)
    glyphs = render_letters(font)
    return glyphs, alphabet_problem(glyphs)


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
