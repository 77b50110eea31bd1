"""argparse types with one-line messages: whole numbers with a floor, comma-separated lists. A leaf module
(it imports nothing of ours), shared by the command line, the training config's flags and ``bench``."""
from __future__ import annotations

import argparse


def int_at_least(minimum: int):
    """An argparse type: an integer >= ``minimum``, with a message that says so."""
    kind = "positive" if minimum == 1 else "non-negative" if minimum == 0 else f">= {minimum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected a {kind} integer, got {text!r}")
        return value

    return parse


positive_int, nonneg_int = int_at_least(1), int_at_least(0)


def comma_list(kind):
    """An argparse type for "64,128,128" (``kind`` int) or "false,false,true" (``kind`` bool) -> a tuple."""
    def parse(text: str):
        items = [t.strip().lower() for t in text.split(",") if t.strip()]
        try:
            if kind is bool:
                if set(items) - {"true", "false", "1", "0"}:
                    raise ValueError
                return tuple(t in ("true", "1") for t in items)
            return tuple(int(t) for t in items)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {kind.__name__}s, "
                                             f"got {text!r}") from None
    return parse
