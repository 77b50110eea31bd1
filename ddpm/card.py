"""Model cards: the README.md that travels with every checkpoint folder."""
from __future__ import annotations

from .checkpoint import DiffusionModel
from .tables import format_class_table


def model_card(model: DiffusionModel) -> str:
    """A Markdown card from what the checkpoint knows: family, size, data, classes, training, metrics."""
    cfg = model.config_dict()
    train = cfg.get("training", {})
    metrics = cfg.get("metrics", {})
    lines = [
        f"# {model.name}",
        "",
        f"A class-conditioned DDPM noise predictor (`{model.denoiser.family}` family, "
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
    lines += ["", "Weights are the EMA weights. Label index "
              f"{model.denoiser.num_classes} is the null class used for classifier-free guidance.", ""]
    if metrics:
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
        commands = list(dict.fromkeys(row.get("command") or metrics.get("command") for row in rows))
        commands = [c for c in commands if c]
        if len(commands) == 1:
            lines += ["", f"Measured with `{commands[0]}`."]
        elif commands:
            lines += ["", "Measured with:", ""] + [f"- `{c}`" for c in commands]
        lines.append("")
    lines += ["## Use", "", "```bash", f"python -m ddpm sample --model {model.name} --per-class 4 --out grid.png", "```", ""]
    return "\n".join(lines)
