"""Share the app and the models: publish this repository (app, library, checkpoints, examples) as a Hugging
Face Space, or one checkpoint folder as a Hub model repository; and write the example images the app offers.

    python -m ddpm.publish USER/SPACE [--private] [--dry-run]                # create the Space and upload
    python -m ddpm.publish USER/MODEL --model fashion [--private] [--dry-run]  # one model, as a model repo
    python -m ddpm.publish --write-examples                                   # examples/<dataset>/*.png

A published model is its folder as it is (diffusers' layout: ``ddpm.checkpoint``), with its card regenerated
so that its snippets load from the repository. No Gradio here. ``publish`` and ``publish_model`` take an
``api`` object (``huggingface_hub.HfApi`` by default) so tests can stand a fake in for the network; a token
comes from ``hf auth login`` or ``HF_TOKEN``. Hub errors come back as a one-line ``HubError``.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from .card import model_card
from .checkpoint import CARD_NAME, CHECKPOINTS_DIR, OWN_CONFIG, REPO_ROOT, bundled, is_v1_folder, load, resolve

EXAMPLES_DIR = REPO_ROOT / "examples"
# What a Space needs to run app.py; everything else in the repository (data, runs, tests, venvs) stays home.
SPACE_FILES = ["app.py", "README.md", "requirements.txt", "packages.txt", "LICENSE",
               "ddpm/*.py", "ddpm/configs/*.toml", "diffusion_lab/*.py", "diffusion_lab/tabs/*.py",
               "diffusion_lab/assets/*", "checkpoints/*/*", "examples/*/*.png", "examples/README.md"]
IGNORE = ["**/__pycache__/*", "*.pyc", "checkpoints/*.tmp/*", "checkpoints/*.old/*"]
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
EXAMPLES_PER_DATASET = {"mnist": 10, "fashion": 10, "letters": 8, "emoji": 9, "emoji2": 10}
EXAMPLE_SIZE = 224  # px: examples are stored upscaled (NEAREST) so the editors show them large and sharp


def check_space(root: Path = REPO_ROOT) -> list[str]:
    """Problems that would make the Space fail to build or start (empty list: ready)."""
    problems = []
    for name in ("app.py", "requirements.txt", "README.md"):
        if not (root / name).is_file():
            problems.append(f"{name} is missing")
    readme = root / "README.md"
    if readme.is_file():
        text = readme.read_text(encoding="utf-8")
        match = re.match(r"^---\n(.*?)\n---\n", text, re.DOTALL)
        if not match:
            problems.append("README.md has no Space front matter (a YAML block between --- lines at the top)")
        else:
            header = match.group(1)
            for key in ("sdk: gradio", "app_file: app.py"):
                if key not in header:
                    problems.append(f"README.md front matter lacks '{key}'")
    return problems


def publish(repo_id: str, root: Path = REPO_ROOT, api=None, private: bool = False,
            token: str | None = None, dry_run: bool = False) -> str:
    """Create (or reuse) the Space ``repo_id`` and upload the app with its checkpoints. Returns its URL.

    Raises ValueError for a malformed id or a repository that is not ready (see ``check_space``), HubError
    when the Hub says no.
    """
    if not REPO_ID.match(repo_id or ""):
        raise ValueError(f"a Space id looks like USER/NAME, got {repo_id!r}")
    problems = check_space(Path(root))
    if problems:
        raise ValueError("not ready to publish: " + "; ".join(problems))
    url = f"https://huggingface.co/spaces/{repo_id}"
    if dry_run:
        return url
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
        api.upload_folder(folder_path=str(root), repo_id=repo_id, repo_type="space", allow_patterns=SPACE_FILES,
                          ignore_patterns=IGNORE, commit_message="Publish Diffusion Lab")
    except Exception as err:  # huggingface_hub's errors run to paragraphs: one line, the cause kept
        raise _hub_error(err, repo_id) from err
    return url


class HubError(RuntimeError):
    """The Hub refused or could not be reached: one line saying why."""


def _hub_error(err: Exception, repo_id: str) -> HubError:
    from huggingface_hub import errors

    status = getattr(getattr(err, "response", None), "status_code", None)
    if status in (401, 403):
        why = "not allowed: log in with `hf auth login` (or set HF_TOKEN) with a token that may write there"
    elif isinstance(err, errors.RepositoryNotFoundError):
        why = "no such repository, or no access to it"
    elif isinstance(err, (errors.OfflineModeIsEnabled, ConnectionError, OSError)) and status is None:
        why = f"the Hub is out of reach ({type(err).__name__})"
    else:
        why = f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]}"
    return HubError(f"publishing to {repo_id} failed: {why}")


def model_files(folder: Path) -> list[str]:
    """The files of a checkpoint folder that a model repository gets (relative paths, sorted)."""
    skip = (".partial", ".pyc", ".tmp")
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.is_file() and not p.name.endswith(skip) and "__pycache__" not in p.parts)


def check_model(folder: Path) -> list[str]:
    """Problems that would publish a model the Hub and diffusers cannot use (empty list: ready)."""
    if is_v1_folder(folder):
        return [f"{folder} is in the old ddpm-checkpoint/1 layout: rewrite it with `python -m ddpm.convert {folder}`"]
    needed = (OWN_CONFIG, "unet/diffusion_pytorch_model.safetensors", "scheduler/scheduler_config.json")
    return [f"{folder} has no {name}" for name in needed if not (folder / name).is_file()]


def publish_model(model: str | Path, repo_id: str, api=None, private: bool = False, token: str | None = None,
                  dry_run: bool = False) -> tuple[str, list[str]]:
    """Create (or reuse) the model repository ``repo_id`` and upload one checkpoint folder (a bundled name or a
    path) in one commit, its card regenerated for the repository. Returns its URL and the files sent.

    ValueError for a malformed id or a folder that is not ready (see ``check_model``); HubError from the Hub."""
    if not REPO_ID.match(repo_id or ""):
        raise ValueError(f"a model repository id looks like USER/NAME, got {repo_id!r}")
    folder = resolve(model)
    problems = check_model(folder)
    if problems:
        raise ValueError("not ready to publish: " + "; ".join(problems))
    card = model_card(load(folder, device="cpu"), repo_id=repo_id)
    files = sorted(set(model_files(folder)) | {CARD_NAME})
    url = f"https://huggingface.co/{repo_id}"
    if dry_run:
        return url, files
    from huggingface_hub import CommitOperationAdd

    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=card.encode() if name == CARD_NAME
                                     else str(folder / name)) for name in files]
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.create_commit(repo_id=repo_id, repo_type="model", operations=operations,
                          commit_message=f"Publish the ddpm model {folder.name}")
    except Exception as err:  # huggingface_hub's errors run to paragraphs: one line, the cause kept
        raise _hub_error(err, repo_id) from err
    return url, files


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "class"


def write_examples(datasets=None, out: Path = EXAMPLES_DIR, root: Path | None = None, log=print) -> list[Path]:
    """Save one test-set image per class (up to ``EXAMPLES_PER_DATASET``) as ``out/<dataset>/<class>.png``,
    upscaled to ``EXAMPLE_SIZE`` px. Datasets not fetched yet (``python -m ddpm data fetch``) are skipped."""
    import numpy as np
    from PIL import Image

    from .data import load

    written = []
    for name in datasets or EXAMPLES_PER_DATASET:
        try:
            test = load(name, "test", root=root)
        except (FileNotFoundError, ValueError) as err:
            log(f"skipping {name}: {err}")
            continue
        folder = Path(out) / name
        folder.mkdir(parents=True, exist_ok=True)
        labels = test.labels.numpy()
        for k, cls in enumerate(test.class_names[:EXAMPLES_PER_DATASET.get(name, 10)]):
            hits = np.flatnonzero(labels == k)
            if not len(hits):
                continue
            img = test.images[int(hits[0])].numpy()  # (C, H, W) uint8
            arr = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
            scale = max(1, EXAMPLE_SIZE // arr.shape[0])
            path = folder / f"{_slug(cls)}.png"
            big = (arr.shape[1] * scale, arr.shape[0] * scale)
            Image.fromarray(arr).resize(big, Image.Resampling.NEAREST).save(path)
            written.append(path)
        log(f"{name}: {len(list(folder.glob('*.png')))} examples in {folder}")
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ddpm.publish", description=__doc__.split("\n\n")[0])
    p.add_argument("repo", nargs="?", help="the Space (or, with --model, the model repository) to create or update, "
                                           "USER/NAME")
    p.add_argument("--model", help="publish this checkpoint (a bundled name or a folder) as a model repository")
    p.add_argument("--private", action="store_true", help="create the repository private")
    p.add_argument("--dry-run", action="store_true", help="check and print what would happen; nothing is sent")
    p.add_argument("--write-examples", action="store_true", help="write examples/<dataset>/*.png from the test sets")
    args = p.parse_args(argv)
    if args.write_examples:
        write_examples()
        if not args.repo:
            return 0
    if not args.repo:
        p.error("give a repository id USER/NAME (or --write-examples)")
    try:
        if args.model:
            url, files = publish_model(args.model, args.repo, private=args.private, dry_run=args.dry_run)
            print(("would publish " if args.dry_run else "published ") + f"{args.model} ({len(files)} files: "
                  f"{', '.join(files)}) to {url}")
            return 0
        models = bundled()
        if not models:
            print(f"warning: no checkpoints under {CHECKPOINTS_DIR}: the Space will start with no model",
                  file=sys.stderr)
        url = publish(args.repo, root=REPO_ROOT, private=args.private, dry_run=args.dry_run)
    except (ValueError, FileNotFoundError, HubError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(("would publish " if args.dry_run else "published ") + f"{', '.join(models) or 'no models'} to {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
