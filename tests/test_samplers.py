"""The few-step solvers (DPM-Solver++ 3M, UniPC, DEIS) against diffusers' schedulers on the same inputs, and
with the oracle denoiser of tests/test_core.py (which must bring any noise back to its one image).

The reference is the plain loop a diffusers user writes: ``eps = unet(x, t)``, ``x = scheduler.step(eps, t, x)``,
over a scheduler configured by hand from diffusers' own beta names, not from our schedule.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DEISMultistepScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler
from test_core import DIFFUSERS_BETA_SCHEDULE, images, oracle_model, run_ours, tiny_unet, to_numpy_image

import ddpm

THRESHOLD = dict(thresholding=True, sample_max_value=1.0, timestep_spacing="trailing")


def reference_scheduler(name: str, kind: str, T: int):
    """diffusers' scheduler for sampler ``name``, as a diffusers user would configure it."""
    common = dict(num_train_timesteps=T, beta_schedule=DIFFUSERS_BETA_SCHEDULE[kind], **THRESHOLD)
    if name == "dpm++3":
        return DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++", solver_order=3,
                                           final_sigmas_type="zero")
    if name == "unipc":
        return UniPCMultistepScheduler(**common, solver_order=2, solver_type="bh2", final_sigmas_type="zero")
    return DEISMultistepScheduler(**common, solver_order=2)


def diffusers_loop(unet, scheduler, steps: int, seed: int = 3) -> list[torch.Tensor]:
    """x before every step, then the result: the plain diffusers loop, with the noise our recipes draw."""
    scheduler.set_timesteps(steps)
    x = torch.randn((2, 1, 8, 8), generator=torch.Generator().manual_seed(seed))
    xs = [x]
    with torch.no_grad():
        for t in scheduler.timesteps:
            x = scheduler.step(unet(x, t).sample, t, x).prev_sample
            xs.append(x)
    return xs


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("sampler", ["dpm++3", "unipc"])
@pytest.mark.parametrize("steps", [20, 7, 4])
def test_multistep_solver_matches_the_diffusers_scheduler_in_a_plain_loop(kind, sampler, steps):
    unet, schedule = tiny_unet(), ddpm.NoiseSchedule(kind, num_timesteps=50)
    ref = diffusers_loop(unet, reference_scheduler(sampler, kind, 50), steps)[-1]
    np.testing.assert_allclose(run_ours(unet, schedule, sampler, steps), to_numpy_image(ref), rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("steps", [20, 7, 4])
def test_deis_matches_diffusers_at_every_step_and_ends_on_the_clean_image(kind, steps):
    """Every step but the last is stock DEIS; the last one returns the clipped x0 estimate, where stock DEIS
    stops at t = 0 and keeps sigma_0 of noise (0.01 for DDPM's linear betas) outside [-1, 1]."""
    unet, schedule = tiny_unet(), ddpm.NoiseSchedule(kind, num_timesteps=50)
    ref = diffusers_loop(unet, reference_scheduler("deis", kind, 50), steps)
    model = ddpm.DiffusionModel(ddpm.models.UnconditionalDenoiser(unet), schedule)
    recorder = ddpm.Recorder()
    ours = ddpm.generate(model, n=2, settings=ddpm.Settings(sampler="deis", steps=steps, seed=3)).run(recorder)
    frames = recorder.frames()
    torch.testing.assert_close(frames["x"], torch.stack(ref[:-1]), rtol=0, atol=1e-5)
    torch.testing.assert_close(ours, frames["x0"][-1], rtol=0, atol=1e-6)  # the last x0 estimate, clipped
    a0 = schedule.alphas_cumprod[0]
    sigma_0 = float(((1 - a0) / a0).sqrt())  # 0.010 linear, 0.042 cosine at T = 50
    assert 0 < (ours - ref[-1]).abs().max() < 4 * sigma_0  # stock DEIS: the same image, plus sigma_0 of noise


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("sampler", ["dpm++3", "unipc", "deis"])
@pytest.mark.parametrize("steps", [50, 20, 6, 4, 1])
def test_oracle_denoiser_samples_its_one_image_with_few_steps(kind, sampler, steps):
    schedule = ddpm.NoiseSchedule(kind)
    x_star = images(1)
    settings = ddpm.Settings(sampler=sampler, steps=steps, seed=5)
    job = ddpm.generate(oracle_model(x_star, schedule), n=3, settings=settings)
    last = job.sampler.timesteps[-1]
    out = job.run()
    # the result is the x0 of the last model step: x_t's float32 rounding over sqrt(abar_t) (test_core's bound),
    # 1e-6 from most timesteps, 0.02 for one cosine step from t = 999
    tol = 1e-6 / float(schedule.alphas_cumprod[last].sqrt())
    torch.testing.assert_close(out, x_star.expand_as(out), rtol=0, atol=max(tol, 2e-6))


def test_the_new_solvers_are_deterministic_and_take_no_generator():
    sampler = ddpm.NoiseSchedule().sampler("unipc", 4)
    assert not sampler.takes_generator and not sampler.can_jump_back
    assert ddpm.NoiseSchedule().sampler("dpm++sde", 4).takes_generator
