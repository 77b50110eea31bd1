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
