"""The one sampling loop, and the noise-estimate functions it runs on.

A ``Job`` describes one run: a noise-estimate function ``eps_fn(x, t) -> eps``, a sampler, the
starting x, the timestep plan, a generator, and an optional projection applied after every step.
Every feature is a recipe that builds a Job (``ddpm.recipes``); ``iterate`` is the only loop.

The plan is a list of timesteps ending with -1 (the clean image). A move down (t -> t_next < t)
is a sampler step driven by the model; a move up (t -> t_next > t) re-noises with the forward
process (RePaint's resampling). At every move down the loop yields a ``Step`` with x_t, the noise
estimate and the predicted x0, which is what recorders, previews and progress bars consume.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch

from .device import autocast
from .models import Denoiser
from .schedule import NoiseSchedule, Sampler

EpsFn = Callable[[torch.Tensor, int], torch.Tensor]
Projection = Callable[[torch.Tensor, int], torch.Tensor]


@dataclass
class Step:
    """What one model step saw and produced. Tensors are (B, C, H, W) in model space ([-1, 1])."""

    index: int          # 0-based count of model steps taken so far
    total: int          # model steps in the whole plan
    t: int              # timestep of x
    t_next: int         # timestep of x_next (-1: clean)
    x: torch.Tensor     # x_t, the input of this step
    eps: torch.Tensor   # the (guided, combined) noise estimate
    x0: torch.Tensor    # predicted clean image from x and eps, clamped to [-1, 1]
    x_next: torch.Tensor  # the result of the step, after any projection


@dataclass
class Job:
    """Everything one run of the loop needs. Iterate it for steps, or ``run()`` it for the result.

    The loop reads ``eps_fn``, ``generator`` and ``project`` at every step, so they may be swapped between
    steps (``ddpm.explore.branch`` changes the class that way, keeping the sampler and its history).
    """

    eps_fn: EpsFn
    sampler: Sampler
    schedule: NoiseSchedule
    x: torch.Tensor                  # starting x at plan[0]
    plan: list[int]                  # timesteps, noisiest first, ending at -1
    generator: torch.Generator       # or one per row (diffusers draws row i from the i-th); not with jumps
    project: Projection | None = None  # applied to x_next after each move (inpainting)
    settings: object | None = None   # the recipe's Settings, precision resolved ("auto" -> what ran): a record
    started: bool = field(default=False, init=False, repr=False)

    def __post_init__(self):
        if len(self.plan) < 1 or self.plan[-1] != -1:
            raise ValueError("a plan must end at timestep -1 (the clean image)")
        jumps = any(b > a for a, b in zip(self.plan, self.plan[1:]))
        if jumps and not self.sampler.can_jump_back:
            raise ValueError(f"sampler {self.sampler.name!r} cannot resample (RePaint jumps): use ddpm or ddim")

    @property
    def num_model_steps(self) -> int:
        return sum(b < a for a, b in zip(self.plan, self.plan[1:]))

    def __iter__(self) -> Iterator[Step]:
        return iterate(self)

    def run(self, callback: Callable[[Step], None] | None = None) -> torch.Tensor:
        """Run to the end and return the final x (B, C, H, W) in [-1, 1]."""
        x = self.x
        for step in iterate(self):
            if callback is not None:
                callback(step)
            x = step.x_next
        return x


@torch.inference_mode()
def iterate(job: Job) -> Iterator[Step]:
    """The sampling loop. Yields a ``Step`` after every model step; the last x_next is the result.

    A Job runs once: its generator and sampler (DPM-Solver++ keeps a history) are spent by the run.
    """
    if job.started:
        raise RuntimeError("this Job has already run: build a new one with the recipe (same seed, same images)")
    job.started = True
    x, total, index = job.x, job.num_model_steps, 0
    for t, t_next in zip(job.plan, job.plan[1:]):
        if t_next > t:  # jump back up in noise: sample q(x_{t_next} | x_t), no model call
            noise = torch.randn(x.shape, generator=job.generator).to(x.device)
            x = job.schedule.renoise(x, t, t_next, noise)
            continue
        eps = job.eps_fn(x, t)
        x0 = job.schedule.predict_x0(x, t, eps).clamp(-1, 1)
        x_next = job.sampler.step(eps, t, x, job.generator)
        if job.project is not None:
            x_next = job.project(x_next, t_next)
        yield Step(index, total, t, t_next, x, eps, x0, x_next)
        index += 1
        x = x_next
    if total == 0:  # nothing to denoise (e.g. SDEdit at strength 0): still report the result
        yield Step(0, 0, -1, -1, x, torch.zeros_like(x), x.clamp(-1, 1), x)


# -- noise-estimate functions ---------------------------------------------------------------------
def noise_estimate(denoiser: Denoiser, labels: torch.Tensor | None = None, guidance: float | torch.Tensor = 1.0,
                   dtype: str | torch.dtype = "float32", forward: Callable | None = None) -> EpsFn:
    """``eps_fn(x, t)`` for a denoiser, with classifier-free guidance when labels are given.

    Guidance runs conditional and null rows in ONE batched forward pass and returns
    ``eps_null + guidance * (eps_cond - eps_null)``: 0 is unconditional, 1 is plain conditional.
    ``labels`` (B,) may contain the null label (those rows get the unconditional estimate).
    ``forward`` replaces ``denoiser`` for the call itself (e.g. a ``torch.compile``d copy).
    ``guidance`` may be a (B,) tensor: one scale per row.
    """
    forward = forward if forward is not None else denoiser
    conditional = labels is not None and denoiser.num_classes is not None
    rows_labels = torch.cat([labels, torch.full_like(labels, denoiser.num_classes)]) if conditional else None

    def eps_fn(x: torch.Tensor, t: int) -> torch.Tensor:
        rows = x.shape[0] * (2 if conditional else 1)
        # t as a tensor, not a Python int: a compiled forward would otherwise recompile for every t
        t_rows = torch.full((rows,), int(t), dtype=torch.long, device=x.device)
        with autocast(x.device, dtype):
            if not conditional:
                return forward(x, t_rows, None).float()
            y = rows_labels.to(x.device)  # the conditional rows, then the null ones: built once
            eps_cond, eps_null = forward(torch.cat([x, x]), t_rows, y).float().chunk(2)
        scale = guidance.to(x.device).view(-1, 1, 1, 1) if torch.is_tensor(guidance) else guidance
        return eps_null + scale * (eps_cond - eps_null)

    return eps_fn


@dataclass
class Part:
    """One term of a composite estimate: look at x through ``view``, condition on ``labels``,
    then map the estimate back with ``out`` (a view's inverse, or a frequency filter)."""

    labels: torch.Tensor | None
    view: Callable[[torch.Tensor], torch.Tensor]
    out: Callable[[torch.Tensor], torch.Tensor]
    guidance: float | None = None  # this part's own guidance scale (None: the composite's)


def composite_estimate(denoiser: Denoiser, parts: Sequence[Part], reduce: str = "mean",
                       guidance: float = 1.0, dtype: str | torch.dtype = "float32",
                       forward: Callable | None = None) -> EpsFn:
    """Combine several (view, labels, out) estimates: ``reduce`` is "mean" (visual anagrams) or
    "sum" (hybrid images, where the ``out`` filters split the spectrum). All parts go through the
    model in one batched forward pass."""
    if reduce not in ("mean", "sum"):
        raise ValueError(f"reduce must be 'mean' or 'sum', got {reduce!r}")
    if not parts:
        raise ValueError("composite_estimate needs at least one part")
    null = denoiser.num_classes

    def eps_fn(x: torch.Tensor, t: int) -> torch.Tensor:
        views = torch.cat([p.view(x) for p in parts])
        labels = None
        if null is not None:  # a part without labels contributes unconditional rows
            labels = torch.cat([p.labels.to(torch.long) if p.labels is not None else
                                torch.full((x.shape[0],), null, dtype=torch.long) for p in parts])
        scales = guidance
        if any(p.guidance is not None for p in parts):  # one scale per row, each part's own or the shared one
            scales = torch.cat([torch.full((x.shape[0],), float(guidance if p.guidance is None else p.guidance))
                                for p in parts])
        eps_all = noise_estimate(denoiser, labels, scales, dtype, forward)(views, t)
        terms = [p.out(e) for p, e in zip(parts, eps_all.chunk(len(parts)))]
        total = torch.stack(terms).sum(0)
        return total / len(parts) if reduce == "mean" else total

    return eps_fn


class Recorder:
    """A step callback that keeps x_t, predicted x0 and the noise estimate of every ``every``-th
    step (and the last one) on the CPU, for the step scrubber and GIFs.

    ``frames()`` -> dict of (S, B, C, H, W) float32 tensors "x", "x0", "eps", and (S,) "t".
    """

    def __init__(self, every: int = 1):
        self.every = max(1, int(every))
        self.t: list[int] = []
        self.x: list[torch.Tensor] = []
        self.x0: list[torch.Tensor] = []
        self.eps: list[torch.Tensor] = []

    def __call__(self, step: Step) -> None:
        if step.index % self.every and step.index != step.total - 1:
            return
        self.t.append(step.t)
        self.x.append(step.x.detach().to("cpu", torch.float32))
        self.x0.append(step.x0.detach().to("cpu", torch.float32))
        self.eps.append(step.eps.detach().to("cpu", torch.float32))

    def frames(self) -> dict[str, torch.Tensor]:
        if not self.t:
            raise ValueError("nothing was recorded")
        return {"t": torch.tensor(self.t), "x": torch.stack(self.x), "x0": torch.stack(self.x0),
                "eps": torch.stack(self.eps)}
