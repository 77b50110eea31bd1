"""Noise schedules, the forward process, and the samplers built on them.

Notation follows Ho et al. (2020): ``beta_t`` is the variance added at step t, ``alpha_t = 1 - beta_t``,
``abar_t = prod_{s<=t} alpha_s``. Timesteps are 0-based integers in ``[0, T-1]``; ``t = -1`` stands
for the clean image (``abar_{-1} = 1``). Images live in ``[-1, 1]``, channels first.

The schedule is ours; stepping is delegated to diffusers' schedulers, which we build *from* our
betas so the two can never disagree.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import cached_property

import torch
from diffusers import (DDIMScheduler, DDPMScheduler, DEISMultistepScheduler, DPMSolverMultistepScheduler,
                       UniPCMultistepScheduler)
from diffusers.schedulers.scheduling_ddim import DDIMSchedulerOutput
from diffusers.schedulers.scheduling_utils import SchedulerOutput
from diffusers.utils.torch_utils import randn_tensor

from .defaults import SAMPLERS  # noqa: F401 (re-exported: the names, with what each one is, live there)

SCHEDULE_KINDS = ("linear", "cosine")


@dataclass(frozen=True)
class NoiseSchedule:
    """A variance schedule over ``num_timesteps`` training steps.

    ``kind="linear"``: betas evenly spaced from ``beta_start`` to ``beta_end`` (DDPM's 1e-4..0.02).
    ``kind="cosine"``: Nichol & Dhariwal's ``abar(t) = cos^2(((t/T + s) / (1 + s)) * pi/2)``, s=0.008,
    betas capped at 0.999 (diffusers calls it ``squaredcos_cap_v2``).
    """

    kind: str = "linear"
    num_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02

    def __post_init__(self):
        if self.kind not in SCHEDULE_KINDS:
            raise ValueError(f"unknown schedule kind {self.kind!r}; choose one of {SCHEDULE_KINDS}")
        if self.num_timesteps < 2:
            raise ValueError(f"num_timesteps must be at least 2, got {self.num_timesteps}")
        if not 0 < self.beta_start < self.beta_end < 1:
            raise ValueError(f"need 0 < beta_start < beta_end < 1, got {self.beta_start}, {self.beta_end}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> NoiseSchedule:
        return cls(**{k: d[k] for k in ("kind", "num_timesteps", "beta_start", "beta_end") if k in d})

    # -- the tensors ---------------------------------------------------------------------------
    @cached_property
    def betas(self) -> torch.Tensor:
        """(T,) float32, computed exactly as diffusers does so the two agree bit for bit."""
        T = self.num_timesteps
        if self.kind == "linear":
            return torch.linspace(self.beta_start, self.beta_end, T, dtype=torch.float32)

        def abar(u: float) -> float:
            return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

        return torch.tensor([min(1 - abar((i + 1) / T) / abar(i / T), 0.999) for i in range(T)],
                            dtype=torch.float32)

    @cached_property
    def alphas_cumprod(self) -> torch.Tensor:
        """(T,) float32 ``abar_t``."""
        return torch.cumprod(1.0 - self.betas, dim=0)

    @cached_property
    def _abar_table(self) -> torch.Tensor:
        """(T+1,) ``abar`` indexed by t + 1, so that index 0 is t = -1 (the clean image, abar = 1)."""
        return torch.cat([torch.ones(1), self.alphas_cumprod])

    def abar(self, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
        """``abar_t`` shaped to broadcast against ``like`` (B, C, H, W); t may be an int or (B,)."""
        if isinstance(t, int):  # the loop's case: checked in Python, so a GPU is not made to wait every step
            if not -1 <= t < self.num_timesteps:
                raise ValueError(f"timestep out of range [-1, {self.num_timesteps - 1}]: {t}")
            return self._abar_table[t + 1].to(like.device, like.dtype)
        table = self._abar_table.to(like.device)
        t = torch.as_tensor(t, device=like.device, dtype=torch.long)
        if (t < -1).any() or (t >= self.num_timesteps).any():
            raise ValueError(f"timestep out of range [-1, {self.num_timesteps - 1}]: {t.tolist()}")
        a = table[t + 1].to(like.dtype)
        return a.reshape(-1, *([1] * (like.dim() - 1))) if a.dim() else a

    # -- the forward process and its inversions --------------------------------------------------
    def q_sample(self, x0: torch.Tensor, t, noise: torch.Tensor) -> torch.Tensor:
        """``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``."""
        a = self.abar(t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def predict_x0(self, x_t: torch.Tensor, t, eps: torch.Tensor) -> torch.Tensor:
        """The clean image implied by a noise estimate: ``(x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)``."""
        a = self.abar(t, x_t)
        return (x_t - (1 - a).sqrt() * eps) / a.sqrt()

    def renoise(self, x_s: torch.Tensor, s: int, t: int, noise: torch.Tensor) -> torch.Tensor:
        """Sample ``q(x_t | x_s)`` for ``t > s``: walk the forward process on from step s to step t."""
        if t <= s:
            raise ValueError(f"renoise goes forward in time: need t > s, got s={s}, t={t}")
        ratio = self.abar(t, x_s) / self.abar(s, x_s)
        return ratio.sqrt() * x_s + (1 - ratio).sqrt() * noise

    # -- samplers -----------------------------------------------------------------------------
    def sampler(self, name: str = "ddpm", steps: int | None = None, eta: float = 0.0) -> Sampler:
        """A fresh sampler ``name`` over ``steps`` steps (default: all T), built on diffusers.

        All use "trailing" spacing, so the first step starts from pure noise at t = T-1 and the last
        one lands on the clean image, whatever the number of steps. DDPM with fewer than T steps is
        the strided ancestral sampler (its variance comes from the strided abar's).
        """
        if name not in SAMPLERS:
            raise ValueError(f"unknown sampler {name!r}; choose one of {SAMPLERS}")
        steps = self.num_timesteps if steps is None else int(steps)
        if not 1 <= steps <= self.num_timesteps:
            raise ValueError(f"steps must be between 1 and {self.num_timesteps}, got {steps}")
        common = dict(num_train_timesteps=self.num_timesteps, trained_betas=self.betas.numpy(),
                      timestep_spacing="trailing", prediction_type="epsilon")
        step_kwargs = {}
        if name == "ddpm":
            scheduler = DDPMScheduler(**common, clip_sample=True, variance_type="fixed_small")
        elif name == "ddim":
            if not 0.0 <= eta <= 1.0:
                raise ValueError(f"DDIM eta must be in [0, 1], got {eta}")
            scheduler = NextTimestepDDIMScheduler(**common, clip_sample=True, set_alpha_to_one=True)
            step_kwargs["eta"] = float(eta)
        else:
            # thresholding with sample_max_value 1 clips each x0 estimate to [-1, 1], as DDPM and DDIM do
            # (clip_sample): an early or user-loaded model's wild x0 otherwise compounds through the
            # multistep update (an emoji model at 1,000 training steps sampled values in [-16, 15]).
            # lower_order_final: the last steps (under 15 in all) drop to lower orders, diffusers' advice
            # for few steps; the last step lands on the clean image (sigma 0), as DDPM and DDIM do.
            multistep = dict(common, thresholding=True, sample_max_value=1.0, lower_order_final=True)
            if name == "unipc":
                scheduler = UniPCMultistepScheduler(**multistep, solver_order=2, solver_type="bh2", predict_x0=True,
                                                    final_sigmas_type="zero")
            elif name == "deis":
                scheduler = CleanFinalDEISScheduler(**multistep, solver_order=2, algorithm_type="deis",
                                                    solver_type="logrho")
            else:
                algorithm = "sde-dpmsolver++" if name == "dpm++sde" else "dpmsolver++"
                scheduler = DPMSolverMultistepScheduler(**multistep, algorithm_type=algorithm,
                                                        solver_order=3 if name == "dpm++3" else 2,
                                                        final_sigmas_type="zero")
        scheduler.set_timesteps(steps)
        return Sampler(name, scheduler, step_kwargs, takes_generator=name in ("ddpm", "ddim", "dpm++sde"))


class NextTimestepDDIMScheduler(DDIMScheduler):
    """diffusers' DDIM, stepping from t to the next timestep of ``self.timesteps``.

    Stock ``DDIMScheduler.step`` goes to ``t - T // steps``. With "trailing" spacing that is the next
    timestep only when steps divides T; otherwise x lands between the timesteps the model is asked
    about, and the last step can stop at t = 0 instead of the clean image (7 of 1000 steps: 142 -> 0).
    The update is DDIM's eqs. (12) and (16) as diffusers writes them, for epsilon prediction, with
    the noise re-derived from the clipped x0.
    """

    def step(self, model_output: torch.Tensor, timestep: int, sample: torch.Tensor, eta: float = 0.0,
             generator: torch.Generator | None = None) -> DDIMSchedulerOutput:
        t = int(timestep)
        later = self.timesteps[self.timesteps < t]
        t_prev = int(later[0]) if len(later) else -1
        alpha_prod_t = self.alphas_cumprod[t]
        alpha_prod_t_prev = self.alphas_cumprod[t_prev] if t_prev >= 0 else self.final_alpha_cumprod
        x0 = (sample - (1 - alpha_prod_t) ** 0.5 * model_output) / alpha_prod_t ** 0.5
        if self.config.clip_sample:
            # Clip x0 AND re-derive the noise from it (diffusers' use_clipped_model_output=True).
            # Clipping x0 alone pairs a clipped image with an unclipped noise direction, which
            # inflates strokes into blobs on our small models.
            x0 = x0.clamp(-self.config.clip_sample_range, self.config.clip_sample_range)
            model_output = (sample - alpha_prod_t ** 0.5 * x0) / (1 - alpha_prod_t) ** 0.5
        std_dev_t = eta * self._get_variance(t, t_prev) ** 0.5
        prev_sample = alpha_prod_t_prev ** 0.5 * x0 + (1 - alpha_prod_t_prev - std_dev_t ** 2) ** 0.5 * model_output
        if eta > 0:
            prev_sample = prev_sample + std_dev_t * randn_tensor(
                model_output.shape, generator=generator, device=model_output.device, dtype=model_output.dtype)
        return DDIMSchedulerOutput(prev_sample=prev_sample, pred_original_sample=x0)


class CleanFinalDEISScheduler(DEISMultistepScheduler):
    """diffusers' DEIS, whose last step lands on the clean image instead of t = 0.

    Stock DEIS ends at sigma_0 = sqrt((1 - abar_0) / abar_0) (0.01 for DDPM's linear betas) and
    leaves that much noise, unclipped, in the result: its update divides by sigma, so it cannot take
    diffusers' ``final_sigmas_type="zero"``. The last step here returns the (thresholded) x0 estimate,
    which is the limit of DEIS' first-order (DDIM) update as sigma_t -> 0. Every other step is stock.
    """

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, return_dict: bool = True):
        if self.step_index is None:
            self._init_step_index(timestep)
        if self.step_index < len(self.timesteps) - 1:
            return super().step(model_output, timestep, sample, return_dict=return_dict)
        alpha_s, sigma_s = self._sigma_to_alpha_sigma_t(self.sigmas[self.step_index])
        eps = self.convert_model_output(model_output, sample=sample)  # re-derived from the thresholded x0
        x0 = ((sample.float() - sigma_s * eps.float()) / alpha_s).to(sample.dtype)
        self._step_index += 1
        return SchedulerOutput(prev_sample=x0) if return_dict else (x0,)


@dataclass
class Sampler:
    """A diffusers scheduler set to its timesteps, with the keyword arguments its ``step`` needs.

    Only ``step`` touches the scheduler; it never calls a model. DPM-Solver++ keeps a history of
    past model outputs, so it can only walk down the timesteps once, in order.
    """

    name: str
    scheduler: object
    step_kwargs: dict
    takes_generator: bool = True  # the deterministic multistep solvers' ``step`` takes none

    @property
    def timesteps(self) -> list[int]:
        """The model timesteps, noisiest first."""
        return [int(t) for t in self.scheduler.timesteps]

    @property
    def can_jump_back(self) -> bool:
        """Whether steps may be interleaved with jumps back up in noise (RePaint resampling)."""
        return self.name in ("ddpm", "ddim")

    def step(self, eps: torch.Tensor, t: int, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One step from timestep t to the next one down: returns x_{t_next}."""
        kwargs = {"generator": generator, **self.step_kwargs} if self.takes_generator else self.step_kwargs
        return self.scheduler.step(eps, t, x, **kwargs).prev_sample
