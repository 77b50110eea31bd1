"""The library's sampling defaults and limits: a leaf module (imports nothing of ours), so the checkpoint,
the recipes, the CLI and the app read the same numbers without importing each other."""

MAX_BATCH = 256
MAX_GUIDANCE = 30.0
DEFAULT_STEPS = 20
# Measured on the bundled mnist model (dpm++ 20 steps, 500 samples): guidance 1 / 1.5 / 2 / 3 gave class
# accuracy 0.966 / 1.000 / 0.998 / 1.000 and classifier-feature FID 2.17 / 3.35 / 7.08 / 13.20 (floor 2.40):
# past 1.5 samples get more typical and less varied, with no accuracy left to gain.
DEFAULT_GUIDANCE = 1.5
DEFAULT_SAMPLER = "dpm++"  # a model's config may name its own ("sampling": {"sampler": ...})
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
DEFAULT_DTYPE = "auto"
