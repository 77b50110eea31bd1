"""Checkpoints: a folder per model that carries its own config, and one ``load(name_or_path)``.

Our format (``FORMAT``)::

    <folder>/config.json        family, model config, noise schedule, dataset and class names, training facts,
                                measured metrics, and optionally "sampling": {"guidance": G, "sampler": S},
                                the model's own defaults (see ``DiffusionModel.default_guidance`` and
                                ``default_sampler``), and
                                optionally "weights_dtype": "float16" (see ``WEIGHT_DTYPES``)
    <folder>/model.safetensors  the (EMA) weights, float32 or float16 on disk; always float32 once loaded
    <folder>/README.md          the model card

``load`` also takes a diffusers ``UNet2DModel`` folder (``config.json`` +
``diffusion_pytorch_model.safetensors``, at the root or under ``unet/``, with an optional
``scheduler_config.json``) or a Hugging Face Hub id of one; those load as unconditional models.
Only tensors are ever read from weight files: safetensors, or .bin through ``weights_only``.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model

from .defaults import DEFAULT_GUIDANCE, DEFAULT_SAMPLER, MAX_GUIDANCE
from .device import pick_device
from .models import Denoiser, UnconditionalDenoiser, from_config
from .schedule import NoiseSchedule

FORMAT = "ddpm-checkpoint/1"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
REPO_ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS_DIR = REPO_ROOT / "checkpoints"
HUB_PATTERNS = ["*.json", "*.safetensors", "*.bin", "*.md"]  # when the repository's listing is out of reach
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# How a checkpoint may store its floating-point weights. float16 halves the file (a Space's git takes
# files over 10 MB only through LFS) for a rounding of ~5e-4 relative per weight; the model still
# computes in float32, as loading casts back. A model keeps its storage dtype in meta, so a loaded
# float16 checkpoint saves as float16 again.
WEIGHT_DTYPES = {"float32": torch.float32, "float16": torch.float16}


@dataclass
class DiffusionModel:
    """A denoiser together with the noise schedule it was trained on and what its classes mean."""

    denoiser: Denoiser
    schedule: NoiseSchedule
    class_names: list[str] | None = None     # None for an unconditional model
    dataset: str | None = None
    name: str = "model"
    meta: dict = field(default_factory=dict)  # training facts and measured metrics, as in config.json
    _compiled: object = field(default=None, init=False, repr=False, compare=False)

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    @property
    def image_size(self) -> int:
        return self.denoiser.image_size

    @property
    def channels(self) -> int:
        return self.denoiser.channels

    @property
    def default_guidance(self) -> float:
        """The guidance scale this model samples best at: its config's ``"sampling": {"guidance": G}``,
        chosen from a measured sweep, else the library's ``DEFAULT_GUIDANCE``."""
        return float(self.meta.get("sampling", {}).get("guidance", DEFAULT_GUIDANCE))

    @property
    def default_sampler(self) -> str:
        """The sampler this model samples best with: its config's ``"sampling": {"sampler": S}``, chosen
        from measured rows, else the library's ``DEFAULT_SAMPLER``."""
        return str(self.meta.get("sampling", {}).get("sampler", DEFAULT_SAMPLER))

    @property
    def weights_dtype(self) -> str:
        """How ``save`` stores the weights: ``meta["weights_dtype"]``, float32 unless set."""
        return str(self.meta.get("weights_dtype", "float32"))

    @property
    def conditional(self) -> bool:
        return self.denoiser.num_classes is not None

    def to(self, device: torch.device | str | None = None) -> DiffusionModel:
        self.denoiser.to(pick_device(device))
        return self

    def compiled(self):
        """A ``torch.compile``d forward of the denoiser, built once and kept."""
        if self._compiled is None:
            self._compiled = torch.compile(self.denoiser)
        return self._compiled

    @property
    def classes(self) -> list[str]:
        """The class names, ``"0"``, ``"1"``, ... where the checkpoint names none; [] for an unconditional model."""
        if not self.conditional:
            return []
        return list(self.class_names or [str(i) for i in range(self.denoiser.num_classes)])

    def label_ids(self, labels) -> list[int]:
        """Class names or indices (mixed, any case for names) -> indices. Raises ValueError on unknown ones."""
        if not self.conditional:
            raise ValueError(f"model {self.name!r} is unconditional: it takes no class labels")
        names = self.classes
        lookup = {n.lower(): i for i, n in enumerate(names)}
        ids = []
        for label in labels:
            key = str(label).strip()
            if key.lower() in lookup:  # a name wins over an index ("3" is the digit 3 for mnist)
                ids.append(lookup[key.lower()])
            elif key.lstrip("-").isdigit() and 0 <= int(key) < len(names):
                ids.append(int(key))
            else:
                raise ValueError(f"unknown class {label!r} for model {self.name!r}; classes: {', '.join(names)}")
        return ids

    def config_dict(self) -> dict:
        return {"format": FORMAT, "family": self.denoiser.family, "model": self.denoiser.config(),
                "schedule": self.schedule.to_dict(),
                "data": {"dataset": self.dataset, "class_names": self.class_names,
                         "image_size": self.image_size, "channels": self.channels},
                **self.meta}

    def save(self, folder: str | Path, card: str | None = None) -> Path:
        """Write config.json, model.safetensors and (if given) the model card README.md."""
        _check_weights_dtype(self.weights_dtype, where=f"model {self.name!r}")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        denoiser = self.denoiser
        if self.weights_dtype != "float32":
            import copy

            denoiser = copy.deepcopy(denoiser).to(WEIGHT_DTYPES[self.weights_dtype])
        save_model(denoiser, str(folder / WEIGHTS_NAME))
        (folder / CONFIG_NAME).write_text(json.dumps(self.config_dict(), indent=2) + "\n")
        if card is not None:
            (folder / CARD_NAME).write_text(card)
        return folder


def bundled() -> list[str]:
    """Names of the models under checkpoints/ (folders that hold a config.json)."""
    if not CHECKPOINTS_DIR.is_dir():
        return []
    return sorted(p.name for p in CHECKPOINTS_DIR.iterdir() if (p / CONFIG_NAME).is_file())


def resolve(name_or_path: str | Path, local: bool = True) -> Path:
    """A bundled name, a folder path, or a Hub id (downloaded when online) -> a local folder.
    ``local=False`` looks at no folder but the bundled ones: anything else is a Hub id (a hosted app's
    visitors must not load, or learn about, the server's files)."""
    text = str(name_or_path).strip()
    if not text:
        raise ValueError("no model given: name a bundled model, a checkpoint folder, or a Hub id")
    if (CHECKPOINTS_DIR / text / CONFIG_NAME).is_file() and (local or text in bundled()):
        return CHECKPOINTS_DIR / text
    path = Path(text).expanduser()
    if local and path.exists():
        if not path.is_dir():
            raise ValueError(f"{path} is a file; a model is a folder with config.json and weights")
        return path
    if HUB_ID.match(text) and not text.startswith((".", "/")):
        from huggingface_hub import HfApi, snapshot_download
        try:  # what the repository holds, to fetch only what a model needs (and refuse a huge one)
            sizes = {f.rfilename: f.size or 0 for f in HfApi().model_info(text, files_metadata=True).siblings or []}
        except Exception:  # offline or no such repository: the download below says which, or finds a cached copy
            sizes = None
        wanted = HUB_PATTERNS if sizes is None else hub_files(text, sizes)
        try:
            return Path(snapshot_download(text, allow_patterns=wanted))
        except Exception as err:  # offline, unknown repo, ... : say everything that was tried, briefly
            raise FileNotFoundError(
                f"no model {text!r}: no folder {path} here (in {Path.cwd()}), not a bundled model "
                f"({', '.join(bundled()) or 'none yet'}), and as a Hugging Face Hub id {_hub_failure(err)}") from err
    raise FileNotFoundError(f"no model {text!r}: not a bundled model ({', '.join(bundled()) or 'none yet'}), "
                            f"not an existing folder, not a Hub id")


def hub_files(repo_id: str, sizes: dict[str, int], max_mb: float | None = None) -> list[str]:
    """Of a Hub repository's files (path -> bytes), those a model loads: configs, weights and the card at the
    top level, in unet/ and scheduler/ (a pipeline's other parts are left), .bin only where a folder has no
    .safetensors. Over ``max_mb`` (default: $DDPM_HUB_MAX_MB or 500) in all, a ValueError, before anything
    is downloaded (a visitor of a hosted app could otherwise name a repository of many gigabytes)."""
    if max_mb is None:
        max_mb = float(os.environ.get("DDPM_HUB_MAX_MB", "500"))
    keep = [name for name in sizes if str(Path(name).parent) in (".", "unet", "scheduler")
            and Path(name).suffix in (".json", ".safetensors", ".bin", ".md")]
    has_safetensors = {str(Path(n).parent) for n in keep if n.endswith(".safetensors")}
    keep = [n for n in keep if not (n.endswith(".bin") and str(Path(n).parent) in has_safetensors)]
    total = sum(sizes[n] for n in keep) / 1e6
    if total > max_mb:
        raise ValueError(f"{repo_id} is too big to load here: its model files come to {total:,.0f} MB, over the "
                         f"{max_mb:g} MB limit (DDPM_HUB_MAX_MB); this app runs small pixel-space UNets")
    return keep


def _hub_failure(err: Exception) -> str:
    """Why the Hub gave no model, in a few words (huggingface_hub's own messages run to paragraphs)."""
    from huggingface_hub import errors

    if isinstance(err, errors.LocalEntryNotFoundError):
        return "it could not be fetched: the Hub is out of reach (offline?) and it is not in the local Hub cache"
    if isinstance(err, errors.RepositoryNotFoundError):  # GatedRepoError is one too
        return "it does not exist, or is private or gated (log in with `hf auth login`)"
    first_line = (str(err).strip().splitlines() or [""])[0]
    return f"it could not be fetched ({type(err).__name__}: {first_line})"


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} should hold a JSON object")
    return data


def _load_weights(denoiser: Denoiser, weights: Path) -> None:
    if not weights.is_file():
        raise FileNotFoundError(f"weights file {weights} is missing")
    try:
        missing, unexpected = load_model(denoiser, str(weights), strict=False)
    except Exception as err:  # truncated file, shape mismatch, not safetensors at all
        raise ValueError(f"could not load weights from {weights}: {err}") from None
    if missing or unexpected:
        raise ValueError(f"weights in {weights} do not fit the model in its config.json "
                         f"(missing {sorted(missing)[:3]}..., unexpected {sorted(unexpected)[:3]}...)")


def _load_ours(folder: Path, config: dict) -> DiffusionModel:
    try:
        denoiser = from_config(config["family"], config["model"])
        schedule = NoiseSchedule.from_dict(config.get("schedule", {}))
    except (KeyError, TypeError) as err:
        raise ValueError(f"{folder / CONFIG_NAME} is incomplete or malformed: {err!r}") from None
    _load_weights(denoiser, folder / WEIGHTS_NAME)
    data = config.get("data", {})
    meta = {k: v for k, v in config.items() if k not in ("format", "family", "model", "schedule", "data")}
    _check_sampling(folder, meta.get("sampling", {}))
    _check_weights_dtype(meta.get("weights_dtype", "float32"), where=str(folder / CONFIG_NAME))
    return DiffusionModel(denoiser.eval(), schedule, data.get("class_names"), data.get("dataset"),
                          name=folder.name, meta=meta)


def _check_sampling(folder: Path, sampling) -> None:
    """A config's ``"sampling"`` defaults must be usable, or loading says which line is wrong."""
    from .schedule import SAMPLERS

    def good(key, value) -> bool:
        if key == "guidance":
            return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= MAX_GUIDANCE
        return key == "sampler" and value in SAMPLERS

    if not isinstance(sampling, dict) or not all(good(k, v) for k, v in sampling.items()):
        raise ValueError(f'{folder / CONFIG_NAME}: "sampling" should be {{"guidance": a number from 0 to '
                         f'{MAX_GUIDANCE:g}, "sampler": one of {", ".join(SAMPLERS)}}} (either may be left out), '
                         f"got {sampling!r}")


def _check_weights_dtype(dtype, where: str) -> None:
    if dtype not in WEIGHT_DTYPES:
        raise ValueError(f'{where}: "weights_dtype" should be one of {", ".join(WEIGHT_DTYPES)}, got {dtype!r}')


def _load_diffusers_unet(folder: Path) -> DiffusionModel:
    """An unconditional diffusers UNet2DModel folder or pipeline folder (with unet/ and scheduler/)."""
    from diffusers import UNet2DModel

    unet_dir = folder / "unet" if (folder / "unet" / CONFIG_NAME).is_file() else folder
    safetensors = list(unet_dir.glob("diffusion_pytorch_model*.safetensors"))
    if not safetensors and not list(unet_dir.glob("diffusion_pytorch_model*.bin")):
        raise FileNotFoundError(f"{unet_dir} has no diffusion_pytorch_model.safetensors (or .bin) weights")
    # .bin files (older Hub repos) are read by diffusers with torch.load(weights_only=True): tensors only.
    unet = UNet2DModel.from_pretrained(unet_dir, use_safetensors=bool(safetensors))
    schedule = NoiseSchedule()
    for candidate in (folder / "scheduler" / "scheduler_config.json", folder / "scheduler_config.json"):
        if candidate.is_file():
            sc = _read_json(candidate)
            kind = {"linear": "linear", "squaredcos_cap_v2": "cosine"}.get(sc.get("beta_schedule", "linear"))
            if kind is None:
                raise ValueError(f"{candidate}: beta_schedule {sc['beta_schedule']!r} is not supported")
            schedule = NoiseSchedule(kind, sc.get("num_train_timesteps", 1000),
                                     sc.get("beta_start", 1e-4), sc.get("beta_end", 0.02))
            break
    return DiffusionModel(UnconditionalDenoiser(unet).eval(), schedule, None, None, name=folder.name)


def load(name_or_path: str | Path, device: torch.device | str | None = None, local: bool = True) -> DiffusionModel:
    """Load a bundled model by name ("mnist"), a checkpoint folder (unless ``local=False``, see ``resolve``),
    or a Hub id, onto ``device``."""
    folder = resolve(name_or_path, local)
    config = _read_json(folder / CONFIG_NAME) if (folder / CONFIG_NAME).is_file() else {}
    if config.get("format") == FORMAT:
        model = _load_ours(folder, config)
    elif config.get("_class_name", "UNet2DModel") == "UNet2DModel" and (
            (folder / CONFIG_NAME).is_file() or (folder / "unet" / CONFIG_NAME).is_file()):
        model = _load_diffusers_unet(folder)
    else:
        found = (f"its config.json says {config.get('_class_name') or config.get('format')!r}"
                 if (folder / CONFIG_NAME).is_file() else "it has no config.json")
        raise ValueError(f"{folder} is neither a ddpm checkpoint nor a diffusers UNet2DModel folder ({found})")
    return model.to(device)
