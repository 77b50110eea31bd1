"""Model cards: the README.md that travels with every checkpoint folder, and that the Hugging Face Hub shows
for a published model (its front matter: licence, library, tags, datasets, and the measured rows as
``model-index`` results)."""
from __future__ import annotations

import json

from .card_steps import steps_section
from .checkpoint import OWN_CONFIG, DiffusionModel
from .data import DATASETS
from .defaults import AFAR_FACTOR
from .tables import format_class_table

# Hub dataset ids of the datasets the Hub hosts (the others are named by our name)
HUB_DATASETS = {"mnist": "ylecun/mnist", "fashion": "zalando-datasets/fashion_mnist"}
DATASET_NAMES = {"mnist": "MNIST", "fashion": "Fashion-MNIST", "letters": "Letters A-Z (rendered fonts)",
                 "emoji": "Noto Emoji", "emoji2": "Emoji in three art styles (Noto, Twemoji, Fluent)"}
# Who made the training data, to credit them (the licences themselves are in ddpm.data.DATASETS)
ATTRIBUTION = {
    "mnist": "MNIST by Yann LeCun, Corinna Cortes and Christopher J. C. Burges (http://yann.lecun.com/exdb/mnist/)",
    "fashion": "Fashion-MNIST by Han Xiao, Kashif Rasul and Roland Vollgraf, Zalando Research "
               "(https://github.com/zalandoresearch/fashion-mnist)",
    "letters": "glyphs rendered from free font families (Debian font packages and Google Fonts families from PyPI "
               "`fontpkg-*` wheels), each under its own licence: SIL Open Font License 1.1 or Apache-2.0 for "
               "most, GPL/AGPL with the font exception for a few",
    "emoji": "Noto Emoji by Google (https://github.com/googlefonts/noto-emoji), from the npm package "
             "`emoji-datasource-google`",
    # what the licences ask for (CC BY 4.0: creator, licence and its link, changes made; Apache-2.0 and MIT:
    # the licence and copyright holder), from ddpm/data/EMOJI_SOURCES.md
    "emoji2": ("**Noto Emoji** by Google, Apache License 2.0 (https://github.com/googlefonts/noto-emoji), via the "
               "npm package `emoji-datasource-google` 16.0.0 (MIT, Cal Henderson);",
               "**Twemoji** graphics by Twitter, Inc. and other contributors, licensed under CC BY 4.0 "
               "(https://creativecommons.org/licenses/by/4.0/; https://github.com/jdecked/twemoji), via the npm "
               "package `emoji-datasource-twitter` 16.0.0;",
               "**Fluent Emoji** (flat style) by Microsoft Corporation, MIT License "
               "(https://github.com/microsoft/fluentui-emoji), via the npm package `fluentui-emoji` 1.3.0 (MIT, "
               "Mohammad Abu Mattar).",
               "Changes: every image was resized to 32x32 and composited on white. OpenMoji (CC BY-SA 4.0) was left "
               "out, so that no ShareAlike terms bind the weights. The dataset's `manifest.csv` gives the source and "
               "licence of every image."),
}
# The weights' licence: MIT as the code, except where the training data asks that derived works share its
# licence (MNIST: CC BY-SA 3.0)
WEIGHTS_LICENSE = {"mnist": "cc-by-sa-3.0"}
# How ddpm's "dpm++" sampler sets up diffusers' DPMSolverMultistepScheduler (ddpm.schedule), for the snippets
DPM_SOLVER = ('    repo, subfolder="scheduler", algorithm_type="dpmsolver++", solver_order=2, lower_order_final=True,\n'
              '    final_sigmas_type="zero", thresholding=True, sample_max_value=1.0)')


def front_matter(model: DiffusionModel) -> str:
    """The YAML block the Hub reads at the top of a card, ``---`` lines included."""
    from huggingface_hub import EvalResult, ModelCardData

    dataset = model.dataset or "unknown"
    hub_dataset = HUB_DATASETS.get(dataset, dataset)
    task = "Class-conditional image generation" if model.conditional else "Unconditional image generation"
    results = []
    for row in model.meta.get("metrics", {}).get("rows", []):
        common = dict(task_type="unconditional-image-generation", task_name=task, dataset_type=hub_dataset,
                      dataset_name=DATASET_NAMES.get(dataset, dataset), dataset_split="test")
        about = f"{row['setting']}, {row['n']} samples"
        results += [EvalResult(**common, metric_type="accuracy", metric_value=row["accuracy"],
                               metric_name=f"class accuracy ({about})"),
                    EvalResult(**common, metric_type="fid", metric_value=row["fid"],
                               metric_name=f"FID, classifier features ({about}; test vs test: {row['fid_floor']})")]
    tags = ["diffusers", "ddpm", "pixel-diffusion", f"ddpm-{model.denoiser.family}",
            "class-conditional" if model.conditional else "unconditional-image-generation"]
    data = ModelCardData(license=WEIGHTS_LICENSE.get(dataset, "mit"), library_name="diffusers", tags=tags,
                         datasets=[hub_dataset] if model.dataset else None,
                         pipeline_tag="unconditional-image-generation",
                         model_name=model.name if results else None, eval_results=results or None)
    return f"---\n{data.to_yaml()}\n---\n"


def model_card(model: DiffusionModel, repo_id: str | None = None) -> str:
    """A Markdown card from what the checkpoint knows: family, size, data, classes, training, metrics, its
    licence and how to use it. ``repo_id``: the Hub repository the card is for (its snippets load from there;
    else from ``checkpoints/<name>``)."""
    cfg = model.config_dict()
    train = cfg.get("training", {})
    metrics = cfg.get("metrics", {})
    lines = [
        front_matter(model),
        f"# {model.name}",
        "",
        f"A {'class-conditioned' if model.conditional else 'unconditional'} DDPM noise predictor "
        f"(`{model.denoiser.family}` family, "
        f"{model.denoiser.num_parameters() / 1e6:.2f} M parameters) trained from scratch with the `ddpm` library.",
        "",
        "| | |", "|---|---|",
        f"| dataset | {model.dataset} |",
        f"| image | {model.channels} x {model.image_size} x {model.image_size}, values in [-1, 1] |",
        f"| classes | {', '.join(model.class_names) if model.class_names else 'unconditional'} |",
        f"| noise schedule | {model.schedule.kind}, T = {model.schedule.num_timesteps} |",
    ]
    labels = {"steps": "training steps", "train_seconds": "training time (s)", "batch_size": "batch size",
              "lr": "learning rate", "ema_decay": "EMA decay", "p_uncond": "class dropout (p_uncond)",
              "device": "trained on", "train_images": "training images",
              "continued_from": "continued from"}
    for key, label in labels.items():
        if key in train:
            lines.append(f"| {label} | {train[key]} |")
    own = cfg.get("sampling", {})
    if "guidance" in own:
        lines.append(f"| default guidance | {model.default_guidance:g} (what `sample`, `evaluate` and the app's "
                     f"Generate tab use unless told otherwise) |")
    if "sampler" in own:
        lines.append(f"| default sampler | {model.default_sampler} (what `sample`, `evaluate` and the app's "
                     f"Generate tab use unless told otherwise) |")
    if model.weights_dtype != "float32":
        lines.append(f"| weights on disk | {model.weights_dtype} (loaded into float32 for sampling) |")
    lines += ["", "Weights are the EMA weights."]
    if model.conditional:
        lines[-1] += (f" Label index {model.denoiser.num_classes} is the null class used for classifier-free "
                      f"guidance.")
    lines.append("")
    if metrics.get("rows"):
        rows = metrics.get("rows", [])
        lines += ["## Measured quality", "",
                  "| setting | samples | class accuracy | FID (classifier features) | floor (test vs test) |",
                  "|---|---|---|---|---|"]
        for row in rows:
            lines.append(f"| {row['setting']} | {row['n']} | {row['accuracy']:.3f} | {row['fid']:.2f} | "
                         f"{row['fid_floor']:.2f} |")
        if per_class := format_class_table(rows):
            lines += ["", "Class accuracy per class:", "", per_class]
        judges = list(dict.fromkeys((row["classifier"]["key"], row["classifier"]["test_accuracy"])
                                    for row in rows if "classifier" in row))
        if judges:
            named = ", ".join(f"`{key}` (test accuracy {test_accuracy})" for key, test_accuracy in judges)
            note = f"Evaluation classifier: {named}."
            if len(judges) > 1 or any("classifier" not in row for row in rows):
                note += (" Rows measured by different classifiers (or before the classifier was recorded) are "
                         "not comparable in FID: a retrained classifier moves it by ~10%.")
            lines += ["", note]
        commands = list(dict.fromkeys(_with_dtype(row.get("command") or metrics.get("command"), row) for row in rows))
        commands = [c for c in commands if c]
        if len(commands) == 1:
            lines += ["", f"Measured with `{commands[0]}`."]
        elif commands:
            lines += ["", "Measured with:", ""] + [f"- `{c}`" for c in commands]
        lines.append("")
    lines += steps_section(metrics.get("steps", {}))
    lines += _data_section(model) + _files_section(model) + _use_section(model, repo_id or f"checkpoints/{model.name}")
    return "\n".join(lines)


def _with_dtype(command: str | None, row: dict) -> str | None:
    """``command`` naming the precision its row ran at: rows measured before ``--dtype`` was always written
    ran at float32 unless their setting says otherwise (the default is no longer float32 everywhere)."""
    if not command or "--dtype" in command or not command.startswith("python -m ddpm evaluate"):
        return command
    label = row.get("setting", "")
    dtype = row.get("dtype") or next((d for d in ("bfloat16", "float16") if label.endswith(f", {d}")), "float32")
    return f"{command} --dtype {dtype}"


def _data_section(model: DiffusionModel) -> list[str]:
    if model.dataset not in DATASETS:
        return []
    info = DATASETS[model.dataset]
    licence = WEIGHTS_LICENSE.get(model.dataset, "mit").upper().replace("CC-BY-SA-", "CC BY-SA ")
    credit = ATTRIBUTION[model.dataset]
    if isinstance(credit, tuple):  # several sources, each credited as its licence asks: a line each
        return ["## Data and licence", "", f"Trained on {info.description}", "", "The training images:", "",
                *[f"- {line}" for line in credit], "", f"The weights: {licence}.", ""]
    return ["## Data and licence", "", f"Trained on {info.description}", "",
            f"The training images: {info.licence}; {credit}. The weights: {licence}.", ""]


def _files_section(model: DiffusionModel) -> list[str]:
    lines = ["## Files", "", "The folder is laid out as diffusers lays out a model, with one file of ours:", "",
             f"- `{OWN_CONFIG}`: family, class names, sampling defaults, training facts and the measured rows "
             f"(the `ddpm` library's own file);",
             "- `unet/`: the network, `config.json` + `diffusion_pytorch_model.safetensors` (the only copy of the "
             "weights);"]
    if model.denoiser.family == "unet2d-concat":
        lines.append("- `class_embedding/`: the class embedding that is concatenated to the UNet's input;")
    lines += ["- `scheduler/`: the noise schedule it was trained with, as a diffusers `DDPMScheduler`."]
    try:
        judge = model.classifier
    except (OSError, ValueError):  # an unreadable classifier/ part: the card says nothing of it
        judge = None
    if judge is not None:
        meta = judge.meta
        lines.append(f"- `classifier/`: a small CNN of the model's own classes ({sum(p.numel() for p in judge.parameters()):,} parameters), "
                     f"test accuracy {meta.get('test_accuracy', float('nan')):.3f} on "
                     f"{meta.get('test_images', 'the')} real test images"
                     + (f" ({meta['far_accuracy']:.3f} seen from afar, {AFAR_FACTOR}x area-downsampled, as a hybrid's "
                        f"far reading is)" if "far_accuracy" in meta else "")
                     + "; `ddpm.load(...).classifier` gives it, and the illusions rank their candidates with it "
                       "(`python -m ddpm classifier --model NAME` trains it, seeded).")
    return lines + [""]


def _use_section(model: DiffusionModel, where: str) -> list[str]:
    names = model.classes
    pick = names[:2]
    lines = ["## Use", "", "With the `ddpm` library (every model family):", "", "```python", "import ddpm", "",
             f'model = ddpm.load("{where}")',
             f"images = ddpm.generate(model, {json.dumps(pick)}).run()  # (B, C, H, W) in [-1, 1]" if pick else
             "images = ddpm.generate(model, n=4).run()  # (B, C, H, W) in [-1, 1]",
             "```", "", "or from the command line:", "", "```bash",
             f"python -m ddpm sample --model {where} --per-class 4 --out grid.png", "```", ""]
    family = model.denoiser.family
    if family == "unet2d-concat":
        return lines + ["Only `ddpm` conditions this model on its classes: its UNet takes the image and the class "
                        "embedding (`class_embedding/`, a vector per class, index "
                        f"{model.denoiser.num_classes} the null class) broadcast over the image as "
                        f"{model.denoiser.class_emb_size} extra input channels, `torch.cat([x, emb[labels][:, :, "
                        "None, None].expand(-1, -1, H, W)], 1)`; `examples/plain_diffusers.py` in the `ddpm` "
                        "repository shows it.", ""]
    load = {"scratch": ("from ddpm.unet import ScratchUNet  # the network is ours; the rest is diffusers",
                        "unet = ScratchUNet.from_pretrained(repo, subfolder=\"unet\").eval()")}.get(
        family, ("", "unet = UNet2DModel.from_pretrained(repo, subfolder=\"unet\").eval()"))
    c, size = model.channels, model.image_size
    imports = "DPMSolverMultistepScheduler" + ("" if family == "scratch" else ", UNet2DModel")
    code = ["import torch", f"from diffusers import {imports}", *filter(None, [load[0]]),
            "", f'repo = "{where}"', load[1],
            "# DPM-Solver++(2M) on the training schedule (scheduler/), clipping each x0 estimate to [-1, 1]",
            "scheduler = DPMSolverMultistepScheduler.from_pretrained(", DPM_SOLVER,
            "scheduler.set_timesteps(20)"]
    if model.conditional:
        forward = ("unet(torch.cat([x, x]), t, class_labels=torch.cat([labels, null])).sample" if family != "scratch"
                   else "unet(torch.cat([x, x]), t.expand(2 * len(x)), torch.cat([labels, null]))")
        meaning = ", ".join(f"{i} = {n}" for i, n in enumerate(pick))
        code += [f"labels = torch.tensor([0, 1])  # class indices: {meaning}",
                 f"null = torch.full_like(labels, {model.denoiser.num_classes})  # the null class (index num_classes)",
                 f"guidance = {model.default_guidance:g}  # eps = eps_null + guidance * (eps_class - eps_null)",
                 f"x = torch.randn(2, {c}, {size}, {size}, generator=torch.Generator().manual_seed(0))",
                 "with torch.no_grad():", "    for t in scheduler.timesteps:",
                 f"        eps_class, eps_null = {forward}.chunk(2)",
                 "        x = scheduler.step(eps_null + guidance * (eps_class - eps_null), t, x).prev_sample"]
    else:
        code += [f"x = torch.randn(4, {c}, {size}, {size}, generator=torch.Generator().manual_seed(0))",
                 "with torch.no_grad():", "    for t in scheduler.timesteps:",
                 "        x = scheduler.step(unet(x, t).sample, t, x).prev_sample"]
    code.append("images = (x.clamp(-1, 1) + 1) / 2  # (B, C, H, W) in [0, 1]")
    intro = ("With the `ddpm` library's `ScratchUNet` for the network and diffusers for the rest:"
             if family == "scratch" else "With plain diffusers and torch (the class embedding is the UNet's own, `num_class_embeds` = "
                  "classes + 1):" if model.conditional else "With plain diffusers and torch:")
    return lines + [intro, "", "```python", *code, "```", ""]
