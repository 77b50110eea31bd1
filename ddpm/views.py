"""Views for visual anagrams and filters for hybrid images.

A view is an invertible, orthogonal transform of a (B, C, H, W) image: ``view(x)`` and
``view.inverse(y)`` with ``view.inverse(view(x)) == x`` exactly. Views never modify their input.
Because the views are orthogonal, a noise estimate made on the viewed image maps back to the
original frame through the inverse (Geng et al., "Visual Anagrams", 2024).
"""
from __future__ import annotations

import math

import torch
from torchvision.transforms.functional import gaussian_blur

from .defaults import AFAR_FACTOR


class View:
    name = "identity"
    description = "the image as it is"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y.clone()

    def check(self, height: int, width: int) -> None:
        """Raise ValueError if this view cannot act on an H x W image."""

    @property
    def spec(self) -> str:
        """What ``get_view`` takes to make this view again: "rot180", "patches:7"."""
        return self.name

    def __repr__(self):
        return f"{type(self).__name__}()"


class FlipVertical(View):
    name, description = "flip_v", "upside down (flip top to bottom)"

    def __call__(self, x):
        return x.flip(-2)

    inverse = __call__


class FlipHorizontal(View):
    name, description = "flip_h", "mirrored (flip left to right)"

    def __call__(self, x):
        return x.flip(-1)

    inverse = __call__


class Rotate180(View):
    name, description = "rot180", "rotated 180 degrees"

    def __call__(self, x):
        return x.rot90(2, dims=(-2, -1))

    inverse = __call__


class Rotate90(View):
    name, description = "rot90", "rotated 90 degrees counter-clockwise"

    def __call__(self, x):
        return x.rot90(1, dims=(-2, -1))

    def inverse(self, y):
        return y.rot90(-1, dims=(-2, -1))

    def check(self, height, width):
        if height != width:
            raise ValueError(f"rot90 needs a square image, got {height}x{width}")


class Rotate270(Rotate90):
    name, description = "rot270", "rotated 90 degrees clockwise"

    def __call__(self, x):
        return super().inverse(x)

    def inverse(self, y):
        return super().__call__(y)


class Transpose(View):
    name, description = "transpose", "transposed (mirrored across the main diagonal)"

    def __call__(self, x):
        return x.transpose(-2, -1).contiguous()

    inverse = __call__

    def check(self, height, width):
        if height != width:
            raise ValueError(f"transpose needs a square image, got {height}x{width}")


class Negate(View):
    name, description = "negate", "colours inverted (black <-> white)"

    def __call__(self, x):
        return -x

    inverse = __call__


class PatchPermute(View):
    """Cut the image into ``patch`` x ``patch`` tiles and shuffle them with a fixed permutation
    (a jigsaw). ``patch`` must divide both sides of the image."""

    name = "patches"

    def __init__(self, patch: int = 7, seed: int = 0):
        if patch < 1:
            raise ValueError(f"patch size must be positive, got {patch}")
        self.patch, self.seed = int(patch), int(seed)
        self.description = f"{self.patch}px tiles shuffled (jigsaw)"

    @property
    def spec(self) -> str:
        return f"{self.name}:{self.patch}"

    def __repr__(self):
        return f"PatchPermute(patch={self.patch}, seed={self.seed})"

    def check(self, height, width):
        if height % self.patch or width % self.patch or self.patch >= max(height, width):
            whole = " and be smaller (one tile is no jigsaw)" if self.patch >= max(height, width) else ""
            raise ValueError(f"patch size {self.patch} must divide the image size {height}x{width}{whole}; "
                             f"try one of {divisors(math.gcd(height, width))}")

    def _perm(self, n: int) -> torch.Tensor:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        if n > 1 and torch.equal(perm, torch.arange(n)):  # never the identity: that is no illusion
            perm = perm.roll(1)
        return perm

    def _tiles(self, x):
        B, C, H, W = x.shape
        self.check(H, W)
        p = self.patch
        return x.reshape(B, C, H // p, p, W // p, p).permute(0, 1, 2, 4, 3, 5).reshape(B, C, -1, p, p)

    @staticmethod
    def _untile(tiles, H, W):
        B, C, _, p, _ = tiles.shape
        return tiles.reshape(B, C, H // p, W // p, p, p).permute(0, 1, 2, 4, 3, 5).reshape(B, C, H, W)

    def __call__(self, x):
        tiles = self._tiles(x)
        return self._untile(tiles[:, :, self._perm(tiles.shape[2])], *x.shape[-2:])

    def inverse(self, y):
        tiles = self._tiles(y)
        perm = self._perm(tiles.shape[2])
        return self._untile(tiles[:, :, torch.argsort(perm)], *y.shape[-2:])


def divisors(n: int) -> list[int]:
    return [d for d in range(2, n) if n % d == 0]


VIEWS: dict[str, type[View]] = {v.name: v for v in
                                (View, FlipVertical, FlipHorizontal, Rotate180, Rotate90, Rotate270, Transpose,
                                 Negate, PatchPermute)}


def get_view(spec: str | View) -> View:
    """A view by name: "flip_v", "rot90", ... or "patches:7" for a 7-px jigsaw."""
    if isinstance(spec, View):
        return spec
    name, _, arg = str(spec).strip().partition(":")
    if name not in VIEWS:
        raise ValueError(f"unknown view {spec!r}; choose one of {', '.join(VIEWS)} (patches:SIZE for a jigsaw)")
    if name == "patches":
        if arg and not arg.isdigit():
            raise ValueError(f"patch size in {spec!r} must be a positive integer")
        return PatchPermute(int(arg) if arg else 7)
    if arg:
        raise ValueError(f"view {name!r} takes no argument")
    return VIEWS[name]()


# -- frequency filters for hybrid images -----------------------------------------------------------
def default_sigma(image_size: int) -> float:
    """Seed 004 blurs 64-px images with sigma 2; keep the same fraction of the image at other sizes."""
    return 2.0 * image_size / 64


def lowpass(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur with std ``sigma`` pixels; the kernel spans +-3 sigma, clipped to the image."""
    if sigma <= 0:
        raise ValueError(f"blur sigma must be positive, got {sigma}")
    limit = 2 * min(x.shape[-2:]) - 1  # reflect padding needs the half-kernel smaller than the image
    size = min(2 * math.ceil(3 * sigma) + 1, limit if limit % 2 else limit - 1)
    return gaussian_blur(x, [size, size], [sigma, sigma])


def highpass(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """What the low-pass leaves out: ``x - lowpass(x)``, so the two sum back to x exactly."""
    return x - lowpass(x, sigma)


# -- "from afar": area downsampling, and the split of an image by what survives it ---------------------


def check_factor(factor: int, height: int, width: int) -> None:
    """Raise ValueError unless ``factor`` (an integer > 1) divides both sides of an H x W image."""
    if not isinstance(factor, int) or factor < 2 or height % factor or width % factor:
        raise ValueError(f"the from-afar factor must be an integer > 1 dividing the image size {height}x{width}, "
                         f"got {factor!r}; try one of {divisors(math.gcd(height, width))}")


def area_down(x: torch.Tensor, factor: int = AFAR_FACTOR) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H/factor, W/factor): each output pixel the mean of a factor x factor block."""
    check_factor(factor, *x.shape[-2:])
    return torch.nn.functional.avg_pool2d(x, factor)


def area_lowpass(x: torch.Tensor, factor: int = AFAR_FACTOR) -> torch.Tensor:
    """The orthogonal projection onto images that are constant on factor x factor blocks: every pixel
    replaced by its block's mean. ``area_lowpass(area_lowpass(x)) == area_lowpass(x)``, and
    ``area_down`` of ``x`` and of ``area_lowpass(x)`` agree: it keeps exactly what a from-afar view sees.
    Orthogonal, so it splits i.i.d. Gaussian noise into two independent Gaussian parts."""
    return area_down(x, factor).repeat_interleave(factor, -2).repeat_interleave(factor, -1)


def area_highpass(x: torch.Tensor, factor: int = AFAR_FACTOR) -> torch.Tensor:
    """What ``area_lowpass`` leaves out (every block's mean is 0): invisible from afar."""
    return x - area_lowpass(x, factor)
