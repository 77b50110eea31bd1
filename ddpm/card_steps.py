"""Steps vs quality: how few sampling steps keep the 20-step quality, from ``evaluate``'s rows of a sweep
(``--samplers dpm++:20,dpm++:4,dpm++:6,...,unipc:4,...``), as a table for the terminal and the model card.

A leaf module (it imports nothing of ours, nor torch): ``ddpm.cli.evaluate`` prints it, ``ddpm.card`` writes it.
A step count *keeps* the quality when its class accuracy is at most ``KEEP_ACCURACY`` below the reference's and
its FID at most ``KEEP_FID`` times the reference's, the reference being the sweep's row with the most steps of
the default sampler (dpm++ 20 steps), measured on the same samples' noise and the same ``n``.
"""
from __future__ import annotations

from collections.abc import Sequence

KEEP_ACCURACY = 0.01  # at n = 500 a class accuracy near 0.95 has a binomial standard error of about 0.01
KEEP_FID = 1.10  # FID within 10% (its seed-to-seed spread at n = 500 is a few percent)
REFERENCE_SAMPLER = "dpm++"  # ddpm.defaults.DEFAULT_SAMPLER (not imported: a leaf module)


def is_sweep(rows: Sequence[dict]) -> bool:
    """Whether ``rows`` measure some sampler at two or more step counts (a steps-vs-quality sweep)."""
    seen: dict[tuple, set] = {}
    for r in rows:
        seen.setdefault((r.get("sampler"), r.get("guidance")), set()).add(r.get("steps"))
    return any(len(steps) > 1 for steps in seen.values())


def check_sweep(rows: Sequence[dict]) -> None:
    """ValueError unless ``rows`` (or settings as dicts) make one steps table: a sweep over steps at one
    guidance, one precision and one ``n``."""
    if not is_sweep(rows):
        raise ValueError("--steps-table needs a sweep over steps, e.g. --samplers dpm++:20,dpm++:4,dpm++:8,unipc:4,unipc:8")
    for key in ("guidance", "dtype", "n"):
        if len({row.get(key) for row in rows}) > 1:
            raise ValueError(f"--steps-table: the rows differ in {key}; a steps table is one {key}")


def reference_row(rows: Sequence[dict], sampler: str = REFERENCE_SAMPLER) -> dict | None:
    """The row the others are held to: ``sampler``'s with the most steps (else the row with the most steps)."""
    own = [r for r in rows if r["sampler"] == sampler] or list(rows)
    return max(own, key=lambda r: r["steps"]) if own else None


def keeps(row: dict, reference: dict) -> bool:
    """Whether ``row`` keeps ``reference``'s quality (see the module's doc)."""
    accuracy_ok = (row.get("accuracy") is None or reference.get("accuracy") is None
                   or row["accuracy"] >= reference["accuracy"] - KEEP_ACCURACY - 1e-9)
    return accuracy_ok and row["fid"] <= reference["fid"] * KEEP_FID + 1e-9


def fewest_steps(rows: Sequence[dict], sampler: str = REFERENCE_SAMPLER) -> dict[str, int | None]:
    """{sampler: the fewest steps from which every measured count up to the reference's keeps its quality,
    or None when even the most measured below the reference do not}, for each sampler in ``rows``."""
    ref = reference_row(rows, sampler)
    out: dict[str, int | None] = {}
    for name in dict.fromkeys(r["sampler"] for r in rows):
        counts = sorted((r for r in rows if r["sampler"] == name and r["steps"] <= ref["steps"]),
                        key=lambda r: r["steps"], reverse=True)
        best = None
        for r in counts:  # from the most steps down: the first one that loses the quality ends the run
            if not keeps(r, ref):
                break
            best = r["steps"]
        out[name] = best
    return out


def offered_steps(steps: dict) -> dict[str, int | None]:
    """The fewest steps per sampler that a card offers as keeping the quality (the app's fast preset), from its
    stored ``metrics["steps"]``: the sweep's ``fewest_steps``, unless someone looked at the grids (``"looked"``,
    ``ddpm.card_metrics.set_steps_looked``): then only the reference sampler's ``"looked_fewest"``, if the look
    found a count that keeps it, and nothing if it found none."""
    rows = steps.get("rows") or []
    if not rows:
        return {}
    by_numbers = fewest_steps(rows)
    if steps.get("looked"):  # the look's count, while the (possibly since merged) sweep's numbers still keep it
        sampler, fewest = reference_row(rows)["sampler"], steps.get("looked_fewest")
        keeps_it = fewest and by_numbers.get(sampler) is not None and by_numbers[sampler] <= fewest
        return {sampler: fewest} if keeps_it else {}
    return by_numbers


def format_steps_table(rows: Sequence[dict]) -> str:
    """One row per sampler, one column per step count, cells "accuracy / FID" (a Markdown table)."""
    counts = sorted({r["steps"] for r in rows})
    cells = {(r["sampler"], r["steps"]): f"{r['accuracy']:.3f} / {r['fid']:.2f}"
             if r.get("accuracy") is not None else f"{r['fid']:.2f}" for r in rows}
    lines = ["| sampler | " + " | ".join(f"{s} steps" for s in counts) + " |", "|---" * (len(counts) + 1) + "|"]
    for name in dict.fromkeys(r["sampler"] for r in rows):
        lines.append(f"| {name} | " + " | ".join(cells.get((name, s), "") for s in counts) + " |")
    return "\n".join(lines)


def steps_summary(rows: Sequence[dict]) -> str:
    """One line: the fewest steps that keep the reference's quality, per sampler, and the rule."""
    ref = reference_row(rows)
    fewest = fewest_steps(rows)
    def say(name, steps):
        if steps is None or steps == ref["steps"] != min(r["steps"] for r in rows if r["sampler"] == name):
            return f"{name}: none below {ref['steps']}"
        return f"{name} {steps}"

    named = ", ".join(say(name, steps) for name, steps in fewest.items())
    return (f"Fewest steps that keep the {ref['sampler']} {ref['steps']}-step quality (class accuracy at most "
            f"{KEEP_ACCURACY:g} below {ref['accuracy']:.3f}, FID at most {KEEP_FID - 1:.0%} above {ref['fid']:.2f}): "
            f"{named}.")


def steps_section(steps: dict) -> list[str]:
    """The card's "Fewer steps" section (Markdown lines) from ``metrics["steps"]`` ({"rows"}, each row with
    the ``command`` that measured it)."""
    rows = steps.get("rows", [])
    if not rows:
        return []
    first = rows[0]
    about = (f"{first['n']} class-balanced samples per cell, guidance {first['guidance']:g}, "
             f"{first.get('dtype', 'float32')}, seed-matched noise; floor (test vs test) {first['fid_floor']:.2f}")
    lines = ["## Fewer steps", "", f"Class accuracy / FID (classifier features) by sampler and steps ({about}):",
             "", format_steps_table(rows), "", steps_summary(rows)]
    if steps.get("looked"):  # a look at the grids overrules what the numbers cannot see
        reference, fewest = reference_row(rows), steps.get("looked_fewest")
        verdict = (f"So {reference['sampler']} {fewest} steps is the fewest offered as keeping the quality." if fewest
                   else f"So no step count below {reference['steps']} is offered as keeping the quality.")
        lines += ["", f"**Looked at:** {steps['looked']} {verdict}"]
    commands = [c for c in dict.fromkeys(r.get("command") for r in rows) if c]
    if len(commands) == 1:
        lines += ["", f"Measured with `{commands[0]}`."]
    elif commands:
        lines += ["", "Measured with:", ""] + [f"- `{c}`" for c in commands]
    return lines + [""]
