"""Glyph images for the letters dataset: render a character, fit it MNIST-style, augment it.

Every glyph is float32 (h, w) in [0, 1], white ink on black.
"""

from __future__ import annotations

import hashlib
from typing import Iterable

import numpy as np

LETTERS = tuple(chr(c) for c in range(ord("A"), ord("Z") + 1))

RENDER_SIZE = 64          # font size (px) glyphs are rendered at before fitting
GLYPH_BOX = 20            # MNIST: glyph fitted into a 20x20 box ...
GLYPH_CANVAS = 28         # ... centred by centre of mass in 28x28
GLYPH_MARGIN = 1          # px of black kept around every glyph (when it fits)
MAX_MISSING_LETTERS = 2   # more missing letters than this: the face is not a Latin text face
INK_THRESHOLD = 0.02      # ink level (0..1) that counts as part of the glyph
MIN_INK_PIXELS = 20       # fewer inked pixels at RENDER_SIZE: the glyph is empty


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
