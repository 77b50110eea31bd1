"""What a training run is: :class:`TrainConfig`, read from a TOML file (``ddpm/configs/<name>.toml`` for a
bundled name) with the command line's ``--flag`` overrides. No torch here: the command line builds its
flags from these fields without loading the trainer (``ddpm.train``)."""
from __future__ import annotations

import argparse
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from .argtypes import comma_list

CONFIG_DIR = Path(__file__).parent / "configs"
TYPE_WORDS = {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "a string",
              "tuple[int, ...]": "a list of whole numbers", "tuple[bool, ...]": "a list of true/false"}
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class TrainConfig:
    name: str = "model"
    dataset: str = "mnist"
    family: str = "scratch"
    widths: tuple[int, ...] = (32, 64, 64)
    attention: tuple[bool, ...] = (False, True, True)
    layers_per_block: int = 2
    class_emb_size: int = 4
    dropout: float = 0.0
    schedule: str = "linear"
    num_timesteps: int = 1000
    steps: int = 20000
    batch_size: int = 128
    lr: float = 2e-3
    warmup: int = 500
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    p_uncond: float = 0.1
    balance_classes: bool = False
    mixed_precision: str = "no"        # "no", "bf16" or "fp16" (accelerate's names)
    seed: int = 0
    log_every: int = 50
    sample_every: int = 2000
    checkpoint_every: int = 500
    checkpoint_minutes: float = 5.0
    out_dir: str = ""                  # default: runs/<name>
    data_root: str = ""                # default: ddpm.data.data_root()
    max_train_images: int = 0          # 0: all (tests use a handful)
    init_from: str = ""                # a ddpm checkpoint (folder, bundled name, Hub id) to continue from
    # for an init_from model with other classes: each class of this data -> the init_from classes whose
    # embeddings it starts from (averaged), e.g. a subgroup from its category. A TOML table only.
    init_classes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    weights_dtype: str = "float32"     # how the exported checkpoint stores its weights: float32 or float16
    compile: bool = False              # torch.compile the training forward (fewer, fused kernels on a GPU)
    compile_mode: str = "default"      # torch.compile's mode; "reduce-overhead" adds CUDA graphs (GPU)

    def __post_init__(self):
        for f in fields(self):  # a TOML value of the wrong kind ("ten" steps) is named here, not deep in a run
            value, kind = getattr(self, f.name), str(f.type)
            if kind.startswith("dict"):
                if not (isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, (list, tuple)) and v
                                                        and all(isinstance(n, str) for n in v)
                                                        for k, v in value.items())):
                    raise ValueError(f"{f.name} should be a table of class name = [class names], got {value!r}")
                setattr(self, f.name, {k: tuple(v) for k, v in value.items()})
                continue
            item = {"tuple[int, ...]": int, "tuple[bool, ...]": bool}.get(kind)
            if item is not None:
                ok = isinstance(value, (list, tuple)) and all(isinstance(v, item) and (item is bool or not
                                                                isinstance(v, bool)) for v in value)
            else:
                want = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}[kind]
                ok = isinstance(value, want) and (kind == "bool" or not isinstance(value, bool))
            if not ok:
                raise ValueError(f"{f.name} should be {TYPE_WORDS[kind]}, got {value!r}")
        self.widths = tuple(self.widths)
        self.attention = tuple(self.attention)
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be positive")
        at_least = {"layers_per_block": 1, "num_timesteps": 2, "log_every": 1, "checkpoint_every": 1, "warmup": 0,
                    "sample_every": 0, "max_train_images": 0, "class_emb_size": 1}
        for name, low in at_least.items():
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be at least {low}, got {getattr(self, name)}")
        if not (self.lr > 0 and 0 <= self.ema_decay < 1 and 0 <= self.dropout < 1 and self.weight_decay >= 0
                and self.grad_clip >= 0 and self.checkpoint_minutes > 0):
            raise ValueError(f"need lr > 0 (got {self.lr}), ema_decay and dropout in [0, 1) (got {self.ema_decay}, "
                             f"{self.dropout}), weight_decay and grad_clip >= 0 (got {self.weight_decay}, "
                             f"{self.grad_clip}), checkpoint_minutes > 0 (got {self.checkpoint_minutes})")
        if not self.widths or min(self.widths) < 1 or len(self.attention) != len(self.widths):
            raise ValueError(f"widths {list(self.widths)} need one attention flag each (got "
                             f"{len(self.attention)}: {list(self.attention)}), and every width must be positive")
        if not 0 <= self.p_uncond < 1:
            raise ValueError(f"p_uncond must be in [0, 1), got {self.p_uncond}")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ValueError(f"mixed_precision must be no, bf16 or fp16, got {self.mixed_precision!r}")
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(f"compile_mode must be one of {', '.join(COMPILE_MODES)}, got {self.compile_mode!r}")
        from .checkpoint import WEIGHT_DTYPES

        if self.weights_dtype not in WEIGHT_DTYPES:
            raise ValueError(f"weights_dtype must be one of {', '.join(WEIGHT_DTYPES)}, got {self.weights_dtype!r}")

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir or Path("runs") / self.name)

    @classmethod
    def from_file(cls, path: str | Path, **overrides) -> TrainConfig:
        """Read a TOML config (a bare name means ``ddpm/configs/<name>.toml``); overrides win."""
        path = Path(path)
        if not path.is_file() and path.name and (CONFIG_DIR / f"{path.name}.toml").exists():
            path = CONFIG_DIR / f"{path.name}.toml"
        if not path.is_file():
            known = ", ".join(p.stem for p in sorted(CONFIG_DIR.glob("*.toml")))
            raise FileNotFoundError(f"no training config {str(path)!r}; bundled ones: {known}")
        try:
            values = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{path} is not valid TOML: {err}") from None
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"{path}: unknown setting(s) {sorted(unknown)}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def add_config_overrides(p: argparse.ArgumentParser) -> None:
    """A ``--flag`` for every TrainConfig setting (``--batch-size 256``, ``--widths 64,128,128``,
    ``--compile/--no-compile``), each overriding the config file's value when given."""
    types = {"int": int, "float": float, "str": str}
    for f in fields(TrainConfig):
        flag, more = f"--{f.name.replace('_', '-')}", {"dest": f.name, "default": None, "help": f"override {f.name}"}
        if f.type in types:
            p.add_argument(flag, type=types[f.type], **more)
        elif f.type == "bool":
            p.add_argument(flag, action=argparse.BooleanOptionalAction, **more)
        elif f.type in ("tuple[int, ...]", "tuple[bool, ...]"):
            p.add_argument(flag, type=comma_list(bool if "bool" in f.type else int), **more)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of ``args.config`` with the command line's overrides."""
    return TrainConfig.from_file(args.config, **{f.name: getattr(args, f.name, None) for f in fields(TrainConfig)})
