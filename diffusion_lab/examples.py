"""The example pictures (test-set images under examples/<dataset>/) and the inpainting presets made from them."""
from __future__ import annotations

import functools
import tempfile
import uuid
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from ddpm import images as im

from .uploads import MASK_RGB

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"


def example_images(models: dict, per_model: int = 10) -> list[list[str]]:
    """[model name, picture] rows from examples/<dataset>/*.png for the loaded models."""
    rows = []
    for name, model in models.items():
        folder = EXAMPLES_DIR / str(model.dataset or "-")
        rows += [[name, str(p)] for p in sorted(folder.glob("*.png"))[:per_model]]
    return rows


def image_examples(model_box, box, rows: list[list], label: str = "Test-set examples") -> None:
    """Example pictures as a gallery of thumbnails; a click also selects the model they belong to."""
    if rows:
        gr.Examples(rows, [model_box, box], label=label, visible_columns=[1], examples_per_page=24)


def preset_mask(picture: str) -> str:
    """An inpainting example: the picture with its lower half painted in the mask colour, as a PNG path.
    The mask lives in the picture itself, so the editor shows it on first view and sends it in every case
    (an editor layer was dropped or baked into the background depending on when the tab was first shown)."""
    with Image.open(picture) as pic:
        arr = np.array(pic.convert("RGB"))
    arr[arr.shape[0] // 2:] = MASK_RGB
    # a fixed file per picture (not swept like results): examples must outlive the results' lifetime
    path = Path(tempfile.gettempdir()) / "diffusion-lab-masks" / f"{uuid.uuid5(uuid.NAMESPACE_URL, picture).hex}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        Image.fromarray(arr).save(path)
    return str(path)


@functools.lru_cache(maxsize=256)
def picture(path: str) -> np.ndarray:
    """An example file as RGBA uint8 (cached: compared on every model switch)."""
    with Image.open(path) as pic:
        return np.asarray(pic.convert("RGBA"))


def _as_rgba(shown) -> np.ndarray | None:
    if shown is None:
        return None
    if isinstance(shown, (str, bytes)):
        try:
            shown = im.open_image(shown, "the editor's picture")
        except ValueError:
            return None
    shown = np.asarray(shown)
    if shown.ndim == 2:
        shown = np.stack([shown] * 3 + [np.full_like(shown, 255)], -1)
    elif shown.shape[-1] == 3:
        shown = np.concatenate([shown, np.full_like(shown[..., :1], 255)], -1)
    return shown


def shows_example(current, value: str) -> bool:
    """Whether an editor's value still shows exactly the example picture ``value`` (nothing drawn, painted or
    uploaded). A few levels of tolerance absorb the browser's own compositing."""
    shown = _as_rgba(current.get("composite") if isinstance(current, dict) else None)
    ref = picture(value)
    return shown is not None and shown.shape == ref.shape and int(np.abs(shown.astype(np.int16) - ref).max()) <= 4


def next_example(current, own: list[str], every: list[str]) -> str | None:
    """What an image box shows after a switch to a model whose examples are ``own`` (``every``: all models'
    examples): that model's first example while the box shows another model's example untouched, else None
    (leave it: no examples, one of its own already, or a picture the user drew or uploaded)."""
    shown = next((v for v in every if shows_example(current, v)), None)
    return own[0] if own and shown is not None and shown not in own else None
