"""ddpm: class-conditioned diffusion models from scratch, one sampling loop, and editing recipes.

    import ddpm
    model = ddpm.load("mnist")
    images = ddpm.generate(model, ["3", "7"], settings=ddpm.Settings(steps=20, guidance=3)).run()

Images are (B, C, H, W) tensors in [-1, 1] inside the library; ``ddpm.images`` converts at the edges.
"""
from .checkpoint import DiffusionModel, bundled, load
from .models import FAMILIES, Denoiser, build
from .recipes import Settings, anagram, forward_process, generate, hybrid, inpaint, sdedit
from .sampling import Job, Recorder, Step, iterate, noise_estimate
from .schedule import SAMPLERS, NoiseSchedule
from .views import VIEWS, get_view

__all__ = ["DiffusionModel", "bundled", "load", "FAMILIES", "Denoiser", "build", "Settings", "anagram",
           "forward_process", "generate", "hybrid", "inpaint", "sdedit", "Job", "Recorder", "Step", "iterate",
           "noise_estimate", "SAMPLERS", "NoiseSchedule", "VIEWS", "get_view"]
