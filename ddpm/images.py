"""Conversions at the edges: model space is (B, C, H, W) float in [-1, 1]; users see uint8 HWC
arrays, PIL images, PNG grids. Also the preparation of sketches and photos for a model."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.utils import make_grid, save_image

from .data import from_model_range


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped, float32 on the CPU (the data module's conversion, moved off the device)."""
    return from_model_range(x.detach().cpu())


def from_unit(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1]."""
    return x.float() * 2 - 1


def to_numpy(x: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) in [-1, 1] -> float32 [0, 1] shaped (B, H, W) for C=1 or (B, H, W, 3) for C=3."""
    u = to_unit(x)
    return (u[:, 0] if u.shape[1] == 1 else u.permute(0, 2, 3, 1)).numpy()


def to_uint8(x: torch.Tensor, rgb: bool = True) -> np.ndarray:
    """(C, H, W) or (B, C, H, W) in [-1, 1] -> uint8 (H, W, 3) / (B, H, W, 3), grey repeated to RGB.
    ``rgb=False`` keeps one channel for grey images: (H, W, 1) / (B, H, W, 1), a third of the memory."""
    u = to_unit(x)
    if u.dim() == 3:
        u = u[None]
    if u.shape[1] == 1 and rgb:
        u = u.repeat(1, 3, 1, 1)
    arr = (u.permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)
    return arr[0] if x.dim() == 3 else arr


def grid(x: torch.Tensor, nrow: int = 8, padding: int = 2, pad_value: float = 0.5) -> torch.Tensor:
    """(B, C, H, W) in [-1, 1] -> one (3, H', W') [0, 1] grid image."""
    g = make_grid(to_unit(x), nrow=nrow, padding=padding, pad_value=pad_value)
    return g


def save_grid(x: torch.Tensor, path: str | Path, nrow: int = 8, scale: int = 1) -> Path:
    """Save (B, C, H, W) in [-1, 1] as a PNG grid, optionally upscaled by ``scale`` (nearest)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    g = grid(x, nrow=nrow)
    if scale > 1:
        g = torch.nn.functional.interpolate(g[None], scale_factor=scale, mode="nearest")[0]
    save_image(g, path)
    return path


# -- preparing user images for a model ---------------------------------------------------------------
# Uploads and sketches arrive as numpy arrays (H, W), (H, W, 1|3|4) or PIL images of any mode and size;
# the models want (C, H, W) tensors in [-1, 1] that look like their training data.
MIN_SIDE = 8         # px: smaller "images" (1x1 uploads, empty canvases) carry no picture
MAX_SIDE = 4096      # px: larger uploads are refused rather than resized for seconds
GLYPH_BOX = {"mnist": 20, "letters": 20}  # datasets normalised like MNIST: glyph fitted into a 20-px box
INK_LEVEL = 0.1      # ink (0..1, after inversion) that counts as a stroke when cropping
LIGHT_BACKGROUND = 0.5  # a border brighter than this on average is paper: invert to white-on-black


def _to_pil(image) -> Image.Image:
    """numpy (H, W), (H, W, 1|2|3|4) of uint8 / bool / uint16 / float in [0, 1], or a PIL image -> PIL."""
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, (str, Path)):
        return open_image(image, f"the image {str(image)!r}")
    if image is None:
        raise ValueError("no image: upload one, pick an example, or draw")
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (2, 3, 4)):
        raise ValueError(f"an image must be shaped (H, W) or (H, W, 1-4 channels), got {arr.shape}")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint16:
        arr = (arr // 257).astype(np.uint8)
    elif arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError("the image holds NaN or infinite values")
        arr = (np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 2:  # grey + alpha
        arr = np.concatenate([np.repeat(arr[..., :1], 3, 2), arr[..., 1:]], 2)
    return Image.fromarray(arr)


def _check_size(im: Image.Image) -> None:
    w, h = im.size
    if min(w, h) < MIN_SIDE:
        raise ValueError(f"the image is {w}x{h} px: too small to show anything (at least {MIN_SIDE}x{MIN_SIDE})")
    if max(w, h) > MAX_SIDE:
        raise ValueError(f"the image is {w}x{h} px: too large (at most {MAX_SIDE} px a side); shrink it first")


def _flatten(im: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB, transparency composited onto white (so RGBA emoji and sketches keep their paper)."""
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16/32-bit greys: stretch to 8 bits
        arr = np.asarray(im, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
        im = Image.fromarray((arr * 255 + 0.5).astype(np.uint8))
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def _grey_ink(rgb: Image.Image) -> np.ndarray:
    """RGB -> float (H, W) in [0, 1] as white strokes on black, inverting dark-on-light pictures."""
    grey = np.asarray(rgb.convert("L"), dtype=np.float32) / 255
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    return 1 - grey if border.mean() > LIGHT_BACKGROUND else grey


def _centre_square(im: Image.Image) -> Image.Image:
    w, h = im.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return im.crop((left, top, left + side, top + side))


def _as_tensor(arr: np.ndarray) -> torch.Tensor:
    """float [0, 1] (H, W) or (H, W, 3) -> (C, H, W) in [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    t = t[None] if t.dim() == 2 else t.permute(2, 0, 1)
    return from_unit(t.clamp(0, 1))


def _resize(arr: np.ndarray, size: int) -> np.ndarray:
    """float [0, 1] (H, W) -> (size, size) with antialiasing (box filter when shrinking, like area averaging)."""
    im = Image.fromarray(arr.astype(np.float32))
    method = Image.Resampling.BOX if im.size[0] >= size else Image.Resampling.BICUBIC
    return np.clip(np.asarray(im.resize((size, size), method)), 0, 1)


def prepare_image(image, model, keep_layout: bool = False) -> torch.Tensor:
    """An upload (numpy array, PIL image of any mode, or a file path) -> (C, H, W) tensor in [-1, 1]
    that looks like ``model``'s training data.

    Grayscale models see white strokes on black: a light background is inverted. For MNIST-style data
    (``GLYPH_BOX``) the picture is cropped to its strokes, fitted into a 20-px box and centred by its
    centre of mass in the 28-px canvas, as MNIST was made; other grayscale data (Fashion-MNIST) is fitted
    into the whole canvas and centred by its bounding box, as Fashion-MNIST was made. Colour models get the
    picture centre-cropped to a square and resized with antialiasing.
    ``keep_layout=True`` (inpainting, where a mask must stay aligned) only centre-crops and resizes.
    Raises ValueError for missing, unreadable, tiny, huge or blank images.
    """
    im = _to_pil(image)
    _check_size(im)
    rgb = _flatten(im)
    size = model.image_size
    if model.channels == 3:
        arr = np.asarray(_centre_square(rgb).resize((size, size), Image.Resampling.LANCZOS), dtype=np.float32) / 255
        return _as_tensor(arr)
    ink = _grey_ink(rgb)
    if keep_layout:
        w, h = rgb.size
        side = min(w, h)
        top, left = (h - side) // 2, (w - side) // 2
        return _as_tensor(_resize(ink[top:top + side, left:left + side], size))
    if ink.max() - ink.min() < 1e-3:
        raise ValueError("the image is blank: one flat colour, nothing to show the model")
    from .data import fit_glyph  # MNIST's normalisation, shared with the letters dataset

    ink = (ink - ink.min()) / (ink.max() - ink.min())
    big = Image.fromarray(ink.astype(np.float32))
    if max(big.size) > 4 * size * 4:  # fit_glyph resizes from the crop: shrink huge photos first
        scale = 4 * size * 4 / max(big.size)
        big = big.resize((max(1, round(big.size[0] * scale)), max(1, round(big.size[1] * scale))), Image.Resampling.BOX)
    ink = np.clip(np.asarray(big), 0, 1)
    ink = np.where(ink > INK_LEVEL, ink, 0)  # paper texture and JPEG noise are not strokes
    if not ink.any():
        raise ValueError("the image has no strokes: nothing stands out from the background")
    if model.dataset in GLYPH_BOX:
        return _as_tensor(fit_glyph(ink, box=GLYPH_BOX[model.dataset], size=size))
    return _as_tensor(_fit_canvas(ink, size))


def _fit_canvas(ink: np.ndarray, size: int) -> np.ndarray:
    """Fashion-MNIST's normalisation: the ink's bounding box, longest side scaled to ``size`` (aspect kept),
    centred by that box (not by centre of mass, which would push a boot or a bag up against the edge)."""
    from .data.glyphs import crop_to_ink

    thing = crop_to_ink(ink)
    h, w = thing.shape
    scale = size / max(h, w)
    new_w, new_h = (int(np.clip(round(n * scale), 1, size)) for n in (w, h))
    small = Image.fromarray(thing).resize((new_w, new_h), Image.Resampling.LANCZOS)
    out = np.zeros((size, size), dtype=np.float32)
    top, left = (size - new_h + 1) // 2, (size - new_w + 1) // 2  # an odd spare pixel goes before, as in the dataset
    out[top:top + new_h, left:left + new_w] = np.clip(np.asarray(small, dtype=np.float32), 0, 1)
    return out


def open_image(source, name: str = "the image") -> Image.Image:
    """A file path or the bytes of an image file -> PIL image, decoded only once its size is checked.
    Raises ValueError with a one-line reason (naming ``name``, never a server path) for what is not an
    image PIL reads (a text file, an empty file, an SVG), a damaged or cut-short file, or a huge one."""
    import io

    try:
        with Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source) as im:
            _check_size(im)  # the header only: a 20000x20000 upload is refused before it is decoded
            im.load()
            return im.copy()
    except Image.DecompressionBombError:  # PIL's own refusal, at many times MAX_SIDE squared
        raise ValueError(f"{name} is far too large (at most {MAX_SIDE} px a side): shrink it first") from None
    except UnidentifiedImageError:
        raise ValueError(f"{name} is not a picture this app can read: use a PNG, JPEG, WebP, GIF, BMP or "
                         f"TIFF file (SVG and other vector files are not supported)") from None
    except OSError as err:
        reason = str(err).split(" '/")[0].split("\n")[0] or type(err).__name__
        raise ValueError(f"{name} could not be decoded, the file looks damaged or cut short ({reason})") from None


def prepare_sketch(picture, model) -> torch.Tensor:
    """A drawing on blank white paper (RGB, any size) -> (C, H, W) in [-1, 1], as ``prepare_image``; for a
    colour model the picture is first cropped to what was drawn (with a margin), so a small drawing in a
    corner of the canvas fills the model's image as an emoji fills its frame (``sketch_paper``)."""
    return prepare_image(sketch_paper(picture, model), model)


def sketch_paper(picture, model) -> Image.Image:
    """The RGB picture ``prepare_sketch`` hands ``prepare_image``: the drawing, cropped for a colour model.
    Saved losslessly, it gives the very same model input through ``prepare_image`` (a result's reproduction)."""
    picture = _flatten(_to_pil(picture))
    if model.channels == 3:
        ink = 1 - np.asarray(picture.convert("L"), dtype=np.float32) / 255
        rows, cols = np.flatnonzero(ink.max(1) > INK_LEVEL), np.flatnonzero(ink.max(0) > INK_LEVEL)
        if len(rows):
            side = int(max(rows[-1] - rows[0], cols[-1] - cols[0]) * 1.25) + 2
            cy, cx = (rows[0] + rows[-1]) // 2, (cols[0] + cols[-1]) // 2
            paper = Image.new("RGB", (side, side), (255, 255, 255))
            paper.paste(picture, (side // 2 - cx, side // 2 - cy))
            picture = paper
    return picture


def fit_mask(mask, model, threshold: float = 0.3) -> np.ndarray:
    """A painted region (H, W) bool, True = regenerate, at the picture's size -> (S, S) bool at the model's
    resolution, centre-cropped like ``prepare_image(keep_layout=True)`` and shrunk with area averaging; a
    model pixel is masked when more than ``threshold`` of it was painted. Raises ValueError for an empty
    region or one that covers no model pixel."""
    alpha = np.asarray(mask).astype(np.float32)
    if alpha.ndim != 2:
        raise ValueError(f"a mask must be shaped (H, W), got {alpha.shape}")
    if not alpha.any():
        raise ValueError("the mask is empty: paint over the region you want to regenerate")
    h, w = alpha.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    small = _resize(alpha[top:top + side, left:left + side], model.image_size) > threshold
    if not small.any():
        where = f"outside the centre {side}x{side} square the model sees, or " if side < max(h, w) else ""
        raise ValueError(f"the painted region is {where}too thin to cover one of the model's "
                         f"{model.image_size}x{model.image_size} pixels: paint a larger area")
    return small


# -- showing results ---------------------------------------------------------------------------------
def display_scale(image_size: int, target: int = 224) -> int:
    """Integer NEAREST upscale factor that shows an ``image_size`` image at about ``target`` px."""
    return max(1, round(target / image_size))


def to_display(x: torch.Tensor, scale: int = 1) -> np.ndarray:
    """(C, H, W) or (B, C, H, W) in [-1, 1] -> uint8 (H*s, W*s, 3) / (B, H*s, W*s, 3), pixels kept sharp."""
    arr = to_uint8(x)
    if scale > 1:
        arr = arr.repeat(scale, axis=-3).repeat(scale, axis=-2)
    return arr


def show_noise(eps: torch.Tensor, spread: float = 2.0) -> torch.Tensor:
    """A noise estimate (about N(0, 1)) mapped into [-1, 1] for display: +-``spread`` std -> black..white."""
    return (eps / spread).clamp(-1, 1)


def mask_overlay(image: torch.Tensor, mask, scale: int = 1, colour=(255, 40, 90), alpha: float = 0.6) -> np.ndarray:
    """(C, H, W) in [-1, 1] with the (H, W) bool mask tinted in ``colour`` -> uint8 (H*s, W*s, 3)."""
    base = to_uint8(image).astype(np.float32)
    m = np.asarray(mask, dtype=bool)[..., None]
    tinted = np.where(m, (1 - alpha) * base + alpha * np.asarray(colour, np.float32), base)
    arr = (tinted + 0.5).astype(np.uint8)
    return arr.repeat(scale, 0).repeat(scale, 1) if scale > 1 else arr


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


def caption_lines(text: str, fits) -> list[str]:
    """A caption as one line if it ``fits`` (a str -> bool test of width), else two lines split at the space
    that balances them best ("Smileys &" / "Emotion"), each line that still does not fit shortened with …
    A " · " separator at the split is dropped: the line break separates ("People & Body" / "rotated 180°")."""
    lines = [text]
    if not fits(text) and " " in text.strip():
        words = text.split()
        splits = [(" ".join(words[:k]).removesuffix(" ·"), " ".join(words[k:]).removeprefix("· "))
                  for k in range(1, len(words))]
        lines = list(min(splits, key=lambda pair: (max(map(len, pair)), len(pair[1]))))  # ties: "&" ends line one
    out = []
    for line in lines:
        while len(line) > 3 and not fits(line):
            line = line[:-2] + "…"
        out.append(line)
    return out


def captioned_grid(x: torch.Tensor, captions: list[str] | None = None, ncol: int = 8, scale: int = 4,
                   pad: int = 4, background=(255, 255, 255)) -> Image.Image:
    """(B, C, H, W) in [-1, 1] -> one RGB PIL image: tiles upscaled ``scale`` x (NEAREST) in rows of
    ``ncol``, each with its caption (if any) centred underneath, on two lines where one is too narrow."""
    from PIL import ImageDraw

    tiles = to_display(x, scale)
    if tiles.ndim == 3:
        tiles = tiles[None]
    n, th, tw = tiles.shape[:3]
    ncol = max(1, min(ncol, n))
    nrow = -(-n // ncol)
    font = _font(max(10, min(16, tw // 8)))
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines = [caption_lines(str(c), lambda s: draw.textlength(s, font=font) <= tw) for c in captions or []]
    line_h = font.size + 2
    cap_h = max(map(len, lines)) * line_h + 4 if lines else 0
    sheet = Image.new("RGB", (pad + ncol * (tw + pad), pad + nrow * (th + cap_h + pad)), background)
    draw = ImageDraw.Draw(sheet)
    for i in range(n):
        r, c = divmod(i, ncol)
        left, top = pad + c * (tw + pad), pad + r * (th + cap_h + pad)
        sheet.paste(Image.fromarray(tiles[i]), (left, top))
        for k, line in enumerate(lines[i] if lines else []):
            draw.text((left + tw / 2, top + th + 3 + k * line_h), line, fill=(40, 40, 40), font=font, anchor="ma")
    return sheet


def save_gif(frames: list, path: str | Path, ms: int = 120, hold_ms: int = 1500) -> Path:
    """Frames (PIL images or uint8 arrays, same size) -> an animated GIF that loops, the last frame held."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ims = [f if isinstance(f, Image.Image) else Image.fromarray(f) for f in frames]
    if not ims:
        raise ValueError("no frames to animate")
    durations = [ms] * (len(ims) - 1) + [hold_ms]
    ims[0].save(path, save_all=True, append_images=ims[1:], duration=durations, loop=0, optimize=False)
    return path


def png_data_uri(image) -> str:
    """uint8 (H, W) / (H, W, 1|3) array or PIL image -> 'data:image/png;base64,...' for an <img src>."""
    import base64
    import io

    if not isinstance(image, Image.Image):
        arr = np.asarray(image)
        image = Image.fromarray(arr[..., 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr)
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
