"""The Compare tab through a real server and gradio_client, with tiny random models: every sampler from one
starting noise, a long column streaming on while a short one is done, a guidance sweep in one pass with the
classifier's accuracy per column, and bad input answered with one readable line."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

import ddpm
from app_fixtures import app_error, serve, tiny_models
from diffusion_lab.controls import SAMPLERS as SAMPLER_LABELS
from diffusion_lab.tabs import compare as compare_tab
from diffusion_lab.tabs.compare import MAX_COLUMNS, MAX_WORK


def says_three(x: torch.Tensor) -> torch.Tensor:
    """A classifier that reads every image as a "3" (logits over the 10 digits)."""
    logits = torch.zeros(len(x), 10)
    logits[:, 3] = 5.0
    return logits


@pytest.fixture(scope="module")
def client():
    from gradio_client import Client

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    models = tiny_models()
    models["mnist"]._classifier = says_three  # the slot DiffusionModel.classifier fills from classifier/
    demo, url = serve(models)
    yield Client(url, verbose=False)
    demo.close()
    torch.set_num_threads(threads)


def run(client, api="/compare_stream", **kwargs):
    job = client.submit(api_name=api, **{"n": 2, "steps": 3, **kwargs})
    result = job.result()
    return job.outputs(), result


def test_compare_is_an_endpoint_with_named_parameters(client):
    for name in ("/compare", "/compare_stream"):
        api = client.view_api(return_format="dict", print_info=False)["named_endpoints"][name]
        assert [p["parameter_name"] for p in api["parameters"]] == ["model", "classes", "vary", "values", "n",
                                                                    "sampler", "steps", "guidance", "seed"]


def test_every_sampler_starts_from_the_same_noise_and_climbs_to_its_own_result(client):
    outputs, (status, view, files) = run(client, "/compare", values="")  # empty: every sampler the library has
    assert len(outputs) == 1, "/compare: the result whole, in one message (/compare_stream streams it)"
    labels = dict((name, text) for text, name in SAMPLER_LABELS)
    assert [c["label"] for c in view["columns"]] == [labels[name] for name in ddpm.SAMPLERS]
    assert status.startswith(f"Done: mnist · {len(ddpm.SAMPLERS)} samplers · 2 images each")
    starts = {c["frames"][0]["x"] for c in view["columns"]}
    assert len(starts) == 1, "every column's x_T must be the same picture"
    results = {c["label"]: c["frames"][-1]["x0"] for c in view["columns"]}
    assert results["DDPM"] != results["DDIM"]  # one noise, but the samplers go their own ways
    for c in view["columns"]:
        along = [f["a"] for f in c["frames"]]
        assert along[0] == 0 and along[-1] == 1 and along == sorted(along), c["label"]
        assert c["done"] and c["steps"] == c["done_steps"] == 3 and c["seconds"] > 0
        assert c["frames"][-1]["t"] == -1 and c["correct"] == 0  # images of "0" and "1", all read as "3"
    sheet = Image.open(files)
    assert sheet.mode == "RGB" and sheet.width > len(ddpm.SAMPLERS) * 28


def test_a_long_column_streams_on_while_the_short_one_is_done(client, monkeypatch):
    monkeypatch.setattr(compare_tab, "STREAM_SECONDS", 0.0)  # the server runs in this process: yield every step
    outputs, (_, view, _) = run(client, vary="steps", values="120, 3", n=1)
    middle = [v for _, v, _ in outputs[1:-1] if v["columns"][1]["done"] and not v["columns"][0]["done"]]
    assert middle, "no streamed value showed the 3-step column done while the 120-step one ran"
    long = middle[0]["columns"][0]
    assert 0 < long["done_steps"] < 120 and long["live"]["k"] == long["done_steps"] - 1  # the step just taken
    assert len(middle) > 10 and all(len(v["columns"][1]["frames"]) == 4 for v in middle)
    for before, after in zip(outputs, outputs[1:]):  # frames are only added (Gradio streams the diffs)
        for old, new in zip(before[1]["columns"], after[1]["columns"], strict=True):
            assert [f["k"] for f in new["frames"][:len(old["frames"])]] == [f["k"] for f in old["frames"]]
    long, short = view["columns"]
    assert long["done"] and len(short["frames"]) == 4
    assert len(long["frames"]) == 22  # every 6th step (20), the last one, the result
    assert long["frames"][0]["x"] == short["frames"][0]["x"]


def test_a_guidance_sweep_runs_as_one_pass_and_scores_each_column(client):
    _, (status, view, _) = run(client, vary="guidance", values="0, 3", classes="3, 5", n=4)
    assert [c["label"] for c in view["columns"]] == ["guidance 0", "guidance 3"]
    assert all(c["shared"] == 2 and c["correct"] == 2 and c["accuracy"] == 0.5 for c in view["columns"])
    assert view["columns"][0]["seconds"] == view["columns"][1]["seconds"]  # the one pass's time
    assert "4 images each (3, 5)" in status and "seed 0" in status
    again = run(client, vary="guidance", values="0, 3", classes="3, 5", n=4, seed=1)[1][1]
    assert again["columns"][0]["frames"][0]["x"] != view["columns"][0]["frames"][0]["x"]  # another seed, another noise


@pytest.mark.parametrize("kwargs, message", [
    (dict(vary="colour"), "not in the list of choices"),  # Gradio checks a Radio before the handler runs
    (dict(values="ddim, euler"), "unknown sampler 'euler'"),
    (dict(vary="steps", values="20, 0"), "steps must be a whole number from 1 to 1000"),
    (dict(vary="guidance", values="1, -2"), "guidance must be between 0 and 30"),
    (dict(vary="steps", values=",".join(str(k) for k in range(1, MAX_COLUMNS + 2))), f"at most {MAX_COLUMNS} columns"),
    (dict(vary="steps", values="1000, 500", n=4), f"the limit here is {MAX_WORK:,}"),
    (dict(n=40), "greater than maximum value 16"),  # the slider's own check
    (dict(classes="3, seven"), "seven"),
])
def test_bad_input_is_one_readable_line(client, kwargs, message):
    text = app_error(lambda: client.predict(api_name="/compare", **{"n": 2, "steps": 3, **kwargs}), str(kwargs))
    assert message in text and "\n" not in text and "Traceback" not in text
