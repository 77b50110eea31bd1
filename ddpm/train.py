"""Training with accelerate: the same script runs on this CPU and, unchanged, under
``accelerate launch`` on several GPUs.

Objective: the simple DDPM loss ``|| eps - eps_theta(sqrt(abar_t) x0 + sqrt(1-abar_t) eps, t, y) ||^2``
with t uniform over [0, T-1] and y replaced by the null label with probability ``p_uncond`` (so
one network learns both the conditional and the unconditional estimate classifier-free guidance
needs). AdamW, warmup + cosine learning rate, EMA weights, gradient clipping.

The run's settings are a :class:`~ddpm.train_config.TrainConfig`. Everything lives under ``out_dir``:
``state/`` (resumable: weights, EMA, optimizer, step, losses), ``samples/step_XXXXXXX.png`` grids,
``loss.png`` and, at the end, ``final/`` (a ddpm checkpoint of the EMA weights with config and model
card). Re-running the same command resumes.

``init_from`` starts a run from a finished checkpoint instead of from noise, for when its training
state is gone (a bundled model, one from the Hub): the weights (and so the EMA) start there, the
step count continues from the checkpoint's, and the optimizer is fresh, with its own warmup and a
cosine decay over the remaining ``steps - start``.
"""
from __future__ import annotations

import copy
import json
import math
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from tqdm.auto import tqdm

from . import data as datasets
from . import recipes
from .card import model_card
from .checkpoint import DiffusionModel, load
from .device import cpu, generator
from .images import save_grid
from .models import build, transfer_weights
from .schedule import NoiseSchedule
from .train_config import TrainConfig

# what a run's saved state must share with its config to resume it (the rest may change between calls)
SHAPE_SETTINGS = ("dataset", "family", "widths", "attention", "layers_per_block", "class_emb_size", "schedule",
                  "num_timesteps")


def _plain(value):
    """A setting as JSON gives it back (tuples become lists), for comparing with a saved config."""
    return list(value) if isinstance(value, tuple) else value


def _atomic_dir_write(target: Path, write) -> None:
    """Write a folder via a temporary sibling and a rename, so a kill never leaves half a checkpoint."""
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    old = target.with_name(target.name + ".old")
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


class Trainer:
    """Owns the model, EMA, optimizer and data; ``fit()`` trains to ``config.steps`` and exports."""

    def __init__(self, config: TrainConfig, images: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                 class_names: list[str] | None = None):
        from accelerate import Accelerator
        from accelerate.utils import set_seed
        from diffusers.optimization import get_cosine_schedule_with_warmup
        from diffusers.training_utils import EMAModel

        self.config = c = config
        self.accelerator = Accelerator(mixed_precision=c.mixed_precision)
        if self.accelerator.is_main_process:  # an out-dir that cannot be written fails now, not at a checkpoint
            c.run_dir.mkdir(parents=True, exist_ok=True)
        set_seed(c.seed)
        if images is None:
            imageset = datasets.load(c.dataset, "train", Path(c.data_root) if c.data_root else None)
            images, labels, class_names = imageset.images, imageset.labels, list(imageset.class_names)
        if c.max_train_images:
            images, labels = images[:c.max_train_images], labels[:c.max_train_images]
        if c.batch_size > len(labels):
            raise ValueError(f"batch_size {c.batch_size} is more than the {len(labels)} training images: "
                             f"use {len(labels)} or less")
        # the whole (uint8) image set lives on the training device: a batch is one gather there, not a
        # copy from the CPU every step
        device = self.accelerator.device
        self.images, self.labels, self.class_names = images.to(device), labels.long().to(device), class_names
        self.schedule = NoiseSchedule(c.schedule, c.num_timesteps)
        self.model = build(c.family, image_size=images.shape[-1], channels=images.shape[1],
                           num_classes=len(class_names), widths=c.widths, attention=c.attention,
                           layers_per_block=c.layers_per_block, class_emb_size=c.class_emb_size, dropout=c.dropout)
        self.step, self.elapsed, self.losses = 0, 0.0, []  # losses: [step, mean loss] per log_every
        self.devices: list[str] = []  # the device types trained on, in order (a run may move, CPU -> GPU)
        self.sampling: dict = {}  # the sampling defaults (guidance, sampler) of the checkpoint this run continues
        self.class_map: dict = {}  # init_classes, when it mapped that checkpoint's classes onto this data's
        state = c.run_dir / "state" / "train_state.json"
        if not state.is_file() and c.init_from:
            self._init_from(c.init_from)
        self.start_step = json.loads(state.read_text()).get("start_step", 0) if state.is_file() else self.step
        if c.steps <= self.start_step:
            raise ValueError(f"steps ({c.steps}) must be more than the {self.start_step} this run starts from")
        self.ema = EMAModel(self.model.parameters(), decay=c.ema_decay, use_ema_warmup=True, power=3 / 4,
                            foreach=True)  # one fused update, not a Python loop over ~250 tensors
        self.model.to(device)  # before the optimizer: fused AdamW (one kernel for every tensor) needs CUDA params
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=c.lr, weight_decay=c.weight_decay,
                                           fused=device.type == "cuda" or None)
        self.lr_schedule = get_cosine_schedule_with_warmup(self.optimizer, c.warmup, c.steps - self.start_step)
        self._resume()
        self.model, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)
        self.ema.to(device)
        # shares the weights; "reduce-overhead" replays the forward and backward as CUDA graphs
        self.forward = torch.compile(self.model, mode=c.compile_mode) if c.compile else self.model

    # -- data -------------------------------------------------------------------------------------
    def batches(self):
        """Endless shuffled batches of (x0 in [-1, 1], labels, generator), on the training device;
        class-balanced if configured. The generator, on that device too, is for the step's noise."""
        c = self.config
        # a fixed stream per (seed, step, process): a resume gets fresh batches, and under
        # `accelerate launch` every process draws different ones
        seed = (c.seed * 100003 + self.step) * 1009 + self.accelerator.process_index
        g = generator(seed)  # the shuffle, on the CPU
        device = self.images.device
        g_noise = g if device.type == "cpu" else generator(seed, device)
        if c.balance_classes:
            labels = self.labels.cpu()
            counts = torch.bincount(labels, minlength=len(self.class_names)).float()
            weights = (1.0 / counts.clamp(min=1))[labels]
        n = len(self.labels)
        while True:
            if c.balance_classes:
                idx = torch.multinomial(weights, n, replacement=True, generator=g)
            else:
                idx = torch.randperm(n, generator=g)
            for i in range(0, n - c.batch_size + 1, c.batch_size):
                b = idx[i:i + c.batch_size].to(device)
                yield datasets.to_model_range(self.images[b]), self.labels[b], g_noise

    # -- one step ---------------------------------------------------------------------------------
    def loss(self, x0: torch.Tensor, labels: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """The simple loss on one batch; every random draw comes from ``g``, on the batch's device."""
        device, B = x0.device, x0.shape[0]
        t = torch.randint(0, self.schedule.num_timesteps, (B,), generator=g, device=device)
        noise = torch.randn(x0.shape, generator=g, device=device)
        drop = torch.rand(B, generator=g, device=device) < self.config.p_uncond
        labels = torch.where(drop, torch.full_like(labels, len(self.class_names)), labels)
        x_t = self.schedule.q_sample(x0, t, noise)
        with self.accelerator.autocast():
            pred = self.forward(x_t, t, labels)
        return F.mse_loss(pred.float(), noise)

    def train_step(self, x0: torch.Tensor, labels: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """One optimisation step (loss, backward, clip, AdamW, lr schedule, EMA); returns the loss."""
        if self.config.compile:  # a new step: CUDA graphs may reuse the last one's buffers
            torch.compiler.cudagraph_mark_step_begin()
        loss = self.loss(x0, labels, g)
        self.accelerator.backward(loss)
        if self.config.grad_clip:
            self.accelerator.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.lr_schedule.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.step(self.model.parameters())
        return loss.detach()

    def fit(self, minutes: float | None = None) -> Path:
        """Train to ``config.steps`` and export the EMA weights to ``<run_dir>/final``. With ``minutes``,
        stop after the first step that ends past that much wall time (the first log step, on several
        processes), saving the state and exporting a snapshot there, so the same call again continues
        (a time-boxed GPU lease, a notebook session)."""
        c, acc = self.config, self.accelerator
        if minutes is not None and not minutes >= 0:
            raise ValueError(f"minutes must be >= 0, got {minutes}")
        deadline = None if minutes is None else time.time() + 60 * minutes
        if acc.device.type not in self.devices:
            self.devices.append(acc.device.type)
        self.model.train()
        batches = self.batches()
        last_save, window = time.time(), []
        bar = tqdm(total=c.steps, initial=self.step, desc=c.name, disable=not acc.is_main_process,
                   mininterval=5)
        while self.step < c.steps:
            t0 = time.time()
            loss = self.train_step(*next(batches))
            self.step += 1
            self.elapsed += time.time() - t0
            window.append(loss)  # a tensor: reading it every step would make the CPU wait for a GPU
            at_log_step = self.step % c.log_every == 0
            # several processes agree on it at log steps only: agreeing costs a GPU sync
            due = deadline is not None and (acc.num_processes == 1 or at_log_step)
            out_of_time = due and self._any_process(time.time() >= deadline)
            log = at_log_step or self.step == c.steps or out_of_time
            save = acc.is_main_process and (self.step % c.checkpoint_every == 0 or
                                            time.time() - last_save > 60 * c.checkpoint_minutes)
            if log or save:  # never log or save a diverged run
                mean = torch.stack(window).mean().item()
                if not math.isfinite(mean):
                    raise FloatingPointError(f"loss became {mean} by step {self.step}; lower lr")
            if log:
                self.losses.append([self.step, mean])
                bar.set_postfix(loss=f"{mean:.4f}", lr=f"{self.lr_schedule.get_last_lr()[0]:.2e}")
                window = []
            bar.update(1)
            if save:
                self.save_state()
                last_save = time.time()
            if acc.is_main_process and c.sample_every and self.step % c.sample_every == 0:
                self.write_progress()
            if out_of_time:
                break
        bar.close()
        if acc.is_main_process:
            self.save_state()
            self.write_progress()
            return self.export()
        return c.run_dir / "final"

    def _any_process(self, flag: bool) -> bool:
        """True on every process when it is true on any: processes that stopped at different steps would
        leave the others waiting in the gradient all-reduce."""
        if self.accelerator.num_processes == 1:
            return flag
        flags = self.accelerator.gather(torch.tensor([float(flag)], device=self.accelerator.device))
        return bool(flags.max().item())

    # -- saving -----------------------------------------------------------------------------------
    def save_state(self) -> None:
        model = self.accelerator.unwrap_model(self.model)

        def write(folder: Path):
            save_model(model, str(folder / "model.safetensors"))
            torch.save(self.optimizer.state_dict(), folder / "optimizer.pt")
            torch.save(self.lr_schedule.state_dict(), folder / "lr_schedule.pt")
            torch.save(self.ema.state_dict(), folder / "ema.pt")
            (folder / "train_state.json").write_text(json.dumps(
                {"step": self.step, "start_step": self.start_step, "elapsed_s": self.elapsed,
                 "devices": self.devices, "sampling": self.sampling, "class_map": self.class_map,
                 "losses": self.losses,
                 "config": asdict(self.config)}, indent=1))

        _atomic_dir_write(self.config.run_dir / "state", write)

    def _init_from(self, name_or_path: str) -> None:
        """Start from a finished checkpoint's weights: same family, shape and classes as this config."""
        source = load(name_or_path, device="cpu")
        mine = {k: tuple(v.shape) for k, v in self.model.state_dict().items()}
        theirs = {k: tuple(v.shape) for k, v in source.denoiser.state_dict().items()}
        problems = []
        if source.denoiser.family != self.config.family:
            problems.append(f"family {source.denoiser.family!r}, config has {self.config.family!r}")
        same_classes = list(source.class_names) == list(self.class_names)
        if not same_classes and not self.config.init_classes:
            problems.append(f"classes {list(source.class_names)[:4]}..., data has {list(self.class_names)[:4]}... "
                            f"(an init_classes table in the config maps them)")
        if (source.schedule.kind, source.schedule.num_timesteps) != (self.schedule.kind, self.schedule.num_timesteps):
            problems.append("a different noise schedule")
        if not problems and same_classes and mine != theirs:
            problems.append("weights of other shapes (widths, attention or layers differ)")
        if problems:
            raise ValueError(f"cannot continue from {name_or_path!r}: it has " + "; ".join(problems))
        if same_classes:
            self.model.load_state_dict(source.denoiser.state_dict())
        else:
            try:
                transfer_weights(source.denoiser, self.model, self._class_parents(list(source.class_names)))
            except ValueError as err:
                raise ValueError(f"cannot start from {name_or_path!r}: {err}") from None
            self.class_map = {k: list(v) for k, v in self.config.init_classes.items()}
        training = source.meta.get("training", {})
        self.step = int(training.get("steps", 0))
        self.elapsed = float(training.get("train_seconds", 0.0))
        self.devices = [d.strip() for d in str(training.get("device", "")).split(",") if d.strip()]
        # its defaults were chosen from measured rows of these weights: better for the continued model
        # than the library's, until measurements of its own say otherwise
        self.sampling = dict(source.meta.get("sampling", {}))
        print(f"starting {self.config.name} from {name_or_path} at step {self.step}")

    def _class_parents(self, source_names: list[str]) -> list[list[int]]:
        """init_classes as source class indices, one list per class of this data, or a ValueError naming
        what is missing or unknown."""
        table = self.config.init_classes
        missing = [n for n in self.class_names if n not in table]
        extra = sorted(set(table) - set(self.class_names))
        unknown = sorted({p for ps in table.values() for p in ps} - set(source_names))
        if missing or extra or unknown:
            raise ValueError("init_classes " + "; ".join(
                part for part in (missing and f"has no entry for {missing}", extra and f"names no class of the data: {extra}",
                                  unknown and f"names classes the source lacks: {unknown} (it has {source_names})")
                if part))
        return [[source_names.index(p) for p in table[n]] for n in self.class_names]

    def _resume(self) -> None:
        state = self.config.run_dir / "state"
        if not (state / "train_state.json").is_file():
            return
        info = json.loads((state / "train_state.json").read_text())
        saved, mine = info.get("config", {}), asdict(self.config)
        differ = [f"{k} {saved[k]!r} there, {_plain(mine[k])!r} here" for k in SHAPE_SETTINGS
                  if k in saved and _plain(saved[k]) != _plain(mine[k])]
        if differ:
            raise ValueError(f"{state} holds the training state of another model ({'; '.join(differ)}): "
                             f"give this run its own --out-dir, or delete that folder to start afresh")
        load_model(self.model, str(state / "model.safetensors"))
        # our own files, written by save_state; weights_only refuses anything but tensors and containers.
        # Read onto the CPU, so a state saved on a GPU resumes on a CPU-only machine (and vice versa):
        # the optimizer moves its state to the parameters' device, accelerate.prepare the rest.
        def read(name):
            return torch.load(state / name, map_location=cpu(), weights_only=True)

        self.optimizer.load_state_dict(read("optimizer.pt"))
        self.lr_schedule.load_state_dict(read("lr_schedule.pt"))
        self.ema.load_state_dict(read("ema.pt"))
        self.step, self.elapsed, self.losses = info["step"], info["elapsed_s"], info["losses"]
        self.devices = info.get("devices", self.devices)
        self.sampling = info.get("sampling", self.sampling)
        self.class_map = info.get("class_map", self.class_map)
        print(f"resumed {self.config.name} at step {self.step} ({self.elapsed / 60:.1f} min trained)")

    def ema_model(self) -> DiffusionModel:
        """A DiffusionModel holding a copy of the EMA weights (the training model is untouched)."""
        denoiser = copy.deepcopy(self.accelerator.unwrap_model(self.model)).eval()
        self.ema.copy_to(denoiser.parameters())
        c = self.config
        meta = {"training": {"steps": self.step, "train_seconds": round(self.elapsed, 1),
                             "batch_size": c.batch_size, "lr": c.lr, "ema_decay": c.ema_decay,
                             "p_uncond": c.p_uncond, "mixed_precision": c.mixed_precision,
                             "device": ", ".join(self.devices or [self.accelerator.device.type]), "seed": c.seed,
                             "train_images": len(self.labels)}}
        if c.weights_dtype != "float32":
            meta["weights_dtype"] = c.weights_dtype
        if self.sampling:
            meta["sampling"] = dict(self.sampling)
        if c.init_from:
            meta["training"]["continued_from"] = f"{c.init_from} at step {self.start_step}"
            if self.class_map:  # its classes were mapped onto this data's
                meta["training"]["continued_from"] += (", each class started from the class(es) its init_classes "
                                                       "entry names there")
                meta["training"]["init_classes"] = dict(self.class_map)
        return DiffusionModel(denoiser, self.schedule, list(self.class_names), c.dataset, name=c.name, meta=meta)

    def write_progress(self) -> None:
        """A sample grid (one row per class, EMA weights) and the loss curve, as PNGs."""
        model = self.ema_model()
        per_class = 8
        classes = model.class_names[:16]
        labels = [name for name in classes for _ in range(per_class)]
        x = recipes.generate(model, labels, settings=recipes.Settings(steps=20, guidance=2.0, seed=0)).run()
        out = self.config.run_dir / "samples"
        out.mkdir(parents=True, exist_ok=True)
        save_grid(x, out / f"step_{self.step:07d}.png", nrow=per_class)
        save_loss_curve(self.losses, self.config.run_dir / "loss.png", title=self.config.name)

    def export(self) -> Path:
        """Write the EMA weights as a ddpm checkpoint to ``<run_dir>/final``."""
        model = self.ema_model()
        folder = self.config.run_dir / "final"
        model.save(folder, card=model_card(model))
        return folder


def save_loss_curve(losses: list, path: Path, title: str = "") -> None:
    if not losses:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, values = zip(*losses)
    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    ax.plot(steps, values, lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("MSE on the noise")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
