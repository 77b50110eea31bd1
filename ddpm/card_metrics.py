"""``evaluate --write-card``: store measured rows in a checkpoint's ``ddpm_config.json`` and regenerate its card.

A card gathers rows from several runs (a slow DDPM-1000 run apart): a row replaces the stored one of the same
setting, unless that one was measured on more samples. A steps-vs-quality sweep (``--steps-table``) is stored
apart, as ``"metrics": {"steps": {"rows"}}`` (``ddpm.card_steps``): merged the same way into a sweep measured alike
(same ``n``, guidance and precision), else replacing it.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

from . import checkpoint
from .card import model_card
from .card_steps import check_sweep, fewest_steps, reference_row
from .checkpoint import CARD_NAME, FORMAT, DiffusionModel, own_config_path


def _json_safe(value):
    """NaN and infinities -> None (JSON has neither), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def local_folder(name_or_path: str, what: str = "--write-card") -> Path:
    """The bundled or local ddpm checkpoint folder ``name_or_path`` names; ValueError for Hub ids
    and diffusers folders, whose cards are not ours to write (``what`` names the command in the message)."""
    text, bundled = str(name_or_path).strip(), checkpoint.CHECKPOINTS_DIR
    folder = bundled / text if own_config_path(bundled / text) else Path(text).expanduser()
    if not folder.is_dir():
        raise ValueError(f"{what} needs a bundled or local checkpoint folder; {text!r} is neither")
    if own_config_path(folder) is None:
        raise ValueError(f"{what}: {folder} is not a ddpm checkpoint ({FORMAT}), so it has no card to update")
    return folder


def merge_rows(old: Sequence[dict], new: Sequence[dict]) -> list[dict]:
    """``old`` rows with each one that ``new`` measures again (same ``setting``) replaced in place,
    then the rest of ``new``: a card can gather rows from several runs (a slow DDPM-1000 run apart)."""
    fresh = {row["setting"]: row for row in new}
    merged = [fresh.pop(row["setting"], row) for row in old]
    return merged + [row for row in new if row["setting"] in fresh]


def merge_steps(old: dict, rows: Sequence[dict], command: str) -> dict:
    """The card's steps table after a sweep: ``rows`` (tagged with ``command``) merged into the old table's rows
    (see :func:`merge_rows`) when both were measured alike (``n``, guidance, precision), else replacing them."""
    new = [{**row, "command": command} for row in rows]
    alike = old.get("rows") and all(old["rows"][0].get(k) == new[0].get(k) for k in ("n", "guidance", "dtype"))
    if not alike:  # another measurement: a verdict from looking at the old one's grids goes with it
        return _json_safe({"rows": new})
    return _json_safe({**old, "rows": merge_rows(old["rows"], new)})


def set_steps_looked(folder: Path, looked: str | None, fewest: int | None = None) -> Path:
    """Record what LOOKING at grids of fewer steps showed where the sweep's numbers cannot (e.g. a FID dominated by
    how far the model is from the data, blind to a few steps' blur): ``metrics["steps"]["looked"]``, one sentence,
    printed under the card's steps table. While it is there the sweep's own fewest counts are not offered as keeping
    the quality (the app's fast preset); ``fewest``, the reference sampler's (dpm++) step count that the grids showed
    to keep it, is offered instead, if the sweep measured it and its numbers keep it too. None removes the look."""
    folder = Path(folder)
    config_path = own_config_path(folder)
    config = json.loads(config_path.read_text())
    steps = config.get("metrics", {}).get("steps")
    if not steps or not steps.get("rows"):
        raise ValueError(f"{folder} has no steps sweep to add a look to: run evaluate --write-card --steps-table first")
    if looked is None:
        steps.pop("looked", None)
        steps.pop("looked_fewest", None)
    elif not looked.strip():
        raise ValueError("say what the grids showed (an empty verdict)")
    else:
        steps["looked"] = looked.strip()
        steps.pop("looked_fewest", None)
        if fewest is not None:
            reference = reference_row(steps["rows"])
            measured = {r["steps"] for r in steps["rows"] if r["sampler"] == reference["sampler"]}
            by_numbers = fewest_steps(steps["rows"]).get(reference["sampler"])
            if isinstance(fewest, bool) or not isinstance(fewest, int) or fewest not in measured - {reference["steps"]}:
                raise ValueError(f"fewest={fewest!r}: the sweep measured {reference['sampler']} at "
                                 f"{sorted(measured - {reference['steps']})} steps below its {reference['steps']}")
            if by_numbers is None or fewest < by_numbers:
                raise ValueError(f"{reference['sampler']} {fewest} steps: the sweep's numbers do not keep the quality "
                                 f"there either, so a look cannot offer it")
            steps["looked_fewest"] = fewest
    model = checkpoint.load(folder)
    model.meta["metrics"] = config["metrics"]  # the card is drawn from the model's meta: the new verdict
    return _write(folder, config_path, config, model)


def write_card(folder: Path, model: DiffusionModel, rows: Sequence[dict], command: str, steps: bool = False) -> Path:
    """Merge ``rows`` (each tagged with the ``command`` that measured it) into ``"metrics"`` in
    ``folder/ddpm_config.json`` (see :func:`merge_rows`) and regenerate its README.md. ``steps``: store them
    instead as the card's steps-vs-quality table, replacing the previous one."""
    if not model.conditional:
        raise ValueError("--write-card: the card's table reports class accuracy, which an unconditional model lacks")
    config_path = own_config_path(folder)  # ddpm_config.json (a ddpm-checkpoint/1 folder: its config.json)
    config = json.loads(config_path.read_text())
    before = config.get("metrics", {})
    if steps:
        check_sweep(rows)
        config["metrics"] = model.meta["metrics"] = {**before, "steps": merge_steps(before.get("steps", {}), rows, command)}
        return _write(folder, config_path, config, model)
    for row in rows:  # a quick check (--n 20) must not overwrite a card's 1,000-sample figures
        for kept in before.get("rows", []):
            if kept["setting"] == row["setting"] and kept.get("n", 0) > row["n"]:
                raise ValueError(f"--write-card would replace the card's row {row['setting']!r}, measured on "
                                 f"{kept['n']} samples, with one on {row['n']}: measure with --n {kept['n']} or more "
                                 f"(nothing was written)")
    old = [{"command": before.get("command", ""), **row} for row in before.get("rows", [])]
    metrics = {**before, **_json_safe({"rows": merge_rows(old, [{**row, "command": command} for row in rows])})}
    metrics.pop("command", None)  # folded into the old rows above
    config["metrics"] = metrics
    model.meta["metrics"] = metrics
    return _write(folder, config_path, config, model)


def _write(folder: Path, config_path: Path, config: dict, model: DiffusionModel) -> Path:
    """Write ``config`` and the card regenerated from it, each atomically."""
    for name, text in ((config_path.name, json.dumps(config, indent=2) + "\n"), (CARD_NAME, model_card(model))):
        tmp = folder / (name + ".partial")
        tmp.write_text(text)
        os.replace(tmp, folder / name)
    return folder
