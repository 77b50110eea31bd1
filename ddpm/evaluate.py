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

Images everywhere are (B, C, H, W) float tensors in [-1, 1], as in the rest of the library.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import DiffusionModel
from .device import generator as make_generator
from .device import pick_device
from .recipes import DEFAULT_GUIDANCE, DEFAULT_SAMPLER, MAX_BATCH, Settings, generate
from .schedule import SAMPLERS

# Bump when the architecture or the training recipe changes: cached classifiers then retrain.
CLASSIFIER_VERSION = 1
DEFAULT_STEPS = 20
DEFAULT_SAMPLERS = f"{DEFAULT_SAMPLER}:{DEFAULT_STEPS}"
DEFAULT_BATCH = 250

Log = Callable[[str], None]


# -- the classifier ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClassifierConfig:
    """Shape of the classifier: input channels, number of classes, conv widths, feature size."""

    channels: int = 1
    num_classes: int = 10
    widths: tuple[int, ...] = (32, 64, 128)
    feature_dim: int = 128
    dropout: float = 0.3

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if self.channels < 1 or self.num_classes < 2 or not self.widths or self.feature_dim < 1:
            raise ValueError(f"bad classifier config {self}")


class Classifier(nn.Module):
    """A small CNN for (B, C, H, W) images in [-1, 1], any size >= 8 px (28 and 32 in practice).

    One conv-BatchNorm-ReLU block per width, 2x max-pooling between blocks, a 2x2 adaptive average
    pool, then a linear feature layer (``feature_dim``) and, after ReLU and dropout, the class logits.
    ``features`` is the feature layer before its ReLU: roughly Gaussian, no dead dimensions, which is
    what a Fréchet distance assumes.
    """

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        blocks, c_in = [], config.channels
        for i, width in enumerate(config.widths):
            if i > 0:
                blocks.append(nn.MaxPool2d(2))
            blocks += [nn.Conv2d(c_in, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            c_in = width
        blocks += [nn.AdaptiveAvgPool2d(2), nn.Flatten()]
        self.body = nn.Sequential(*blocks)
        self.feature = nn.Linear(c_in * 4, config.feature_dim)
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(config.dropout), nn.Linear(config.feature_dim, config.num_classes))
        self.meta: dict = {}  # training facts (test accuracy, seconds, ...), as stored next to the weights

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [-1, 1] -> (B, feature_dim) penultimate features."""
        return self.feature(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [-1, 1] -> (B, num_classes) logits."""
        return self.head(self.features(x))


def _model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] or float [-1, 1] images -> float32 in [-1, 1] (floats are clamped)."""
    if images.dtype == torch.uint8:
        return images.float() / 127.5 - 1.0
    return images.float().clamp(-1, 1)


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image of (B, C, H, W) by its own random offset in [-max_shift, max_shift] pixels
    along each axis, filling with the edge pixels (background). No flips: they change classes."""
    if max_shift <= 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, mode="replicate").permute(0, 2, 3, 1)  # (B, H+2m, W+2m, C)
    dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=generator).to(x.device)
    rows = dy[:, None] + torch.arange(h, device=x.device)  # (B, H)
    cols = dx[:, None] + torch.arange(w, device=x.device)  # (B, W)
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


def train_classifier(images: torch.Tensor, labels: torch.Tensor, num_classes: int, epochs: int = 4,
                     seed: int = 0, batch_size: int = 128, lr: float = 3e-3, max_shift: int = 2,
                     config: ClassifierConfig | None = None, progress: bool = True) -> Classifier:
    """Train a :class:`Classifier` from scratch and return it in eval mode.

    images: (N, C, H, W) uint8 or float in [-1, 1]; labels: (N,) ints in [0, num_classes).
    AdamW with a one-cycle learning rate, random shifts of up to ``max_shift`` pixels. Seeded: the
    initialisation, dropout, shuffling and augmentation all follow ``seed``.
    """
    if images.dim() != 4 or labels.shape != (images.shape[0],):
        raise ValueError(f"need images (N, C, H, W) and labels (N,), got {tuple(images.shape)} and {tuple(labels.shape)}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}), got [{int(labels.min())}, {int(labels.max())}]")
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    config = config or ClassifierConfig(channels=images.shape[1], num_classes=num_classes)
    device = pick_device()
    g = make_generator(seed)
    batches_per_epoch = math.ceil(len(images) / batch_size)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)  # weight init and dropout draw from the global generator
        model = Classifier(config).to(device).train()
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * batches_per_epoch)
        bar = tqdm(total=epochs * batches_per_epoch, desc="training classifier", disable=not progress, leave=False)
        for epoch in range(epochs):
            order = torch.randperm(len(images), generator=g)
            for start in range(0, len(images), batch_size):
                idx = order[start:start + batch_size]
                x = random_shift(_model_range(images[idx]).to(device), max_shift, g)
                loss = F.cross_entropy(model(x), labels[idx].to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                bar.update()
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}", refresh=False)
        bar.close()
    return model.eval()


@torch.inference_mode()
def _in_batches(fn, images: torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    """``fn`` over (N, C, H, W) images in batches on ``device``; results concatenated on the CPU."""
    if len(images) == 0:
        raise ValueError("no images given")
    return torch.cat([fn(_model_range(images[i:i + batch]).to(device)).float().cpu()
                      for i in range(0, len(images), batch)])


def features(classifier: Classifier, images: torch.Tensor, batch: int = 512) -> np.ndarray:
    """(N, C, H, W) images (uint8, or float in [-1, 1]) -> (N, D) float64 penultimate features."""
    classifier.eval()
    return _in_batches(classifier.features, images, batch, classifier.device).double().numpy()


def predict(classifier: Classifier, images: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """(N, C, H, W) images (uint8, or float in [-1, 1]) -> (N,) int64 predicted classes."""
    classifier.eval()
    return _in_batches(classifier, images, batch, classifier.device).argmax(dim=1)


def accuracy(classifier: Classifier, images: torch.Tensor, labels: torch.Tensor, batch: int = 512) -> float:
    """Fraction in [0, 1] of (N, C, H, W) images whose predicted class equals ``labels`` (N,)."""
    return (predict(classifier, images, batch) == labels.cpu()).double().mean().item()


def class_accuracies(predicted: torch.Tensor, labels: torch.Tensor, num_classes: int) -> list[float | None]:
    """Per class k, the fraction of the images labelled k that were predicted k (None: no such image)."""
    right = torch.bincount(labels[predicted == labels], minlength=num_classes)
    total = torch.bincount(labels, minlength=num_classes)
    return [right[k].item() / total[k].item() if total[k] else None for k in range(num_classes)]


# -- the cache --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingRecipe:
    """How ``classifier_for`` trains: part of the cache key, so a changed recipe retrains."""

    epochs: int = 4
    seed: int = 0
    batch_size: int = 128
    lr: float = 3e-3
    max_shift: int = 2


# Datasets whose train split is too small for the default recipe. emoji (1,716 images): 4 epochs
# reach 0.57 test accuracy, 40 epochs 0.73, 100 epochs at batch 64 0.77 (3.5 min on 1 CPU thread).
RECIPES: dict[str, TrainingRecipe] = {"emoji": TrainingRecipe(epochs=100, batch_size=64)}


def recipe_for(dataset: str) -> TrainingRecipe:
    """The classifier training recipe for ``dataset``: its entry in ``RECIPES`` or the default."""
    return RECIPES.get(dataset, TrainingRecipe())


def cache_key(config: ClassifierConfig, recipe: TrainingRecipe) -> str:
    """12 hex digits naming a classifier: its version, architecture and training recipe.

    The data-dependent fields (channels, num_classes) are left out so a cache hit needs no data."""
    arch = {k: v for k, v in asdict(config).items() if k not in ("channels", "num_classes")}
    text = json.dumps({"version": CLASSIFIER_VERSION, "arch": arch, "recipe": asdict(recipe)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def classifier_dir(dataset: str) -> Path:
    """``<data_root>/classifiers/<dataset>/``: where ``classifier_for`` keeps its classifiers."""
    from . import data

    return data.data_root() / "classifiers" / dataset


def save_classifier(classifier: Classifier, folder: Path, key: str, meta: dict) -> Path:
    """Write ``classifier-<key>.safetensors`` (tensors only) and ``classifier-<key>.json``
    (config + ``meta``) into ``folder``, each atomically. Returns the json path."""
    from safetensors.torch import save_model

    folder.mkdir(parents=True, exist_ok=True)
    weights, info = folder / f"classifier-{key}.safetensors", folder / f"classifier-{key}.json"
    save_model(classifier, str(weights) + ".partial")
    os.replace(str(weights) + ".partial", weights)
    payload = {"version": CLASSIFIER_VERSION, "key": key, "config": asdict(classifier.config), **meta}
    info.with_suffix(".partial").write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(info.with_suffix(".partial"), info)
    return info


def load_classifier(folder: Path, key: str) -> Classifier | None:
    """The classifier stored under ``key`` in ``folder``, in eval mode on the default device,
    or None when there is none (or it is unreadable: it will be retrained and overwritten)."""
    from safetensors.torch import load_model

    weights, info = folder / f"classifier-{key}.safetensors", folder / f"classifier-{key}.json"
    if not (weights.is_file() and info.is_file()):
        return None
    try:
        meta = json.loads(info.read_text())
        classifier = Classifier(ClassifierConfig(**meta["config"]))
        load_model(classifier, str(weights), strict=True)
    except Exception:  # truncated or stale files: treat as a cache miss
        return None
    classifier.meta = {k: v for k, v in meta.items() if k != "config"}
    return classifier.to(pick_device()).eval()


def classifier_for(dataset: str, cache_dir: str | Path | None = None, recipe: TrainingRecipe | None = None,
                   root: str | Path | None = None, log: Log = print) -> Classifier:
    """The classifier for ``dataset``: loaded from ``cache_dir`` (default ``classifier_dir(dataset)``),
    or trained on its train split, measured on its test split, and stored there first.

    ``classifier.meta`` holds ``test_accuracy``, ``train_seconds`` and ``trained_now`` (False when
    it came from the cache).
    """
    from . import data

    recipe = recipe or recipe_for(dataset)
    folder = Path(cache_dir) if cache_dir is not None else classifier_dir(dataset)
    key = cache_key(ClassifierConfig(), recipe)
    cached = load_classifier(folder, key)
    if cached is not None:
        cached.meta["trained_now"] = False
        return cached
    train = data.load(dataset, "train", root=root)
    test = data.load(dataset, "test", root=root)
    log(f"training a {dataset} classifier on {len(train)} images ({recipe.epochs} epochs); cached in {folder}")
    started = time.monotonic()
    classifier = train_classifier(train.images, train.labels, len(train.class_names), epochs=recipe.epochs,
                                  seed=recipe.seed, batch_size=recipe.batch_size, lr=recipe.lr,
                                  max_shift=recipe.max_shift)
    seconds = time.monotonic() - started
    test_accuracy = accuracy(classifier, test.images, test.labels)
    meta = {"dataset": dataset, "class_names": list(train.class_names), "recipe": asdict(recipe),
            "test_accuracy": round(test_accuracy, 5), "train_seconds": round(seconds, 1),
            "train_images": len(train), "test_images": len(test)}
    save_classifier(classifier, folder, key, meta)
    log(f"{dataset} classifier: test accuracy {test_accuracy:.4f} after {seconds:.0f} s")
    classifier.meta = {"version": CLASSIFIER_VERSION, "key": key, **meta, "trained_now": True}
    return classifier


# -- the Fréchet distance ---------------------------------------------------------------------------
def frechet_distance(feats_a, feats_b, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to (N_a, D) and (N_b, D) feature sets (float >= 0):

        ||mu_a - mu_b||^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2))

    with sample means and (N - 1)-normalised covariances. The matrix square root (``scipy.linalg.sqrtm``)
    keeps its real part; when it is not finite (near-singular covariances, N <= D) ``eps`` is added to
    both diagonals and it is retried, as pytorch-fid does. Rounding can give tiny negative totals:
    those become 0.
    """
    from scipy import linalg

    a, b = np.asarray(feats_a, dtype=np.float64), np.asarray(feats_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two (N, D) feature sets with the same D, got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"need at least 2 feature vectors per set, got {len(a)} and {len(b)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("feature sets hold NaN or infinite values")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(cov_a)) * eps
        covmean = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    covmean = np.real(covmean)
    distance = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))
    if not math.isfinite(distance):
        raise ValueError("the Fréchet distance is not finite: the feature covariances are degenerate")
    return max(distance, 0.0)


# -- sampling and evaluation ------------------------------------------------------------------------
def balanced_labels(n: int, num_classes: int) -> torch.Tensor:
    """(n,) int64 labels 0, 1, ..., K-1, 0, 1, ...: n // K of each class (the first n % K get one more),
    interleaved so every batch is balanced too."""
    if n < num_classes:
        raise ValueError(f"n = {n} samples cannot cover all {num_classes} classes: use n >= {num_classes}")
    return torch.arange(n) % num_classes


def sample_images(model: DiffusionModel, n: int, settings: Settings, batch: int = DEFAULT_BATCH,
                  progress: bool = True, desc: str | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Generate ``n`` class-balanced samples: ((n, C, H, W) float in [-1, 1] on the CPU, (n,) int64 labels).

    Batch ``i`` runs with seed ``settings.seed + i``, so results are reproducible and two settings with
    the same seed start from the same noise. Unconditional models get labels None.
    """
    if not 1 <= batch <= MAX_BATCH:
        raise ValueError(f"batch must be between 1 and {MAX_BATCH}, got {batch}")
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    labels = balanced_labels(n, model.denoiser.num_classes) if model.conditional else None
    chunks = []
    bar = tqdm(total=n, desc=desc or settings_label(settings), unit="img", disable=not progress, leave=False)
    for i, start in enumerate(range(0, n, batch)):
        size = min(batch, n - start)
        job_settings = settings.with_(seed=settings.seed + i)
        if labels is None:
            job = generate(model, None, n=size, settings=job_settings)
        else:
            job = generate(model, labels[start:start + size].tolist(), settings=job_settings)
        chunks.append(job.run().float().cpu())
        bar.update(size)
    bar.close()
    return torch.cat(chunks), labels


def settings_label(settings: Settings) -> str:
    """A row's name: "dpm++ 20 steps, guidance 3" (and ", eta 1" for a non-zero DDIM eta)."""
    label = f"{settings.sampler} {settings.steps} steps, guidance {settings.guidance:g}"
    label += f", eta {settings.eta:g}" if settings.eta else ""
    return label + (f", {settings.dtype}" if settings.dtype != "float32" else "")


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
                       dtype: str = "float32") -> list[Settings]:
    """Sampler spec (see ``parse_samplers``) x guidance (one value or a comma-separated sweep) -> one
    ``Settings`` per pair, sampler-major, sharing seed and dtype."""
    return [Settings(sampler=name, steps=steps, guidance=g, seed=seed, dtype=dtype)
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
             test_labels: torch.Tensor | None = None, batch: int = DEFAULT_BATCH, seed: int = 0,
             progress: bool = True, log: Log = print) -> list[dict]:
    """Measure ``model`` once per ``Settings``; returns one row (dict) per setting with

    - ``setting`` (its label), ``sampler``, ``steps``, ``guidance``, ``n`` (samples generated);
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
    settings_list = list(settings_list)
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
        from . import data

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
                     "n": n, "accuracy": round(acc, 4),
                     "fid": round(frechet_distance(features(classifier, samples), reference_feats), 3),
                     "fid_floor": round(fid_floor, 3), "floor_n": len(probe), "reference_n": len(reference),
                     "accuracy_real": round(accuracy_real, 4), "seconds": round(seconds, 1)})
        if judge := classifier.meta.get("key"):
            rows[-1]["classifier"] = {"key": judge, "test_accuracy": classifier.meta.get("test_accuracy")}
        if labels is not None:
            for key, values in (("class_accuracy", class_accuracies(predicted, labels, len(names))),
                                ("class_accuracy_real", real_per_class)):
                rows[-1][key] = {name: round(a, 3) for name, a in zip(names, values) if a is not None}
    return rows


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


# -- the model card ---------------------------------------------------------------------------------
def _json_safe(value):
    """NaN and infinities -> None (JSON has neither), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def local_folder(name_or_path: str) -> Path:
    """The bundled or local ddpm checkpoint folder ``name_or_path`` names; ValueError for Hub ids
    and diffusers folders, whose cards are not ours to write."""
    from .checkpoint import CHECKPOINTS_DIR, FORMAT, own_config_path

    text = str(name_or_path).strip()
    folder = CHECKPOINTS_DIR / text if own_config_path(CHECKPOINTS_DIR / text) else Path(text).expanduser()
    if not folder.is_dir():
        raise ValueError(f"--write-card needs a bundled or local checkpoint folder; {text!r} is neither")
    if own_config_path(folder) is None:
        raise ValueError(f"--write-card: {folder} is not a ddpm checkpoint ({FORMAT}), so it has no card to update")
    return folder


def merge_rows(old: Sequence[dict], new: Sequence[dict]) -> list[dict]:
    """``old`` rows with each one that ``new`` measures again (same ``setting``) replaced in place,
    then the rest of ``new``: a card can gather rows from several runs (a slow DDPM-1000 run apart)."""
    fresh = {row["setting"]: row for row in new}
    merged = [fresh.pop(row["setting"], row) for row in old]
    return merged + [row for row in new if row["setting"] in fresh]


def write_card(folder: Path, model: DiffusionModel, rows: Sequence[dict], command: str) -> Path:
    """Merge ``rows`` (each tagged with the ``command`` that measured it) into ``"metrics"`` in
    ``folder/ddpm_config.json`` (see :func:`merge_rows`) and regenerate its README.md."""
    from .card import model_card
    from .checkpoint import CARD_NAME, own_config_path

    if not model.conditional:
        raise ValueError("--write-card: the card's table reports class accuracy, which an unconditional model lacks")
    config_path = own_config_path(folder)  # ddpm_config.json (a ddpm-checkpoint/1 folder: its config.json)
    config = json.loads(config_path.read_text())
    before = config.get("metrics", {})
    for row in rows:  # a quick check (--n 20) must not overwrite a card's 1,000-sample figures
        for kept in before.get("rows", []):
            if kept["setting"] == row["setting"] and kept.get("n", 0) > row["n"]:
                raise ValueError(f"--write-card would replace the card's row {row['setting']!r}, measured on "
                                 f"{kept['n']} samples, with one on {row['n']}: measure with --n {kept['n']} or more "
                                 f"(nothing was written)")
    old = [{"command": before.get("command", ""), **row} for row in before.get("rows", [])]
    metrics = _json_safe({"rows": merge_rows(old, [{**row, "command": command} for row in rows])})
    config["metrics"] = metrics
    model.meta["metrics"] = metrics
    for name, text in ((config_path.name, json.dumps(config, indent=2) + "\n"), (CARD_NAME, model_card(model))):
        tmp = folder / (name + ".partial")
        tmp.write_text(text)
        os.replace(tmp, folder / name)
    return folder


# -- the command line -------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``python -m ddpm evaluate``."""
    parser.add_argument("--model", required=True, help="bundled model name, checkpoint folder or Hub id")
    parser.add_argument("--n", type=int, default=1000, help="samples per setting, class-balanced (default 1000)")
    parser.add_argument("--samplers", default=None,
                        help=f"comma-separated NAME:STEPS, e.g. ddpm:1000,ddim:50,dpm++:20 (default: the model's own "
                             f"sampler, 20 steps, else {DEFAULT_SAMPLERS})")
    parser.add_argument("--guidance", default=None,
                        help=f"classifier-free guidance scale, or several for a sweep, e.g. 1,1.5,2,3 "
                             f"(default: the model's own, else {DEFAULT_GUIDANCE:g})")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed and test-split cut (default 0)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                        help="model precision while sampling (default float32)")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, help=f"sampling batch size (default {DEFAULT_BATCH})")
    parser.add_argument("--write-card", action="store_true",
                        help="store the rows in the checkpoint's ddpm_config.json (replacing rows of the same setting, "
                             "keeping the others) and regenerate its README.md")
    return parser


def command_line(args: argparse.Namespace) -> str:
    """The canonical command that reproduces a measurement, for the model card."""
    return (f"python -m ddpm evaluate --model {args.model} --n {args.n} --samplers {args.samplers} "
            f"--guidance {','.join(f'{g:g}' for g in parse_guidance(args.guidance))} --seed {args.seed}" + (f" --dtype {args.dtype}" if args.dtype != "float32" else ""))


def run(args: argparse.Namespace) -> int:
    """Run ``python -m ddpm evaluate`` with parsed ``args``; prints the table. Returns the exit code
    (2 with a message on stderr for bad input or a missing model/dataset)."""
    from .checkpoint import load, own_config_path

    try:
        guidance = DEFAULT_GUIDANCE if args.guidance is None else args.guidance
        samplers = DEFAULT_SAMPLERS if args.samplers is None else args.samplers
        settings_from_spec(samplers, guidance, args.seed, args.dtype)  # checked before the (slower) load
        folder = local_folder(args.model) if args.write_card else None
        model = load(args.model)
        # the model's own defaults where none were given; the card's command names them
        args.guidance = f"{model.default_guidance:g}" if args.guidance is None else args.guidance
        args.samplers = f"{model.default_sampler}:{DEFAULT_STEPS}" if args.samplers is None else args.samplers
        settings = settings_from_spec(args.samplers, args.guidance, args.seed, args.dtype)
        rows = evaluate(model, settings, n=args.n, batch=args.batch, seed=args.seed)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_table(rows))
    if per_class := format_class_table(rows):
        print("\nclass accuracy per class:\n" + per_class)
    if folder is not None:
        try:
            write_card(folder, model, rows, command_line(args))
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"wrote the metrics into {own_config_path(folder)} and {folder / 'README.md'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ddpm.evaluate [options]``: the same as ``python -m ddpm evaluate``."""
    parser = add_arguments(argparse.ArgumentParser(prog="python -m ddpm evaluate", description=__doc__.split("\n")[0]))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
