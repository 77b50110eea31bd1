"""``python -m ddpm classifier --model NAME``: train (or take from the cache) the small classifier of a model's
own classes and ship it in the checkpoint folder, as ``classifier/`` (config.json + model.safetensors).

It is the evaluation classifier's recipe with a quarter of the training images seen from afar
(``ddpm.classifier.shipped_recipe``; ``classifier_for`` trains and caches it, seeded, so the same command gives
the same weights), trained on the dataset's train split and measured on its test split, as is and from afar;
the card gets both accuracies. ``ddpm.load(NAME).classifier`` gives it back, and the illusions rank their candidates with it.
The dataset must be fetched first (``python -m ddpm data fetch NAME``).
"""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="bundled model name or a local checkpoint folder (written into)")


def run(args) -> int:
    from ..card import model_card
    from ..card_metrics import local_folder
    from ..checkpoint import CARD_NAME, load
    from ..classifier import classifier_for, shipped_recipe

    folder = local_folder(args.model, what="classifier")
    model = load(folder)
    if not model.conditional or not model.dataset:
        raise ValueError(f"model {model.name!r} has no classes of a known dataset to classify")
    classifier = classifier_for(model.dataset, recipe=shipped_recipe(model.dataset))
    names = classifier.meta.get("class_names")
    if names is not None and [n.lower() for n in names] != [n.lower() for n in model.classes]:
        raise ValueError(f"the {model.dataset} classifier's classes ({', '.join(names)}) are not the model's "
                         f"({', '.join(model.classes)})")
    classifier.save(folder / "classifier")
    model._classifier = None  # read the new one back
    (folder / CARD_NAME).write_text(model_card(model))
    print(f"wrote {folder / 'classifier'}: test accuracy {classifier.meta['test_accuracy']:.3f} on "
          f"{classifier.meta.get('test_images', '?')} real test images, "
          f"{classifier.meta.get('far_accuracy', float('nan')):.3f} of them seen from afar")
    return 0
