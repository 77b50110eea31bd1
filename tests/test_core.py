"""Core behaviour of the library, CPU only: the schedule and samplers against diffusers, sampling
with an oracle denoiser, guidance, views, the recipes, checkpoints and settings.

The oracle: for a dataset holding one image x*, x_t = sqrt(abar_t) x* + sqrt(1 - abar_t) eps
determines eps exactly, so a "model" that answers (x_t - sqrt(abar_t) x*) / sqrt(1 - abar_t) is the
optimal denoiser, and every correct sampler must bring any noise back to x*.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from diffusers import (DDIMPipeline, DDIMScheduler, DDPMPipeline, DDPMScheduler, DPMSolverMultistepScheduler,
                       UNet2DModel)
from torch import nn

import ddpm
from ddpm.models import UnconditionalDenoiser
from ddpm.recipes import repaint_plan
from ddpm.sampling import Part, composite_estimate
from ddpm.views import PatchPermute, highpass, lowpass

DIFFUSERS_BETA_SCHEDULE = {"linear": "linear", "cosine": "squaredcos_cap_v2"}


# -- helpers ------------------------------------------------------------------------------------------
class Oracle(ddpm.Denoiser):
    """The exact noise prediction of a dataset with one image per class, ``targets`` (K, C, H, W).

    K = 1 is unconditional. For K > 1, label k answers for ``targets[k]`` and the null label for the
    targets' mean (a stand-in for the unconditional estimate), so guidance w aims at
    ``mean + w (targets[k] - mean)``.
    """

    family = "oracle"

    def __init__(self, targets: torch.Tensor, schedule: ddpm.NoiseSchedule):
        super().__init__()
        self.targets = nn.Parameter(targets.float(), requires_grad=False)  # a parameter: model.device reads it
        self.schedule = schedule
        self.num_classes = None if len(targets) == 1 else len(targets)
        self.channels, self.image_size = targets.shape[1], targets.shape[-1]

    def predict(self, x, t, labels):
        if labels is None:
            x_star = self.targets[:1]
        else:
            x_star = torch.cat([self.targets, self.targets.mean(0, keepdim=True)])[labels]
        a = self.schedule.abar(t, x)
        return (x - a.sqrt() * x_star) / (1 - a).sqrt()


def oracle_model(targets: torch.Tensor, schedule: ddpm.NoiseSchedule) -> ddpm.DiffusionModel:
    names = None if len(targets) == 1 else [f"c{k}" for k in range(len(targets))]
    return ddpm.DiffusionModel(Oracle(targets, schedule), schedule, class_names=names, name="oracle")


def images(n: int, size: int = 8, seed: int = 0, scale: float = 0.9) -> torch.Tensor:
    """(n, 1, size, size) uniform in [-scale, scale]."""
    return (torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1) * scale


def noise(shape, seed: int = 1) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def tiny_unet(image_size: int = 8, seed: int = 0) -> UNet2DModel:
    """An unconditional UNet2DModel of the size diffusers' own fast tests use."""
    torch.manual_seed(seed)
    return UNet2DModel(sample_size=image_size, in_channels=1, out_channels=1, block_out_channels=(8, 16),
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"), layers_per_block=1,
                       norm_num_groups=8, attention_head_dim=8).eval()


def to_numpy_image(x: torch.Tensor) -> np.ndarray:
    """Our [-1, 1] (B, C, H, W) -> the pipelines' output_type="np": [0, 1] (B, H, W, C)."""
    return ((x + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).numpy()


# -- 1. the schedule against diffusers ----------------------------------------------------------------
@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("T", [50, 1000])
def test_schedule_tensors_and_forward_process_match_diffusers(kind, T):
    ours = ddpm.NoiseSchedule(kind, num_timesteps=T)
    ref = DDPMScheduler(num_train_timesteps=T, beta_schedule=DIFFUSERS_BETA_SCHEDULE[kind])
    assert torch.equal(ours.betas, ref.betas)
    assert torch.equal(ours.alphas_cumprod, ref.alphas_cumprod)

    x0, eps = images(6), noise((6, 1, 8, 8))
    t = torch.tensor([0, 1, T // 4, T // 2, T - 2, T - 1])
    torch.testing.assert_close(ours.q_sample(x0, t, eps), ref.add_noise(x0, eps, t), rtol=0, atol=1e-6)
    torch.testing.assert_close(ours.q_sample(x0, T // 2, eps), ref.add_noise(x0, eps, torch.full((6,), T // 2)),
                               rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_predict_x0_inverts_q_sample(kind):
    schedule = ddpm.NoiseSchedule(kind)
    x0, eps = images(4), noise((4, 1, 8, 8))
    for t in (-1, 0, 1, 100, 500, 900, 999):
        got = schedule.predict_x0(schedule.q_sample(x0, t, eps), t, eps)
        # float32 rounding of x_t (|x_t| < 5, so < 5 * 6e-8) is divided by sqrt(abar_t) on the way back
        tol = 4e-7 / schedule.abar(t, x0).sqrt().item()
        torch.testing.assert_close(got, x0, rtol=0, atol=tol)
    assert torch.equal(schedule.q_sample(x0, -1, eps), x0)  # t = -1 is the clean image


def test_schedule_rejects_timesteps_outside_its_range():
    schedule = ddpm.NoiseSchedule(num_timesteps=50)
    with pytest.raises(ValueError, match="out of range"):
        schedule.q_sample(images(1), 50, noise((1, 1, 8, 8)))
    with pytest.raises(ValueError, match="out of range"):
        schedule.q_sample(images(1), -2, noise((1, 1, 8, 8)))


# -- 2. the loop against diffusers' pipelines -----------------------------------------------------
def run_ours(unet: UNet2DModel, schedule: ddpm.NoiseSchedule, sampler: str, steps: int, eta: float = 0.0,
             seed: int = 3) -> np.ndarray:
    model = ddpm.DiffusionModel(UnconditionalDenoiser(unet), schedule)
    settings = ddpm.Settings(sampler=sampler, steps=steps, eta=eta, seed=seed)
    return to_numpy_image(ddpm.generate(model, n=2, settings=settings).run())


def run_pipeline(pipe, steps: int, seed: int = 3, **kwargs) -> np.ndarray:
    pipe.set_progress_bar_config(disable=True)
    return pipe(batch_size=2, generator=torch.Generator().manual_seed(seed), num_inference_steps=steps,
                output_type="np", **kwargs).images


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("steps", [50, 10, 7])
def test_ddpm_sampler_matches_diffusers_ddpm_pipeline(kind, steps):
    unet, schedule = tiny_unet(), ddpm.NoiseSchedule(kind, num_timesteps=50)
    scheduler = DDPMScheduler(num_train_timesteps=50, beta_schedule=DIFFUSERS_BETA_SCHEDULE[kind],
                              timestep_spacing="trailing")  # clip_sample=True, fixed_small: the defaults
    ref = run_pipeline(DDPMPipeline(unet, scheduler), steps)
    np.testing.assert_allclose(run_ours(unet, schedule, "ddpm", steps), ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("steps,eta", [(50, 0.0), (10, 0.0), (5, 0.0), (10, 1.0)])
def test_ddim_sampler_matches_diffusers_ddim_pipeline(kind, steps, eta):
    # stock DDIM steps from t to t - T // steps: that is the next "trailing" timestep only when steps
    # divides T, so parity is checked there (other step counts: the oracle tests below)
    unet, schedule = tiny_unet(), ddpm.NoiseSchedule(kind, num_timesteps=50)
    scheduler = DDIMScheduler(num_train_timesteps=50, beta_schedule=DIFFUSERS_BETA_SCHEDULE[kind],
                              timestep_spacing="trailing")  # clip_sample=True, set_alpha_to_one=True
    # we re-derive the noise from the clipped x0 (without it strokes swell into blobs): diffusers'
    # use_clipped_model_output=True
    ref = run_pipeline(DDIMPipeline(unet, scheduler), steps, eta=eta, use_clipped_model_output=True)
    np.testing.assert_allclose(run_ours(unet, schedule, "ddim", steps, eta), ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("steps", [20, 7])
def test_dpm_solver_matches_diffusers_scheduler_in_a_pipeline(steps):
    unet, schedule = tiny_unet(), ddpm.NoiseSchedule("cosine", num_timesteps=50)
    scheduler = DPMSolverMultistepScheduler(num_train_timesteps=50, beta_schedule="squaredcos_cap_v2",
                                            algorithm_type="dpmsolver++", final_sigmas_type="zero",
                                            timestep_spacing="trailing", thresholding=True, sample_max_value=1.0)
    ref = run_pipeline(DDPMPipeline(unet, scheduler), steps)  # the pipeline is only the loop
    np.testing.assert_allclose(run_ours(unet, schedule, "dpm++", steps), ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("steps", [20, 7])
def test_sde_dpm_solver_matches_diffusers_with_the_same_generator(steps):
    """The stochastic solver draws its step noise from the run's one seeded generator, in diffusers'
    order: same seed, same images as diffusers' pipeline, and not the deterministic solver's."""
    unet, schedule = tiny_unet(), ddpm.NoiseSchedule("linear", num_timesteps=50)
    scheduler = DPMSolverMultistepScheduler(num_train_timesteps=50, beta_schedule="linear",
                                            algorithm_type="sde-dpmsolver++", final_sigmas_type="zero",
                                            timestep_spacing="trailing", thresholding=True, sample_max_value=1.0)
    ref = run_pipeline(DDPMPipeline(unet, scheduler), steps)
    ours = run_ours(unet, schedule, "dpm++sde", steps)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5)
    assert np.abs(ours - run_ours(unet, schedule, "dpm++", steps)).max() > 0.05  # it is not the ODE solver


class Wild(ddpm.Denoiser):
    """An unconditional denoiser whose noise estimates are far off: its x0 estimates land way outside [-1, 1]."""

    family = "wild"

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()), requires_grad=False)  # model.device reads a parameter
        self.num_classes, self.channels, self.image_size = None, 1, 8

    def predict(self, x, t, labels):
        return 5 * torch.ones_like(x) - 3 * x


@pytest.mark.parametrize("sampler", ddpm.SAMPLERS)
def test_every_sampler_clips_x0_so_a_wild_model_stays_in_range(sampler):
    model = ddpm.DiffusionModel(Wild(), ddpm.NoiseSchedule())
    x = ddpm.generate(model, n=2, settings=ddpm.Settings(sampler=sampler, steps=10, guidance=1.0)).run()
    assert x.abs().max() <= 1.0 + 1e-6


# -- 3. sampling with the oracle ------------------------------------------------------------------
ORACLE_RUNS = [("ddpm", 1000), ("ddpm", 50), ("ddpm", 7), ("ddim", 1000), ("ddim", 50), ("ddim", 30),
               ("ddim", 7), ("dpm++", 50), ("dpm++", 20), ("dpm++", 7), ("dpm++", 1), ("dpm++sde", 20),
               ("dpm++sde", 7)]


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("sampler,steps", ORACLE_RUNS)
def test_oracle_denoiser_samples_its_one_image(kind, sampler, steps):
    schedule = ddpm.NoiseSchedule(kind)
    x_star = images(1)
    recorder = ddpm.Recorder()
    settings = ddpm.Settings(sampler=sampler, steps=steps, eta=1.0 if sampler == "ddim" else 0.0, seed=5)
    out = ddpm.generate(oracle_model(x_star, schedule), n=3, settings=settings).run(recorder)

    # Tolerance: x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t) carries the float32 rounding of x_t
    # (|x_t| < 5, one ulp < 5 * 2**-24 = 3e-7; measured up to 3.6e-7) divided by sqrt(abar_t): allow
    # 1e-6 / sqrt(abar_t). The result is the x0 of the last model step, so its timestep sets that bound
    # (~1e-6 for most runs; 0.02 for one cosine step from t = 999, where sqrt(abar) = 5e-5).
    frames = recorder.frames()
    assert len(frames["t"]) == steps
    tol = 1e-6 / schedule.alphas_cumprod[frames["t"]].sqrt()
    error = (frames["x0"] - x_star).abs().amax(dim=(1, 2, 3, 4))
    assert (error <= tol).all(), f"worst step t={int(frames['t'][(error / tol).argmax()])}"
    torch.testing.assert_close(out, x_star.expand_as(out), rtol=0, atol=float(tol[-1]))


@pytest.mark.parametrize("sampler", ["ddim", "dpm++"])
@pytest.mark.parametrize("T,steps", [(50, 10), (50, 30), (50, 7), (1000, 30), (1000, 600)])
def test_deterministic_samplers_land_on_the_timestep_the_model_is_told_next(sampler, T, steps):
    """With the oracle, DDIM (eta 0) and DPM-Solver++ keep x_t = sqrt(abar_t) x* + sqrt(1 - abar_t) e
    for one fixed e, so the oracle's estimate stays e at every step exactly when each step lands on
    the next timestep of the plan (the one the model is asked about), and the last one on t = -1."""
    schedule = ddpm.NoiseSchedule("linear", num_timesteps=T)
    x_star = images(1)
    recorder = ddpm.Recorder()
    settings = ddpm.Settings(sampler=sampler, steps=steps, seed=2)
    out = ddpm.generate(oracle_model(x_star, schedule), n=2, settings=settings).run(recorder)
    eps = recorder.frames()["eps"]
    torch.testing.assert_close(eps, eps[:1].expand_as(eps), rtol=0, atol=1e-4)
    torch.testing.assert_close(out, x_star.expand_as(out), rtol=0, atol=2e-6)


# -- 4. classifier-free guidance ------------------------------------------------------------------
@pytest.fixture
def counted(tiny_model, monkeypatch):
    """A tiny class-conditional model whose forward passes record their batch sizes in ``calls``."""
    model = tiny_model("unet2d-class")
    calls = []
    predict = model.denoiser.predict

    def counting(x, t, labels):
        calls.append(len(x))
        return predict(x, t, labels)

    monkeypatch.setattr(model.denoiser, "predict", counting)
    return model, calls


def test_guidance_one_is_the_conditional_estimate(tiny_model):
    den = tiny_model("unet2d-class").denoiser
    x, labels = noise((3, 1, 8, 8)), torch.tensor([0, 1, 2])
    got = ddpm.noise_estimate(den, labels, guidance=1.0)(x, 17)
    torch.testing.assert_close(got, den(x, 17, labels), rtol=0, atol=1e-5)
    assert not torch.allclose(got, den(x, 17, None), atol=1e-3)  # the labels matter to this model


def test_guidance_zero_is_the_null_label_estimate(tiny_model):
    den = tiny_model("unet2d-class").denoiser
    x, labels = noise((3, 1, 8, 8)), torch.tensor([0, 1, 2])
    got = ddpm.noise_estimate(den, labels, guidance=0.0)(x, 17)
    torch.testing.assert_close(got, den(x, 17, torch.full((3,), den.null_label)), rtol=0, atol=1e-5)


def test_guided_estimate_is_one_batched_forward(counted):
    model, calls = counted
    ddpm.noise_estimate(model.denoiser, torch.tensor([0, 2]), guidance=3.0)(noise((2, 1, 8, 8)), 10)
    assert calls == [4]
    calls.clear()
    ddpm.generate(model, ["one", "two"], settings=ddpm.Settings(steps=5, guidance=3.0)).run()
    assert calls == [4] * 5


def test_guidance_extrapolates_from_the_null_target_to_the_class_target():
    schedule = ddpm.NoiseSchedule(num_timesteps=100)
    targets = images(2, scale=0.3)
    model = oracle_model(targets, schedule)
    settings = ddpm.Settings(sampler="ddim", steps=20, guidance=2.0)
    out = ddpm.generate(model, ["c0", "c1"], settings=settings).run()
    mean = targets.mean(0, keepdim=True)
    torch.testing.assert_close(out, mean + 2.0 * (targets - mean), rtol=0, atol=1e-5)


# -- 5. views -------------------------------------------------------------------------------------
def make_view(name: str, size: int) -> ddpm.views.View:
    """One view of each kind; the jigsaw with the smallest tile that divides ``size``."""
    if name == "patches":
        return PatchPermute(min(d for d in range(2, size + 1) if size % d == 0 and d < size))
    return ddpm.get_view(name)


@pytest.mark.parametrize("name", list(ddpm.VIEWS))
@pytest.mark.parametrize("size", [28, 8])
def test_view_is_an_exact_orthogonal_permutation_that_leaves_its_input_alone(name, size):
    view = make_view(name, size)
    x, z = noise((2, 3, size, size), seed=1).double(), noise((2, 3, size, size), seed=2).double()
    before = x.clone()
    y = view(x)
    assert torch.equal(view.inverse(y), x)
    assert torch.equal(view(view.inverse(x)), x)
    assert name == "identity" or not torch.equal(y, x)  # so the round trip above is not trivial
    assert torch.equal(ddpm.get_view(view.spec)(x), y)  # its spec makes it again (the jigsaw with its tile)
    # orthogonal: inner products and norms kept (float64, so only the summation order differs)
    torch.testing.assert_close((view(x) * view(z)).sum(), (x * z).sum(), rtol=1e-12, atol=0)
    torch.testing.assert_close(view.inverse(x).norm(), x.norm(), rtol=1e-12, atol=0)
    y.add_(1.0)
    view.inverse(x).add_(1.0)
    assert torch.equal(x, before)  # never modified, and no output aliases it


@pytest.mark.parametrize("tile", [1, 2, 4, 7, 14])
def test_jigsaw_inverts_for_every_tile_size_that_divides_the_image(tile):
    view, x = PatchPermute(tile, seed=3), noise((1, 1, 28, 28))
    assert torch.equal(view.inverse(view(x)), x)
    assert torch.equal(view(view.inverse(x)), x)
    assert not torch.equal(view(x), x)


def test_views_reject_sizes_they_cannot_act_on():
    with pytest.raises(ValueError, match="must divide the image size 28x28"):
        ddpm.get_view("patches:5")(torch.zeros(1, 1, 28, 28))
    with pytest.raises(ValueError, match="must divide"):
        ddpm.get_view("patches:5").check(28, 28)
    with pytest.raises(ValueError, match=r"and be smaller \(one tile is no jigsaw\); try one of \[2, 4, 7, 14\]"):
        ddpm.get_view("patches:28").check(28, 28)
    for name in ("rot90", "rot270", "transpose"):
        with pytest.raises(ValueError, match="square"):
            ddpm.get_view(name).check(28, 32)
    for spec in ("patches:0", "patches:x", "spin", "flip_v:2"):
        with pytest.raises(ValueError):
            ddpm.get_view(spec)


def test_anagram_rejects_a_view_that_does_not_fit_the_model(tiny_model):
    with pytest.raises(ValueError, match="must divide"):
        ddpm.anagram(tiny_model(), [("one", "identity"), ("two", "patches:5")])


def test_lowpass_plus_highpass_is_the_identity():
    x = noise((2, 3, 28, 28))
    for sigma in (0.5, 0.875, 3.0, 28.0):
        torch.testing.assert_close(lowpass(x, sigma) + highpass(x, sigma), x, rtol=0, atol=1e-6)


def test_lowpass_keeps_constants_and_spreads_an_impulse():
    torch.testing.assert_close(lowpass(torch.full((1, 1, 16, 16), 0.3), 2.0), torch.full((1, 1, 16, 16), 0.3))
    impulse = torch.zeros(1, 1, 28, 28)
    impulse[..., 14, 14] = 1.0
    blurred = lowpass(impulse, 1.0)
    assert blurred.max() < 0.2 and blurred[..., 14, 15] > 0
    torch.testing.assert_close(blurred.sum(), torch.tensor(1.0))


# -- 6. inpainting ----------------------------------------------------------------------------------
def square_mask(size: int = 8) -> torch.Tensor:
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[2:6, 1:5] = True
    return mask


@pytest.mark.parametrize("sampler,jump_length", [("ddpm", 0), ("ddim", 0), ("dpm++", 0), ("ddpm", 2), ("ddim", 2)])
def test_inpainting_keeps_the_known_pixels_exactly(tiny_model, sampler, jump_length):
    model, image, mask = tiny_model("unet2d-class"), images(2), square_mask()
    settings = ddpm.Settings(sampler=sampler, steps=6, seed=1)
    job = ddpm.inpaint(model, image, mask, labels="one", settings=settings, jump_length=jump_length,
                       jump_n_sample=3)
    out = job.run()
    keep = ~mask.expand_as(out)
    assert torch.equal(out[keep], image[keep])
    assert not torch.allclose(out[~keep], image[~keep], atol=1e-2)  # the hole was regenerated
    assert (jump_length > 0) == any(b > a for a, b in zip(job.plan, job.plan[1:]))


def test_inpainting_rejects_empty_and_full_masks(tiny_model):
    model, image = tiny_model(), images(1)
    with pytest.raises(ValueError, match="empty"):
        ddpm.inpaint(model, image, torch.zeros(8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="whole image"):
        ddpm.inpaint(model, image, torch.ones(8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask must be"):
        ddpm.inpaint(model, image, torch.ones(4, 4, dtype=torch.bool))


def test_recipes_refuse_labels_masks_and_batches_that_do_not_match(tiny_model):
    model, two, mask = tiny_model(), images(2), square_mask()
    for call, message in [
        (lambda: ddpm.sdedit(model, images(1), [0.5], labels=["one", "two"]), "2 labels for 1 images"),
        (lambda: ddpm.anagram(model, [(["one", "two", "zero"], "identity"), ("two", "flip_v")], n=2),
         "3 labels for 2 images"),
        (lambda: ddpm.hybrid(model, ["one", "two"], "zero", n=1), "2 labels for 1 images"),
        (lambda: ddpm.inpaint(model, images(1), mask.expand(2, 8, 8)), "2 masks for 1 images"),
        (lambda: ddpm.inpaint(model, images(1), None), "no mask"),
        (lambda: ddpm.inpaint(model, images(1), mask, jump_length=-1, jump_n_sample=3), "jump_length >= 0"),
        (lambda: ddpm.inpaint(model, images(1), mask, jump_length=2, jump_n_sample=0), "jump_n_sample >= 1"),
        (lambda: ddpm.sdedit(model, images(1)[:0], [0.5]), "batch size must be between 1 and 256, got 0"),
        (lambda: ddpm.generate(model, None, n=0), "batch size must be between 1 and 256, got 0"),
        (lambda: ddpm.generate(model, ["one", "two"], n=3), "n=3 but 2 labels"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            call()
    assert ddpm.inpaint(model, two, torch.stack([mask, mask.flip(0)]), labels=["one", "two"]).x.shape[0] == 2


def test_generate_takes_one_name_an_index_tensor_or_a_list(tiny_model):
    model = tiny_model()
    one = ddpm.generate(model, "two", settings=ddpm.Settings(steps=2)).run()  # a name, not three letters
    assert one.shape[0] == 1 and torch.equal(one, ddpm.generate(model, ["two"], settings=ddpm.Settings(steps=2)).run())
    for labels in (torch.tensor([0, 2]), np.array([0, 2]), ["zero", 2], ("zero", "two")):
        a = ddpm.generate(model, labels, settings=ddpm.Settings(steps=2)).run()
        b = ddpm.generate(model, ["zero", "two"], settings=ddpm.Settings(steps=2)).run()
        assert torch.equal(a, b), labels


def test_repaint_jumps_need_a_sampler_that_can_go_back(tiny_model):
    settings = ddpm.Settings(sampler="dpm++", steps=6)
    with pytest.raises(ValueError, match="cannot resample"):
        ddpm.inpaint(tiny_model(), images(1), square_mask(), settings=settings, jump_length=2, jump_n_sample=2)


def test_repaint_plan_walks_the_grid_and_jumps_back():
    timesteps = ddpm.NoiseSchedule(num_timesteps=50).sampler("ddpm", 10).timesteps  # 49, 44, ..., 4
    grid = sorted(timesteps)
    plan = repaint_plan(timesteps, jump_length=2, jump_n_sample=3)
    # 10 steps down, plus at each of the 4 jump points (grid indices 0, 2, 4, 6) 2 extra round trips of 2
    assert len(plan) == 10 + 4 * 2 * (2 + 2) + 1
    assert plan[0] == grid[-1] and plan[-1] == -1 and plan.count(-1) == 1
    for a, b in zip(plan, plan[1:]):
        i = grid.index(a)
        assert b == (grid[i - 1] if i > 0 else -1) if b < a else b == grid[i + 1]
    assert repaint_plan(timesteps, 2, 1) == timesteps + [-1]
    with pytest.raises(ValueError):
        repaint_plan(timesteps, 0, 2)


def test_renoise_walks_the_forward_process_on():
    """Jumping from s up to t must leave x_t ~ N(sqrt(abar_t) x0, 1 - abar_t), as if noised directly."""
    schedule, s, t = ddpm.NoiseSchedule(num_timesteps=50), 10, 30
    x0 = torch.full((20000, 1, 1, 1), 0.5)
    x_t = schedule.renoise(schedule.q_sample(x0, s, noise(x0.shape, 1)), s, t, noise(x0.shape, 2))
    abar = schedule.alphas_cumprod[t]
    # standard errors over 20000 samples: ~0.007 (mean) and ~0.01 (variance); 4 of them
    assert abs(x_t.mean() - abar.sqrt() * 0.5) < 0.03
    assert abs(x_t.var() - (1 - abar)) < 0.04
    with pytest.raises(ValueError):
        schedule.renoise(x0, t, s, x0)


# -- 7. SDEdit --------------------------------------------------------------------------------------
@pytest.mark.parametrize("sampler", ddpm.SAMPLERS)
def test_sdedit_at_strength_zero_returns_the_input_exactly(tiny_model, sampler):
    image = images(2)
    [job] = ddpm.sdedit(tiny_model(), image, [0.0], settings=ddpm.Settings(sampler=sampler, steps=8))
    assert job.num_model_steps == 0
    assert torch.equal(job.run(), image)


def test_sdedit_at_strength_one_runs_every_step(tiny_model):
    model = tiny_model()
    [job] = ddpm.sdedit(model, images(1), [1.0], settings=ddpm.Settings(sampler="ddim", steps=8))
    steps = list(job)
    assert job.num_model_steps == len(steps) == 8
    assert steps[0].t == model.schedule.num_timesteps - 1 and steps[-1].t_next == -1


def test_sdedit_gives_one_job_per_strength_running_that_share_of_the_steps(tiny_model):
    jobs = ddpm.sdedit(tiny_model(), images(1), [0.0, 0.25, 0.5, 1.0], labels="two",
                       settings=ddpm.Settings(steps=8))
    assert [j.num_model_steps for j in jobs] == [0, 2, 4, 8]
    starts = [j.plan[0] for j in jobs]
    assert starts == sorted(starts) and starts[0] == -1
    with pytest.raises(ValueError, match="strengths"):
        ddpm.sdedit(tiny_model(), images(1), [1.5])


def test_sdedit_rounds_half_up_and_runs_a_step_for_any_strength_above_zero(tiny_model):
    jobs = ddpm.sdedit(tiny_model(), images(1), [0.01, 0.3, 0.5, 0.7, 0.9], settings=ddpm.Settings(steps=5))
    assert [j.num_model_steps for j in jobs] == [1, 2, 3, 4, 5]


# -- 8. anagrams and hybrid images ----------------------------------------------------------------------
def test_anagram_estimate_is_the_mean_of_the_views_estimates_mapped_back():
    schedule = ddpm.NoiseSchedule(num_timesteps=50)
    model = oracle_model(images(1), schedule)
    job = ddpm.anagram(model, [(None, "identity"), (None, "flip_v")], n=2, settings=ddpm.Settings(guidance=1.0))
    x, t, den = noise((2, 1, 8, 8)), 30, model.denoiser
    by_hand = (den(x, t) + den(x.flip(-2), t).flip(-2)) / 2
    torch.testing.assert_close(job.eps_fn(x, t), by_hand, rtol=0, atol=1e-6)
    assert not torch.allclose(by_hand, den(x, t), atol=1e-3)  # the flipped view did contribute


@pytest.mark.parametrize("second,expected", [("flip_v", lambda x: (x + x.flip(-2)) / 2),
                                             ("negate", lambda x: torch.zeros_like(x))])
def test_anagram_of_an_oracle_samples_the_mean_of_its_views_targets(second, expected):
    """Views are linear, so averaging the oracle's estimates over views is the oracle of the
    averaged target: mean_i V_i^-1 x*. With negate that is 0."""
    x_star = images(1)
    model = oracle_model(x_star, ddpm.NoiseSchedule(num_timesteps=100))
    job = ddpm.anagram(model, [(None, "identity"), (None, second)], n=2,
                       settings=ddpm.Settings(sampler="ddim", steps=10))
    out = job.run()
    torch.testing.assert_close(out, expected(x_star).expand_as(out), rtol=0, atol=1e-5)


def test_composite_estimate_batches_all_parts_and_guidance_into_one_forward(counted):
    model, calls = counted
    view = ddpm.get_view("rot90")
    parts = [Part(torch.tensor([0, 0]), view, view.inverse), Part(None, ddpm.get_view("identity"), lambda e: e)]
    composite_estimate(model.denoiser, parts, "mean", guidance=2.0)(noise((2, 1, 8, 8)), 5)
    assert calls == [2 * 2 * 2]  # parts x batch x (conditional, null)


def test_hybrid_estimate_sums_the_lowpass_of_one_class_and_the_highpass_of_the_other():
    model = oracle_model(images(3, scale=0.25), ddpm.NoiseSchedule(num_timesteps=50))
    job = ddpm.hybrid(model, "c0", "c2", sigma=1.5, n=2, settings=ddpm.Settings(guidance=1.0))
    x, t, den = noise((2, 1, 8, 8)), 20, model.denoiser
    by_hand = lowpass(den(x, t, [0, 0]), 1.5) + highpass(den(x, t, [2, 2]), 1.5)
    torch.testing.assert_close(job.eps_fn(x, t), by_hand, rtol=0, atol=1e-5)


def test_hybrid_of_an_oracle_samples_low_and_high_frequencies_of_two_targets():
    targets = images(2, scale=0.25)  # |lowpass(a) + highpass(b)| <= 0.75: no clipping on the way
    model = oracle_model(targets, ddpm.NoiseSchedule(num_timesteps=100))
    out = ddpm.hybrid(model, "c0", "c1", sigma=1.0, settings=ddpm.Settings(sampler="ddim", steps=10,
                                                                         guidance=1.0)).run()
    torch.testing.assert_close(out, lowpass(targets[:1], 1.0) + highpass(targets[1:], 1.0), rtol=0, atol=1e-5)


# -- 9. checkpoints ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", list(ddpm.FAMILIES))
def test_checkpoint_round_trip_gives_identical_outputs(tiny_model, tmp_path, family):
    model = tiny_model(family, schedule=ddpm.NoiseSchedule("cosine", num_timesteps=40))
    model.meta["training"] = {"steps": 2}
    loaded = ddpm.load(model.save(tmp_path / "m"))
    assert loaded.denoiser.family == family
    assert loaded.schedule == model.schedule
    assert loaded.class_names == model.class_names
    assert loaded.meta["training"] == {"steps": 2}
    x, labels = noise((3, 1, 8, 8)), torch.tensor([0, 1, 3])
    with torch.no_grad():
        want = model.denoiser(x, 7, labels)
        assert want.abs().max() > 1e-3  # not a degenerate all-zero model
        assert torch.equal(loaded.denoiser(x, 7, labels), want)


def test_a_checkpoint_carries_its_own_default_guidance_and_sampler(tiny_model, tmp_path):
    model = tiny_model()
    assert model.default_guidance == ddpm.recipes.DEFAULT_GUIDANCE  # none stored: the library's
    assert model.default_sampler == ddpm.recipes.DEFAULT_SAMPLER == ddpm.Settings().sampler
    model.meta["sampling"] = {"guidance": 3}
    loaded = ddpm.load(model.save(tmp_path / "m"))
    assert loaded.default_guidance == 3.0 and loaded.meta["sampling"] == {"guidance": 3}
    assert loaded.default_sampler == "dpm++"
    model.meta["sampling"] = {"guidance": 3, "sampler": "dpm++sde"}
    assert ddpm.load(model.save(tmp_path / "m")).default_sampler == "dpm++sde"
    config = json.loads((tmp_path / "m" / "ddpm_config.json").read_text())
    for bad in ({"guidance": 99}, {"guidance": "high"}, {"guidance": True}, [3], {"sampler": "euler"},
                {"sampler": None}, {"guidence": 3}):
        (tmp_path / "m" / "ddpm_config.json").write_text(json.dumps({**config, "sampling": bad}))
        with pytest.raises(ValueError, match='"sampling" should be'):
            ddpm.load(tmp_path / "m")


def test_a_float16_checkpoint_stores_half_the_bytes_and_loads_the_rounded_weights_as_float32(tiny_model, tmp_path):
    from safetensors import safe_open

    from ddpm.card import model_card

    model_full = model = tiny_model("unet2d-class")
    full = model.save(tmp_path / "full")
    model = ddpm.DiffusionModel(model.denoiser, model.schedule, model.class_names, name="half",
                                meta={"weights_dtype": "float16"})
    half = model.save(tmp_path / "half")
    with safe_open(half / "unet" / "diffusion_pytorch_model.safetensors", "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    assert next(model.denoiser.parameters()).dtype == torch.float32  # saving left the model alone
    size = {p: (p / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size for p in (full, half)}
    assert 0.45 < size[half] / size[full] < 0.55
    loaded = ddpm.load(half)
    assert loaded.weights_dtype == "float16"
    assert "| weights on disk | float16" in model_card(loaded) and "weights on disk" not in model_card(model_full)
    for (name, got), want in zip(loaded.denoiser.state_dict().items(), model.denoiser.state_dict().values()):
        assert got.dtype == want.dtype, name
        assert torch.equal(got, want.half().to(want.dtype)), name  # exactly the rounded weights
    again = loaded.save(tmp_path / "again")  # a float16 model stays float16
    assert (again / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size == size[half]
    config = json.loads((half / "ddpm_config.json").read_text())
    (half / "ddpm_config.json").write_text(json.dumps({**config, "weights_dtype": "int8"}))
    with pytest.raises(ValueError, match='"weights_dtype" should be one of float32, float16'):
        ddpm.load(half)


def test_diffusers_unet_folder_loads_as_unconditional_model_with_its_schedule(tmp_path):
    unet = tiny_unet()
    unet.save_pretrained(tmp_path)
    DDPMScheduler(beta_schedule="squaredcos_cap_v2").save_config(tmp_path)
    model = ddpm.load(tmp_path)
    assert not model.conditional and model.class_names is None
    assert model.schedule == ddpm.NoiseSchedule("cosine", num_timesteps=1000)
    x = noise((2, 1, 8, 8))
    with torch.no_grad():
        assert torch.equal(model.denoiser(x, 10), unet(x, 10).sample)


def test_diffusers_pipeline_folder_loads_its_unet_and_scheduler(tmp_path):
    DDPMPipeline(tiny_unet(), DDPMScheduler(num_train_timesteps=100, beta_end=0.03)).save_pretrained(tmp_path)
    model = ddpm.load(tmp_path)
    assert model.schedule == ddpm.NoiseSchedule("linear", num_timesteps=100, beta_end=0.03)
    assert model.image_size == 8 and not model.conditional


@pytest.fixture
def saved(tiny_model, tmp_path):
    return tiny_model().save(tmp_path / "m")


def test_load_reports_a_corrupt_config(saved):
    (saved / "ddpm_config.json").write_text('{"format": "ddpm-checkpoint/2", ')
    with pytest.raises(ValueError, match="ddpm_config.json is not valid JSON"):
        ddpm.load(saved)


def test_load_reports_an_incomplete_config(saved):
    config = json.loads((saved / "ddpm_config.json").read_text())
    del config["family"]
    (saved / "ddpm_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="incomplete"):
        ddpm.load(saved)


def test_load_reports_missing_weights(saved):
    (saved / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"weights file .*diffusion_pytorch_model\.safetensors is missing"):
        ddpm.load(saved)


@pytest.mark.parametrize("raised, reason", [
    ("offline", "the Hub is out of reach (offline?) and it is not in the local Hub cache"),
    ("unknown", "it does not exist, or is private or gated (log in with `hf auth login`)"),
    ("other", "it could not be fetched (RuntimeError: boom)"),
])
def test_a_missing_folder_that_looks_like_a_hub_id_says_all_it_tried_in_one_line(monkeypatch, tmp_path, raised,
                                                                                  reason):
    """`--model runs/nope` (a typo'd run folder) is also a valid Hub id: the error says no such folder here,
    not bundled, and why the Hub gave nothing, in a phrase, not huggingface_hub's paragraph."""
    import httpx2
    import huggingface_hub
    from huggingface_hub import errors

    def fake_download(repo_id, **kwargs):
        if raised == "offline":
            raise errors.LocalEntryNotFoundError("An error happened while trying to locate the files on the Hub "
                                                 "and we cannot find the appropriate snapshot folder...\nmore")
        if raised == "unknown":
            response = httpx2.Response(404, request=httpx2.Request("GET", f"https://huggingface.co/api/models/"
                                                                           f"{repo_id}"))
            raise errors.RepositoryNotFoundError("404 Client Error. Repository Not Found", response=response)
        raise RuntimeError("boom\nsecond line")

    def no_listing(self, repo_id, **kwargs):
        raise RuntimeError("no network in tests")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", no_listing)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as info:
        ddpm.load("runs/nope")
    message = str(info.value)
    assert message.startswith(f"no model 'runs/nope': no folder runs/nope here (in {tmp_path}), "
                              f"not a bundled model (emoji, fashion, letters, mnist), and as a Hugging Face Hub id ")
    assert message.endswith(reason)
    assert "\n" not in message and "snapshot folder" not in message


PIPELINE_REPO = {"model_index.json": 500, "README.md": 2_000, "scheduler/scheduler_config.json": 400,
                 "unet/config.json": 900, "unet/diffusion_pytorch_model.safetensors": 143_000_000,
                 "unet/diffusion_pytorch_model.bin": 143_000_000, "unet/notes.ckpt": 1_000,
                 "vae/diffusion_pytorch_model.safetensors": 335_000_000, "text_encoder/model.safetensors": 492_000_000}


def test_from_the_hub_only_what_a_model_loads_is_fetched():
    assert ddpm.checkpoint.hub_files("o/pipe", PIPELINE_REPO) == [
        "model_index.json", "README.md", "scheduler/scheduler_config.json", "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors"]  # no second copy as .bin, no vae or text encoder
    old_style = {"config.json": 700, "diffusion_pytorch_model.bin": 35_000_000}
    assert ddpm.checkpoint.hub_files("o/old", old_style) == list(old_style)


def test_a_hub_repository_too_big_for_the_app_is_refused_before_any_download(monkeypatch):
    import huggingface_hub
    from huggingface_hub.hf_api import ModelInfo

    listing = {"unet/config.json": 900, "unet/diffusion_pytorch_model.safetensors": 3_438_000_000}
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda self, repo_id, **kw: ModelInfo(
        id=repo_id, siblings=[{"rfilename": n, "size": b} for n, b in listing.items()]))
    downloads = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **kw: downloads.append(kw))
    with pytest.raises(ValueError, match=r"^big/unet is too big to load here: its model files come to 3,438 MB, "
                                         r"over the 500 MB limit \(DDPM_HUB_MAX_MB\)"):
        ddpm.load("big/unet")
    assert downloads == []
    monkeypatch.setenv("DDPM_HUB_MAX_MB", "5000")  # allowed: only its model files are asked for
    with pytest.raises(FileNotFoundError):
        ddpm.load("big/unet")  # (the fake download gives no folder)
    assert downloads == [{"allow_patterns": list(listing)}]


def test_load_reports_truncated_weights(saved):
    weights = saved / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ValueError, match="could not load weights from"):
        ddpm.load(saved)


def test_load_reports_weights_of_another_model(saved, tiny_model, tmp_path):
    other = tiny_model("unet2d-class").save(tmp_path / "other")
    weights = "unet/diffusion_pytorch_model.safetensors"
    (saved / weights).write_bytes((other / weights).read_bytes())
    with pytest.raises(ValueError, match="do not fit the model|could not load weights"):
        ddpm.load(saved)


def test_load_reports_an_unknown_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model 'no-such-model'"):
        ddpm.load("no-such-model")
    with pytest.raises(ValueError, match="neither a ddpm checkpoint nor a diffusers.*it has no config.json"):
        ddpm.load(tmp_path)  # an existing folder with nothing in it
    (tmp_path / "config.json").write_text('{"_class_name": "UNet2DConditionModel"}')
    with pytest.raises(ValueError, match="its config.json says 'UNet2DConditionModel'"):
        ddpm.load(tmp_path)
    (tmp_path / "config.json").unlink()
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        ddpm.load(tmp_path / "file.txt")


# -- 10. seeds ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sampler", ddpm.SAMPLERS)
def test_same_seed_same_images_and_another_seed_other_images(tiny_model, sampler):
    model = tiny_model()

    def sample(seed):
        return ddpm.generate(model, ["zero", "two"], settings=ddpm.Settings(sampler=sampler, steps=4,
                                                                             eta=1.0, seed=seed)).run()

    first = sample(7)
    assert torch.equal(sample(7), first)
    assert not torch.allclose(sample(8), first, atol=1e-3)


# -- 11. settings ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("changes,message", [
    ({"steps": -5}, "steps"), ({"steps": 0}, "steps"), ({"steps": 2.5}, "steps"),
    ({"guidance": 1000}, "guidance"), ({"guidance": -1}, "guidance"), ({"guidance": float("nan")}, "guidance"),
    ({"sampler": "euler"}, "unknown sampler"), ({"seed": -1}, "seed"), ({"dtype": "float8"}, "dtype"),
    ({"eta": -0.5}, "eta"), ({"eta": 100.0}, "eta"),
])
def test_settings_reject_absurd_values(changes, message):
    with pytest.raises(ValueError, match=message):
        ddpm.Settings(**changes)


def test_more_steps_than_the_schedule_has_is_an_error(tiny_model):
    model = tiny_model()  # T = 50
    with pytest.raises(ValueError, match="steps must be between 1 and 50"):
        ddpm.generate(model, ["one"], settings=ddpm.Settings(steps=51))
    ddpm.generate(model, ["one"], settings=ddpm.Settings(steps=50))  # the full chain is fine


def test_a_job_runs_only_once(tiny_model):
    model = tiny_model("scratch")
    job = ddpm.generate(model, [0], settings=ddpm.Settings(steps=2))
    job.run()
    with pytest.raises(RuntimeError, match="already run"):
        job.run()
