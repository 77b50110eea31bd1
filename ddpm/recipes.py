"""Every feature as a short recipe around the one loop: each builds a ``Job`` and nothing else.

Images are (B, C, H, W) or (C, H, W) tensors in model space, [-1, 1]; masks are (H, W),
(1, H, W) or (B, 1, H, W) booleans where True marks pixels to regenerate. Labels are class names
or indices (see ``DiffusionModel.label_ids``), or None for unconditional sampling.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial

import torch

from .checkpoint import DiffusionModel
from .defaults import DEFAULT_COMPILE, DEFAULT_DTYPE, DEFAULT_GUIDANCE, DEFAULT_SAMPLER, MAX_BATCH, MAX_GUIDANCE  # noqa: F401
from .device import dtype_name
from .device import generator as make_generator
from .sampling import Job, Part, composite_estimate, noise_estimate
from .schedule import SAMPLERS
from .views import (AFAR_FACTOR, View, area_highpass, area_lowpass, check_factor, default_sigma, get_view, highpass,
                    lowpass)


@dataclass(frozen=True)
class Settings:
    """How to sample: which sampler, how many steps, guidance scale, DDIM eta, seed, precision, and whether
    the compiled forward runs (``compile``: True, False, or "auto", the compiled one where the compile cache
    already holds it: ``DEFAULT_COMPILE``). A Job records what "auto" resolved to, so a result's settings
    give the same pixels again on this machine."""

    sampler: str = DEFAULT_SAMPLER
    steps: int = 20
    guidance: float = DEFAULT_GUIDANCE
    eta: float = 0.0
    seed: int = 0
    dtype: str = DEFAULT_DTYPE  # "auto": ddpm.device.default_dtype picks it; a Job records what it resolved to
    compile: bool | str = DEFAULT_COMPILE

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; choose one of {', '.join(SAMPLERS)}")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps!r}")
        if not 0 <= self.guidance <= MAX_GUIDANCE:
            raise ValueError(f"guidance must be between 0 and {MAX_GUIDANCE}, got {self.guidance}")
        if not 0 <= self.eta <= 1:
            raise ValueError(f"eta must be between 0 (deterministic DDIM) and 1 (DDPM-like noise), got {self.eta}")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        dtype_name(self.dtype)
        if not (isinstance(self.compile, bool) or self.compile == "auto"):
            raise ValueError(f"compile must be True, False or 'auto', got {self.compile!r}")

    def with_(self, **changes) -> Settings:
        return replace(self, **changes)

    def resolved(self, device) -> Settings:
        """These settings with the precision they run at on ``device`` ("auto" made concrete)."""
        return replace(self, dtype=dtype_name(self.dtype, device))


def _labels(model: DiffusionModel, labels, batch: int | None = None) -> torch.Tensor | None:
    """Class names/indices -> (B,) long tensor; None stays None (unconditional)."""
    if labels is None or not model.conditional:
        if labels is not None:
            raise ValueError(f"model {model.name!r} is unconditional: it takes no class labels")
        return None
    if hasattr(labels, "tolist"):  # a tensor or array of indices
        labels = labels.tolist()
    if isinstance(labels, (str, int)):  # one class ("Flags" is a name, not five letters)
        labels = [labels] * (batch or 1)
    ids = torch.tensor(model.label_ids(list(labels)), dtype=torch.long)
    if batch is not None and len(ids) not in (1, batch):
        raise ValueError(f"{len(ids)} labels for {batch} images: give one label for all, or one per image")
    if batch is not None and len(ids) == 1:
        ids = ids.expand(batch).clone()
    return ids


def _image(model: DiffusionModel, image: torch.Tensor, what: str = "image") -> torch.Tensor:
    """Validate a model-space image and give it a batch dimension: (B, C, H, W) on the model's device."""
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{what} must be a torch tensor in [-1, 1], got {type(image).__name__}")
    if image.dim() == 3:
        image = image[None]
    expect = (model.channels, model.image_size, model.image_size)
    if image.dim() != 4 or tuple(image.shape[1:]) != expect:
        raise ValueError(f"{what} must be shaped (C, H, W) = {expect} for model {model.name!r}, "
                         f"got {tuple(image.shape)}; convert it with ddpm.images first")
    _check_batch(image.shape[0])
    if not torch.isfinite(image).all() or image.min() < -1.001 or image.max() > 1.001:
        raise ValueError(f"{what} must hold finite values in [-1, 1]")
    return image.float().to(model.device)


def _check_batch(n: int):
    if not 1 <= n <= MAX_BATCH:
        raise ValueError(f"batch size must be between 1 and {MAX_BATCH}, got {n}")


def _job(model: DiffusionModel, settings: Settings, eps_fn, x: torch.Tensor | None, shape=None,
         start: int = 0, plan: list[int] | None = None, project=None) -> Job:
    """Assemble a Job: a fresh sampler, the plan from index ``start``, a seeded generator, and the
    starting x (pure noise when ``x`` is None, else ``x`` noised to the plan's first timestep)."""
    sampler = model.schedule.sampler(settings.sampler, settings.steps, settings.eta)
    settings = settings.resolved(model.device)
    if settings.compile == "auto":  # what the job's estimate took (``_forward`` ran first): recorded as it ran
        settings = replace(settings, compile=model.holds_compiled(settings.dtype))
    g = make_generator(settings.seed)
    plan = plan if plan is not None else sampler.timesteps[start:] + [-1]
    if x is None:
        x = torch.randn(shape, generator=g).to(model.device)
    elif plan[0] >= 0:
        noise = torch.randn(x.shape, generator=g).to(model.device)
        x = model.schedule.q_sample(x, plan[0], noise)
    return Job(eps_fn, sampler, model.schedule, x, plan, g, project, settings=settings)


def resolve(model: DiffusionModel, settings: Settings) -> Settings:
    """``settings`` as they run on ``model``: the precision made concrete, and ``compile="auto"`` made True
    where the compile cache holds the model's package for it (loaded now), else False."""
    settings = settings.resolved(model.device)
    if settings.compile == "auto":
        settings = replace(settings, compile=model.compiled(settings.dtype, build=False) is not None)
    return settings


def _forward(model: DiffusionModel, settings: Settings):
    """The forward an estimate calls (None: the denoiser, eager); "auto" takes a package only if it is there."""
    if settings.compile == "auto":
        return model.compiled(settings.dtype, build=False)
    return model.compiled(settings.dtype) if settings.compile else None


def _estimate(model: DiffusionModel, settings: Settings, labels: torch.Tensor | None):
    return noise_estimate(model.denoiser, labels, settings.guidance, settings.dtype, _forward(model, settings))


# -- the recipes ------------------------------------------------------------------------------------
def generate(model: DiffusionModel, labels: Sequence | None = None, n: int | None = None,
             settings: Settings = Settings()) -> Job:
    """Sample new images: one per label (names or indices; one name alone is one image), or ``n``
    unconditional ones."""
    if labels is not None:
        y = _labels(model, labels)
        if n is not None and n != len(y):
            raise ValueError(f"n={n} but {len(y)} labels: give one label per image, or n alone (no labels)")
        n = len(y)
    else:
        y, n = None, (1 if n is None else n)
    _check_batch(n)
    return _job(model, settings, _estimate(model, settings, y), None,
                shape=(n, model.channels, model.image_size, model.image_size))


def sdedit(model: DiffusionModel, image: torch.Tensor, strengths: Sequence[float], labels=None,
           settings: Settings = Settings()) -> list[Job]:
    """SDEdit (Meng et al. 2022): noise ``image`` part way and denoise it back, once per strength.

    ``strength`` in [0, 1] is the fraction of the sampler's steps that is run, rounded half up: 0 returns the
    input unchanged, any strength above 0 runs at least one step, 1 starts from pure noise. With few steps,
    nearby strengths run the same steps (0.3, 0.4 and 0.5 of 5 steps all run 2). ``labels`` pulls the result
    toward a class (None: no class).
    """
    x0 = _image(model, image)
    if not strengths:
        raise ValueError("give at least one strength in [0, 1]")
    if any(not 0 <= s <= 1 for s in strengths):
        raise ValueError(f"strengths must lie in [0, 1], got {list(strengths)}")
    y = _labels(model, labels, batch=x0.shape[0]) if labels is not None else None
    eps_fn = _estimate(model, settings, y)
    jobs = []
    for s in strengths:
        run = max(1, math.floor(s * settings.steps + 0.5)) if s > 0 else 0
        jobs.append(_job(model, settings, eps_fn, x0, start=settings.steps - run))
    return jobs


def _mask(model: DiffusionModel, mask: torch.Tensor, batch: int) -> torch.Tensor:
    if mask is None:
        raise ValueError("no mask: give an (H, W) mask, True where the image is to be regenerated")
    mask = torch.as_tensor(mask)
    if mask.dim() == 3:  # (B, H, W): one per image
        mask = mask[:, None]
    while mask.dim() < 4:
        mask = mask[None]
    size = (model.image_size, model.image_size)
    if tuple(mask.shape[-2:]) != size or mask.shape[1] != 1 or mask.dim() != 4:
        raise ValueError(f"mask must be (H, W) = {size}, got {tuple(mask.shape)}")
    if mask.shape[0] not in (1, batch):
        raise ValueError(f"{mask.shape[0]} masks for {batch} images: give one mask for all, or one per image")
    mask = mask.bool().to(model.device).expand(batch, 1, *size)
    if not mask.any():
        raise ValueError("the mask is empty: paint the region you want to regenerate")
    if mask.all():
        raise ValueError("the mask covers the whole image: nothing is kept, so this is plain generation")
    return mask


def repaint_plan(timesteps: list[int], jump_length: int, jump_n_sample: int) -> list[int]:
    """RePaint's schedule (Lugmayr et al. 2022): walk down the sampler's timesteps, and every
    ``jump_length`` steps jump back up ``jump_length`` steps, ``jump_n_sample - 1`` times, so the
    generated region is resampled to agree with the known one. Ends at -1."""
    if jump_length < 1 or jump_n_sample < 1:
        raise ValueError("RePaint needs jump_length >= 1 and jump_n_sample >= 1")
    grid = sorted(timesteps)  # grid[i]: the i-th least noisy timestep
    n = len(grid)
    jumps = {j: jump_n_sample - 1 for j in range(0, n - jump_length, jump_length)}
    i, order = n, []
    while i >= 1:
        i -= 1
        order.append(i)
        if jumps.get(i, 0) > 0:
            jumps[i] -= 1
            for _ in range(jump_length):
                i += 1
                order.append(i)
    return [grid[i] for i in order] + [-1]


def inpaint(model: DiffusionModel, image: torch.Tensor, mask: torch.Tensor, labels=None,
            settings: Settings = Settings(), jump_length: int = 0, jump_n_sample: int = 1) -> Job:
    """Regenerate the masked region of ``image`` and keep the rest (seed 004 1.7.2).

    After every step the known region is replaced by the original noised to the step's timestep, so
    at the end it equals the original exactly. ``jump_length > 0`` adds RePaint resampling
    (``jump_n_sample`` passes over each stretch of ``jump_length`` steps; ddpm/ddim only).
    """
    if jump_length < 0 or jump_n_sample < 1:
        raise ValueError(f"RePaint needs jump_length >= 0 (0: none) and jump_n_sample >= 1, got {jump_length} "
                         f"and {jump_n_sample}")
    x0 = _image(model, image)
    keep = ~_mask(model, mask, x0.shape[0])
    y = _labels(model, labels, batch=x0.shape[0]) if labels is not None else None
    g_noise = make_generator(settings.seed + 1)  # the known region's noise: its own stream

    def project(x: torch.Tensor, t: int) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=g_noise).to(x.device)
        known = x0 if t < 0 else model.schedule.q_sample(x0, t, noise)
        return torch.where(keep, known, x)

    plan = None
    if jump_length > 0 and jump_n_sample > 1:
        timesteps = model.schedule.sampler(settings.sampler, settings.steps).timesteps
        plan = repaint_plan(timesteps, jump_length, jump_n_sample)
    job = _job(model, settings, _estimate(model, settings, y), None, shape=tuple(x0.shape), plan=plan,
               project=project)
    job.x = project(job.x, job.plan[0])
    return job


def anagram(model: DiffusionModel, parts: Sequence[tuple[object, str | View]], n: int = 1,
            settings: Settings = Settings(), guidances: Sequence[float] | None = None, repeats: int = 0) -> Job:
    """A visual anagram: an image that reads as ``label_i`` when seen through ``view_i``.

    ``parts`` is a list of (label, view) pairs, usually [(A, "identity"), (B, "flip_v")]; the noise
    estimates of all views, each mapped back by its inverse, are averaged at every step. ``guidances``
    gives each view its own guidance scale (None: ``settings.guidance`` for all). ``repeats > 0`` is
    time travel (ddpm/ddim only): every step is taken ``1 + repeats`` times, re-noising back up in between
    (RePaint's resampling with jumps of one step), so the views have more chances to agree.
    """
    if len(parts) < 2:
        raise ValueError("an anagram needs at least two (label, view) pairs")
    if guidances is not None and (len(guidances) != len(parts) or any(not 0 <= g <= MAX_GUIDANCE for g in guidances)):
        raise ValueError(f"give one guidance scale in [0, {MAX_GUIDANCE}] per view ({len(parts)}), "
                         f"got {list(guidances)}")
    if not isinstance(repeats, int) or repeats < 0:
        raise ValueError(f"repeats must be a non-negative integer, got {repeats!r}")
    _check_batch(n * len(parts))
    views = [get_view(v) for _, v in parts]
    for v in views:
        v.check(model.image_size, model.image_size)
    terms = [Part(_labels(model, label, batch=n) if label is not None else None, v, v.inverse,
                  None if guidances is None else float(g))
             for (label, _), v, g in zip(parts, views, guidances or [None] * len(parts))]
    eps_fn = composite_estimate(model.denoiser, terms, "mean", settings.guidance, settings.dtype,
                                _forward(model, settings))
    plan = None
    if repeats:
        plan = repaint_plan(model.schedule.sampler(settings.sampler, settings.steps).timesteps, 1, 1 + repeats)
    return _job(model, settings, eps_fn, None, shape=(n, model.channels, model.image_size, model.image_size),
                plan=plan)


def hybrid(model: DiffusionModel, low_label, high_label, sigma: float | None = None, n: int = 1,
           settings: Settings = Settings(), factor: int | None = None, high_guidance: float | None = None) -> Job:
    """A hybrid image (factorised diffusion): the low frequencies of ``low_label``'s noise estimate
    plus the high frequencies of ``high_label``'s, so it reads as one class from afar and the other
    up close.

    The split is, by default, the area projection of ``views.area_lowpass`` with ``factor``
    (default ``views.AFAR_FACTOR``): the low part is exactly what ``illusions.from_afar`` sees and the
    high part is invisible from afar. ``sigma`` instead splits with a Gaussian blur of that std in
    pixels (the Factorized Diffusion paper's filter; give one or the other). ``high_guidance`` is the
    high part's own guidance scale (None: ``settings.guidance``, as the low part's).
    """
    if sigma is not None and factor is not None:
        raise ValueError("give the blur sigma or the from-afar factor, not both")
    if sigma is not None:
        sigma = float(sigma)
        if not 0 < sigma <= model.image_size:
            raise ValueError(f"blur sigma must be in (0, {model.image_size}] pixels, got {sigma}")
        low, high = partial(lowpass, sigma=sigma), partial(highpass, sigma=sigma)
    else:
        factor = AFAR_FACTOR if factor is None else factor
        check_factor(factor, model.image_size, model.image_size)
        low, high = partial(area_lowpass, factor=factor), partial(area_highpass, factor=factor)
    if high_guidance is not None and not 0 <= high_guidance <= MAX_GUIDANCE:
        raise ValueError(f"high_guidance must be between 0 and {MAX_GUIDANCE}, got {high_guidance}")
    _check_batch(2 * n)
    identity = View()
    terms = [Part(_labels(model, low_label, batch=n), identity, low),
             Part(_labels(model, high_label, batch=n), identity, high, high_guidance)]
    eps_fn = composite_estimate(model.denoiser, terms, "sum", settings.guidance, settings.dtype,
                                _forward(model, settings))
    return _job(model, settings, eps_fn, None, shape=(n, model.channels, model.image_size, model.image_size))


@torch.inference_mode()
def forward_process(model: DiffusionModel, image: torch.Tensor, t: int, seed: int = 0, labels=None,
                    blur_sigma: float | None = None) -> dict[str, torch.Tensor]:
    """Seed 004 1.1-1.3 for one image: the noisy x_t, the model's one-step estimate of x0 from it,
    and a Gaussian-blur "denoise" of x_t for comparison. All (B, C, H, W) in [-1, 1]."""
    x0 = _image(model, image)
    if not 0 <= int(t) < model.schedule.num_timesteps:
        raise ValueError(f"t must be in [0, {model.schedule.num_timesteps - 1}], got {t}")
    noise = torch.randn(x0.shape, generator=make_generator(seed)).to(x0.device)
    x_t = model.schedule.q_sample(x0, int(t), noise)
    y = _labels(model, labels, batch=x0.shape[0]) if labels is not None else None
    eps = noise_estimate(model.denoiser, y, 1.0)(x_t, int(t))
    sigma = blur_sigma or default_sigma(model.image_size)
    return {"x_t": x_t.clamp(-1, 1), "x0_pred": model.schedule.predict_x0(x_t, int(t), eps).clamp(-1, 1),
            "blurred": lowpass(x_t, sigma).clamp(-1, 1), "eps": eps}
