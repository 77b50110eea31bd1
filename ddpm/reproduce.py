"""Reproduce anything: a result's full recipe as Python text, as a command line, and as a link's query string.

A recipe is (recipe name, model name or path, args, Settings). ``args`` holds the recipe's own arguments,
as ``ARGS`` lists them; edits name the picture files they were run on (the app saves the picture it prepared
from, and every path prepares it with ``ddpm.images.prepare_image``), so the text gives exactly that result.
Generation follows the app's and the CLI's one rule: ``ddpm.explore.sample_batches`` (a seed per image).
Illusions draw ``n * best_of`` candidates and keep the best of each ``best_of`` by the model's classifier
(``ddpm.illusions.sample_best``), as the app and ``python -m ddpm illusion`` do. ``forward`` (the forward
process: noise a picture to step t, seeded by ``settings.seed``) has Python text and a link, no verb.
"""
from __future__ import annotations

import shlex
from urllib.parse import parse_qs, urlencode

from .defaults import AFAR_FACTOR
from .recipes import Settings

REQUIRED = object()
# recipe -> (argument, kind, default). Kinds: labels (list of class names/indices, or None), label (one, or
# None), int, float, floats (a list), path (a file), parts (anagram: list of (label, view spec)).
ARGS = {
    "generate": (("labels", "labels", None), ("n", "int", None)),
    "sdedit": (("image", "path", REQUIRED), ("strengths", "floats", REQUIRED), ("labels", "label", None)),
    "inpaint": (("image", "path", REQUIRED), ("mask", "path", REQUIRED), ("labels", "label", None),
                ("n", "int", 1), ("jump_length", "int", 0), ("jump_n_sample", "int", 1)),
    "anagram": (("parts", "parts", REQUIRED), ("n", "int", 1), ("best_of", "int", 1),
                ("view_guidance", "floats", None), ("repeats", "int", 0)),
    "hybrid": (("low_label", "label", None), ("high_label", "label", None), ("sigma", "float", None),
               ("factor", "int", None), ("high_guidance", "float", None), ("n", "int", 1), ("best_of", "int", 1)),
    "forward": (("image", "path", REQUIRED), ("t", "int", REQUIRED), ("blur_sigma", "float", None)),
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
    # named either way for a result (True / False): the default, "auto", runs compiled where a cache has the package
    return f"ddpm.Settings({fields}{'' if s.compile == 'auto' else f', compile={s.compile!r}'})"


def _illusion_lines(a: dict, job: str, readings: str) -> list[str]:
    """An illusion's job, and with ``best_of`` > 1 the ranking by the model's classifier."""
    if a["best_of"] == 1:
        return [f"images = {job}.run()"]
    return [f"job = {job}  # n * best_of candidates",
            f"readings = {readings}",
            f"images, scores, _ = sample_best(job, readings, model.classifier, best_of={a['best_of']})  "
            f"# the best of each {a['best_of']}"]


def as_python(recipe: str, model_name: str, args: dict, settings: Settings) -> str:
    """Python that gives exactly this result: it ends with ``images``, (B, C, H, W) in [-1, 1] (``forward``:
    the noisy x_t, the one-step estimate of x0 and the blur, stacked)."""
    a = normalise(recipe, args)
    ranked = recipe in ("anagram", "hybrid") and a["best_of"] > 1
    head = (["import torch", ""] if recipe in ("sdedit", "forward") else []) + ["import ddpm", "import ddpm.images"]
    head += {"generate": ["from ddpm.explore import sample_batches"],
             "sdedit": ["from ddpm.images import prepare_image"],
             "forward": ["from ddpm.images import prepare_image"],
             "inpaint": ["from ddpm.cli.edit import load_mask", "from ddpm.images import prepare_image"],
             }.get(recipe, [])
    if ranked:
        head.append("from ddpm.illusions import sample_best, " + ("anagram_readings" if recipe == "anagram"
                                                                  else "hybrid_readings"))
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
        total = a["n"] * a["best_of"]
        more = (f", guidances={a['view_guidance']!r}" if a["view_guidance"] is not None else "") + \
            (f", repeats={a['repeats']}" if a["repeats"] else "")
        lines += _illusion_lines(a, f"ddpm.anagram(model, {a['parts']!r}, n={total}, settings=settings{more})",
                                 f"anagram_readings(model, {a['parts']!r})")
    elif recipe == "hybrid":
        total = a["n"] * a["best_of"]
        job = (f"ddpm.hybrid(model, {a['low_label']!r}, {a['high_label']!r}, sigma={a['sigma']!r}, n={total}, "
               f"settings=settings, factor={a['factor']!r}, high_guidance={a['high_guidance']!r})")
        lines += _illusion_lines(a, job, f"hybrid_readings(model, {a['low_label']!r}, {a['high_label']!r}, "
                                         f"{a['factor'] or AFAR_FACTOR})")
    else:  # forward: the noise is seeded by settings.seed; the sampler settings play no part
        lines += [f"image = prepare_image({a['image']!r}, model)",
                  f"out = ddpm.forward_process(model, image, {a['t']}, seed=settings.seed, "
                  f"blur_sigma={a['blur_sigma']!r})",
                  "images = torch.cat([out['x_t'], out['x0_pred'], out['blurred']])  # x_t, estimate of x0, blur"]
    lines.append("ddpm.images.save_grid(images, 'result.png')  # or keep working with images: (B, C, H, W) in [-1, 1]")
    return "\n".join(lines) + "\n"


def _cli_labels(labels: list[str]) -> str:
    if any("," in label for label in labels):
        raise ValueError(f"a class name with a comma cannot go into --labels: {labels}")
    return ",".join(labels)


def _illusion_words(recipe: str, a: dict, settings: Settings) -> list[str]:
    """``python -m ddpm illusion anagram|hybrid``'s own words, or ValueError for what it has no flag for."""
    if recipe == "anagram":
        parts = a["parts"]
        if len(parts) != 2 or parts[0][1] != "identity":
            raise ValueError("the illusion verb makes two-part anagrams, the first part as is: use the Python text")
        classes, more = [label for label, _ in parts], ["--view", parts[1][1]]
        if a["view_guidance"] is not None:
            more += ["--view-guidance", ",".join(repr(g) for g in a["view_guidance"])]
        if a["repeats"]:
            more += ["--repeats", str(a["repeats"])]
    else:
        classes = [a["low_label"], a["high_label"]]
        more = ["--sigma", repr(a["sigma"])] if a["sigma"] is not None else \
            ["--factor", str(a["factor"])] if a["factor"] is not None else []
        # the recipe's None is "as the low part", which the verb spells out
        more += ["--high-guidance", repr(settings.guidance if a["high_guidance"] is None else a["high_guidance"])]
    if any(label is None for label in classes):
        raise ValueError(f"the illusion verb needs both classes (this {recipe} has 'any'): use the Python text")
    return ["--classes", _cli_labels(classes), *more, "--n", str(a["n"]), "--best-of", str(a["best_of"])]


def as_cli(recipe: str, model_name: str, args: dict, settings: Settings, out: str = "result.png") -> str:
    """The ``python -m ddpm ...`` command that gives exactly this result. ValueError (one line) where no verb
    does: the forward process, and illusions with settings ``python -m ddpm illusion`` has no flag for."""
    a = normalise(recipe, args)
    if recipe == "forward":
        raise ValueError("the forward process has no command-line verb: use the Python text")
    illusion = recipe in ("anagram", "hybrid")
    verb = ["illusion", recipe] if illusion else ["sample" if recipe == "generate" else recipe]
    words = ["python", "-m", "ddpm", *verb, "--model", model_name]
    if illusion:
        words += _illusion_words(recipe, a, settings)
    elif recipe == "generate":
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
    if s.dtype != "auto":  # always named: the verbs' default ("auto") is not the same precision on every machine
        words += ["--dtype", s.dtype]
    if s.compile != "auto":  # named either way, as the precision is: the verbs' default depends on the cache
        words.append("--compile" if s.compile else "--no-compile")
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
    if settings.compile is not False:  # absent: eager (the app runs its own forward and says when they differ)
        pairs.append(("compile", "1" if settings.compile is True else "auto"))
    return urlencode(pairs)


def _link_compile(value: str) -> bool | str:
    """A link's compile: "1" compiled, "auto" the default, absent (or anything else, as links always read) eager."""
    return True if value == "1" else "auto" if value == "auto" else False


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
            what = {"int": "whole number", "float": "number"}.get(kind.__name__, kind.__name__)
            raise ValueError(f"the link's {key} is not a {what}: {q[key][-1]!r}") from None

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
    return recipe, one("model"), normalise(recipe, args), Settings(**values, compile=_link_compile(one("compile", str, "")))
