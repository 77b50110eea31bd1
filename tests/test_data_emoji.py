"""The emoji dataset: compositing, base-emoji selection, per-class splits."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from ddpm.data.emoji import emoji_png_to_rgb, select_base_emoji, split_per_class


# ---------------------------------------------------------------- emoji


def _rgba_png(size=64) -> bytes:
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))  # transparent *black*
    img.paste((255, 0, 0, 255), (16, 16, 48, 48))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_emoji_png_is_composited_on_white_and_resized():
    rgb = emoji_png_to_rgb(_rgba_png())
    assert rgb.shape == (3, 32, 32) and rgb.dtype == np.uint8
    assert rgb[:, 0, 0].tolist() == [255, 255, 255]  # transparent -> white, not black
    assert rgb[:, 16, 16].tolist() == [255, 0, 0]
    assert rgb[0].min() >= 250  # red channel: white and red are both 255 everywhere


def test_select_base_emoji_drops_components_and_keeps_order():
    entries = [
        {"image": "b.png", "category": "Flags", "sort_order": 2, "has_img_google": True},
        {"image": "a.png", "category": "Smileys & Emotion", "sort_order": 1, "has_img_google": True,
         "skin_variations": {"1F3FB": {"image": "a-1f3fb.png"}}},
        {"image": "tone.png", "category": "Component", "sort_order": 0, "has_img_google": True},
        {"image": "c.png", "category": "Objects", "sort_order": 3, "has_img_google": False},
    ]
    assert select_base_emoji(entries) == [("a.png", 0), ("b.png", 8)]


def test_split_per_class_holds_out_about_ten_percent_of_each_class():
    labels = np.repeat(np.arange(3), [50, 20, 7])
    mask = split_per_class(labels, 0.1, seed=0)
    assert [int(mask[labels == c].sum()) for c in range(3)] == [5, 2, 1]
    np.testing.assert_array_equal(mask, split_per_class(labels, 0.1, seed=0))
