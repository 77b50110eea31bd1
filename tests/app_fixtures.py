"""What the app's test files share: tiny random models shaped like the bundled ones, the app on a free port,
and helpers to build editor values and read a client's errors. (Not a test file: imported by them.)"""
from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
from PIL import Image

import app
import ddpm

DIGITS = [str(i) for i in range(10)]
EMOJI = ["Smileys & Emotion", "People & Body", "Animals & Nature"]
FAST = {"steps": 3}  # sampler steps for calls that check behaviour rather than defaults


def tiny(name: str, size: int, channels: int, classes: list[str], dataset: str, seed: int = 0) -> ddpm.DiffusionModel:
    """A scratch UNet with widths (8, 16, 16); weights nudged so the zero-initialised head does not answer 0."""
    torch.manual_seed(seed)
    denoiser = ddpm.build("scratch", image_size=size, channels=channels, num_classes=len(classes), widths=(8, 16, 16),
                          attention=(False, False, True), layers_per_block=1)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in denoiser.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return ddpm.DiffusionModel(denoiser.eval(), ddpm.NoiseSchedule(), classes, dataset, name=name)


def tiny_models() -> dict[str, ddpm.DiffusionModel]:
    return {"mnist": tiny("mnist", 28, 1, DIGITS, "mnist"), "emoji": tiny("emoji", 32, 3, EMOJI, "emoji")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(models):
    """The app on a free port, in this process: (demo, url). One torch thread: tiny models gain nothing from
    two, and on a shared 2-core machine two threads spin against each other."""
    demo = app.build_demo(models)
    _, url, _ = app.launch(demo, server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    return demo, url


def png(tmp_path, arr, name="img.png", mode=None) -> str:
    path = tmp_path / name
    image = Image.fromarray(arr) if mode is None else Image.fromarray(arr).convert(mode)
    image.save(path)
    return str(path)


def editor(background: str | None, layers=(), composite=None) -> dict:
    from gradio_client import handle_file

    return {"background": handle_file(background) if background else None,
            "layers": [handle_file(p) for p in layers], "composite": composite}


def digit_picture(size=224) -> np.ndarray:
    """A dark '7'-ish stroke on white paper, like a photo of a handwritten digit."""
    arr = np.full((size, size), 255, np.uint8)
    s = size // 8
    arr[2 * s:3 * s, 2 * s:6 * s] = 20
    for k in range(4 * s):
        c = 6 * s - k // 2
        arr[3 * s + k, c - s // 2:c + s // 2] = 20
    return arr


def layer(size=224, rows=slice(112, None), alpha=200) -> np.ndarray:
    arr = np.zeros((size, size, 4), np.uint8)
    arr[rows] = (255, 40, 90, alpha)
    return arr


def app_error(call, case: str = "") -> str:
    """The message of the gr.Error that ``call`` must raise."""
    from gradio_client.exceptions import AppError

    try:
        call()
    except AppError as err:
        return str(err)
    pytest.fail(f"no error raised{' for ' + case if case else ''}")
