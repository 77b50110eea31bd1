"""The library's defaults and limits, and where its bundled checkpoints live: a leaf module (it imports
nothing of ours, nor torch), so the checkpoint, the recipes, the command line and the app read the same
values without importing each other, and ``python -m ddpm --help`` answers without loading torch."""
from __future__ import annotations

import os
from pathlib import Path

MAX_BATCH = 256
MAX_GUIDANCE = 30.0
DEFAULT_STEPS = 20
# Measured on the bundled mnist model (dpm++ 20 steps, 500 samples): guidance 1 / 1.5 / 2 / 3 gave class
# accuracy 0.966 / 1.000 / 0.998 / 1.000 and classifier-feature FID 2.17 / 3.35 / 7.08 / 13.20 (floor 2.40):
# past 1.5 samples get more typical and less varied, with no accuracy left to gain.
DEFAULT_GUIDANCE = 1.5
DEFAULT_SAMPLER = "dpm++"  # a model's config may name its own ("sampling": {"sampler": ...})
# "auto": the compiled forward (ddpm.aot) where this machine's compile cache holds the model's package (the app
# builds them after it starts; ``python -m ddpm compile`` or ``--compile`` builds one), else eager; never built
# on the way. Settings(compile=True) builds first where missing; False is always eager.
DEFAULT_COMPILE = "auto"
EVALUATE_BATCH = 250  # images a batch while ``evaluate`` samples

# -- illusions (ddpm.illusions, ddpm.views) --------------------------------------------------------------
AFAR_FACTOR = 4  # 28 px -> 7 px, 32 px -> 8 px: what a hybrid's "from afar" reading sees
# One visitor's job on a 2-vCPU Space: 64 candidates x 2 readings x (conditional, null) = 256 UNet rows a step,
# MAX_BATCH, one batch: about 4x a plain 64-image batch (an estimate, not timed on the Space).
MAX_CANDIDATES = 64
MAX_BEST_OF = 16
DEFAULT_ILLUSION_GUIDANCE = 3.0  # the Illusions tab's; the measurements in PRESETS used it
# A hybrid's up-close part guided harder than its from-afar part (guidance 3 for the low part), mnist:
# 8/3 single 0.97 -> 1.00, 0/6 best-of-8 0.69 -> 0.82, 0/1 best-of-8 0.00 -> 0.25 (report of issue #21).
DEFAULT_HIGH_GUIDANCE = 6.0

PACKAGE_DIR = Path(__file__).resolve().parent
CHECKPOINTS_ENV = "DDPM_CHECKPOINTS"


def checkpoints_dir() -> Path:
    """Where the bundled checkpoints live: ``$DDPM_CHECKPOINTS`` if set; else ``ddpm/checkpoints`` in an
    installed package (``pip install`` puts them there); else ``<repo>/checkpoints`` of a source checkout."""
    if env := os.environ.get(CHECKPOINTS_ENV):
        return Path(env).expanduser()
    installed = PACKAGE_DIR / "checkpoints"
    return installed if installed.is_dir() else PACKAGE_DIR.parent / "checkpoints"


def installed() -> bool:
    """True when this ddpm runs from an installed package (site-packages), not from a source checkout."""
    return bool({"site-packages", "dist-packages"} & set(PACKAGE_DIR.parts))
# The samplers ddpm.schedule builds (names only, so a command line can list them without importing torch).
# dpm++ is DPM-Solver++(2M), deterministic; dpm++sde its stochastic form, SDE-DPM-Solver++(2M), which adds
# fresh noise every step, as DDPM does, in as few steps as dpm++ (on emoji it trades FID for class accuracy,
# as more guidance does: README); dpm++3 is DPM-Solver++(3M); unipc is UniPC (bh2, 2nd order predictor and
# corrector); deis is DEIS (2nd order, log-rho).
SAMPLERS = ("ddpm", "ddim", "dpm++", "dpm++sde", "dpm++3", "unipc", "deis")
# Model precision while sampling. "auto" is the fastest that keeps quality on this machine, chosen at run
# time by ddpm.device.default_dtype (bfloat16 on a CPU with native bfloat16 and on GPUs, else float32);
# a result's Settings record the precision it resolved to.
DTYPES = ("auto", "float32", "bfloat16", "float16")
# "auto": bfloat16 measured the same class accuracy and FID as float32 on all four bundled models (1,000
# samples each, the rows in their cards; docs/MEASUREMENTS.md) at 0.6x the time on this AVX512-BF16 CPU.
# tests/conftest.py pins "auto" to float32 where tests compare exactly.
DEFAULT_DTYPE = "auto"
