"""See more of a run: branch it at any step, compare settings on the same noise, watch the class form.

Everything here drives the one loop (``ddpm.sampling.iterate``) through Jobs the recipes build:

- ``generate_each`` / ``sample_batches``: generation where image i has its own seed, ``image_seed(seed, i)``,
  so an image never depends on the batch size or on the other images (the one rule for the app and the CLI;
  ``per_class_labels`` is their one label order).
- ``branch`` / ``branch_job``: re-run a run deterministically up to model step k, then finish it with another
  class, guidance, seed, sampler or step count.
- ``compare``: one starting noise through several Settings, guidance sweeps batched into one pass, streamed.
- ``class_trace`` / ``target_trace`` / ``view_traces``: a classifier's view of the predicted x0 at every step.

Images are (B, C, H, W) in [-1, 1]; frames are (S, B, C, H, W) as ``Recorder.frames()`` gives them.
"""
from __future__ import annotations

import inspect

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import torch

from .checkpoint import DiffusionModel
from .defaults import DEFAULT_DTYPE, MAX_BATCH
from .device import autocast
from .device import generator as make_generator
from .device import synchronize
from .recipes import Settings, _forward, generate
from .sampling import Job, Recorder, Step, iterate, noise_estimate
from .schedule import Sampler
from .views import View, get_view

Classifier = Callable[[torch.Tensor], torch.Tensor]  # (N, C, H, W) in [-1, 1] -> (N, K) logits


# -- 1. one seed per image: the rule the app and the CLI share --------------------------------------------
def image_seed(seed: int, index: int) -> int:
    """The seed of image ``index`` (0-based) of a run seeded ``seed``: 63 bits of blake2b("seed:index").
    A hash, not ``seed + index``: seed 1 must not give seed 0's images shifted by one."""
    digest = hashlib.blake2b(f"{int(seed)}:{int(index)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def per_class_labels(classes: Sequence, per_class: int) -> list:
    """``per_class`` images of every class, interleaved: [a, b, c, a, b, c, ...] (image j of class c is
    index j * len(classes) + c). The order of ``ddpm.evaluate.balanced_labels``, so every prefix is balanced;
    a grid shows it one column per class, or regroups it for display."""
    if not isinstance(per_class, int) or per_class < 1:
        raise ValueError(f"images per class must be a positive integer, got {per_class!r}")
    if not classes:
        raise ValueError("no classes: name at least one")
    return [c for _ in range(per_class) for c in classes]


def _row_generators(seed: int, first: int, rows: int) -> list[torch.Generator]:
    return [make_generator(image_seed(seed, first + i)) for i in range(rows)]


def _draw_each(generators: list[torch.Generator], shape: tuple, device) -> torch.Tensor:
    """(len(generators), *shape) noise, row i from generator i (as a one-image run draws its x_T)."""
    return torch.cat([torch.randn((1, *shape), generator=g) for g in generators]).to(device)


def generate_each(model: DiffusionModel, labels: Sequence | None = None, n: int | None = None,
                  settings: Settings = Settings(), first: int = 0) -> Job:
    """``ddpm.generate`` with every image on its own generator: image i draws its starting noise and every
    step's noise from ``image_seed(settings.seed, first + i)``, exactly as the one-image run
    ``generate(model, [labels[i]], settings=settings.with_(seed=image_seed(settings.seed, first + i)))`` does
    (diffusers' samplers draw row i from generator i), so the images do not depend on how they are batched."""
    job = generate(model, labels, n, settings)
    job.generator = _row_generators(settings.seed, first, job.x.shape[0])
    job.x = _draw_each(job.generator, tuple(job.x.shape[1:]), job.x.device)
    return job


def sample_batches(model: DiffusionModel, labels: Sequence | None = None, settings: Settings = Settings(),
                   batch: int = 64, n: int | None = None) -> torch.Tensor:
    """Generate one image per label (or ``n`` unconditional ones) in batches of ``batch``: (N, C, H, W) in
    [-1, 1] on the CPU. Image i is ``generate_each``'s image i whatever ``batch`` is."""
    if not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise ValueError(f"batch must be between 1 and {MAX_BATCH}, got {batch!r}")
    total = len(labels) if labels is not None else (1 if n is None else n)
    if total < 1:
        raise ValueError(f"nothing to sample: give labels or n >= 1, got {total}")
    chunks = []
    for start in range(0, total, batch):
        part = list(labels[start:start + batch]) if labels is not None else None
        size = len(part) if part is not None else min(batch, total - start)
        job = generate_each(model, part, None if part is not None else size, settings, first=start)
        chunks.append(job.run().float().cpu())
    return torch.cat(chunks)


# -- 2. branch from any step ------------------------------------------------------------------------------
Build = Callable[[Settings], Job]


RESUMABLE = ("ddpm", "ddim", "dpm++", "dpm++sde", "dpm++3")  # samplers a branch can switch to mid-run


def resume_sampler(sampler: Sampler, t: int) -> Sampler:
    """``sampler`` re-timed to start at timestep ``t``: its plan becomes [t] + its own timesteps below t.
    A sampler whose own plan that already is comes back as it was (bit for bit the same run)."""
    own = sampler.timesteps
    plan = [int(t)] + [s for s in own if s < t]
    if plan == own:
        return sampler
    if sampler.name == "ddim":  # NextTimestepDDIMScheduler steps to the next entry of .timesteps
        sampler.scheduler.timesteps = torch.tensor(plan, dtype=torch.long)
        sampler.scheduler.num_inference_steps = len(plan)
    elif "timesteps" in inspect.signature(sampler.scheduler.set_timesteps).parameters:
        # diffusers' DDPM and DPM-Solver take custom timesteps (DPM-Solver derives its sigmas from them)
        sampler.scheduler.set_timesteps(timesteps=plan)
    else:  # diffusers' UniPC and DEIS only make their own spacing
        usable = [n for n in RESUMABLE if n != sampler.name]
        raise ValueError(f"sampler {sampler.name!r} cannot start at an arbitrary step: branch with "
                         f"{', '.join(usable)} (or keep the original's sampler)")
    return sampler


class Branch:
    """A run that follows ``original`` for its first ``at_step`` model steps, then goes on changed.

    Iterate it for ``Step``s (all of them: the original's first ``at_step``, then the branch's, numbered on
    from ``at_step``), or ``run()`` it. Quacks like a ``Job`` (``num_model_steps``, ``plan``, ``x``), so the
    app's streaming and recording code takes either. Built by ``branch_job``; runs once.
    """

    def __init__(self, original: Job, at_step: int, after: Job | None, swap_estimate: bool, swap_noise: bool,
                 resample: bool):
        self.original, self.at_step, self.after = original, at_step, after
        self.swap_estimate, self.swap_noise, self.resample = swap_estimate, swap_noise, resample
        self.x = original.x
        self.t_branch = original.plan[at_step] if at_step < original.num_model_steps else -1
        if resample and at_step < original.num_model_steps:
            resume_sampler(after.sampler, self.t_branch)
            self.tail = after.sampler.timesteps + [-1]
            self.plan = original.plan[:at_step] + self.tail
            self.num_model_steps = at_step + len(self.tail) - 1
        else:
            self.tail, self.plan, self.num_model_steps = None, original.plan, original.num_model_steps

    def __iter__(self) -> Iterator[Step]:
        steps, x = iterate(self.original), self.original.x
        for _ in range(self.at_step):
            step = next(steps)
            x = step.x_next
            yield step if self.tail is None else replace(step, total=self.num_model_steps)
        if self.tail is None:  # the same sampler (and its multistep history) goes on: swap what changed
            if self.swap_estimate:
                self.original.eps_fn = self.after.eps_fn
            if self.swap_noise:
                self.original.generator = self.after.generator
            yield from steps
            return
        steps.close()
        generator = self.after.generator if self.swap_noise else self.original.generator
        job = Job(self.after.eps_fn, self.after.sampler, self.original.schedule, x, self.tail, generator,
                  self.original.project)
        for step in iterate(job):
            yield replace(step, index=self.at_step + step.index, total=self.num_model_steps)

    def run(self, callback: Callable[[Step], None] | None = None) -> torch.Tensor:
        """Run to the end and return the final x (B, C, H, W) in [-1, 1]."""
        x = self.x
        for step in self:
            if callback is not None:
                callback(step)
            x = step.x_next
        return x


def branch_job(build: Build, settings: Settings, at_step: int, settings_after: Settings | None = None,
               build_after: Build | None = None) -> Branch:
    """Branch any recipe's run at model step ``at_step`` (0: before the first step; ``num_model_steps``: the end).

    ``build(settings) -> Job`` rebuilds the original (e.g. ``lambda s: ddpm.sdedit(model, x, [0.6], settings=s)[0]``);
    it is re-run deterministically, same seed, up to step ``at_step``. Then:

    - another class (``build_after``: the same recipe with other labels) or guidance / dtype: the SAME sampler
      object goes on, with its multistep history, and only the noise-estimate function is swapped, so the
      branch differs from the original only where the change acts;
    - another seed: the steps after ``at_step`` draw their noise as a run with that seed draws it after its
      starting noise (deterministic samplers draw none, so for them a new seed alone changes nothing);
    - another sampler, step count or eta: the new sampler starts at the original's timestep t_k and follows its
      own plan from there, [t_k] + its timesteps below t_k. A multistep solver (DPM-Solver++) has no history
      then, so its first step is a first-order one (a DDIM step), as at the start of any run. RePaint runs
      (plans that jump back) keep their sampler.

    The original's projection (inpainting's known region) goes on unchanged.
    """
    original = build(settings)
    total = original.num_model_steps
    if isinstance(at_step, bool) or not isinstance(at_step, int) or not 0 <= at_step <= total:
        raise ValueError(f"branch step must be a whole number from 0 to {total} (the run's model steps), got {at_step!r}")
    after_settings = settings if settings_after is None else settings_after
    resample = any(getattr(after_settings, f) != getattr(settings, f) for f in ("sampler", "steps", "eta"))
    swap_estimate = build_after is not None or any(
        getattr(after_settings, f) != getattr(settings, f) for f in ("guidance", "dtype", "compile"))
    swap_noise = after_settings.seed != settings.seed
    if resample and any(b > a for a, b in zip(original.plan, original.plan[1:])):
        raise ValueError("a RePaint run (one that jumps back in noise) branches with its own sampler and steps only")
    after = None
    if resample or swap_estimate or swap_noise:
        after = (build_after or build)(after_settings)
        if after.x.shape != original.x.shape:
            raise ValueError(f"a branch keeps the batch: the original has {tuple(original.x.shape)}, "
                             f"the change gives {tuple(after.x.shape)}")
    return Branch(original, at_step, after, swap_estimate, swap_noise, resample)


def branch(model: DiffusionModel, labels: Sequence | None, settings: Settings, at_step: int,
           labels_after: Sequence | None = None, settings_after: Settings | None = None,
           n: int | None = None) -> Branch:
    """Branch a generation (``generate_each(model, labels, n, settings)``) at model step ``at_step`` and finish
    it with ``labels_after`` and/or ``settings_after`` (see ``branch_job`` for what each change does)."""
    build_after = None if labels_after is None else (lambda s: generate_each(model, labels_after, n, s))
    return branch_job(lambda s: generate_each(model, labels, n, s), settings, at_step, settings_after, build_after)


# -- 3. compare settings on the same noise --------------------------------------------------------------------
def along(t: int, num_timesteps: int) -> float:
    """How far along a run is when x is at timestep t: 0 at pure noise (t = T-1), 1 at the clean image (t = -1)."""
    return 1.0 - (int(t) + 1) / num_timesteps


@dataclass
class Column:
    """One setting of a comparison, filled in as it runs."""

    settings: Settings
    timesteps: list[int]            # the timestep of x at each of its model steps, noisiest first
    along: list[float]              # ``along`` of each of those, in [0, 1), increasing
    shared: int = 1                 # columns in its pass (a guidance sweep runs as one batch)
    steps_done: int = 0
    seconds: float = 0.0            # wall time of its pass so far (shared by a batched sweep)
    images: torch.Tensor | None = None   # the result (B, C, H, W) in [-1, 1] on the CPU, once done
    accuracy: float | None = None   # the classifier's accuracy on the result, given a classifier and labels
    recorder: Recorder | None = field(default=None, repr=False)

    @property
    def done(self) -> bool:
        return self.images is not None


@dataclass
class Update:
    """One column moved one step: ``step`` holds only that column's rows."""

    column: int
    step: Step
    along: float                    # how far along that column is after the step (1.0 when done)
    done: bool


class Comparison:
    """Several Settings over one starting noise (see ``compare``). Iterate it for ``Update``s, or ``run()`` it."""

    def __init__(self, model: DiffusionModel, labels: Sequence | None, variants: Sequence[Settings],
                 n: int | None = None, classifier: Classifier | None = None, record_every: int | None = None):
        if not variants:
            raise ValueError("compare needs at least one setting")
        if len({v.seed for v in variants}) > 1:
            raise ValueError("compare runs one starting noise: give every setting the same seed")
        self.model, self.labels, self.n, self.classifier = model, labels, n, classifier
        self.groups: dict[tuple, list[int]] = {}
        for i, v in enumerate(variants):  # guidance is per-row arithmetic: all else equal, one pass
            self.groups.setdefault((v.sampler, v.steps, v.eta, v.dtype, v.compile), []).append(i)
        self.jobs = {key: self._job([variants[i] for i in cols]) for key, cols in self.groups.items()}
        T = model.schedule.num_timesteps
        self.columns: list[Column] = [None] * len(variants)
        for key, cols in self.groups.items():
            plan = self.jobs[key].plan
            ts = [t for t, t_next in zip(plan, plan[1:]) if t_next < t]
            for i in cols:
                self.columns[i] = Column(variants[i], ts, [along(t, T) for t in ts], len(cols),
                                         recorder=Recorder(record_every) if record_every else None)
        self.started = False

    def _job(self, variants: list[Settings]) -> Job:
        """One Job for columns that differ in guidance only: the first column's job, its rows repeated."""
        job = generate_each(self.model, self.labels, self.n, variants[0])
        if len(variants) == 1:
            return job
        rows = job.x.shape[0]
        if rows * len(variants) > MAX_BATCH:
            raise ValueError(f"a guidance sweep of {len(variants)} x {rows} images exceeds the batch limit {MAX_BATCH}")
        clones = []
        for _ in variants:  # every column's row i continues image i's own stream, past its starting noise
            for g in job.generator:
                clone = torch.Generator()
                clone.set_state(g.get_state())
                clones.append(clone)
        device = job.x.device
        y = None
        if self.model.conditional and self.labels is not None:
            y = _label_ids(self.model, self.labels).repeat(len(variants))
        scales = torch.tensor([v.guidance for v in variants for _ in range(rows)], device=device).view(-1, 1, 1, 1)
        s = variants[0]
        job.eps_fn = noise_estimate(self.model.denoiser, y, scales, s.dtype, _forward(self.model, s))
        job.x, job.generator = job.x.repeat(len(variants), 1, 1, 1), clones
        return job

    @property
    def cost(self) -> int:
        """Image-steps of model work the comparison will do: over its passes, rows times model steps (a
        guidance sweep's rows count once per column). What a shared server caps before running it."""
        return sum(job.x.shape[0] * job.num_model_steps for job in self.jobs.values())

    def __iter__(self) -> Iterator[Update]:
        if self.started:
            raise RuntimeError("this comparison has already run: build a new one (same seed, same images)")
        self.started = True
        running = {key: iterate(job) for key, job in self.jobs.items()}
        while running:  # round robin, one model step per pass: short columns finish first, long ones stream on
            for key in list(running):
                start = time.perf_counter()
                step = next(running[key], None)
                synchronize(self.model.device)
                seconds = time.perf_counter() - start
                if step is None:
                    del running[key]
                    continue
                yield from self._updates(self.groups[key], step, seconds)

    def _updates(self, cols: list[int], step: Step, seconds: float) -> Iterator[Update]:
        rows = step.x.shape[0] // len(cols)
        finished = step.index == step.total - 1 or step.total == 0
        for g, i in enumerate(cols):
            part = slice(g * rows, (g + 1) * rows)
            mine = replace(step, x=step.x[part], eps=step.eps[part], x0=step.x0[part], x_next=step.x_next[part])
            column = self.columns[i]
            column.seconds += seconds
            column.steps_done += 1
            if column.recorder is not None:
                column.recorder(mine)
            if finished:
                column.images = mine.x_next.float().cpu()
                column.accuracy = self._accuracy(column.images)
            yield Update(i, mine, along(step.t_next, self.model.schedule.num_timesteps), finished)

    @torch.inference_mode()
    def _accuracy(self, images: torch.Tensor) -> float | None:
        if self.classifier is None or self.labels is None or not self.model.conditional:
            return None
        y = _label_ids(self.model, self.labels)
        predicted = self.classifier(images.to(_device_of(self.classifier, images))).argmax(-1).cpu()
        return float((predicted == y).float().mean())

    def run(self) -> list[Column]:
        for _ in self:
            pass
        return self.columns


def compare(model: DiffusionModel, labels: Sequence | None, variants: Sequence[Settings], n: int | None = None,
            classifier: Classifier | None = None, record_every: int | None = None) -> Comparison:
    """Run one starting noise through several Settings, side by side: column i is ``generate_each(model, labels,
    n, variants[i])`` (so every column starts from the same x_T; the seeds must agree).

    Columns that differ only in guidance run as one batched pass (guidance is per-row arithmetic; each row
    keeps its image's own noise stream, so the result equals running the column alone, up to float rounding
    of the larger batch). Iterating yields an ``Update`` per column per step, round robin, so a 1000-step
    column keeps streaming after the 20-step ones are done. Each ``Column`` gets its timesteps and the shared
    ``along`` axis up front, its wall time as it runs, and its images (and, given ``classifier``: logits of
    (N, C, H, W) in [-1, 1], its accuracy on the labels) when done; ``record_every`` keeps frames in
    ``column.recorder``.
    """
    return Comparison(model, labels, variants, n, classifier, record_every)


def _label_ids(model: DiffusionModel, labels) -> torch.Tensor:
    return torch.tensor(model.label_ids(labels.tolist() if hasattr(labels, "tolist") else list(labels)), dtype=torch.long)


# -- 4. watch the class form ------------------------------------------------------------------------------------
def _device_of(classifier, like: torch.Tensor) -> torch.device:
    device = getattr(classifier, "device", None)
    if device is None and isinstance(classifier, torch.nn.Module):
        device = next(classifier.parameters(), like).device
    return torch.device(device) if device is not None else like.device


@torch.inference_mode()
def class_trace(classifier: Classifier, frames_x0: torch.Tensor, view: str | View | None = None,
                batch: int = 512, dtype: str = DEFAULT_DTYPE) -> torch.Tensor:
    """The classifier's class probabilities for every frame: (S, B, C, H, W) in [-1, 1] -> (S, B, K).
    ``view`` (an illusion's view) is applied to each frame before it is classified. ``dtype``: the classifier's
    precision, as the sampler's ("auto": bfloat16 where it is native; half the time of float32 on the app's
    chart of 21 frames x 20 images here, 57 ms against 107)."""
    if frames_x0.dim() != 5:
        raise ValueError(f"frames must be shaped (steps, batch, C, H, W), got {tuple(frames_x0.shape)}")
    flat = frames_x0.flatten(0, 1).float()
    if view is not None:
        flat = get_view(view)(flat)
    device = _device_of(classifier, flat)
    with autocast(device, dtype):
        probs = [torch.softmax(classifier(chunk.to(device)).float(), -1).cpu() for chunk in flat.split(batch)]
    return torch.cat(probs).reshape(*frames_x0.shape[:2], -1)


@dataclass
class TargetTrace:
    """One line of the chart per image: the target class's probability and the runner-up's, per step."""

    target: torch.Tensor        # (B,) the class asked for (or, unasked, the class of the final frame)
    p_target: torch.Tensor      # (S, B)
    runner_up: torch.Tensor     # (S, B) the likeliest other class at each step
    p_runner_up: torch.Tensor   # (S, B)


def target_trace(probs: torch.Tensor, target_labels: Sequence[int] | torch.Tensor | None = None) -> TargetTrace:
    """Split ``class_trace``'s (S, B, K) into the target's probability and the runner-up's. With no target
    (unconditional runs), each image's target is the class its last frame is given."""
    S, B, K = probs.shape
    target = probs[-1].argmax(-1) if target_labels is None else torch.as_tensor(target_labels, dtype=torch.long)
    if target.shape != (B,) or (target < 0).any() or (target >= K).any():
        raise ValueError(f"need one target class in [0, {K}) per image ({B}), got {target.tolist()}")
    index = target.view(1, B, 1).expand(S, B, 1)
    p_target = probs.gather(-1, index)[..., 0]
    others = probs.scatter(-1, index, -1.0)
    p_runner_up, runner_up = others.max(-1)
    return TargetTrace(target, p_target, runner_up, p_runner_up)


def view_traces(classifier: Classifier, frames_x0: torch.Tensor,
                parts: Sequence[tuple[int, str | View]]) -> list[TargetTrace]:
    """An illusion's chart: for each (class index, view) part, the frames seen through that view, traced
    against that class (one line per view)."""
    B = frames_x0.shape[1]
    return [target_trace(class_trace(classifier, frames_x0, view), torch.full((B,), int(label), dtype=torch.long))
            for label, view in parts]
