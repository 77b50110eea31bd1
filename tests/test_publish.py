"""Publishing one checkpoint folder as a Hub model repository, up to the network boundary (a fake HfApi that
records its calls, or raises what the Hub raises)."""
from __future__ import annotations

import httpx2
import pytest
from huggingface_hub import ModelCard, errors

import ddpm
from ddpm import publish


class FakeHfApi:
    def __init__(self, fail: Exception | None = None):
        self.calls, self.fail = [], fail

    def create_repo(self, repo_id, **kwargs):
        if self.fail is not None:
            raise self.fail
        self.calls.append(("create_repo", repo_id, kwargs))

    def create_commit(self, **kwargs):
        self.calls.append(("create_commit", kwargs["repo_id"], kwargs))


@pytest.fixture
def folder(tiny_model, tmp_path):
    from ddpm.card import model_card

    model = tiny_model("unet2d-class")
    return model.save(tmp_path / "tiny", card=model_card(model))


def test_publish_model_creates_a_model_repo_and_sends_the_folder_in_one_commit(folder):
    api = FakeHfApi()
    url, files = publish.publish_model(str(folder), "someone/ddpm-tiny", api=api, private=True)
    assert url == "https://huggingface.co/someone/ddpm-tiny"
    (create, repo, kw), (commit, _, ci) = api.calls
    assert (create, repo, kw["repo_type"], kw["private"]) == ("create_repo", "someone/ddpm-tiny", "model", True)
    assert commit == "create_commit" and ci["repo_type"] == "model"
    sent = {op.path_in_repo: op for op in ci["operations"]}
    assert sorted(sent) == files == ["README.md", "ddpm_config.json", "scheduler/scheduler_config.json",
                                     "unet/config.json", "unet/diffusion_pytorch_model.safetensors"]
    assert sent["unet/diffusion_pytorch_model.safetensors"].path_or_fileobj == str(
        folder / "unet" / "diffusion_pytorch_model.safetensors")
    card = ModelCard(sent["README.md"].path_or_fileobj.decode())  # regenerated for the repository
    assert card.data.library_name == "diffusers" and 'ddpm.load("someone/ddpm-tiny")' in card.text
    assert 'ddpm.load("someone/ddpm-tiny")' not in (folder / "README.md").read_text()  # the folder is untouched


def test_publish_model_dry_run_sends_nothing_and_names_the_files(folder, capsys, monkeypatch):
    monkeypatch.setattr("huggingface_hub.HfApi", lambda **kw: pytest.fail("a dry run must not reach the Hub"))
    assert publish.main(["me/ddpm-tiny", "--model", str(folder), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"would publish {folder} (5 files: README.md, ddpm_config.json, ")
    assert out.rstrip().endswith("to https://huggingface.co/me/ddpm-tiny")


def test_publish_model_refuses_an_old_layout_a_bad_id_and_a_missing_part(folder, tiny_model, tmp_path, capsys):
    from test_checkpoint import write_v1

    api = FakeHfApi()
    old = write_v1(tiny_model(), tmp_path / "old")
    with pytest.raises(ValueError, match=r"old ddpm-checkpoint/1 layout: rewrite it with `python -m ddpm.convert"):
        publish.publish_model(old, "me/old", api=api)
    with pytest.raises(ValueError, match="USER/NAME"):
        publish.publish_model(folder, "no-slash", api=api)
    (folder / "scheduler" / "scheduler_config.json").unlink()
    assert publish.main(["me/x", "--model", str(folder)]) == 2
    assert capsys.readouterr().err == f"error: not ready to publish: {folder} has no scheduler/scheduler_config.json\n"
    assert api.calls == []


def _http_error(status: int) -> errors.HfHubHTTPError:
    response = httpx2.Response(status, request=httpx2.Request("POST", "https://huggingface.co/api/repos/create"))
    return errors.HfHubHTTPError(f"{status} Client Error: for url ...\nlong explanation", response=response)


@pytest.mark.parametrize("raised, reason", [
    (_http_error(401), "not allowed: log in with `hf auth login` (or set HF_TOKEN)"),
    (_http_error(500), "HfHubHTTPError: 500 Client Error"),
    (ConnectionError("no route to host"), "the Hub is out of reach (ConnectionError)"),
])
def test_hub_errors_are_one_line(folder, monkeypatch, capsys, raised, reason):
    """Both publishers, the model's and the Space's, say why the Hub said no in one line."""
    monkeypatch.setattr("huggingface_hub.HfApi", lambda **kw: FakeHfApi(fail=raised))
    assert publish.main(["me/ddpm-tiny", "--model", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: publishing to me/ddpm-tiny failed: ") and reason in err and err.count("\n") == 1
    with pytest.raises(publish.HubError, match="publishing to me/space failed") as info:
        publish.publish("me/space", root=ddpm.checkpoint.REPO_ROOT, api=FakeHfApi(fail=raised))
    assert "\n" not in str(info.value) and info.value.__cause__ is raised
