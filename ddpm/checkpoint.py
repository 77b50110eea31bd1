"""Checkpoints: a folder per model that carries its own config, and one ``load(name_or_path)``.

Our format (``FORMAT``) is diffusers' layout, with our own file at the top::

    <folder>/ddpm_config.json   ours (``OWN_CONFIG``): format, family, dataset and class names, image size, training
                                facts, measured metrics ("metrics": {"rows": [...]}, written by ``evaluate
                                --write-card``), optionally "sampling": {"guidance": G, "sampler": S} (the model's
                                own defaults: ``DiffusionModel.default_guidance``, ``default_sampler``) and
                                "weights_dtype": "float16" (see ``WEIGHT_DTYPES``)
    <folder>/unet/              the network: config.json (written by ``@register_to_config``) and
                                diffusion_pytorch_model.safetensors, the (EMA) weights, the only copy; so
                                ``UNet2DModel.from_pretrained(folder, subfolder="unet")`` (unet2d families) or
                                ``ScratchUNet.from_pretrained(folder, subfolder="unet")`` (scratch) loads it
    <folder>/class_embedding/   unet2d-concat only: its class embedding, a part of its own (same two files)
    <folder>/scheduler/         scheduler_config.json: the noise schedule as a diffusers ``DDPMScheduler``
    <folder>/classifier/        reserved: other parts a model ships with (``EXTRA_PARTS``, ``load_part``)
    <folder>/README.md          the model card, with the Hub's front matter

Our file is not called config.json because diffusers, transformers and the Hub read a top-level
config.json as the config of the one model in the repository: ``UNet2DModel.from_pretrained(folder)``
would build a default UNet from our keys, and a folder that lost ``ddpm_config.json`` is refused rather
than read as an unconditional UNet. The schedule and the network's sizes are kept once, in scheduler/
and unet/, and read from there.

``load`` also reads ``ddpm-checkpoint/1`` folders (``config.json`` with ``"format": "ddpm-checkpoint/1"``
+ ``model.safetensors``; ``python -m ddpm.convert`` rewrites them), a diffusers ``UNet2DModel`` folder
(``config.json`` + ``diffusion_pytorch_model.safetensors``, at the root or under ``unet/``, with an optional
``scheduler_config.json``) or a Hugging Face Hub id of one; those load as unconditional models (``unet2d``).
Only tensors are ever read from weight files: safetensors, or .bin through ``weights_only``.
"""
from __future__ import annotations

import copy
import json
import os
import re
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import torch
from diffusers import DDPMScheduler
from safetensors.torch import load_model

from .defaults import DEFAULT_GUIDANCE, DEFAULT_SAMPLER, MAX_GUIDANCE, checkpoints_dir
from .device import pick_device
from .models import FAMILIES, Denoiser, UnconditionalDenoiser, family_class, from_config
from .schedule import NoiseSchedule

FORMAT = "ddpm-checkpoint/2"
FORMAT_V1 = "ddpm-checkpoint/1"  # config.json + model.safetensors, read by ``load``, rewritten by ddpm.convert
OWN_CONFIG = "ddpm_config.json"
CONFIG_NAME = "config.json"  # a diffusers model's config (in unet/, ...), and a ddpm-checkpoint/1 folder's own
WEIGHTS_NAME = "model.safetensors"  # a ddpm-checkpoint/1 folder's weights
PART_WEIGHTS = "diffusion_pytorch_model.safetensors"
SCHEDULER_DIR, SCHEDULER_CONFIG = "scheduler", "scheduler_config.json"
CARD_NAME = "README.md"
# Other parts a model may ship with, each in a subfolder of its own: config.json + model.safetensors. Reserved,
# not written by ``save``: the tool that makes a part writes it into the folder (the illusions work ships a small
# classifier of the model's classes); ``load_part`` reads one, or gives None where a model has none.
EXTRA_PARTS = ("classifier",)
REPO_ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS_DIR = checkpoints_dir()  # <repo>/checkpoints, or ddpm/checkpoints once installed
HUB_PATTERNS = ["*.json", "*.safetensors", "*.bin", "*.md"]  # when the repository's listing is out of reach
HUB_FOLDERS = (".", "unet", "scheduler", "class_embedding", *EXTRA_PARTS)  # what a model loads from the Hub
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# How a checkpoint may store its floating-point weights. float16 halves the file (a Space's git takes
# files over 10 MB only through LFS) for a rounding of ~5e-4 relative per weight; the model still
# computes in float32, as loading casts back. A model keeps its storage dtype in meta, so a loaded
# float16 checkpoint saves as float16 again.
WEIGHT_DTYPES = {"float32": torch.float32, "float16": torch.float16}
# Our schedule kinds as diffusers names them in a scheduler's "beta_schedule"
BETA_SCHEDULES = {"linear": "linear", "cosine": "squaredcos_cap_v2"}
T = TypeVar("T")


@dataclass
class DiffusionModel:
    """A denoiser together with the noise schedule it was trained on and what its classes mean."""

    denoiser: Denoiser
    schedule: NoiseSchedule
    class_names: list[str] | None = None     # None for an unconditional model
    dataset: str | None = None
    name: str = "model"
    meta: dict = field(default_factory=dict)  # training facts and measured metrics, as in ddpm_config.json
    folder: Path | None = None                # where it was loaded from (its extra parts live there)
    _compiled: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _classifier: object = field(default=None, init=False, repr=False, compare=False)

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
        device = pick_device(device)
        if device != self.device:
            self._compiled.clear()  # a compiled forward runs on the device it was built for
        self.denoiser.to(device)
        return self

    def compiled(self, dtype: str = "float32", build: bool = True):
        """The denoiser's compiled forward in ``dtype`` for the weights as they are now: its AOTInductor package
        from the compile cache (``ddpm.aot``: loaded in milliseconds; built here first when missing, tens of
        seconds on a CPU), or, where export or the compiler fails, a ``torch.compile``d denoiser. Kept per
        precision under the package's name, which hashes the weights (8 ms for mnist's): a model trained
        further gets the forward of its new weights, never the old one. ``build=False``: None where the cache
        has no package for them (nothing is compiled in this process)."""
        from . import aot
        from .device import dtype_name

        dtype = dtype_name(dtype, self.device)
        path = aot.package_path(self, dtype)
        kept = self._compiled.get(dtype)
        if kept is not None and kept[0] == path:
            return kept[1]
        self._compiled.pop(dtype, None)  # other weights' forward
        forward = aot.load(self, dtype, path)
        if forward is None and not build:
            return None
        if forward is None:
            try:
                forward = aot.load(self, dtype, aot.build(self, dtype, path))
            except Exception as err:  # noqa: BLE001 - export or the C++ compiler failed: compile in process
                warnings.warn(f"model {self.name!r}: no ahead-of-time package ({type(err).__name__}: "
                              f"{str(err)[:200]}); using torch.compile", stacklevel=2)
                forward = torch.compile(self.denoiser)
        self._compiled[dtype] = (path, forward)
        return forward

    def holds_compiled(self, dtype: str) -> bool:
        """Whether the last ``compiled(dtype)`` gave a forward (what a ``compile="auto"`` estimate just took),
        without hashing the weights again."""
        from .device import dtype_name

        return dtype_name(dtype, self.device) in self._compiled

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
        """What ``ddpm_config.json`` holds: ours alone (the network's config is in unet/, the schedule in
        scheduler/)."""
        return {"format": FORMAT, "family": self.denoiser.family,
                "data": {"dataset": self.dataset, "class_names": self.class_names,
                         "image_size": self.image_size, "channels": self.channels},
                **self.meta}

    def save(self, folder: str | Path, card: str | None = None) -> Path:
        """Write the folder (see the module's docstring): ddpm_config.json, each part of the denoiser with
        diffusers' ``save_pretrained`` (unet/, ...), scheduler/, and (if given) the model card README.md.

        A model already in ``folder`` is replaced (a ``ddpm-checkpoint/1`` one's config.json + model.safetensors,
        another family's class_embedding/): one copy of the weights. Extra parts there (classifier/) stay."""
        _check_weights_dtype(self.weights_dtype, where=f"model {self.name!r}")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        dtype = WEIGHT_DTYPES[self.weights_dtype]
        parts = self.denoiser.parts()
        for name, part in parts.items():
            if dtype != torch.float32:
                part = copy.deepcopy(part).to(dtype)
            part.save_pretrained(folder / name, safe_serialization=True)
        for stale in {name for cls in FAMILIES.values() for name in cls.part_classes} - set(parts):
            shutil.rmtree(folder / stale, ignore_errors=True)  # another family's part, saved here before
        scheduler_for(self.schedule).save_pretrained(folder / SCHEDULER_DIR)
        (folder / OWN_CONFIG).write_text(json.dumps(self.config_dict(), indent=2) + "\n")
        if is_v1_folder(folder):
            (folder / CONFIG_NAME).unlink()
            (folder / WEIGHTS_NAME).unlink(missing_ok=True)
        if card is not None:
            (folder / CARD_NAME).write_text(card)
        return folder

    def part(self, name: str, loader: Callable[[Path], T]) -> T | None:
        """An extra part this model ships with (``EXTRA_PARTS``), read by ``loader``; None where it has none."""
        return load_part(self.folder, name, loader) if self.folder is not None else None

    @property
    def classifier(self):
        """The small classifier of this model's own classes that its folder ships in ``classifier/``
        (``python -m ddpm classifier --model NAME`` writes it), loaded once, on the model's device; None for a
        model without one (a Hub UNet, a checkpoint from before): such a model has no illusion scores."""
        if self._classifier is None and self.folder is not None:
            from . import classifier  # the classifier module is a leaf of ours (data, device): no cycle

            found = self.part("classifier", lambda folder: classifier.load(folder, self.device))
            self._classifier = found if found is not None else False
        return self._classifier or None


def load_part(folder: str | Path, name: str, loader: Callable[[Path], T]) -> T | None:
    """The hook for the parts a model ships with besides its denoiser (``EXTRA_PARTS``): ``loader(folder / name)``
    where that subfolder holds a config.json, else None (a Hub UNet, a model trained before the part existed)."""
    if name not in EXTRA_PARTS:
        raise ValueError(f"unknown part {name!r}; a checkpoint may ship: {', '.join(EXTRA_PARTS)}")
    part = Path(folder) / name
    return loader(part) if (part / CONFIG_NAME).is_file() else None


def scheduler_for(schedule: NoiseSchedule) -> DDPMScheduler:
    """Our schedule as a diffusers ``DDPMScheduler`` (what scheduler/ holds): the same betas, bit for bit, set
    up as our ``ddpm`` sampler uses it. Other schedulers configure from it: ``DPMSolverMultistepScheduler
    .from_pretrained(folder, subfolder="scheduler", ...)`` (the "trailing" spacing comes along)."""
    return DDPMScheduler(num_train_timesteps=schedule.num_timesteps, beta_schedule=BETA_SCHEDULES[schedule.kind],
                         beta_start=schedule.beta_start, beta_end=schedule.beta_end, prediction_type="epsilon",
                         clip_sample=True, variance_type="fixed_small", timestep_spacing="trailing")


def schedule_from(scheduler_config: dict, where: Path) -> NoiseSchedule:
    """The schedule of a diffusers scheduler config (ours, or a Hub model's); ValueError for one we cannot run."""
    kinds = {v: k for k, v in BETA_SCHEDULES.items()}
    beta_schedule = scheduler_config.get("beta_schedule", "linear")
    if beta_schedule not in kinds or scheduler_config.get("trained_betas") is not None:
        raise ValueError(f"{where}: beta_schedule {beta_schedule!r} is not supported (only {', '.join(kinds)})")
    if scheduler_config.get("prediction_type", "epsilon") != "epsilon":
        raise ValueError(f"{where}: prediction_type {scheduler_config['prediction_type']!r} is not supported: "
                         f"our samplers take models that predict the noise (epsilon)")
    try:
        return NoiseSchedule(kinds[beta_schedule], scheduler_config.get("num_train_timesteps", 1000),
                             scheduler_config.get("beta_start", 1e-4), scheduler_config.get("beta_end", 0.02))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from None


def own_config_path(folder: str | Path) -> Path | None:
    """The file of ours in a checkpoint folder (ddpm_config.json, or a ddpm-checkpoint/1 config.json), or None."""
    folder = Path(folder)
    if (folder / OWN_CONFIG).is_file():
        return folder / OWN_CONFIG
    return folder / CONFIG_NAME if is_v1_folder(folder) else None


def is_v1_folder(folder: Path) -> bool:
    try:
        return json.loads((folder / CONFIG_NAME).read_text()).get("format") == FORMAT_V1
    except (OSError, ValueError, AttributeError):
        return False


def _holds_a_model(folder: Path) -> bool:
    return (folder / OWN_CONFIG).is_file() or (folder / CONFIG_NAME).is_file()


def bundled() -> list[str]:
    """Names of the models under checkpoints/ (folders that hold a ddpm_config.json or a config.json)."""
    if not CHECKPOINTS_DIR.is_dir():
        return []
    return sorted(p.name for p in CHECKPOINTS_DIR.iterdir() if _holds_a_model(p))


def resolve(name_or_path: str | Path, local: bool = True) -> Path:
    """A bundled name, a folder path, or a Hub id (downloaded when online) -> a local folder.
    ``local=False`` looks at no folder but the bundled ones: anything else is a Hub id (a hosted app's
    visitors must not load, or learn about, the server's files)."""
    text = str(name_or_path).strip()
    if not text:
        raise ValueError("no model given: name a bundled model, a checkpoint folder, or a Hub id")
    if _holds_a_model(CHECKPOINTS_DIR / text) and (local or text in bundled()):
        return CHECKPOINTS_DIR / text
    path = Path(text).expanduser()
    if local and path.exists():
        if not path.is_dir():
            raise ValueError(f"{path} is a file; a model is a folder with ddpm_config.json (or config.json) "
                             f"and weights")
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
    top level and in ``HUB_FOLDERS`` (a pipeline's other parts, a vae, are left), .bin only where a folder has no
    .safetensors. Over ``max_mb`` (default: $DDPM_HUB_MAX_MB or 500) in all, a ValueError, before anything
    is downloaded (a visitor of a hosted app could otherwise name a repository of many gigabytes)."""
    if max_mb is None:
        max_mb = float(os.environ.get("DDPM_HUB_MAX_MB", "500"))
    keep = [name for name in sizes if str(Path(name).parent) in HUB_FOLDERS
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


def _load_v2(folder: Path, config: dict) -> DiffusionModel:
    where = folder / OWN_CONFIG
    if config.get("format") != FORMAT:
        raise ValueError(f"{where}: format {config.get('format')!r} is not one this library reads ({FORMAT})")
    try:
        cls = family_class(config["family"])
    except KeyError:
        raise ValueError(f"{where} is incomplete: it names no model family") from None
    parts = {name: _load_part_model(folder / name, klass, cls.family) for name, klass in cls.part_classes.items()}
    denoiser = cls.from_parts(parts)
    schedule = schedule_from(_read_json(folder / SCHEDULER_DIR / SCHEDULER_CONFIG), folder / SCHEDULER_DIR)
    return _model(folder, where, denoiser, schedule, config, ("format", "family", "data"))


def _load_part_model(part_dir: Path, klass: type, family: str):
    """One part (unet/, ...) of a checkpoint: a diffusers model class rebuilt from its config.json, then its weights."""
    config = _read_json(part_dir / CONFIG_NAME)
    if config.get("_class_name") != klass.__name__:
        raise ValueError(f"{part_dir / CONFIG_NAME} holds a {config.get('_class_name')!r}; a {family} model keeps a "
                         f"{klass.__name__} there")
    try:
        model = klass.from_config(config)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{part_dir / CONFIG_NAME} is malformed: {err}") from None
    _load_weights(model, part_dir / PART_WEIGHTS)
    return model


def _load_v1(folder: Path, config: dict) -> DiffusionModel:
    try:
        denoiser = from_config(config["family"], config["model"])
        schedule = NoiseSchedule.from_dict(config.get("schedule", {}))
    except (KeyError, TypeError) as err:
        raise ValueError(f"{folder / CONFIG_NAME} is incomplete or malformed: {err!r}") from None
    _load_weights(denoiser, folder / WEIGHTS_NAME)
    return _model(folder, folder / CONFIG_NAME, denoiser, schedule, config,
                  ("format", "family", "model", "schedule", "data"))


def _model(folder: Path, where: Path, denoiser: Denoiser, schedule: NoiseSchedule, config: dict,
           structural: tuple[str, ...]) -> DiffusionModel:
    """A loaded model with its data and its meta (every other key of our file), checked."""
    data = config.get("data", {})
    meta = {k: v for k, v in config.items() if k not in structural}
    _check_sampling(where, meta.get("sampling", {}))
    _check_weights_dtype(meta.get("weights_dtype", "float32"), where=str(where))
    return DiffusionModel(denoiser.eval(), schedule, data.get("class_names"), data.get("dataset"),
                          name=folder.name, meta=meta, folder=folder)


def _check_sampling(where: Path, sampling) -> None:
    """A config's ``"sampling"`` defaults must be usable, or loading says which line is wrong."""
    from .schedule import SAMPLERS

    def good(key, value) -> bool:
        if key == "guidance":
            return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= MAX_GUIDANCE
        return key == "sampler" and value in SAMPLERS

    if not isinstance(sampling, dict) or not all(good(k, v) for k, v in sampling.items()):
        raise ValueError(f'{where}: "sampling" should be {{"guidance": a number from 0 to '
                         f'{MAX_GUIDANCE:g}, "sampler": one of {", ".join(SAMPLERS)}}} (either may be left out), '
                         f"got {sampling!r}")


def _check_weights_dtype(dtype, where: str) -> None:
    if dtype not in WEIGHT_DTYPES:
        raise ValueError(f'{where}: "weights_dtype" should be one of {", ".join(WEIGHT_DTYPES)}, got {dtype!r}')


def _load_diffusers_unet(folder: Path) -> DiffusionModel:
    """An unconditional diffusers UNet2DModel folder or pipeline folder (with unet/ and scheduler/)."""
    from diffusers import UNet2DModel

    unet_dir = folder / "unet" if (folder / "unet" / CONFIG_NAME).is_file() else folder
    unet_config = _read_json(unet_dir / CONFIG_NAME)
    ours = [p for p in ("class_embedding", *EXTRA_PARTS) if (folder / p).is_dir()]
    if unet_config.get("_class_name") == "ScratchUNet" or unet_config.get("num_class_embeds") or ours:
        what = (f"its {', '.join(ours)}/" if ours else f"its {unet_config.get('_class_name')} with "
                f"num_class_embeds={unet_config.get('num_class_embeds')}")
        raise ValueError(f"{folder} is a ddpm checkpoint ({what}) without its {OWN_CONFIG}, which names its "
                         f"family and classes: put that file back (it is not loaded as an unconditional UNet)")
    if unet_config.get("_class_name", "UNet2DModel") != "UNet2DModel":
        raise ValueError(f"{folder} is neither a ddpm checkpoint nor a diffusers UNet2DModel folder (its "
                         f"{(unet_dir / CONFIG_NAME).relative_to(folder)} says {unet_config['_class_name']!r})")
    safetensors = list(unet_dir.glob("diffusion_pytorch_model*.safetensors"))
    if not safetensors and not list(unet_dir.glob("diffusion_pytorch_model*.bin")):
        raise FileNotFoundError(f"{unet_dir} has no diffusion_pytorch_model.safetensors (or .bin) weights")
    # .bin files (older Hub repos) are read by diffusers with torch.load(weights_only=True): tensors only.
    unet = UNet2DModel.from_pretrained(unet_dir, use_safetensors=bool(safetensors))
    schedule = NoiseSchedule()
    for candidate in (folder / SCHEDULER_DIR / SCHEDULER_CONFIG, folder / SCHEDULER_CONFIG):
        if candidate.is_file():
            schedule = schedule_from(_read_json(candidate), candidate)
            break
    return DiffusionModel(UnconditionalDenoiser(unet).eval(), schedule, None, None, name=folder.name, folder=folder)


def load(name_or_path: str | Path, device: torch.device | str | None = None, local: bool = True) -> DiffusionModel:
    """Load a bundled model by name ("mnist"), a checkpoint folder (unless ``local=False``, see ``resolve``),
    or a Hub id, onto ``device``."""
    folder = resolve(name_or_path, local)
    config = _read_json(folder / CONFIG_NAME) if (folder / CONFIG_NAME).is_file() else {}
    if (folder / OWN_CONFIG).is_file():
        model = _load_v2(folder, _read_json(folder / OWN_CONFIG))
    elif config.get("format") == FORMAT_V1:
        model = _load_v1(folder, config)
    elif "format" in config:
        raise ValueError(f"{folder / CONFIG_NAME}: format {config['format']!r} is not one this library reads "
                         f"({FORMAT}, or {FORMAT_V1})")
    elif config.get("_class_name", "UNet2DModel") == "UNet2DModel" and (
            (folder / CONFIG_NAME).is_file() or (folder / "unet" / CONFIG_NAME).is_file()):
        model = _load_diffusers_unet(folder)
    else:
        found = (f"its config.json says {config.get('_class_name')!r}" if (folder / CONFIG_NAME).is_file()
                 else f"it has no config.json (nor {OWN_CONFIG})")
        raise ValueError(f"{folder} is neither a ddpm checkpoint nor a diffusers UNet2DModel folder ({found})")
    return model.to(device)
