"""The bundled models under checkpoints/: each loads, is small enough for a Space, has its card, samples through
the CLI right after set-up (no data, no training), and is a diffusers folder: diffusers' own classes load its
network and schedule and sample the same images as ddpm on the same noise."""
from __future__ import annotations

import importlib.util
import json
import re

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler, DPMSolverMultistepScheduler, UNet2DModel
from huggingface_hub import ModelCard
from safetensors.torch import load_file

import ddpm
from ddpm.checkpoint import CHECKPOINTS_DIR, REPO_ROOT
from ddpm.cli import main
from ddpm.unet import ScratchUNet

BUNDLED = ddpm.bundled()
MAX_WEIGHTS_BYTES = 10 * 1024 * 1024  # a Space's git takes bigger files only through LFS
PART_FILES = ["config.json", "diffusion_pytorch_model.safetensors"]


def test_the_zoo_has_at_least_one_model():
    assert BUNDLED, "checkpoints/ holds no model: the app would start empty"


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_is_complete_and_small(name):
    folder = CHECKPOINTS_DIR / name
    model = ddpm.load(name)
    parts = ["unet"] + (["class_embedding"] if model.denoiser.family == "unet2d-concat" else [])
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert files == sorted(["README.md", "ddpm_config.json", "scheduler/scheduler_config.json",
                            "classifier/config.json", "classifier/model.safetensors",
                            *(f"{p}/{f}" for p in parts for f in PART_FILES)])  # one copy of the weights
    assert (folder / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size <= MAX_WEIGHTS_BYTES
    # its own classifier (for illusion scores): small, of the model's classes, and named in the card
    assert (folder / "classifier" / "model.safetensors").stat().st_size <= 1_000_000
    judge = model.classifier
    assert judge is not None and judge.meta["test_accuracy"] > 0.7
    assert judge(torch.zeros(2, model.channels, model.image_size, model.image_size)).shape == (2, len(model.classes))
    assert "`classifier/`" in (folder / "README.md").read_text()
    assert model.conditional and len(model.class_names) == model.denoiser.num_classes
    assert model.meta["training"]["steps"] > 0
    assert f"\n# {name}\n" in (folder / "README.md").read_text()


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_card_carries_the_hub_metadata_and_its_measured_rows(name):
    model = ddpm.load(name)
    card = ModelCard.load(CHECKPOINTS_DIR / name / "README.md")
    assert card.data.library_name == "diffusers" and card.data.pipeline_tag == "unconditional-image-generation"
    assert {"diffusers", "class-conditional"} <= set(card.data.tags) and card.data.license
    rows = model.meta["metrics"]["rows"]
    measured = [v for row in rows for v in (row["accuracy"], row["fid"])]
    assert [r.metric_value for r in card.data.eval_results] == measured
    assert "## Data and licence" in card.text and "The training images:" in card.text  # inline, or a list of sources


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_samples_from_the_command_line(tmp_path, name):
    out = tmp_path / f"{name}.npz"
    assert main(["sample", "--model", name, "--per-class", "1", "--steps", "2", "--out", str(out)]) == 0
    data = np.load(out)
    model = ddpm.load(name)
    shape = (model.image_size, model.image_size) + ((3,) if model.channels == 3 else ())
    assert data["images"].shape == (model.denoiser.num_classes, *shape)
    assert np.isfinite(data["images"]).all() and data["images"].min() >= 0 and data["images"].max() <= 1


# -- diffusers reads the bundled folders -------------------------------------------------------------------
def family(name: str) -> str:
    return json.loads((CHECKPOINTS_DIR / name / "ddpm_config.json").read_text())["family"]


def diffusers_sample(name: str, labels: torch.Tensor, steps: int, guidance: float, seed: int) -> torch.Tensor:
    """Sample with diffusers' classes on the folder's files alone (the network from unet/, DPM-Solver++ configured
    from scheduler/ as ddpm's dpm++ sampler is, thresholding included) and guidance written out here."""
    folder = CHECKPOINTS_DIR / name
    kind = family(name)
    scheduler = DPMSolverMultistepScheduler.from_pretrained(
        folder, subfolder="scheduler", algorithm_type="dpmsolver++", solver_order=2, lower_order_final=True,
        final_sigmas_type="zero", thresholding=True, sample_max_value=1.0)
    scheduler.set_timesteps(steps)
    if kind == "scratch":
        unet = ScratchUNet.from_pretrained(folder, subfolder="unet").eval()
        null, channels, size = unet.config.num_classes, unet.config.in_channels, unet.config.image_size
    else:
        unet = UNet2DModel.from_pretrained(folder, subfolder="unet").eval()
        size = unet.config.sample_size
        if kind == "unet2d-class":
            null, channels = unet.config.num_class_embeds - 1, unet.config.in_channels
        else:  # unet2d-concat: the class embedding (a part of its own) broadcast as extra input channels
            emb = load_file(folder / "class_embedding" / "diffusion_pytorch_model.safetensors")["weight"]
            null, channels = len(emb) - 1, unet.config.in_channels - emb.shape[1]
    both = torch.cat([labels, torch.full_like(labels, null)])
    x = torch.randn(len(labels), channels, size, size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        for t in scheduler.timesteps:
            xx = torch.cat([x, x])
            if kind == "scratch":
                out = unet(xx, t.expand(len(xx)), both)
            elif kind == "unet2d-class":
                out = unet(xx, t, class_labels=both).sample
            else:
                out = unet(torch.cat([xx, emb[both][:, :, None, None].expand(-1, -1, size, size)], 1), t).sample
            eps_class, eps_null = out.chunk(2)
            x = scheduler.step(eps_null + guidance * (eps_class - eps_null), t, x).prev_sample
    return x


@pytest.mark.parametrize("name", BUNDLED)
def test_diffusers_samples_a_bundled_model_as_ddpm_does_on_the_same_noise(name):
    model = ddpm.load(name)
    n, steps = (16, 6) if name == "fashion" else (4, 3)  # one 16-image check; the others small, for speed
    labels = torch.arange(n) % model.denoiser.num_classes
    ours = ddpm.generate(model, labels.tolist(), settings=ddpm.Settings(sampler="dpm++", steps=steps, guidance=2.0,
                                                                       seed=5)).run()
    theirs = diffusers_sample(name, labels, steps, guidance=2.0, seed=5)
    assert ours.shape == (n, model.channels, model.image_size, model.image_size) and ours.std() > 0.1
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-5)
    assert torch.equal(DDPMScheduler.from_pretrained(CHECKPOINTS_DIR / name, subfolder="scheduler").betas,
                       model.schedule.betas)


# -- the plain-diffusers example and the card's snippets run -------------------------------------------------
def example_module():
    spec = importlib.util.spec_from_file_location("plain_diffusers", REPO_ROOT / "examples" / "plain_diffusers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", [n for n in ("fashion", "letters") if n in BUNDLED])
def test_the_plain_diffusers_example_samples_what_ddpm_samples(name):
    example = example_module()
    unet, scheduler, names, embedding = example.load(CHECKPOINTS_DIR / name)
    model = ddpm.load(name)
    assert names == model.class_names and (embedding is not None) == (model.denoiser.family == "unet2d-concat")
    labels = torch.tensor([1, 3])
    got = example.sample(unet, scheduler, labels, guidance=1.5, steps=3, seed=2, embedding=embedding)
    want = ddpm.generate(model, [1, 3], settings=ddpm.Settings(sampler="dpm++", steps=3, guidance=1.5, seed=2)).run()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", [n for n in BUNDLED if family(n) in ("unet2d-class", "scratch")])
def test_the_cards_diffusers_snippet_runs_and_samples_what_ddpm_samples(name, monkeypatch):
    """The card's second code block, run as a user would paste it (from the repository's root), with its 20
    steps cut to 3 for speed."""
    model = ddpm.load(name)
    snippet = re.findall(r"```python\n(.*?)```", (CHECKPOINTS_DIR / name / "README.md").read_text(), re.DOTALL)[1]
    assert "import ddpm\n" not in snippet and "set_timesteps(20)" in snippet
    monkeypatch.chdir(REPO_ROOT)
    scope = {}
    exec(snippet.replace("set_timesteps(20)", "set_timesteps(3)"), scope)
    want = ddpm.generate(model, [0, 1], settings=ddpm.Settings(sampler="dpm++", steps=3,
                                                               guidance=model.default_guidance, seed=0)).run()
    torch.testing.assert_close(scope["images"], (want + 1) / 2, rtol=0, atol=1e-5)
