"""Diffusion Lab: class-conditioned diffusion models you can watch, scrub, edit and fool.

    python app.py            # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT override)

The same file runs as a Hugging Face Space, on CPU or GPU (ZeroGPU too). Models load once at start from
checkpoints/; the Model box also takes a Hub id of any ``UNet2DModel``, and a checkpoint folder where local
models are allowed (DDPM_ALLOW_LOCAL_MODELS=1/0; by default off on a Space, on elsewhere).
The app itself lives in diffusion_lab/ (one module per tab); every action has an API name: /generate,
/forward, /sdedit, /inpaint, /anagram, /hybrid, /branch, /compare (and /<tab>_texts for a result's reproduce texts).
"""
from diffusion_lab.demo import build_demo, launch

__all__ = ["build_demo", "launch"]

if __name__ == "__main__":
    launch(build_demo())
