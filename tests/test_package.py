"""The package as a whole: no import cycles, a lazy ``import ddpm``, a CLI that starts without torch, and
the bundled checkpoints found wherever ddpm is installed."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import ddpm
from ddpm import defaults

PACKAGE = Path(ddpm.__file__).resolve().parent


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """module -> the package's modules it imports, at module level or inside functions (every
    ``import``/``from ... import`` anywhere in the file), and any it names by string to ``import_module``
    (``"ddpm.cli.sample"``). ``from . import data`` counts as importing ``ddpm.data``; ``from .data import
load`` as importing ``ddpm.data``, and ``ddpm.data.load`` too where that is a module."""
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    modules, top = set(files), root.name
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = ".".join(base[:len(base) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                if base in modules and node.module:  # "from . import data" imports ddpm.data (below), not ddpm
                    edges.add(base)
                edges |= {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules}
            elif isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in modules}
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in modules \
                    and node.value.startswith(top + "."):
                edges.add(node.value)
        edges.discard(name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as [a, b, ..., a], or None (depth-first search)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_package_has_no_import_cycle_not_even_inside_functions():
    graph = import_graph(PACKAGE)
    assert {"ddpm.cli", "ddpm.evaluate", "ddpm.card", "ddpm.bench"} <= set(graph)
    assert "ddpm.bench" in graph["ddpm.cli"]  # the command table names it by string: that counts
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import x\n")
    (pkg / "b.py").write_text("x = 1\n\ndef f():\n    from . import a\n")
    assert find_cycle(import_graph(pkg)) == ["pkg.a", "pkg.b", "pkg.a"]
    (pkg / "b.py").write_text("x = 1\n")
    assert find_cycle(import_graph(pkg)) is None


HEAVY = ("torch", "diffusers", "gradio", "accelerate", "scipy")


def loaded_after(code: str) -> list[str]:
    """The heavy top-level modules a fresh interpreter holds after running ``code``."""
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout
    return json.loads(out.splitlines()[-1])


def test_import_ddpm_and_building_the_cli_load_no_torch_diffusers_or_gradio():
    assert loaded_after("import ddpm; ddpm.__version__; ddpm.__all__") == []
    commands = ["sample", "train", "data", "evaluate", "models", None]
    assert loaded_after(f"from ddpm.cli import build_parser\nfor c in {commands!r}: build_parser(c)") == []
    # the library itself never needs Gradio, whatever it loads
    assert "gradio" not in loaded_after("import ddpm; ddpm.load; ddpm.generate; import ddpm.evaluate, ddpm.train")


def test_help_answers_without_torch():
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "ddpm", "--help"], capture_output=True,
                          text=True, cwd=PACKAGE.parent)
    assert done.returncode == 0 and "evaluate" in done.stdout and "bench-train" in done.stdout
    assert " torch" not in done.stderr and "diffusers" not in done.stderr


def test_the_lazy_package_keeps_its_names():
    for name in ddpm.__all__:
        assert getattr(ddpm, name) is getattr(__import__(f"ddpm.{ddpm._EXPORTS[name]}", fromlist=[name]), name)
    assert ddpm.recipes.DEFAULT_SAMPLER == defaults.DEFAULT_SAMPLER  # submodules by attribute, as the app uses
    assert set(dir(ddpm)) >= set(ddpm.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ddpm.nope


def test_the_version_is_pyproject_s():
    import tomllib

    pyproject = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())
    assert ddpm.__version__ == pyproject["project"]["version"]


def test_the_cli_s_sampler_names_are_the_schedule_s():
    from ddpm.schedule import SAMPLERS

    assert tuple(SAMPLERS) == defaults.SAMPLERS


def test_bundled_checkpoints_are_found_in_a_checkout_an_install_or_where_the_environment_says(tmp_path,
                                                                                              monkeypatch):
    monkeypatch.delenv(defaults.CHECKPOINTS_ENV, raising=False)
    assert defaults.checkpoints_dir() == PACKAGE.parent / "checkpoints"  # this checkout
    installed = tmp_path / "site-packages" / "ddpm"
    (installed / "checkpoints").mkdir(parents=True)
    monkeypatch.setattr(defaults, "PACKAGE_DIR", installed)
    assert defaults.checkpoints_dir() == installed / "checkpoints"  # where pyproject.toml installs them
    assert defaults.installed()
    monkeypatch.setenv(defaults.CHECKPOINTS_ENV, str(tmp_path / "mine"))
    assert defaults.checkpoints_dir() == tmp_path / "mine"


def test_an_installed_package_keeps_its_data_in_the_user_cache(tmp_path, monkeypatch):
    from ddpm import data

    monkeypatch.delenv("DDPM_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(data, "installed", lambda: True)
    assert data.data_root() == tmp_path / "ddpm" / "data"
    monkeypatch.setattr(data, "installed", lambda: False)
    assert data.data_root() == PACKAGE.parent / "data"
