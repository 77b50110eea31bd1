"""Pictures from the page: image editors that hand over files undecoded, and their values read into plain
pictures and masks for ``ddpm.images``.

Gradio decodes an ImageEditor's files itself before a handler runs, so a text file named .png, an empty or
truncated file, an SVG or a 20000x20000 picture sent through the API failed with Gradio's opaque "the
upstream app has raised an exception". The editors here pass file paths (or a blob's bytes) on, and
``ddpm.images.open_image`` decodes them with a one-line reason for whatever it cannot read.

An editor value is a dict ``{"background": file or None, "layers": [file, ...], "composite": file or None}``.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

import gradio as gr
from gradio.data_classes import FileData

from ddpm import images as im

# The inpainting mask's colour: a brush stroke is this at 65% opacity (what counts is its alpha); a preset
# mask (the examples' lower half) is painted into the picture itself in this colour, opaque, so it is shown
# and sent whatever the editor does with its layers. ``MASK_TOLERANCE`` absorbs the canvas's rounding.
MASK_RGB = (255, 40, 90)
MASK_TOLERANCE = 2
NO_IMAGE = "no image: upload one, pick an example, or draw"


def _undecoded(self, file, flatten_on_white: bool = False):
    """An editor's file as its path (a browser blob as its bytes), in place of Gradio's decoding."""
    if file is None:
        return None
    if isinstance(file, (bytes, bytearray, memoryview)):
        return bytes(file)
    return file.path if isinstance(file, FileData) else file


def undecoded(editor: gr.ImageEditor) -> gr.ImageEditor:
    """Make an ImageEditor / ImageMask / Sketchpad hand its handler undecoded files (see the module docstring).
    Set on the instance, not in a subclass: Gradio writes a .pyi file next to any module defining a component."""
    editor.convert_and_format_image = _undecoded.__get__(editor)
    return editor


def _rgba(source, what: str) -> np.ndarray:
    if source is None:
        raise ValueError(NO_IMAGE)
    if isinstance(source, (str, bytes)):
        picture = im.open_image(source, what)
    elif isinstance(source, Image.Image):
        picture = source
    else:  # an array (a test, or an example picture already read)
        picture = Image.fromarray(np.asarray(source))
    return np.asarray(picture.convert("RGBA"))


def editor_parts(value) -> tuple[np.ndarray | None, list[np.ndarray]]:
    """An editor value (or a plain picture) -> (background RGBA uint8 or None, painted layers RGBA uint8).
    A value holding only its composite (what some API clients send) is read as the background."""
    if value is None:
        raise ValueError(NO_IMAGE)
    if not isinstance(value, dict):
        return _rgba(value, "the image"), []
    layers = [_rgba(layer, "a painted layer") for layer in (value.get("layers") or []) if layer is not None]
    bg = value.get("background")
    if bg is None and not layers:
        bg = value.get("composite")
        if bg is None:
            raise ValueError(NO_IMAGE)
    return (None if bg is None else _rgba(bg, "the image")), layers


def _composite(bg: np.ndarray | None, layers: list[np.ndarray]) -> Image.Image:
    """Background (or white paper) with the painted layers on top, as the browser shows it."""
    size = (bg if bg is not None else layers[0]).shape[1::-1]
    canvas = Image.new("RGBA", size, (255, 255, 255, 255))
    if bg is not None:
        canvas = Image.alpha_composite(canvas, Image.fromarray(bg))
    for layer in layers:
        picture = Image.fromarray(layer)
        if picture.size != size:
            picture = picture.resize(size, Image.Resampling.NEAREST)
        canvas = Image.alpha_composite(canvas, picture)
    return canvas.convert("RGB")


def sketch(value, model):
    """A Sketchpad / ImageEditor value (strokes over an optional picture) or a plain picture -> the model's
    (C, H, W) input in [-1, 1]. Strokes on blank paper are prepared as a drawing (``prepare_sketch``), anything
    with a picture as an upload (``prepare_image``). Raises ValueError for an empty or one-colour canvas."""
    return im.prepare_image(sketch_picture(value, model), model)


def sketch_picture(value, model) -> Image.Image:
    """The RGB picture ``sketch`` prepares the model's input from (``prepare_image`` of it is that input): what
    a result's reproduction saves beside it."""
    bg, layers = editor_parts(value)
    painted = any(layer[..., 3].any() for layer in layers)
    if not painted and (bg is None or not bg[..., 3].any()):
        raise ValueError("the sketch is empty: draw something (or upload a picture) first")
    picture = _composite(bg, layers)
    grey = np.asarray(picture.convert("L"))
    if int(grey.max()) - int(grey.min()) < 3 and model.channels == 1:
        raise ValueError("the image is blank (one flat colour): draw something or upload a picture")
    has_picture = bg is not None and bg[..., 3].any() and (bg[..., :3].min() < 250 or bg[..., 3].min() < 255)
    return im.sketch_paper(picture, model) if painted and not has_picture else picture


def preset_region(rgba: np.ndarray) -> np.ndarray:
    """Where a picture is painted opaque in the mask colour (a preset mask): (H, W) bool."""
    close = np.abs(rgba[..., :3].astype(np.int16) - np.asarray(MASK_RGB, np.int16)).max(-1) <= MASK_TOLERANCE
    return close & (rgba[..., 3] == 255)


def inpaint_input(value, model) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """An ImageMask value -> (the picture RGBA uint8, the region to regenerate at the model's resolution
    (S, S) bool, the picture's (width, height)). The region is the painted layers' alpha together with a
    preset mask painted into the picture (``preset_region``)."""
    bg, layers = editor_parts(value)
    if bg is None or not isinstance(value, dict) or value.get("background") is None:
        raise ValueError("no image to inpaint: upload one or pick an example, then paint the region to replace")
    h, w = bg.shape[:2]
    painted = preset_region(bg)
    for layer in layers:
        alpha = layer[..., 3]
        if alpha.shape != (h, w):
            alpha = np.asarray(Image.fromarray(alpha).resize((w, h), Image.Resampling.NEAREST))
        painted |= alpha > 0
    return bg, im.fit_mask(painted, model), (w, h)
