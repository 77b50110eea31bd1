"""The page: header, tabs, queue and launch. ``build`` assembles any list of tab builders, so a tab module
runs alone (``python -m diffusion_lab.tabs.sdedit``) through ``serve``."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import gradio as gr

import ddpm

from . import compute
from .lab import FILE_TTL, UI, Lab, header, load_bundled
from .reproduce import read_links

QUEUE_SIZE = 16          # waiting requests before "queue is full": one 2-vCPU Space runs one job at a time
CSS_FILE = Path(__file__).resolve().parent / "assets" / "style.css"


def build(models: dict[str, ddpm.DiffusionModel] | None, tabs: list[Callable[[UI], object]]) -> gr.Blocks:
    """A page with the header and ``tabs`` (each ``create(ui)``), in order. ``models=None`` loads every
    bundled checkpoint (once, here). A builder that returns a callable is handed every tab's run events
    after all tabs are built (the Denoising steps tab shows what any run leaves)."""
    problems = []
    if models is None:
        models, problems = compute.call(load_bundled)  # on the torch thread: loading starts its OpenMP team
    lab = Lab(models, problems)
    with gr.Blocks(title="Diffusion Lab", delete_cache=(FILE_TTL, FILE_TTL)) as demo:
        demo.lab = lab  # launch starts its background compilation
        ui = header(lab)
        with gr.Tabs(overflow_behavior="wrap", elem_id="tabs") as tab_row:  # no tab behind a "..." on a phone
            listeners = [create(ui) for create in tabs]
        read_links(demo, ui, tab_row)
        for listen in listeners:
            if callable(listen):
                for event in ui.runs:
                    listen(event)
    return demo


def launch(demo: gr.Blocks, **kwargs):
    """Queue sized for a 2-vCPU Space (one job at a time) and launch; kwargs go to ``Blocks.launch``.
    The address comes from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT when set (a Space sets them). The bundled
    models compile in the background where that pays (``Lab.start_compiling``); the page does not wait."""
    block = not kwargs.pop("prevent_thread_lock", False)
    result = demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=1).launch(
        css=CSS_FILE.read_text(), prevent_thread_lock=True, **kwargs)
    if isinstance(lab := getattr(demo, "lab", None), Lab):  # once the server is up: started before, the compile
        lab.start_compiling()                                # slowed Gradio's start past its localhost check
    if block:
        demo.block_thread()
    return result


def serve(create: Callable[[UI], object]) -> None:
    """Run one tab alone, with the bundled models (for working on that tab)."""
    launch(build(None, [create]))
