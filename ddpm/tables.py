"""Markdown tables of ``evaluate``'s rows, for the terminal and the model card.

A leaf module (it imports nothing of ours): ``evaluate`` prints these tables and ``card`` writes them into a
checkpoint's README.md, without either importing the other.
"""
from __future__ import annotations

from collections.abc import Sequence


def format_table(rows: Sequence[dict]) -> str:
    """Rows from ``evaluate`` -> a Markdown table."""
    lines = ["| setting | samples | class accuracy | FID (classifier features) | floor (test vs test) | seconds |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['setting']} | {r['n']} | {r['accuracy']:.3f} | {r['fid']:.2f} | "
                     f"{r['fid_floor']:.2f} | {r.get('seconds', float('nan')):.1f} |")
    return "\n".join(lines)


def format_class_table(rows: Sequence[dict]) -> str:
    """Per-class accuracy, one row per class and one column per setting, then the real test images'
    ("" when no row has any)."""
    rows = [r for r in rows if r.get("class_accuracy")]
    if not rows:
        return ""
    columns = [(r["setting"], r["class_accuracy"]) for r in rows]
    if real := rows[0].get("class_accuracy_real"):
        columns.append(("real test images", real))
    names = list(dict.fromkeys(name for _, values in columns for name in values))
    lines = ["| class | " + " | ".join(title for title, _ in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name in names:
        cells = [f"{values[name]:.2f}" if name in values else "" for _, values in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
