"""Scores for illusions, and best-of-N: does a visual anagram or a hybrid image read as its classes?

An illusion is judged through its **readings**: (name, view, class) triples, one per way of looking
at it. An anagram's readings are its views (identity, flip_v, ...); a hybrid's are "from afar"
(:func:`from_afar`) for the low class and the image up close (identity) for the high class. A
classifier (any module mapping (B, C, H, W) images in [-1, 1] to (B, K) logits) gives, per image:

- ``probs`` (B, R): p_i = p(class_i | view_i(x)), the softmax over all K classes;
- ``alignment`` (B,): min_i p_i, the weakest reading (Geng et al., "Visual Anagrams", 2024);
- ``concealment`` (B,): the R x R matrix S_ij = logit of class_j under view_i, softmaxed with
  temperature ``tau`` along rows and along columns, each averaged over its diagonal, and the two
  averaged: 1 when every view reads as its own class and none as another reading's class;
- ``accepted`` (B,): the classifier's argmax is the intended class in every reading;
- ``score`` (B,): what best-of-N ranks by (the alignment).

Best of N: a recipe samples ``n * best_of`` candidates in one batched job; :func:`pick_best` keeps, of
each group of ``best_of``, the highest-scoring one. :func:`sample_best` is the two together.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .checkpoint import DiffusionModel
from .views import AFAR_FACTOR, View, area_down, get_view

# One visitor's job on a 2-vCPU Space: 64 candidates of two views at 28 px and 20 steps take ~10 s.
MAX_CANDIDATES = 64
MAX_BEST_OF = 16
DEFAULT_TEMPERATURE = 1.0


def from_afar(x: torch.Tensor, factor: int = AFAR_FACTOR) -> torch.Tensor:
    """The image seen from afar, at its own size: area-downsampled by ``factor`` (28 px -> 7 px) and
    scaled back up by nearest-neighbour. (B, C, H, W) -> (B, C, H, W), same mean; depends on x only
    through ``area_down(x, factor)``, so the high-frequency part of a hybrid made with
    ``views.area_highpass`` is exactly invisible in it. What the app's preview shows."""
    return F.interpolate(area_down(x, factor), size=tuple(x.shape[-2:]), mode="nearest")


@dataclass(frozen=True)
class Reading:
    """One way of looking at an illusion: ``view`` maps (B, C, H, W) to (B, C, H, W); ``label`` is the
    class index it should read as."""

    name: str
    view: Callable[[torch.Tensor], torch.Tensor]
    label: int


def anagram_readings(model: DiffusionModel, parts: Sequence[tuple[object, str | View]]) -> list[Reading]:
    """The readings of ``recipes.anagram(model, parts)``: one per (label, view) part."""
    readings = []
    for label, spec in parts:
        view = get_view(spec)
        readings.append(Reading(view.spec, view, model.label_ids([label])[0]))
    return readings


def hybrid_readings(model: DiffusionModel, low_label, high_label, factor: int = AFAR_FACTOR) -> list[Reading]:
    """The readings of a hybrid: ``low_label`` from afar, ``high_label`` up close."""
    low, high = model.label_ids([low_label, high_label])
    return [Reading(f"from afar (1/{factor})", lambda x: from_afar(x, factor), low),
            Reading("up close", View(), high)]


@torch.inference_mode()
def score(classifier: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, readings: Sequence[Reading],
          temperature: float = DEFAULT_TEMPERATURE) -> dict[str, torch.Tensor]:
    """Score (B, C, H, W) images in [-1, 1] under ``readings``: a dict of ``probs`` (B, R), ``alignment``,
    ``concealment``, ``score`` (B,) floats and ``accepted`` (B,) bools, on the CPU (see the module doc)."""
    if len(readings) < 2:
        raise ValueError("an illusion has at least two readings")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if isinstance(classifier, torch.nn.Module):
        classifier.eval()
        param = next(classifier.parameters(), None)
        images = images.to(param.device) if param is not None else images
    logits = torch.stack([classifier(r.view(images)).float().cpu() for r in readings], 1)  # (B, R, K)
    labels = torch.tensor([r.label for r in readings])
    if not 0 <= labels.min() <= labels.max() < logits.shape[-1]:
        raise ValueError(f"reading classes {labels.tolist()} do not fit a classifier of {logits.shape[-1]} classes")
    rows = torch.arange(len(readings))
    probs = logits.softmax(-1)[:, rows, labels]  # (B, R)
    matrix = logits[:, :, labels] / temperature  # (B, R, R): S_ij, view i scored for class j
    concealment = (matrix.softmax(-1).diagonal(dim1=1, dim2=2).mean(-1) +
                   matrix.softmax(-2).diagonal(dim1=1, dim2=2).mean(-1)) / 2
    accepted = (logits.argmax(-1) == labels).all(-1)
    alignment = probs.min(-1).values
    return {"probs": probs, "alignment": alignment, "concealment": concealment, "accepted": accepted,
            "score": alignment}


def check_candidates(n: int, best_of: int) -> None:
    """Refuse more candidates than one call may draw (``n * best_of <= MAX_CANDIDATES``)."""
    if not isinstance(n, int) or not isinstance(best_of, int) or n < 1 or best_of < 1:
        raise ValueError(f"n and best_of must be positive integers, got {n!r} and {best_of!r}")
    if best_of > MAX_BEST_OF or n * best_of > MAX_CANDIDATES:
        raise ValueError(f"{n} results x best of {best_of} = {n * best_of} candidates; at most {MAX_CANDIDATES} "
                         f"candidates (best_of <= {MAX_BEST_OF}) per call")


def pick_best(images: torch.Tensor, scores: dict[str, torch.Tensor], best_of: int
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """Of (n * best_of) candidates, in groups of ``best_of`` consecutive ones, keep each group's best by
    ``scores["score"]`` (accepted candidates first). Returns the (n, C, H, W) images, their scores, and
    the (n,) indices of the chosen candidates."""
    total = images.shape[0]
    if best_of < 1 or total % best_of:
        raise ValueError(f"{total} candidates do not split into groups of {best_of}")
    key = scores["score"] + scores["accepted"].float() * 2  # an accepted candidate beats any refused one
    chosen = key.view(-1, best_of).argmax(1) + torch.arange(0, total, best_of)
    return images[chosen.to(images.device)], {k: v[chosen] for k, v in scores.items()}, chosen


def sample_best(job, readings: Sequence[Reading], classifier, best_of: int = 1,
                callback: Callable | None = None, temperature: float = DEFAULT_TEMPERATURE):
    """Run ``job`` (a recipe's Job of n * best_of candidates), score every candidate, keep the best of
    each group. Returns (images (n, C, H, W) in [-1, 1], their scores, every candidate's scores)."""
    candidates = job.run(callback)
    every = score(classifier, candidates, readings, temperature)
    images, best, _ = pick_best(candidates, every, best_of)
    return images, best, every
