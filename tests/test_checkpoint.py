"""The checkpoint folder in diffusers' layout: each part loads with diffusers' own ``from_pretrained``, the
schedule rebuilds as a diffusers scheduler with our betas, ``ddpm-checkpoint/1`` folders still load and
convert bit for bit, a folder of ours without its own file is refused, and the card carries the Hub's metadata."""
from __future__ import annotations

import json

import pytest
import torch
from diffusers import DDPMScheduler, UNet2DModel
from huggingface_hub import ModelCard
from safetensors.torch import save_model

import ddpm
from ddpm import checkpoint as ckpt
from ddpm.card import model_card
from ddpm.convert import convert, same_weights
from ddpm.convert import main as convert_main
from ddpm.models import ClassEmbedding
from ddpm.unet import ScratchUNet

PART_FILES = ["config.json", "diffusion_pytorch_model.safetensors"]


def layout(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def inputs(n: int = 3):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 1, 8, 8, generator=g), torch.tensor([0, 2, 3][:n])


# -- 1. every part loads with diffusers' from_pretrained ---------------------------------------------------
@pytest.mark.parametrize("family", list(ddpm.FAMILIES))
def test_a_saved_model_is_a_diffusers_folder_with_one_copy_of_the_weights(tiny_model, tmp_path, family):
    model = tiny_model(family)
    folder = model.save(tmp_path / "m", card=model_card(model))
    parts = ["unet"] + (["class_embedding"] if family == "unet2d-concat" else [])
    assert layout(folder) == sorted(["README.md", "ddpm_config.json", "scheduler/scheduler_config.json",
                                     *(f"{p}/{f}" for p in parts for f in PART_FILES)])
    x, labels = inputs()
    with torch.no_grad():
        want = model.denoiser(x, 7, labels)
        t = torch.full((3,), 7)
        if family == "scratch":
            got = ScratchUNet.from_pretrained(folder, subfolder="unet")(x, t, labels)
        elif family == "unet2d-concat":
            unet = UNet2DModel.from_pretrained(folder, subfolder="unet")
            emb = ClassEmbedding.from_pretrained(folder, subfolder="class_embedding")(labels)[:, :, None, None]
            got = unet(torch.cat([x, emb.expand(-1, -1, 8, 8)], dim=1), t).sample
        else:
            unet = UNet2DModel.from_pretrained(folder, subfolder="unet")
            got = unet(x, t, class_labels=labels if model.conditional else None).sample
    assert want.abs().max() > 1e-3 and torch.equal(got, want)


def test_the_scratch_unet_config_is_written_by_register_to_config(tiny_model, tmp_path):
    unet = tiny_model("scratch").denoiser.unet
    unet.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["_class_name"] == "ScratchUNet"
    assert {k: v for k, v in config.items() if not k.startswith("_")} == {
        "image_size": 8, "in_channels": 1, "num_classes": 3, "base_channels": 8, "channel_mults": [1, 2],
        "num_res_blocks": 1, "attention": [False, True], "dropout": 0.0, "groups": 8}
    again = ScratchUNet.from_pretrained(tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(unet.state_dict().values(), again.state_dict().values()))
    with pytest.raises(ValueError, match="not divisible by groups"):
        ScratchUNet(base_channels=12)


@pytest.mark.parametrize("schedule", [ddpm.NoiseSchedule(), ddpm.NoiseSchedule("cosine", num_timesteps=40),
                                      ddpm.NoiseSchedule("linear", num_timesteps=300, beta_start=2e-4, beta_end=0.03)])
def test_the_scheduler_folder_rebuilds_our_schedule_in_diffusers_bit_for_bit(tiny_model, tmp_path, schedule):
    folder = tiny_model(schedule=schedule).save(tmp_path / "m")
    scheduler = DDPMScheduler.from_pretrained(folder, subfolder="scheduler")
    assert torch.equal(scheduler.betas, schedule.betas)
    assert torch.equal(scheduler.alphas_cumprod, schedule.alphas_cumprod)
    assert scheduler.config.prediction_type == "epsilon" and scheduler.config.timestep_spacing == "trailing"
    assert ddpm.load(folder).schedule == schedule


def test_float16_weights_load_as_float32_through_diffusers_too(tiny_model, tmp_path):
    model = tiny_model("unet2d-class")
    model.meta["weights_dtype"] = "float16"
    folder = model.save(tmp_path / "half")
    unet = UNet2DModel.from_pretrained(folder, subfolder="unet")
    for (name, got), want in zip(unet.state_dict().items(), model.denoiser.unet.state_dict().values()):
        assert got.dtype == torch.float32 and torch.equal(got, want.half().float()), name
    assert ddpm.load(folder).weights_dtype == "float16"  # and it saves as float16 again


# -- 2. what load refuses ----------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["scratch", "unet2d-class", "unet2d-concat"])
def test_a_folder_of_ours_without_its_own_file_is_an_error_not_an_unconditional_unet(tiny_model, tmp_path, family):
    folder = tiny_model(family).save(tmp_path / "m")
    (folder / "ddpm_config.json").unlink()
    with pytest.raises(ValueError, match="is a ddpm checkpoint .* without its ddpm_config.json") as info:
        ddpm.load(folder)
    assert "\n" not in str(info.value)


def test_a_plain_diffusers_unet_in_unet_slash_still_loads_as_unet2d(tmp_path):
    UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), norm_num_groups=8,
                down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                layers_per_block=1).save_pretrained(tmp_path / "unet")
    model = ddpm.load(tmp_path)
    assert model.denoiser.family == "unet2d" and not model.conditional


@pytest.mark.parametrize("change, message", [
    ({"prediction_type": "v_prediction"}, "prediction_type 'v_prediction' is not supported"),
    ({"beta_schedule": "scaled_linear"}, "beta_schedule 'scaled_linear' is not supported"),
])
def test_a_scheduler_we_cannot_run_is_refused_in_one_line(tiny_model, tmp_path, change, message):
    folder = tiny_model().save(tmp_path / "m")
    path = folder / "scheduler" / "scheduler_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(ValueError, match=message):
        ddpm.load(folder)


def test_a_part_of_the_wrong_class_or_a_newer_format_is_refused(tiny_model, tmp_path):
    scratch = tiny_model("scratch").save(tmp_path / "s")
    other = tiny_model("unet2d-class").save(tmp_path / "o")
    (scratch / "unet" / "config.json").write_text((other / "unet" / "config.json").read_text())
    with pytest.raises(ValueError, match="holds a 'UNet2DModel'; a scratch model keeps a ScratchUNet there"):
        ddpm.load(scratch)
    config = json.loads((other / "ddpm_config.json").read_text())
    (other / "ddpm_config.json").write_text(json.dumps({**config, "format": "ddpm-checkpoint/3"}))
    with pytest.raises(ValueError, match="format 'ddpm-checkpoint/3' is not one this library reads"):
        ddpm.load(other)


# -- 3. extra parts: the reserved slot -----------------------------------------------------------------
def test_an_extra_part_is_read_by_its_loader_where_the_folder_has_one(tiny_model, tmp_path):
    folder = tiny_model().save(tmp_path / "m")
    model = ddpm.load(folder)
    assert model.part("classifier", loader=lambda path: pytest.fail("no classifier/ to read")) is None
    (folder / "classifier").mkdir()
    (folder / "classifier" / "config.json").write_text('{"classes": 3}')
    read = ddpm.load(folder).part("classifier", loader=lambda path: json.loads((path / "config.json").read_text()))
    assert read == {"classes": 3}
    with pytest.raises(ValueError, match="unknown part 'vae'"):
        ckpt.load_part(folder, "vae", loader=print)
    assert ddpm.DiffusionModel(model.denoiser, model.schedule).part("classifier", loader=print) is None
    assert ckpt.hub_files("o/m", {"classifier/model.safetensors": 10, "class_embedding/config.json": 1,
                                  "vae/x.safetensors": 5}) == ["classifier/model.safetensors",
                                                               "class_embedding/config.json"]


# -- 4. ddpm-checkpoint/1 folders: still loaded, converted bit for bit ----------------------------------------
def write_v1(model: ddpm.DiffusionModel, folder):
    """A folder as ddpm wrote them before the diffusers layout: config.json + model.safetensors."""
    def public(config):
        return {k: v for k, v in config.items() if not k.startswith("_")}

    denoiser = model.denoiser
    spec = {"unet": public(denoiser.unet.config)}
    if denoiser.family == "scratch":
        spec = public(denoiser.unet.config)
    elif denoiser.family == "unet2d-concat":
        spec |= {"num_classes": denoiser.num_classes, "class_emb_size": denoiser.class_emb_size}
    folder.mkdir(parents=True)
    save_model(denoiser, str(folder / "model.safetensors"))
    config = {"format": "ddpm-checkpoint/1", "family": denoiser.family, "model": json.loads(json.dumps(spec)),
              "schedule": model.schedule.to_dict(),
              "data": {"dataset": model.dataset, "class_names": model.class_names, "image_size": model.image_size,
                       "channels": model.channels}, **model.meta}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("family", ["scratch", "unet2d-concat"])
def test_an_old_folder_loads_and_converts_in_place_with_the_same_weights_and_samples(tiny_model, tmp_path, family):
    model = tiny_model(family, schedule=ddpm.NoiseSchedule("cosine", num_timesteps=40))
    model.meta.update(training={"steps": 2}, sampling={"guidance": 2.0})
    folder = write_v1(model, tmp_path / "old")
    (folder / "classifier").mkdir()
    (folder / "classifier" / "config.json").write_text("{}")  # an extra part stays where it is
    before = ddpm.load(folder)
    assert same_weights(before, model) and before.meta == model.meta and before.schedule == model.schedule

    def samples(m):
        return ddpm.generate(m, ["zero", "two"], settings=ddpm.Settings(steps=4, seed=3)).run()

    want = samples(before)
    assert convert_main([str(folder)]) == 0
    assert "config.json" not in layout(folder) and "model.safetensors" not in layout(folder)
    assert "classifier/config.json" in layout(folder) and "README.md" in layout(folder)
    after = ddpm.load(folder)
    assert same_weights(after, before) and after.meta == before.meta and after.classes == before.classes
    assert torch.equal(samples(after), want)
    weights = (folder / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    convert(folder)  # again: the same folder
    assert (folder / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() == weights
    assert not (tmp_path / "old.tmp").exists()


def test_convert_reports_a_folder_that_is_not_a_model_in_one_line(tmp_path, capsys):
    assert convert_main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "neither a ddpm checkpoint" in err and err.count("\n") == 1


# -- 5. the card: Hub front matter ------------------------------------------------------------------------
def test_the_card_carries_the_hub_metadata_and_the_measured_rows(tiny_model):
    model = tiny_model("unet2d-class")
    model.dataset = "fashion"
    row = {"setting": "dpm++ 20 steps, guidance 1.5", "n": 100, "accuracy": 0.9, "fid": 6.5, "fid_floor": 0.9}
    model.meta["metrics"] = {"rows": [row, {**row, "setting": "ddim 50 steps, guidance 1.5", "fid": 7.25}]}
    card = ModelCard(model_card(model, repo_id="me/ddpm-fashion"))
    data = card.data
    assert (data.license, data.library_name) == ("mit", "diffusers")
    assert data.pipeline_tag == "unconditional-image-generation"
    assert {"diffusers", "class-conditional"} <= set(data.tags) and data.datasets == ["zalando-datasets/fashion_mnist"]
    assert [(r.metric_type, r.metric_value) for r in data.eval_results] == [
        ("accuracy", 0.9), ("fid", 6.5), ("accuracy", 0.9), ("fid", 7.25)]
    assert "ddim 50 steps" in data.eval_results[3].metric_name
    assert "MIT (Fashion-MNIST, Zalando Research)" in card.text and "Han Xiao" in card.text
    assert 'repo = "me/ddpm-fashion"' in card.text and 'ddpm.load("me/ddpm-fashion")' in card.text


@pytest.mark.parametrize("dataset", sorted(ddpm.data.DATASETS))
def test_every_dataset_gets_a_card_that_credits_its_images_as_their_licences_ask(tiny_model, dataset):
    """A trainer's export writes the card: a dataset without its credit would fail there, after hours of
    training. emoji2 mixes three sets; CC BY 4.0 (Twemoji) asks for creator, licence link and the changes."""
    model = tiny_model("unet2d-class")
    model.dataset = dataset
    text = ModelCard(model_card(model)).text
    assert "## Data and licence" in text
    if dataset == "emoji2":
        for credit in ("Noto Emoji** by Google, Apache License 2.0", "Twemoji** graphics by Twitter, Inc. and other "
                       "contributors, licensed under CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/",
                       "Fluent Emoji** (flat style) by Microsoft Corporation, MIT License", "resized to 32x32"):
            assert credit in text
        assert "OpenMoji (CC BY-SA 4.0) was left out" in text and "The weights: MIT." in text


def test_an_unconditional_model_without_data_gets_a_card_too(tiny_model):
    card = ModelCard(model_card(tiny_model("unet2d")))
    assert "unconditional-image-generation" in card.data.tags and card.data.eval_results is None
    assert "null class" not in card.text and "class_labels" not in card.text


def test_saving_over_another_model_leaves_one_model(tiny_model, tmp_path):
    folder = tiny_model("unet2d-concat").save(tmp_path / "m")
    tiny_model("unet2d-class").save(folder)
    assert not (folder / "class_embedding").exists() and ddpm.load(folder).denoiser.family == "unet2d-class"
    old = write_v1(tiny_model("scratch"), tmp_path / "old")
    tiny_model("scratch").save(old)
    assert not (old / "config.json").exists() and not (old / "model.safetensors").exists()
