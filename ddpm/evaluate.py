"""How good are a model's samples? Class accuracy and a Fréchet distance in a small classifier's features.

``python -m ddpm evaluate --model NAME`` trains (once, then cached) a small CNN on the dataset's
train split, generates ``n`` class-balanced samples per sampler setting, and reports

- **accuracy**: the fraction of samples the classifier assigns to the class they were generated for;
- **fid**: the Fréchet distance between the classifier's penultimate features of the samples and of
  the real test images (an "FID" in our own feature space, not Inception's: numbers are comparable
  between models of one dataset, not with published FIDs);
- **fid_floor**: the same distance for ``n`` *real* test images, what a perfect generator would score.

FID is biased upward at small sample sizes, so the floor is measured at the same size: the test split
is cut once (seeded) into a probe of ``n`` images and a disjoint reference of the rest; the generated
samples and the probe are both compared with that same reference. (When the test split holds fewer
than ``2 n`` images the probe is half of it, and the row's ``floor_n`` says so.)

Images everywhere are (B, C, H, W) float tensors in [-1, 1], as in the rest of the library. The judge is
``ddpm.classifier``, the distance ``ddpm.fid``; ``ddpm.tables`` prints the rows, ``ddpm.card_metrics``
stores them in a model card, and ``ddpm.cli.evaluate`` is the command.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm

from . import data
from .batched import generate_in_batches
from .checkpoint import DiffusionModel
from .classifier import Classifier, class_accuracies, classifier_for, features, predict
from .defaults import DEFAULT_DTYPE, DEFAULT_GUIDANCE, EVALUATE_BATCH, SAMPLERS
from .device import generator as make_generator
from .fid import frechet_distance
from .recipes import Settings

Log = Callable[[str], None]


def balanced_labels(n: int, num_classes: int) -> torch.Tensor:
    """(n,) int64 labels 0, 1, ..., K-1, 0, 1, ...: n // K of each class (the first n % K get one more),
    interleaved so every batch is balanced too."""
    if n < num_classes:
        raise ValueError(f"n = {n} samples cannot cover all {num_classes} classes: use n >= {num_classes}")
    return torch.arange(n) % num_classes


def sample_images(model: DiffusionModel, n: int, settings: Settings, batch: int = EVALUATE_BATCH,
                  progress: bool = True, desc: str | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Generate ``n`` class-balanced samples: ((n, C, H, W) float in [-1, 1] on the CPU, (n,) int64 labels).

    Batch ``i`` runs with seed ``settings.seed + i`` (see ``ddpm.batched``), so results are reproducible and
    two settings with the same seed start from the same noise. Unconditional models get labels None.
    """
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    labels = balanced_labels(n, model.denoiser.num_classes) if model.conditional else None
    images = generate_in_batches(model, None if labels is None else labels.tolist(), n=n, settings=settings,
                                 batch=batch, progress=progress, desc=desc or settings_label(settings))
    return images, labels


def settings_label(settings: Settings) -> str:
    """A row's name: "dpm++ 20 steps, guidance 3" (and ", eta 1" for a non-zero DDIM eta, the precision when it
    is not float32, ", compiled" for the compiled forward)."""
    label = f"{settings.sampler} {settings.steps} steps, guidance {settings.guidance:g}"
    label += f", eta {settings.eta:g}" if settings.eta else ""
    label += f", {settings.dtype}" if settings.dtype != "float32" else ""
    return label + (", compiled" if settings.compile else "")


def parse_samplers(spec: str) -> list[tuple[str, int]]:
    """"ddpm:1000,ddim:50,dpm++:20" -> [("ddpm", 1000), ("ddim", 50), ("dpm++", 20)]."""
    pairs = []
    for part in (p.strip() for p in str(spec).split(",")):
        if not part:
            continue
        name, sep, steps = part.rpartition(":")
        name = name.strip().lower()
        if not sep or not steps.strip().isdigit() or int(steps) < 1:
            raise ValueError(f"bad sampler spec {part!r}: write NAME:STEPS, e.g. dpm++:20 "
                             f"(samplers: {', '.join(SAMPLERS)})")
        if name not in SAMPLERS:
            raise ValueError(f"unknown sampler {name!r} in {part!r}; choose from {', '.join(SAMPLERS)}")
        pairs.append((name, int(steps)))
    if not pairs:
        raise ValueError(f"no sampler given in {spec!r}: write e.g. ddim:50,dpm++:20")
    return pairs


def parse_guidance(spec: float | str) -> list[float]:
    """"1.5" -> [1.5]; "1,1.5,2,3" -> a sweep, each value one row per sampler."""
    values = []
    for part in (p.strip() for p in str(spec).split(",")):
        try:
            values.append(float(part))
        except ValueError:
            raise ValueError(f"bad guidance {part!r} in {str(spec)!r}: write a number or several, e.g. 1,1.5,2") from None
    return values


def settings_from_spec(spec: str, guidance: float | str = DEFAULT_GUIDANCE, seed: int = 0,
                       dtype: str = DEFAULT_DTYPE, compile: bool = False) -> list[Settings]:
    """Sampler spec (see ``parse_samplers``) x guidance (one value or a comma-separated sweep) -> one
    ``Settings`` per pair, sampler-major, sharing seed, dtype and whether the forward is compiled."""
    return [Settings(sampler=name, steps=steps, guidance=g, seed=seed, dtype=dtype, compile=compile)
            for name, steps in parse_samplers(spec) for g in parse_guidance(guidance)]


def split_test(test_images: torch.Tensor, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut the test split (N, C, H, W) into a probe of min(n, N // 2) images and the disjoint reference
    (the rest), by a seeded permutation. Returns (probe indices, reference indices)."""
    total = len(test_images)
    if total < 4:
        raise ValueError(f"need at least 4 test images for a floor, got {total}")
    order = torch.randperm(total, generator=make_generator(seed))
    probe_n = min(n, total // 2)
    return order[:probe_n], order[probe_n:]


def evaluate(model: DiffusionModel, settings_list: Sequence[Settings], n: int = 1000,
             classifier: Classifier | None = None, test_images: torch.Tensor | None = None,
             test_labels: torch.Tensor | None = None, batch: int = EVALUATE_BATCH, seed: int = 0,
             progress: bool = True, log: Log = print) -> list[dict]:
    """Measure ``model`` once per ``Settings``; returns one row (dict) per setting with

    - ``setting`` (its label), ``sampler``, ``steps``, ``guidance``, ``dtype`` (the precision it ran at,
      "auto" resolved for the model's device), ``n`` (samples generated);
    - ``accuracy``: fraction of samples the classifier puts in their class (NaN if unconditional);
    - ``fid``: Fréchet distance of the n samples' features to the reference part of the test split;
    - ``fid_floor``: the same for ``floor_n`` held-out real test images (``floor_n`` = n unless the
      test split has fewer than 2 n images), so both sides have the same sample-size bias;
    - ``accuracy_real``: the classifier's accuracy on those real probe images (NaN without labels);
    - ``reference_n``: the reference size; ``seconds``: wall time to generate the samples;
    - ``classifier`` (when the classifier has a cache key): ``{"key", "test_accuracy"}``, which
      classifier measured the row; FIDs from different classifiers differ by ~10% and are not
      to be compared;
    - ``class_accuracy`` (conditional models): {class name: accuracy on that class's samples}, which
      shows which classes lag behind the overall figure, and ``class_accuracy_real``: the same for
      the whole labelled test split, so a class the classifier itself cannot tell shows as such.

    ``classifier`` defaults to ``classifier_for(model.dataset)``; ``test_images`` (N, C, H, W,
    uint8 or float in [-1, 1]) and ``test_labels`` (N,) default to the dataset's test split.
    ``seed`` picks the probe/reference cut.
    """
    settings_list = [s.resolved(model.device) for s in settings_list]  # rows name the precision that ran
    if not settings_list:
        raise ValueError("give at least one Settings to evaluate")
    if model.conditional and n < model.denoiser.num_classes:
        raise ValueError(f"n = {n} samples cannot cover all {model.denoiser.num_classes} classes of "
                         f"{model.name!r}: use n >= {model.denoiser.num_classes}")
    for s in settings_list:
        if s.steps > model.schedule.num_timesteps:
            raise ValueError(f"{settings_label(s)}: at most {model.schedule.num_timesteps} steps for {model.name!r}")
    if classifier is None or test_images is None:
        if not model.dataset:
            raise ValueError(f"model {model.name!r} names no dataset: pass a classifier and test images")
    if classifier is None:
        classifier = classifier_for(model.dataset, log=log)
    if test_images is None:
        test = data.load(model.dataset, "test")
        test_images, test_labels = test.images, test.labels
    expect = (model.channels, model.image_size, model.image_size)
    if tuple(test_images.shape[1:]) != expect:
        raise ValueError(f"test images are {tuple(test_images.shape[1:])}, the model makes {expect}")
    if classifier.config.channels != model.channels or (
            model.conditional and classifier.config.num_classes != model.denoiser.num_classes):
        raise ValueError(f"the classifier ({classifier.config.channels} channels, {classifier.config.num_classes} "
                         f"classes) does not fit model {model.name!r}")
    classifier = classifier.to(model.device).eval()

    probe, reference = split_test(test_images, n, seed)
    test_feats = features(classifier, test_images)
    reference_feats = test_feats[reference.numpy()]
    fid_floor = frechet_distance(test_feats[probe.numpy()], reference_feats)
    # one pass of the classifier over the real images gives both the probe's accuracy and the per-class one
    real_predicted = predict(classifier, test_images) if test_labels is not None else None
    real_labels = test_labels.long().cpu() if test_labels is not None else None
    accuracy_real = ((real_predicted[probe] == real_labels[probe]).double().mean().item()
                     if test_labels is not None else float("nan"))
    if len(probe) < n:
        log(f"note: the test split has {len(test_images)} images, so the floor uses {len(probe)} "
            f"real images, not n = {n}: it is biased upward relative to the generated rows")

    names = model.classes
    real_per_class = (class_accuracies(real_predicted, real_labels, len(names))
                      if names and test_labels is not None else [])

    rows = []
    for s in tqdm(settings_list, desc=f"evaluating {model.name}", unit="setting", disable=not progress):
        started = time.monotonic()
        samples, labels = sample_images(model, n, s, batch=batch, progress=progress)
        seconds = time.monotonic() - started
        predicted = predict(classifier, samples) if labels is not None else None
        acc = (predicted == labels).double().mean().item() if labels is not None else float("nan")
        rows.append({"setting": settings_label(s), "sampler": s.sampler, "steps": s.steps, "guidance": s.guidance,
                     "dtype": s.dtype, "n": n, "accuracy": round(acc, 4),
                     "fid": round(frechet_distance(features(classifier, samples), reference_feats), 3),
                     "fid_floor": round(fid_floor, 3), "floor_n": len(probe), "reference_n": len(reference),
                     "accuracy_real": round(accuracy_real, 4), "seconds": round(seconds, 1)})
        if s.compile:
            rows[-1]["compiled"] = True
        if judge := classifier.meta.get("key"):
            rows[-1]["classifier"] = {"key": judge, "test_accuracy": classifier.meta.get("test_accuracy")}
        if labels is not None:
            for key, values in (("class_accuracy", class_accuracies(predicted, labels, len(names))),
                                ("class_accuracy_real", real_per_class)):
                rows[-1][key] = {name: round(a, 3) for name, a in zip(names, values) if a is not None}
    return rows
