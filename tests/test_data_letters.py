"""The letters dataset: fonts, glyph rendering, MNIST-style fitting and augmentation."""

from __future__ import annotations


import numpy as np
import pytest
from PIL import ImageFont

from ddpm.data.fonts import FontFace, is_symbol_face, style_rank
from ddpm.data.glyphs import RENDER_SIZE, alphabet_problem, augment_glyph, fit_glyph, render_letters, to_uint8
from ddpm.data.letters import glyph_samples, split_font_groups


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
