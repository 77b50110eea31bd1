"""Reproduce anything: the panel under every result (its Python text, its command line, the input files they
name, and a link that opens the app with the same settings), and the reading of such a link on page load.

A tab makes its panel with ``panel(ui, recipe, run_button, controls, sampling)`` under its result, adds
``panel.outputs`` (one key, "reproduce": a gr.State, so the tab's API answers stay as they were) to its
outputs, and ends its handler's last yield with ``**result(lab, session, model, recipe, args, settings)``
(``args`` as ``ddpm.reproduce.ARGS`` lists them; a picture or a mask in place of a file name is saved here,
beside the result). The state's change writes the texts, with the page's address from the request; an API
client reads them from ``/<recipe>_texts`` in the same session. ``read_links`` (called by the page once every
tab is built) fills the controls of the tab a link names, through the Model box's own rules (``Lab.model``).
"""
from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from PIL import Image

import ddpm
from ddpm import reproduce as rp
from ddpm.cli.edit import load_mask
from ddpm.device import dtype_name
from ddpm.explore import per_class_labels

from .inputs import NONE
from .lab import UI, Lab, out_dir

TAB_OF = {"generate": "generate", "sdedit": "sdedit", "inpaint": "inpaint", "anagram": "illusions",
          "hybrid": "illusions", "forward": "forward"}
SETTING_CONTROLS = ("sampler", "steps", "guidance", "seed")
EDITORS = ("image", "editor")  # the controls that are picture editors
GRADIO_KEYS = ("__theme", "logs", "view_api")  # query keys of Gradio and of Spaces, not ours
RESULTS = out_dir().parent  # the folder every result's files live under: the only files a link may name


@dataclass
class Panel:
    """A tab's reproduce panel: ``outputs`` ({"reproduce": its state}) join the tab's outputs."""

    outputs: dict
    controls: dict = field(default_factory=dict)  # link argument name -> the tab's control


# -- the panel -------------------------------------------------------------------------------------------------
def panel(ui: UI, recipe: str, run: gr.Button, controls: dict, sampling=None) -> Panel:
    """The accordion under a result: Python, CLI, link and input files; cleared when ``run`` starts another
    run. ``controls`` (the names ``fill`` gives values for) and ``sampling`` (a ``controls.Sampling``) are what
    a link of ``recipe`` fills in."""
    with gr.Accordion("Reproduce this result", open=False, elem_id=f"{recipe}-repro"):
        gr.Markdown("The same result again, exactly (model, classes, every setting, precision and seed): in "
                    "Python, on the command line, or as a link that opens this page with these settings.",
                    elem_classes="help")
        python = gr.Code(language="python", label="Python", interactive=False, lines=6, buttons=["copy"],
                         wrap_lines=True, elem_id=f"{recipe}-python")
        cli = gr.Code(language="shell", label="Command line", interactive=False, lines=2, max_lines=4,
                      buttons=["copy"], wrap_lines=True, elem_id=f"{recipe}-cli")
        link = gr.Textbox(label="Link to these settings", interactive=False, buttons=["copy"],
                          elem_id=f"{recipe}-link")
        outputs = {"python": python, "cli": cli, "link": link}
        if _takes_files(recipe):
            outputs["inputs"] = gr.File(label="The input files the texts name (kept an hour here: download them)",
                                        file_count="multiple", interactive=False, height=90,
                                        elem_id=f"{recipe}-inputs")
    state = gr.State(None)
    blank = [None if name == "inputs" else "" for name in outputs]
    run.click(lambda: blank, None, list(outputs.values()), api_visibility="private", queue=False)

    def show(spec, request: gr.Request):
        return texts(spec, request) if spec else [gr.skip()] * len(outputs)  # no result yet: leave the panel
    state.change(show, state, list(outputs.values()), api_name=f"{recipe}_texts", queue=False, show_progress="hidden")
    named = dict(controls)
    if sampling is not None:
        named.update({name: getattr(sampling, name) for name in SETTING_CONTROLS})
    ui.links[recipe] = named
    return Panel({"reproduce": state}, named)


def _takes_files(recipe: str) -> bool:
    return any(kind == "path" for _, kind, _ in rp.ARGS[recipe])


def model_name(lab: Lab, session, model: ddpm.DiffusionModel) -> str:
    """What the Model box said for ``model``: a bundled name, or the folder / Hub id a user loaded."""
    for name, m in [*lab.models.items(), *(session or {}).items()]:
        if m is model:
            return name
    return model.name


def mask_picture(mask: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """The model's (S, S) bool mask as a white-on-black picture of the original ``size`` (height, width), its
    centre square the mask scaled up (nearest), so the CLI's ``load_mask`` reads it back as the same mask."""
    h, w = size
    side = min(h, w)
    square = Image.fromarray(np.asarray(mask, np.uint8) * 255).resize((side, side), Image.Resampling.NEAREST)
    canvas = Image.new("L", (w, h), 0)
    canvas.paste(square, ((w - side) // 2, (h - side) // 2))
    return canvas


def _save_inputs(recipe: str, args: dict, model) -> tuple[dict, list[str], bool]:
    """Pictures given in place of file names saved as PNG in a fresh results folder: (args with file names,
    the files, whether the mask reads back exactly)."""
    names = {name for name, kind, _ in rp.ARGS[recipe] if kind == "path"}
    pictures = {k: v for k, v in args.items() if k in names and not isinstance(v, (str, Path))}
    if not pictures:
        return args, [str(args[k]) for k in names if args.get(k)], True
    folder, exact, out = out_dir(), True, dict(args)
    for name, picture in pictures.items():
        if isinstance(picture, np.ndarray) and picture.dtype == bool:  # a mask at the model's size
            picture = mask_picture(picture, np.asarray(args["image"]).shape[:2])
            buffer = io.BytesIO()
            picture.save(buffer, "PNG")
            exact = torch.equal(load_mask(buffer, model), torch.from_numpy(pictures[name]))
        picture = picture if isinstance(picture, Image.Image) else Image.fromarray(np.asarray(picture))
        path = folder / f"{name}.png"
        picture.save(path)
        out[name] = str(path)
    return out, [out[k] for k in sorted(names) if k in out], exact


def _base_url(request: gr.Request | None) -> str:
    """The page's public address (behind a Space's proxy too); "" when unknown: the link is then relative."""
    from gradio.route_utils import get_root_url

    try:
        raw = request.request
        return get_root_url(raw, route_path=raw.url.path, root_path=raw.scope.get("root_path")) + "/"
    except Exception:  # noqa: BLE001 - no request, or one built by a test: a relative link still works
        return ""


def result(lab: Lab, session, model: ddpm.DiffusionModel, recipe: str, args: dict, settings: ddpm.Settings) -> dict:
    """The panel's output for a finished result: {"reproduce": the recipe, in plain values, its pictures saved}."""
    args, files, exact = _save_inputs(recipe, args, model)
    return {"reproduce": {"recipe": recipe, "model": model_name(lab, session, model), "args": args,
                          "settings": asdict(settings.resolved(model.device)), "files": files, "exact": exact}}


def texts(spec: dict, request: gr.Request | None = None) -> list:
    """A result's recipe (``result``'s) -> the panel's texts: Python, command line, link (and the input files)."""
    recipe, name, args = spec["recipe"], spec["model"], spec["args"]
    settings = ddpm.Settings(**spec["settings"])
    python = rp.as_python(recipe, name, args, settings)
    try:
        cli = rp.as_cli(recipe, name, args, settings)
    except ValueError as err:
        cli = f"# {err}"
    if not spec["exact"]:
        note = "# the picture is under twice the model's size: the mask file only approximates the mask used\n"
        python, cli = note + python, note + cli
    out = [python, cli, f"{_base_url(request)}?{rp.to_query(recipe, name, args, settings)}"]
    return out + [spec["files"] or None] if _takes_files(recipe) else out


# -- reading a link --------------------------------------------------------------------------------------------
def _picture_file(path: str) -> str:
    """A file a link names, allowed only inside this app's results folder (never any other file here)."""
    p = Path(path).resolve()
    if RESULTS.resolve() not in p.parents:
        raise ValueError(f"the link's picture {Path(path).name!r} is not one of this server's results: upload it")
    if not p.is_file():
        raise ValueError(f"the link's picture {p.name!r} is gone (results are kept an hour): upload it again")
    return str(p)


def _mask_layer(picture: str, mask: str) -> str:
    """An editor layer (the mask colour where the mask file is white) beside the link's mask file."""
    from .uploads import MASK_RGB

    white = np.asarray(Image.open(mask).convert("L")) > 127
    layer = np.zeros((*white.shape, 4), np.uint8)
    layer[white] = (*MASK_RGB, 255)
    path = Path(mask).with_name("mask-layer.png")
    Image.fromarray(layer).save(path)
    return str(path)


def fill(recipe: str, args: dict, settings: ddpm.Settings, model: ddpm.DiffusionModel) -> dict:
    """A link's recipe -> the values of its tab's controls, by the names ``panel`` was given; ValueError (one
    line) for what the tab cannot show."""
    from .tabs.illusions import MAX_CANDIDATES  # the tabs import this module: their limits are read late
    from .tabs.sdedit import STRENGTH_CHOICES

    values = {name: getattr(settings, name) for name in SETTING_CONTROLS}
    # compile is not a control: the page runs compiled once this server's package is loaded (Lab.begin), as the
    # link's run did; the link's Python text and command line name it
    extra = [n for n in ("eta",) if getattr(settings, n) != getattr(ddpm.Settings(), n)]
    if extra:
        raise ValueError(f"the page has no control for {', '.join(extra)}: use the link's Python text")
    here = dtype_name(ddpm.Settings().dtype, model.device)  # the page samples in the library's default precision
    if settings.dtype not in ("auto", here):
        raise ValueError(f"the link's result was sampled in {settings.dtype}, this server samples in {here}: "
                         "its Python text or command line gives the same pixels anywhere")
    target = (lambda label: NONE if label is None else model.classes[model.label_ids([label])[0]])
    if recipe == "generate":
        labels = args["labels"]
        if labels is None:
            return {**values, "per_class": args["n"] or 1}
        names = [model.classes[i] for i in model.label_ids(labels)]
        classes = list(dict.fromkeys(names))
        per_class = len(names) // len(classes)
        if per_class_labels(classes, per_class) != names:
            raise ValueError("the link's labels are not the same number of each class in turn, as the tab samples")
        return {**values, "classes": classes, "per_class": per_class}
    if recipe == "sdedit":
        off = [s for s in args["strengths"] if s not in STRENGTH_CHOICES]
        if off:
            raise ValueError(f"the tab offers strengths {STRENGTH_CHOICES[0]}..1 in steps of 0.1, not {off}")
        return {**values, "image": _picture_file(args["image"]), "target": target(args["labels"]),
                "strengths": args["strengths"]}
    if recipe == "inpaint":
        repaint = (args["jump_length"], args["jump_n_sample"])
        if repaint not in ((0, 1), (5, 3)):
            raise ValueError(f"the tab's RePaint is jump length 5 x 3 passes or none, not {repaint}")
        image, mask = _picture_file(args["image"]), _picture_file(args["mask"])
        return {**values, "editor": {"background": image, "layers": [_mask_layer(image, mask)], "composite": None},
                "target": target(args["labels"]), "repaint": repaint == (5, 3), "count": args["n"]}
    if recipe == "anagram":
        if len(args["parts"]) != 2 or args["parts"][0][1] != "identity":
            raise ValueError("the tab makes two-part anagrams, the first part as is")
        if args["repeats"]:
            raise ValueError("the tab has no control for repeats (time travel): use the link's Python text")
        guidances = args["view_guidance"]
        if guidances is not None and (len(guidances) != 2 or guidances[0] != settings.guidance or not guidances[1]):
            raise ValueError(f"the tab guides the as-is view with Guidance and the transformed one with its own "
                             f"(above 0), not {guidances}: use the link's Python text")
        (a, _), (b, view) = args["parts"]
        return {**values, "class_a": target(a), "class_b": target(b), "view": view, "count": args["n"],
                "candidates": min(args["best_of"], MAX_CANDIDATES),
                "view_guidance": 0.0 if guidances is None else guidances[1]}
    if recipe == "hybrid":
        return {**values, "low": target(args["low_label"]), "high": target(args["high_label"]),
                "sigma": args["sigma"] or 0.0, "count": args["n"], "candidates": args["best_of"],
                "high_guidance": settings.guidance if args["high_guidance"] is None else args["high_guidance"]}
    return {"image": _picture_file(args["image"]), "t": args["t"], "noise_seed": settings.seed,
            "blur": args["blur_sigma"] or 1.0}


def unknown_keys(query: dict) -> list[str]:
    """The link's keys no recipe reads (Gradio's own, "__theme" and the like, are not ours to judge)."""
    known = {"recipe", "model", "label", "view", "compile", *(name for name, _ in rp._SETTINGS),
             *(name for spec in rp.ARGS.values() for name, _, _ in spec)}
    return sorted(k for k in query if k not in known and not k.startswith("__") and k not in GRADIO_KEYS)


def read_links(demo: gr.Blocks, ui: UI, tabs: gr.Tabs) -> None:
    """On page load, a link's query parameters (``ddpm.reproduce.to_query``) select its tab and fill it in;
    what is wrong with a link is a warning on the page, never a crash. The values are set once more after
    the Model box has switched models (its followers reset a model's defaults)."""
    # Picture editors are filled by events of their own that fire only when a link is opened: an editor listed
    # among an event's outputs, even left as it was (gr.skip), lost an upload made just after (test_browser.py)
    every = list(dict.fromkeys(c for controls in ui.links.values() for k, c in controls.items() if k not in EDITORS))
    pending, opened, replay = gr.State(None), gr.State(None), gr.State(None)

    moved = list(dict.fromkeys(ui.followed[c] for c in every if c in ui.followed))
    outputs = [tabs, ui.model, ui.session, pending, opened, *every, *moved]
    nothing = {c: gr.skip() for c in outputs}  # (an empty dict would be read as one value for every output)

    def load(current, session, request: gr.Request):
        query = dict(request.query_params) if request is not None else {}
        if "recipe" not in query:
            return nothing
        from urllib.parse import urlencode

        raw = urlencode(list(request.query_params.multi_items()))
        try:
            recipe, name, args, settings = rp.from_query(raw)
            model = ui.lab.model(name, session)  # the Model box's rules: a Space loads no folders
            values = fill(recipe, args, settings, model)
        except (ValueError, OSError) as err:  # OSError: a folder that is not there, where folders are allowed
            gr.Warning(f"This link could not be opened: {err}", title="Link")
            return nothing
        if settings.compile != ui.lab.runs_compiled(name, model, settings):
            ran, runs = ("compiled", "eagerly") if settings.compile else ("eagerly", "compiled")
            gr.Warning(f"The link's result ran {ran} and this server runs {runs} now: a few pixels may differ. "
                       "Its Python text gives the exact pixels.", title="Link")
        ignored = unknown_keys(query)
        if ignored:
            gr.Warning(f"The link's {', '.join(ignored)} mean nothing here: ignored", title="Link")
        controls = ui.links.get(recipe, {})
        updates = {controls[k]: v for k, v in values.items() if k in controls and k not in EDITORS}
        if name != current:  # the link's guidance / sampler count as the user's: the model switch keeps them
            updates.update({ui.followed[c]: True for c in list(updates) if c in ui.followed})
        return {**nothing, tabs: gr.Tabs(selected=TAB_OF[recipe]), ui.model: name, ui.session: session,
                pending: {"recipe": recipe, "values": values} if name != current else None,
                opened: {"recipe": recipe, "values": values}, **updates}

    def again(box):
        state = box[0] if box else None
        if not state:
            return {c: gr.skip() for c in [pending, *every]}
        controls = ui.links.get(state["recipe"], {})
        filled = {controls[k]: v for k, v in state["values"].items() if k in controls and k not in EDITORS}
        return {**{c: gr.skip() for c in every}, pending: None, **filled}

    demo.load(load, [ui.model, ui.session], outputs, api_visibility="private")
    # after a model switch, a pending link's values once more; the controls are outputs of an event that fires
    # only then (a control among every model switch's outputs lost its own follower's update: test_browser.py)
    ui.model_ready.success(lambda state: [state] if state else gr.skip(),  # (a returned dict reads as outputs)
                           pending, replay, api_visibility="private", queue=False)
    replay.change(again, replay, [pending, *every], api_visibility="private", queue=False)
    for recipe, controls in ui.links.items():
        for key in EDITORS:
            if key in controls:
                opened.change(partial(_editor_value, recipe, key), opened, controls[key], api_visibility="private",
                              queue=False)


def _editor_value(recipe: str, key: str, state):
    return state["values"][key] if state and state["recipe"] == recipe else gr.skip()
