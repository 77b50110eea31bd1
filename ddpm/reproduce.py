"""Reproduce anything: a result's full recipe as Python text, as a command line, and as a link's query string.

A recipe is (recipe name, model name or path, args, Settings). ``args`` holds the recipe's own arguments,
as ``ARGS`` lists them; edits name the picture files they were run on (the app saves the picture it prepared
from, and every path prepares it with ``ddpm.images.prepare_image``), so the text gives exactly that result.
Generation follows the app's and the CLI's one rule: ``ddpm.explore.sample_batches`` (a seed per image).
"""
from __future__ import annotations

import shlex
from urllib.parse import parse_qs, urlencode

from .recipes import Settings

REQUIRED = object()
# recipe -> (argument, kind, default). Kinds: labels (list of class names/indices, or None), label (one, or
# None), int, float, floats (a list), path (a file), parts (anagram: list of (label, view spec)).
ARGS = {
    "generate": (("labels", "labels", None), ("n", "int", None)),
    "sdedit": (("image", "path", REQUIRED), ("strengths", "floats", REQUIRED), ("labels", "label", None)),
    "inpaint": (("image", "path", REQUIRED), ("mask", "path", REQUIRED), ("labels", "label", None),
                ("n", "int", 1), ("jump_length", "int", 0), ("jump_n_sample", "int", 1)),
    "anagram": (("parts", "parts", REQUIRED), ("n", "int", 1)),
    "hybrid": (("low_label", "label", None), ("high_label", "label", None), ("sigma", "float", None),
               ("n", "int", 1)),
}
_SETTINGS = (("sampler", str), ("steps", int), ("guidance", float), ("eta", float), ("seed", int), ("dtype", str))


def _check_recipe(recipe: str) -> None:
    if recipe not in ARGS:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {', '.join(ARGS)}")


def normalise(recipe: str, args: dict) -> dict:
    """``args`` complete (defaults filled in) and in plain types: labels as strings, numbers as int/float."""
    _check_recipe(recipe)
    known = {name for name, _, _ in ARGS[recipe]}
    if set(args) - known:
        raise ValueError(f"{recipe} takes no {', '.join(sorted(set(args) - known))}; its arguments: {', '.join(known)}")
    out = {}
    for name, kind, default in ARGS[recipe]:
        value = args.get(name, default)
        if value is REQUIRED:
            raise ValueError(f"{recipe} needs {name}")
        if value is None:
            out[name] = None
        elif kind == "labels":
            out[name] = [str(v) for v in ([value] if isinstance(value, (str, int)) else value)]
        elif kind == "label" or kind == "path":
            out[name] = str(value)
        elif kind == "int":
            out[name] = int(value)
        elif kind == "float":
            out[name] = float(value)
        elif kind == "floats":
            out[name] = [float(v) for v in value]
        else:  # parts
            out[name] = [(None if label is None else str(label), str(view)) for label, view in value]
    return out


def _settings_text(s: Settings) -> str:
    fields = ", ".join(f"{name}={getattr(s, name)!r}" for name, _ in _SETTINGS)
    return f"ddpm.Settings({fields}{', compile=True' if s.compile else ''})"


def as_python(recipe: str, model_name: str, args: dict, settings: Settings) -> str:
    """Python that gives exactly this result: it ends with ``images``, (B, C, H, W) in [-1, 1]."""
    a = normalise(recipe, args)
    head = (["import torch", ""] if recipe == "sdedit" else []) + ["import ddpm", "import ddpm.images"]
    head += {"generate": ["from ddpm.explore import sample_batches"],
             "sdedit": ["from ddpm.images import prepare_image"],
             "inpaint": ["from ddpm.cli.edit import load_mask", "from ddpm.images import prepare_image"]}.get(recipe, [])
    lines = [*head, "", f"model = ddpm.load({model_name!r})", f"settings = {_settings_text(settings)}"]
    if recipe == "generate":
        call = f"sample_batches(model, {a['labels']!r}, settings" + (f", n={a['n']!r})" if a["n"] is not None else ")")
        lines.append(f"images = {call}")
    elif recipe == "sdedit":
        lines += [f"image = prepare_image({a['image']!r}, model)",
                  f"jobs = ddpm.sdedit(model, image, {a['strengths']!r}, labels={a['labels']!r}, settings=settings)",
                  "images = torch.cat([job.run() for job in jobs])  # one per strength"]
    elif recipe == "inpaint":
        lines += [f"image = prepare_image({a['image']!r}, model, keep_layout=True)",
                  f"mask = load_mask({a['mask']!r}, model)  # True: regenerate",
                  f"images = ddpm.inpaint(model, image.expand({a['n']}, -1, -1, -1), mask, labels={a['labels']!r}, "
                  f"settings=settings, jump_length={a['jump_length']}, jump_n_sample={a['jump_n_sample']}).run()"]
    elif recipe == "anagram":
        lines.append(f"images = ddpm.anagram(model, {a['parts']!r}, n={a['n']}, settings=settings).run()")
    else:
        lines.append(f"images = ddpm.hybrid(model, {a['low_label']!r}, {a['high_label']!r}, sigma={a['sigma']!r}, "
                     f"n={a['n']}, settings=settings).run()")
    lines.append("ddpm.images.save_grid(images, 'result.png')  # or keep working with images: (B, C, H, W) in [-1, 1]")
    return "\n".join(lines) + "\n"


def _cli_labels(labels: list[str]) -> str:
    if any("," in label for label in labels):
        raise ValueError(f"a class name with a comma cannot go into --labels: {labels}")
    return ",".join(labels)


def as_cli(recipe: str, model_name: str, args: dict, settings: Settings, out: str = "result.png") -> str:
    """The ``python -m ddpm ...`` command that gives exactly this result (generate, sdedit and inpaint; the
    illusions have no verb yet: ValueError)."""
    a = normalise(recipe, args)
    if recipe in ("anagram", "hybrid"):
        raise ValueError(f"{recipe} has no command-line verb yet: use the Python text")
    words = ["python", "-m", "ddpm", "sample" if recipe == "generate" else recipe, "--model", model_name]
    if recipe == "generate":
        words += ["--labels", _cli_labels(a["labels"])] if a["labels"] is not None else ["--n", str(a["n"] or 1)]
    else:
        words += ["--image", a["image"]]
        if recipe == "sdedit":
            words += ["--strengths", ",".join(repr(s) for s in a["strengths"])]
        else:
            words += ["--mask", a["mask"], "--n", str(a["n"])]
            if a["jump_length"] > 0 and a["jump_n_sample"] > 1:
                words += ["--repaint", str(a["jump_n_sample"]), "--jump-length", str(a["jump_length"])]
        if a["labels"] is not None:
            words += ["--target", a["labels"]]
    s = settings
    words += ["--sampler", s.sampler, "--steps", str(s.steps), "--guidance", repr(s.guidance), "--seed", str(s.seed)]
    if s.eta:
        words += ["--eta", repr(s.eta)]
    if s.dtype != "float32":
        words += ["--dtype", s.dtype]
    if s.compile:
        words.append("--compile")
    return shlex.join([*words, "--out", out])


def to_query(recipe: str, model_name: str, args: dict, settings: Settings) -> str:
    """The query string of a link that opens the app with this recipe filled in (lists as repeated keys)."""
    a = normalise(recipe, args)
    pairs = [("recipe", recipe), ("model", model_name)]
    for name, kind, _ in ARGS[recipe]:
        value = a[name]
        if value is None:
            continue
        if kind == "parts":
            pairs += [("label", "" if label is None else label) for label, _ in value]
            pairs += [("view", view) for _, view in value]
        elif kind in ("labels", "floats"):
            pairs += [(name, repr(v) if kind == "floats" else v) for v in value]
        else:
            pairs.append((name, repr(value) if kind == "float" else str(value)))
    pairs += [(name, repr(getattr(settings, name)) if kind is float else str(getattr(settings, name)))
              for name, kind in _SETTINGS]
    if settings.compile:
        pairs.append(("compile", "1"))
    return urlencode(pairs)


def from_query(query: str) -> tuple[str, str, dict, Settings]:
    """``to_query``'s inverse: (recipe, model name, args, Settings). Bad values give a one-line ValueError;
    the app applies its own model-path rules to the model name."""
    q = parse_qs(query.lstrip("?"), keep_blank_values=True)

    def one(key, kind=str, default=REQUIRED):
        if key not in q:
            if default is REQUIRED:
                raise ValueError(f"the link has no {key}")
            return default
        try:
            return kind(q[key][-1])
        except ValueError:
            raise ValueError(f"the link's {key} is not a {kind.__name__}: {q[key][-1]!r}") from None

    recipe = one("recipe")
    _check_recipe(recipe)
    args = {}
    for name, kind, default in ARGS[recipe]:
        try:
            if kind == "parts":
                labels, views = q.get("label", []), q.get("view", [])
                if len(labels) != len(views):
                    raise ValueError(f"the link has {len(labels)} labels for {len(views)} views")
                args[name] = [(label or None, view) for label, view in zip(labels, views)]
            elif kind in ("labels", "floats"):
                args[name] = [float(v) for v in q[name]] if kind == "floats" and name in q else q.get(name, default)
            else:
                args[name] = one(name, {"int": int, "float": float}.get(kind, str), default)
        except ValueError as err:
            raise ValueError(f"the link's {name}: {err}") from None
    defaults = Settings()
    values = {name: one(name, kind, getattr(defaults, name)) for name, kind in _SETTINGS}
    return recipe, one("model"), normalise(recipe, args), Settings(**values, compile=one("compile", str, "") == "1")
