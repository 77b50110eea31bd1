"""Input coercion and user errors: what every handler does with the values a browser or an API client sends.

A bad value raises ValueError with a one-line reason; ``user_errors`` turns it into a ``gr.Error`` the user
reads (a toast in the page, the message of an ``AppError`` for a client), never a traceback.
"""
from __future__ import annotations

import functools
import inspect
import math
import random

import gradio as gr
import torch

import ddpm

USER_ERRORS = (ValueError, FileNotFoundError, torch.cuda.OutOfMemoryError)
NONE = "(none)"  # the "no class" choice of a target-class dropdown
MAX_SEED = 2**63 - 1


def to_gr(err: Exception) -> gr.Error:
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return gr.Error("out of GPU memory: ask for fewer images or steps", title="Too big", print_exception=False)
    return gr.Error(str(err), title="Can't do that", print_exception=False)


def user_errors(fn):
    """Turn the library's ValueError / FileNotFoundError (bad input) into a gr.Error the user can read."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except USER_ERRORS as err:
                raise to_gr(err) from err
        return generator

    @functools.wraps(fn)
    def plain(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as err:
            raise to_gr(err) from err
    return plain


def whole(value, lo: int, hi: int, what: str) -> int:
    """A whole number in [lo, hi]; ints and digit strings stay exact (a 19-digit seed), 3.0 and "3.0" pass."""
    number = value
    if isinstance(number, str):
        try:
            number = int(number)
        except ValueError:
            pass  # "3.0", "1e3", "x": as a float below
    if not isinstance(number, int):
        try:
            number = float(number)
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be a number, got {value!r}") from None
    if not (isinstance(number, int) or number.is_integer()) or not lo <= number <= hi:
        raise ValueError(f"{what} must be a whole number from {lo} to {hi}, got {value!r}")
    return int(number)


def real(value, lo: float, hi: float, what: str) -> float:
    """A finite number in [lo, hi]."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number) or not lo <= number <= hi:
        raise ValueError(f"{what} must be between {lo} and {hi}, got {value!r}")
    return number


def seed_number(value) -> int:
    return whole(value, 0, MAX_SEED, "seed")


def settings(sampler, steps, guidance, seed_value) -> ddpm.Settings:
    return ddpm.Settings(sampler=str(sampler), steps=whole(steps, 1, 1000, "steps"),
                         guidance=real(guidance, 0, 30, "guidance"), seed=seed_number(seed_value))


def random_seed() -> int:
    return random.randrange(2**31)


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def run_text(s: ddpm.Settings) -> str:
    """How a run sampled, for its status line: "dpm++ 20 steps · guidance 3 · seed 0"."""
    return f"{s.sampler} {plural(s.steps, 'step')} · guidance {s.guidance:g} · seed {s.seed}"


def canonical(model: ddpm.DiffusionModel, names: list[str]) -> list[str]:
    """Class names or indices, any case, as the model spells its classes ("3" is emoji's "animals")."""
    return [model.classes[i] for i in model.label_ids(names)]


def target_class(model: ddpm.DiffusionModel, value) -> str | None:
    """A class name from a dropdown, or None for "no class" (and for unconditional models)."""
    text = "" if value is None else str(value).strip()
    if text.lower() in ("", "none", NONE) or not model.conditional:
        return None
    return canonical(model, [text])[0]  # raises a readable ValueError for an unknown class


def class_list(model: ddpm.DiffusionModel, value) -> list[str]:
    """A multiselect's classes (or "a, b" from a client) -> the model's names, each once; [] when unconditional."""
    names = value.split(",") if isinstance(value, str) else list(value or [])
    names = [str(n).strip() for n in names if str(n).strip()]
    if model.conditional:
        if not names:
            raise ValueError("pick at least one class")
        names = list(dict.fromkeys(canonical(model, names)))  # a class picked twice ("A", "a", "0") is one
    return names
