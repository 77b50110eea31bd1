"""TrainConfig: TOML files validated with one-line errors; the bundled configs fit a Space."""
from __future__ import annotations

import re

import pytest

import ddpm
from ddpm.train_config import TrainConfig


def test_config_files_are_validated(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nsteppz = 3\n')
    with pytest.raises(ValueError, match="unknown setting"):
        TrainConfig.from_file(bad)
    with pytest.raises(FileNotFoundError, match="bundled ones: .*mnist"):
        TrainConfig.from_file(tmp_path / "missing.toml")
    assert TrainConfig.from_file("mnist", steps=7).steps == 7  # bundled config by name, with an override
    with pytest.raises(ValueError, match="weights_dtype must be one of float32, float16, got 'int8'"):
        TrainConfig.from_file("mnist", weights_dtype="int8")
    with pytest.raises(ValueError, match="compile_mode must be one of default, reduce-overhead, .*got 'fast'"):
        TrainConfig.from_file("mnist", compile_mode="fast")
    with pytest.raises(ValueError, match=r"widths \[64, 128\] need one attention flag each \(got 3"):
        TrainConfig.from_file("emoji", widths=(64, 128))  # the config's attention has three
    with pytest.raises(ValueError, match="every width must be positive"):
        TrainConfig.from_file("emoji", widths=(64, 0, 64))
    for line, message in [('steps = "ten"', "steps should be a whole number, got 'ten'"),
                          ("widths = 5", "widths should be a list of whole numbers, got 5"),
                          ("lr = true", "lr should be a number, got True"),
                          ("log_every = 0", "log_every must be at least 1, got 0"),
                          ("checkpoint_every = 0", "checkpoint_every must be at least 1, got 0"),
                          ("ema_decay = 2", "ema_decay and dropout in [0, 1) (got 2, ")]:
        bad.write_text(f'name = "x"\n{line}\n')
        with pytest.raises(ValueError, match=re.escape(message)):
            TrainConfig.from_file(bad)
    with pytest.raises(FileNotFoundError, match=r"no training config '\.'; bundled ones"):
        TrainConfig.from_file("")  # (the current folder is no config)


@pytest.mark.parametrize("name", ["mnist", "fashion", "letters", "emoji", "emoji2"])
def test_bundled_configs_build_models_that_fit_a_space(name):
    """A Space's git takes files over 10 MB only through LFS: each config's weights, as stored, must fit."""
    from ddpm.data import dataset_info

    c, info = TrainConfig.from_file(name), dataset_info(TrainConfig.from_file(name).dataset)
    model = ddpm.build(c.family, image_size=info.image_size, channels=info.channels,
                       num_classes=len(info.class_names), widths=c.widths, attention=c.attention,
                       layers_per_block=c.layers_per_block, class_emb_size=c.class_emb_size, dropout=c.dropout)
    bytes_per_weight = {"float32": 4, "float16": 2}[c.weights_dtype]
    assert bytes_per_weight * model.num_parameters() <= 10 * 1024 * 1024
