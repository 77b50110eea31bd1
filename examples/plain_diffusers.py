"""Sample a bundled model with nothing but diffusers and torch: no `ddpm` import.

    python examples/plain_diffusers.py checkpoints/fashion Trouser Bag Sneaker --out fashion.png

A checkpoint folder is laid out as diffusers lays out a model: the network in unet/, the noise schedule
it was trained with in scheduler/ (a DDPMScheduler config), and our own ddpm_config.json, plain JSON,
whose "data" names the classes. It works for the unet2d-class models (fashion, emoji), whose UNet2DModel
holds its class embedding, and for unet2d-concat (letters), whose class embedding sits beside the UNet in
class_embedding/ and is concatenated to its input here by hand. The scratch family (mnist) has a network
of our own: load it with `ddpm.unet.ScratchUNet.from_pretrained(folder, subfolder="unet")`.

Classifier-free guidance: the models were trained with the class label dropped (replaced by the "null
class", index num_classes, one past the last class) 10% of the time, so one network gives both the
class-conditional noise estimate and the unconditional one; sampling follows
eps = eps_null + guidance * (eps_class - eps_null): guidance 0 is unconditional, 1 plain conditional,
more pushes harder toward the class.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from diffusers import DPMSolverMultistepScheduler, UNet2DModel
from safetensors.torch import load_file  # a dependency of diffusers


def load(folder: str | Path):
    """(unet, scheduler, class names, class embedding or None) from a checkpoint folder."""
    folder = Path(folder)
    unet = UNet2DModel.from_pretrained(folder, subfolder="unet").eval()
    # DPM-Solver++(2M) configured from the training schedule, as ddpm's "dpm++" sampler is: thresholding
    # with sample_max_value=1 clips each estimate of the clean image to [-1, 1], the range of the data.
    scheduler = DPMSolverMultistepScheduler.from_pretrained(
        folder, subfolder="scheduler", algorithm_type="dpmsolver++", solver_order=2, lower_order_final=True,
        final_sigmas_type="zero", thresholding=True, sample_max_value=1.0)
    names = json.loads((folder / "ddpm_config.json").read_text())["data"]["class_names"]
    embedding = None
    if (folder / "class_embedding").is_dir():  # unet2d-concat: (num_classes + 1, channels) vectors
        embedding = load_file(folder / "class_embedding" / "diffusion_pytorch_model.safetensors")["weight"]
    return unet, scheduler, names, embedding


@torch.no_grad()
def sample(unet, scheduler, labels: torch.Tensor, guidance: float = 1.5, steps: int = 20, seed: int = 0,
           embedding: torch.Tensor | None = None) -> torch.Tensor:
    """Images (B, C, H, W) in [-1, 1] of the classes ``labels`` (B,) (indices into the class names)."""
    null = torch.full_like(labels, len(embedding) - 1 if embedding is not None else unet.config.num_class_embeds - 1)
    both = torch.cat([labels, null])  # the class rows, then the null-class rows: one batched forward pass
    channels = unet.config.in_channels - (embedding.shape[1] if embedding is not None else 0)
    size = unet.config.sample_size
    x = torch.randn(len(labels), channels, size, size, generator=torch.Generator().manual_seed(seed))
    scheduler.set_timesteps(steps)
    for t in scheduler.timesteps:
        xx = torch.cat([x, x])
        if embedding is None:  # unet2d-class: the UNet embeds the class itself (num_class_embeds = classes + 1)
            out = unet(xx, t, class_labels=both).sample
        else:  # unet2d-concat: the class vector, broadcast over the image, as extra input channels
            cond = embedding[both][:, :, None, None].expand(-1, -1, size, size)
            out = unet(torch.cat([xx, cond], dim=1), t).sample
        eps_class, eps_null = out.chunk(2)
        x = scheduler.step(eps_null + guidance * (eps_class - eps_null), t, x).prev_sample
    return x


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", help="a checkpoint folder, e.g. checkpoints/fashion")
    p.add_argument("classes", nargs="*", help="class names (default: one image of each class)")
    p.add_argument("--guidance", type=float, default=1.5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="samples.png")
    args = p.parse_args(argv)
    unet, scheduler, names, embedding = load(args.folder)
    labels = torch.tensor([names.index(c) for c in args.classes or names])
    x = sample(unet, scheduler, labels, args.guidance, args.steps, args.seed, embedding)
    from PIL import Image  # a dependency of diffusers

    row = ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(2, 0, 3, 1).flatten(1, 2)  # (H, B*W, C)
    Image.fromarray(row.squeeze(-1).numpy() if row.shape[-1] == 1 else row.numpy()).save(args.out)
    print(f"wrote {len(labels)} images to {args.out}")


if __name__ == "__main__":
    main()
