"""Publishing the app to a Space, up to the network (a fake Hub API)."""
from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

from ddpm import publish

ROOT = Path(__file__).resolve().parent.parent


class FakeHfApi:
    def __init__(self):
        self.calls = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs["repo_id"], kwargs))


def space_folder(tmp_path, front_matter=True):
    (tmp_path / "app.py").write_text("print('hi')\n")
    (tmp_path / "requirements.txt").write_text("gradio\n")
    header = "---\ntitle: Diffusion Lab\nsdk: gradio\napp_file: app.py\n---\n" if front_matter else ""
    (tmp_path / "README.md").write_text(header + "# Diffusion Lab\n")
    return tmp_path


def test_publish_creates_the_space_and_uploads_the_app(tmp_path):
    api = FakeHfApi()
    url = publish.publish("someone/diffusion-lab", root=space_folder(tmp_path), api=api)
    assert url == "https://huggingface.co/spaces/someone/diffusion-lab"
    (create, repo, kw), (upload, _, up) = api.calls
    assert (create, repo, kw["repo_type"], kw["space_sdk"]) == ("create_repo", "someone/diffusion-lab", "space", "gradio")
    assert upload == "upload_folder" and up["repo_type"] == "space" and up["folder_path"] == str(tmp_path)
    assert {"app.py", "checkpoints/*/*", "ddpm/*.py", "examples/*/*.png"} <= set(up["allow_patterns"])


def test_the_space_gets_every_file_the_app_needs():
    """Every file of the app package (modules, tabs, assets) matches a pattern the upload sends."""
    files = [p.relative_to(ROOT).as_posix() for p in (ROOT / "diffusion_lab").rglob("*")
             if p.is_file() and "__pycache__" not in p.parts]
    assert files and all(any(fnmatch.fnmatch(f, pat) for pat in publish.SPACE_FILES) for f in files), files


@pytest.mark.parametrize("repo_id, front_matter, message", [
    ("no-slash", True, "USER/NAME"), ("a/b/c", True, "USER/NAME"), ("me/space", False, "front matter")])
def test_publish_refuses_what_would_not_work(tmp_path, repo_id, front_matter, message):
    api = FakeHfApi()
    with pytest.raises(ValueError, match=message):
        publish.publish(repo_id, root=space_folder(tmp_path, front_matter), api=api)
    assert api.calls == []


def test_publish_command_line_dry_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(publish, "REPO_ROOT", space_folder(tmp_path))
    assert publish.main(["me/lab", "--dry-run"]) == 0
    assert "would publish" in capsys.readouterr().out
