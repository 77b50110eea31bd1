"""Share the app: publish this repository (app, library, checkpoints, examples) as a Hugging Face Space,
and write the small example images the app offers.

    python -m ddpm.publish USER/SPACE [--private] [--dry-run]   # create the Space and upload
    python -m ddpm.publish --write-examples                      # examples/<dataset>/*.png from the test sets

No Gradio here. ``publish`` takes an ``api`` object (``huggingface_hub.HfApi`` by default) so tests can
stand a fake in for the network; a token comes from ``huggingface-cli login`` or ``HF_TOKEN``.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from .checkpoint import CHECKPOINTS_DIR, REPO_ROOT, bundled

EXAMPLES_DIR = REPO_ROOT / "examples"
# What a Space needs to run app.py; everything else in the repository (data, runs, tests, venvs) stays home.
SPACE_FILES = ["app.py", "README.md", "requirements.txt", "packages.txt", "LICENSE",
               "ddpm/*.py", "ddpm/configs/*.toml", "diffusion_lab/*.py", "diffusion_lab/tabs/*.py",
               "diffusion_lab/assets/*", "checkpoints/*/*", "examples/*/*.png", "examples/README.md"]
IGNORE = ["**/__pycache__/*", "*.pyc", "checkpoints/*.tmp/*", "checkpoints/*.old/*"]
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
EXAMPLES_PER_DATASET = {"mnist": 10, "fashion": 10, "letters": 8, "emoji": 9}
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

    Raises ValueError for a malformed id or a repository that is not ready (see ``check_space``).
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
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    api.upload_folder(folder_path=str(root), repo_id=repo_id, repo_type="space", allow_patterns=SPACE_FILES,
                      ignore_patterns=IGNORE, commit_message="Publish Diffusion Lab")
    return url


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
    p.add_argument("space", nargs="?", help="the Space to create or update, USER/NAME")
    p.add_argument("--private", action="store_true", help="create the Space private")
    p.add_argument("--dry-run", action="store_true", help="check the repository and print what would happen")
    p.add_argument("--write-examples", action="store_true", help="write examples/<dataset>/*.png from the test sets")
    args = p.parse_args(argv)
    if args.write_examples:
        write_examples()
        if not args.space:
            return 0
    if not args.space:
        p.error("give a Space id USER/NAME (or --write-examples)")
    models = bundled()
    if not models:
        print(f"warning: no checkpoints under {CHECKPOINTS_DIR}: the Space will start with no model", file=sys.stderr)
    try:
        url = publish(args.space, root=REPO_ROOT, private=args.private, dry_run=args.dry_run)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(("would publish " if args.dry_run else "published ") + f"{', '.join(models) or 'no models'} to {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
