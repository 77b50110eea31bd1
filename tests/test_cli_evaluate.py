"""``python -m ddpm evaluate``: the model's own defaults, the card's command, clear errors."""
from __future__ import annotations

import argparse

import ddpm
from ddpm import evaluate, tables
from ddpm.card import model_card
from ddpm.cli import evaluate as cli_evaluate
from ddpm.device import default_dtype


def test_guidance_sweep_is_one_row_per_sampler_and_value(capsys):
    sweep = evaluate.settings_from_spec("ddim:50,dpm++:20", guidance=" 1, 1.5,3 ", seed=4)
    assert [(s.sampler, s.steps, s.guidance) for s in sweep] == [
        ("ddim", 50, 1.0), ("ddim", 50, 1.5), ("ddim", 50, 3.0), ("dpm++", 20, 1.0), ("dpm++", 20, 1.5), ("dpm++", 20, 3.0)]
    assert {s.seed for s in sweep} == {4}
    args = cli_evaluate.add_arguments(argparse.ArgumentParser()).parse_args(["--model", "m", "--guidance", "1,1.50"])
    assert "--guidance 1,1.5 --seed 0" in cli_evaluate.command_line(args)
    assert cli_evaluate.run(cli_evaluate.add_arguments(argparse.ArgumentParser()).parse_args(["--model", "m", "--guidance", "a"])) == 2
    assert "bad guidance 'a'" in capsys.readouterr().err


def test_cli_measures_at_the_models_own_guidance_unless_told(tmp_path, quadrant_model, monkeypatch, capsys):
    """Without --guidance, evaluate samples at the checkpoint's default and the card's command names it;
    the card lists that default and the per-class accuracies."""
    quadrant_model.meta["sampling"] = {"guidance": 4}
    folder = quadrant_model.save(tmp_path / "tiny")
    del quadrant_model.meta["sampling"]
    seen = []

    def fake_evaluate(model, settings, **_):  # the sampling itself is tested above
        seen.append([s.guidance for s in settings])
        return [{"setting": evaluate.settings_label(s), "guidance": s.guidance, "n": 8, "accuracy": 0.75, "fid": 3.0,
                 "fid_floor": 1.0, "seconds": 0.1, "class_accuracy": {"q0": 1.0, "q1": 0.5}} for s in settings]

    monkeypatch.setattr(evaluate, "evaluate", fake_evaluate)
    parser = cli_evaluate.add_arguments(argparse.ArgumentParser())
    assert cli_evaluate.run(parser.parse_args(["--model", str(folder), "--samplers", "ddim:2", "--write-card"])) == 0
    assert cli_evaluate.run(parser.parse_args(["--model", str(folder), "--samplers", "ddim:2", "--guidance", "1"])) == 0
    assert seen == [[4.0], [1.0]]
    assert "| q1 | 0.50 |" in capsys.readouterr().out
    card = (folder / "README.md").read_text()
    assert f"--samplers ddim:2 --guidance 4 --seed 0 --dtype {default_dtype(quadrant_model.device)}`" in card  # the precision that ran
    assert "| default guidance | 4 " in card
    assert "| class | ddim 2 steps, guidance 4 |" in card and "| q0 | 1.00 |" in card


def test_cli_measures_with_the_models_own_sampler_unless_told(tmp_path, quadrant_model, monkeypatch):
    plain = quadrant_model.save(tmp_path / "plain")
    quadrant_model.meta["sampling"] = {"sampler": "dpm++sde"}
    folder = quadrant_model.save(tmp_path / "tiny")
    del quadrant_model.meta["sampling"]
    seen = []
    monkeypatch.setattr(evaluate, "evaluate", lambda model, settings, **_: seen.append(settings) or [])
    monkeypatch.setattr(tables, "format_table", lambda rows: "")
    parser = cli_evaluate.add_arguments(argparse.ArgumentParser())
    assert cli_evaluate.run(parser.parse_args(["--model", str(folder)])) == 0
    assert cli_evaluate.run(parser.parse_args(["--model", str(folder), "--samplers", "ddim:3"])) == 0
    assert cli_evaluate.run(parser.parse_args(["--model", str(plain)])) == 0
    assert [(s.sampler, s.steps, s.guidance) for [s] in seen] == [("dpm++sde", 20, 1.5), ("ddim", 3, 1.5),
                                                                  ("dpm++", 20, 1.5)]
    card = model_card(ddpm.load(folder))
    assert "| default sampler | dpm++sde " in card and "default guidance" not in card


def test_cli_reports_bad_sampler(capsys):
    parser = cli_evaluate.add_arguments(argparse.ArgumentParser())
    assert cli_evaluate.run(parser.parse_args(["--model", "mnist", "--samplers", "foo:10"])) == 2
    assert "unknown sampler 'foo'" in capsys.readouterr().err
    assert cli_evaluate.run(parser.parse_args(["--model", "mnist", "--samplers", ""])) == 2  # empty is not "the default"
    assert "no sampler given" in capsys.readouterr().err


def test_cli_steps_table(tmp_path, quadrant_model, monkeypatch, capsys):
    """A steps sweep prints the fewest steps that keep the 20-step quality; --steps-table writes it into the card
    (the command to rerun it included), and refuses a spec that is no sweep before sampling anything."""
    folder = quadrant_model.save(tmp_path / "tiny")
    quality = {4: (0.5, 9.0), 6: (0.74, 3.2), 20: (0.75, 3.0)}

    def fake_evaluate(model, settings, **_):
        return [{"setting": evaluate.settings_label(s), "sampler": s.sampler, "steps": s.steps, "guidance": s.guidance,
                 "dtype": s.dtype, "n": 8, "accuracy": quality[s.steps][0], "fid": quality[s.steps][1],
                 "fid_floor": 1.0, "seconds": 0.1} for s in settings]

    monkeypatch.setattr(evaluate, "evaluate", fake_evaluate)
    parser = cli_evaluate.add_arguments(argparse.ArgumentParser())
    spec = ["--samplers", "dpm++:20,dpm++:4,dpm++:6,unipc:4,unipc:6", "--dtype", "float32"]
    assert cli_evaluate.run(parser.parse_args(["--model", str(folder), *spec, "--steps-table"])) == 2
    assert "give --write-card too" in capsys.readouterr().err
    assert cli_evaluate.run(parser.parse_args(["--model", "nowhere", "--samplers", "dpm++:20,unipc:20",
                                               "--write-card", "--steps-table"])) == 2
    assert "needs a sweep over steps" in capsys.readouterr().err  # before looking for the model
    assert cli_evaluate.run(parser.parse_args(["--model", str(folder), *spec, "--write-card", "--steps-table"])) == 0
    assert "quality (class accuracy at most 0.01 below 0.750, FID at most 10% above 3.00): dpm++ 6, unipc 6." in \
        capsys.readouterr().out
    card = (folder / "README.md").read_text()
    assert "## Fewer steps" in card and "## Measured quality" not in card  # the sweep is not the card's main table
    assert (f"`python -m ddpm evaluate --model {folder} --n 1000 --samplers {spec[1]} --guidance 1.5 --seed 0 "
            f"--dtype float32 --write-card --steps-table`") in card
