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
- ``read`` (B, R): the classifier's argmax is the intended class in that reading;
- ``accepted`` (B,): ... in every reading (``read.all(-1)``);
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
from .defaults import (AFAR_FACTOR, DEFAULT_HIGH_GUIDANCE, DEFAULT_ILLUSION_GUIDANCE,  # noqa: F401 (re-exported)
                       MAX_BEST_OF, MAX_CANDIDATES)
from .views import View, area_down, get_view

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
    ``concealment``, ``score`` (B,) floats, ``read`` (B, R) and ``accepted`` (B,) bools, on the CPU (see the
    module doc)."""
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
    read = logits.argmax(-1) == labels
    alignment = probs.min(-1).values
    return {"probs": probs, "alignment": alignment, "concealment": concealment, "read": read,
            "accepted": read.all(-1), "score": alignment}


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


# -- illusions by name, and their evaluation -------------------------------------------------------------
@dataclass(frozen=True)
class Pair:
    """One illusion to make: ``classes`` (A, B) and ``view`` (an anagram's second view, or "hybrid":
    A from afar, B up close)."""

    first: str
    second: str
    view: str

    @property
    def kind(self) -> str:
        return "hybrid" if self.view == "hybrid" else "anagram"

    def __str__(self):
        return f"{self.first}/{self.second}:{self.view}"


# Pairs that work on the first try (A/B:VIEW, LOW/HIGH:hybrid), measured by ``evaluate_pairs`` (32 samples,
# dpm++ 20 steps, guidance 3, the recipes' defaults; single-sample acceptance by the independent grader, and
# best of 8; docs/MEASUREMENTS.md). The first of each kind is the app's default, the first two its examples:
# pairs that are each other's view come first, since two classifiers accepting an anagram is not a person
# reading it (the mirrored 3 of 3/8 is read as an 8 by both, a person sees a backwards 3). Single / best of
# 8: mnist 6/9 1.00 / 1.00, 2/5 0.97 / 1.00, 1/7 upside down 0.59 / 0.96 (mirrored: 0.22 / 0.63), 3/8 mirrored
# 1.00 / 1.00 (negated: 0.28 / 0.91), hybrids 8/3 0.75 / 1.00, 8/5 0.72 / 0.99, 0/6 0.62 / 0.99, 8/9 0.59 / 0.99,
# 9/4 0.28 / 0.92; letters E/F upside down 0.97 / 1.00 (mirrored: 0.28 / 0.64), the others 1.00, hybrids B/E
# 0.72 / 1.00, O/U 0.56 / 0.97, D/O 0.50 / 0.97; fashion 0.97 / 1.00, 0.84 / 1.00, hybrids Dress/Trouser
# 0.69 / 1.00, Sneaker/Sandal 0.62 / 1.00, Bag/Sandal 0.53 / 0.99, Ankle boot/Sneaker 0.47 / 0.88.
PRESETS: dict[str, list[Pair]] = {
    "mnist": [Pair("6", "9", "rot180"), Pair("2", "5", "flip_v"), Pair("1", "7", "flip_v"), Pair("3", "8", "flip_h"),
              Pair("8", "3", "hybrid"), Pair("8", "5", "hybrid"), Pair("0", "6", "hybrid"), Pair("8", "9", "hybrid"),
              Pair("9", "4", "hybrid")],
    "letters": [Pair("A", "V", "flip_v"), Pair("L", "T", "rot180"), Pair("N", "Z", "rot90"), Pair("M", "W", "flip_v"),
                Pair("E", "F", "flip_v"), Pair("B", "E", "hybrid"), Pair("O", "U", "hybrid"), Pair("D", "O", "hybrid")],
    "fashion": [Pair("Trouser", "Dress", "flip_v"), Pair("Sandal", "Sneaker", "flip_h"),
                Pair("Dress", "Trouser", "hybrid"), Pair("Sneaker", "Sandal", "hybrid"), Pair("Bag", "Sandal", "hybrid"),
                Pair("Ankle boot", "Sneaker", "hybrid")],
    # emoji2, the bundled emoji (n=32, single / best of 8 by the grader): signs/flags:rot90 0.84 / 1.00,
    # people/hands:flip_v 0.44 / 0.96, food/faces:hybrid 0.59 / 0.97, faces/food:hybrid 0.50 / 0.98, plants &
    # fruit/faces:hybrid 0.31 / 0.93, sky & weather/faces:hybrid 0.31 / 0.80 (a cloud or a sun with a face);
    # flags/signs:hybrid 0.00. Failed on its 39,000-step run before it landed (the earlier grader):
    # faces/flags:flip_v 0.19 / 0.35, vehicles/flags:flip_v 0.12 / 0.70, faces/plants & fruit:rot180 0.06 / 0.44, sky &
    # weather/plants & fruit:rot180 0.00.
    "emoji2": [Pair("signs", "flags", "rot90"), Pair("people", "hands", "flip_v"), Pair("food", "faces", "hybrid"),
               Pair("faces", "food", "hybrid"), Pair("plants & fruit", "faces", "hybrid"),
               Pair("sky & weather", "faces", "hybrid")],
}


def _split_classes(text: str, classes: Sequence[str] | None) -> tuple[str, str] | None:
    """"A/B" -> (A, B); with ``classes``, at the one "/" that leaves a class name on each side, so names
    with a slash in them ("T-shirt/top/Pullover" of fashion) split right (names in any case; indices too)."""
    cuts = [i for i, c in enumerate(text) if c == "/"]
    if classes is not None:
        names = {str(c).strip().lower() for c in classes}
        fits = [(text[:i].strip(), text[i + 1:].strip()) for i in cuts
                if text[:i].strip().lower() in names and text[i + 1:].strip().lower() in names]
        if fits:
            return fits[0]
    if len(cuts) == 1 and text[:cuts[0]].strip() and text[cuts[0] + 1:].strip():
        return text[:cuts[0]].strip(), text[cuts[0] + 1:].strip()
    return None


def parse_pairs(text: str, classes: Sequence[str] | None = None) -> list[Pair]:
    """"6/9:rot180,0/1:hybrid" -> Pairs (view names as ``views.get_view`` takes them). ``classes`` (the
    model's class names) lets a name hold a slash: "T-shirt/top/Pullover:flip_v"."""
    pairs = []
    for item in filter(None, (s.strip() for s in str(text).split(","))):
        both, _, view = item.rpartition(":")
        split = _split_classes(both, classes)
        if split is None or not view:
            known = f"; classes: {', '.join(map(str, classes))}" if classes is not None and both.count("/") > 1 else ""
            raise ValueError(f"bad pair {item!r}: write A/B:VIEW (e.g. 6/9:rot180) or LOW/HIGH:hybrid{known}")
        if view != "hybrid":
            get_view(view)
        pairs.append(Pair(*split, view))
    if not pairs:
        raise ValueError("no pairs given: write A/B:VIEW,... (e.g. 6/9:rot180,0/1:hybrid)")
    return pairs


def illusion_job(model: DiffusionModel, pair: Pair, n: int, settings, factor: int = AFAR_FACTOR,
                 high_guidance: float | None = DEFAULT_HIGH_GUIDANCE, guidances: Sequence[float] | None = None,
                 repeats: int = 0):
    """(Job of ``n`` candidates, its readings) for ``pair``: a hybrid splits by ``factor`` and guides its
    up-close part with ``high_guidance`` (None: ``settings.guidance``); an anagram takes ``recipes.anagram``'s
    per-view ``guidances`` and time-travel ``repeats``."""
    from . import recipes

    if pair.kind == "hybrid":
        job = recipes.hybrid(model, pair.first, pair.second, n=n, settings=settings, factor=factor,
                             high_guidance=high_guidance)
        return job, hybrid_readings(model, pair.first, pair.second, factor)
    parts = [(pair.first, "identity"), (pair.second, pair.view)]
    job = recipes.anagram(model, parts, n=n, settings=settings, guidances=guidances, repeats=repeats)
    return job, anagram_readings(model, parts)


def expected_best_of(key: torch.Tensor, accepted: torch.Tensor, best_of: int) -> float:
    """The chance that the candidate with the highest ``key`` among ``best_of`` drawn at random from the
    n given (without replacement) is ``accepted``: exact over all subsets, so n samples estimate
    best-of-K acceptance with far less noise than n / K disjoint groups would."""
    import math

    n = len(key)
    if not 1 <= best_of <= n:
        raise ValueError(f"best of {best_of} needs at least that many samples, got {n}")
    order = torch.argsort(key, descending=True, stable=True)
    weights = torch.tensor([math.comb(n - 1 - j, best_of - 1) for j in range(n)], dtype=torch.float64)
    return float((weights * accepted[order].double()).sum() / math.comb(n, best_of))


def ranker_for(model: DiffusionModel, log: Callable[[str], None] = print):
    """What ranks ``model``'s illusion candidates: the classifier it ships (``model.classifier``, as the app
    ranks with), else its dataset's, trained as a shipped one is (``classifier.shipped_recipe``) and cached."""
    from .classifier import classifier_for, shipped_recipe

    if model.classifier is not None:
        return model.classifier
    if model.dataset is None:
        raise ValueError(f"model {model.name!r} ships no classifier and names no dataset: nothing can score it")
    return classifier_for(model.dataset, recipe=shipped_recipe(model.dataset), log=log)


# The independent grader: another width and seed than the ranker's, seeing as many images from afar.
GRADER_KEY = "grader-s1-w24-afar25"


def grader_for(dataset: str, log: Callable[[str], None] = print):
    """A second classifier for ``dataset`` (widths 24/48/96, seed 1, 3 epochs, a quarter of its images seen
    from afar as the ranker's are), trained once on its train split and cached next to
    ``classifier.classifier_for``'s, to grade what the ranker ranked."""
    from . import data
    from .classifier import (RECIPES, SHIPPED_AFAR, ClassifierConfig, accuracy, classifier_dir, far_accuracy,
                             load_classifier, save_classifier, train_classifier)

    folder = classifier_dir(dataset)
    cached = load_classifier(folder, GRADER_KEY)
    if cached is not None:
        return cached
    train, test = data.load(dataset, "train"), data.load(dataset, "test")
    config = ClassifierConfig(channels=train.images.shape[1], num_classes=len(train.class_names),
                              widths=(24, 48, 96), feature_dim=96, dropout=0.2)
    log(f"training the {dataset} grader on {len(train)} images; cached in {folder}")
    # the small sets need the many epochs their ranker's recipe has (classifier.RECIPES); the others 3
    own = RECIPES.get(dataset)
    grader = train_classifier(train.images, train.labels, config.num_classes, epochs=own.epochs if own else 3,
                              seed=1, batch_size=own.batch_size if own else 128, afar=SHIPPED_AFAR, config=config,
                              progress=False)
    grader.meta = {"dataset": dataset, "role": "grader",
                   "test_accuracy": round(accuracy(grader, test.images, test.labels), 5),
                   "far_accuracy": round(far_accuracy(grader, test.images, test.labels), 5)}
    save_classifier(grader, folder, GRADER_KEY, grader.meta)
    return grader


def evaluate_pairs(model: DiffusionModel, pairs: Sequence[Pair], n: int, best_of: int, ranker, grader,
                   settings, factor: int = AFAR_FACTOR, high_guidance: float | None = DEFAULT_HIGH_GUIDANCE,
                   log: Callable[[str], None] | None = None, **anagram_options) -> list[dict]:
    """Per pair, ``n`` single samples (one batched job per 64): ``single`` is the fraction the ``grader``
    accepts in every reading; ``best_of`` is the grader's acceptance of the ``ranker``'s pick among
    ``best_of`` candidates (see :func:`expected_best_of`). Two classifiers trained apart, so the ranking
    does not grade itself. ``anagram_options`` go to :func:`illusion_job` (``guidances``, ``repeats``). Rows
    are dicts (see :func:`format_table`)."""
    import time

    rows = []
    for pair in pairs:
        started, images = time.monotonic(), []
        for i, start in enumerate(range(0, n, 64)):
            job, readings = illusion_job(model, pair, min(64, n - start), settings.with_(seed=settings.seed + i), factor,
                                         high_guidance, **(anagram_options if pair.kind == "anagram" else {}))
            images.append(job.run())
        images = torch.cat(images)
        ranked, graded = score(ranker, images, readings), score(grader, images, readings)
        key = ranked["score"] + 2 * ranked["accepted"].float()
        rows.append({"model": model.name, "pair": str(pair), "kind": pair.kind, "n": n,
                     "single": graded["accepted"].float().mean().item(), "best_of": best_of,
                     "best": expected_best_of(key, graded["accepted"], best_of),
                     "ranker_single": ranked["accepted"].float().mean().item(),
                     "read": [round(r, 3) for r in graded["read"].float().mean(0).tolist()],
                     "probs": [round(p, 3) for p in graded["probs"].mean(0).tolist()],
                     "seconds": round(time.monotonic() - started, 1)})
        if log is not None:
            log(format_table(rows[-1:], header=False))
    return rows


def format_table(rows: Sequence[dict], header: bool = True) -> str:
    """Rows from :func:`evaluate_pairs` -> a Markdown table."""
    lines = ["| model | pair | single accepted | best of K accepted | accepted per reading | ranker's single | "
             "mean p per reading | seconds |", "|---|---|---|---|---|---|---|---|"] if header else []
    for r in rows:
        lines.append(f"| {r['model']} | {r['pair']} | {r['single']:.2f} | {r['best']:.2f} (K={r['best_of']}) | "
                     f"{' / '.join(f'{a:.2f}' for a in r['read'])} | {r['ranker_single']:.2f} | "
                     f"{', '.join(f'{p:.2f}' for p in r['probs'])} | {r['seconds']:.0f} |")
    return "\n".join(lines)
