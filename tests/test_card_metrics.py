"""``evaluate --write-card``: rows merged into a checkpoint's config.json and card, never downgraded."""
from __future__ import annotations

import pytest

import ddpm
from ddpm import card_metrics, card_steps


def test_write_card(tmp_path, quadrant_model):
    folder = quadrant_model.save(tmp_path / "tiny")
    rows = [{"setting": "ddim 2 steps, guidance 2", "n": 8, "accuracy": 0.5, "fid": 3.25, "fid_floor": 1.5,
             "seconds": 0.1, "accuracy_real": float("nan")}]
    assert card_metrics.local_folder(str(folder)) == folder
    card_metrics.write_card(folder, ddpm.load(folder), rows, "python -m ddpm evaluate --model x")
    config = ddpm.load(folder).meta["metrics"]
    assert config["rows"][0]["fid"] == 3.25 and config["rows"][0]["accuracy_real"] is None
    card = (folder / "README.md").read_text()
    assert "| ddim 2 steps, guidance 2 | 8 | 0.500 | 3.25 | 1.50 |" in card
    assert "Measured with `python -m ddpm evaluate --model x --dtype float32`." in card  # stored before --dtype
    # a second run adds its row and replaces the one it measured again; each row keeps its command
    again = [{**rows[0], "fid": 2.5}, {**rows[0], "setting": "ddpm 1000 steps, guidance 2", "fid": 1.75}]
    card_metrics.write_card(folder, ddpm.load(folder), again[1:], "cmd B")
    card_metrics.write_card(folder, ddpm.load(folder), again[:1], "cmd C")
    metrics = ddpm.load(folder).meta["metrics"]
    assert [(r["setting"], r["fid"], r["command"]) for r in metrics["rows"]] == [
        ("ddim 2 steps, guidance 2", 2.5, "cmd C"), ("ddpm 1000 steps, guidance 2", 1.75, "cmd B")]
    assert "Measured with:\n\n- `cmd C`\n- `cmd B`\n" in (folder / "README.md").read_text()
    assert "Evaluation classifier" not in (folder / "README.md").read_text()  # none recorded: none claimed
    # rows name the classifier that measured them; the card says when rows are not comparable
    judged = {**rows[0], "classifier": {"key": "k1", "test_accuracy": 0.99}}
    card_metrics.write_card(folder, ddpm.load(folder), [judged], "cmd D")
    card = (folder / "README.md").read_text()
    assert "Evaluation classifier: `k1` (test accuracy 0.99). Rows measured by different classifiers" in card
    card_metrics.write_card(folder, ddpm.load(folder), [{**judged, "setting": "ddpm 1000 steps, guidance 2"}], "cmd E")
    card = (folder / "README.md").read_text()
    assert "Evaluation classifier: `k1` (test accuracy 0.99).\n" in card  # one classifier for every row
    card = (folder / "README.md").read_text()
    with pytest.raises(ValueError, match=r"would replace the card's row 'ddim 2 steps, guidance 2', measured on 8 "
                                         r"samples, with one on 4: measure with --n 8 or more \(nothing was written\)"):
        card_metrics.write_card(folder, ddpm.load(folder), [{**judged, "n": 4, "fid": 9.0}], "cmd F")
    assert (folder / "README.md").read_text() == card
    with pytest.raises(ValueError, match="bundled or local"):
        card_metrics.local_folder(str(tmp_path / "missing"))


def _sweep_row(sampler, steps, accuracy, fid, guidance=1.5):
    return {"setting": f"{sampler} {steps} steps, guidance {guidance:g}, bfloat16", "sampler": sampler,
            "steps": steps, "guidance": guidance, "dtype": "bfloat16", "n": 500, "accuracy": accuracy, "fid": fid,
            "fid_floor": 1.5, "seconds": 1.0}


SWEEP = [_sweep_row("dpm++", 20, 0.95, 10.0), _sweep_row("dpm++", 4, 0.90, 20.0), _sweep_row("dpm++", 10, 0.95, 11.2),
         _sweep_row("unipc", 4, 0.95, 10.5), _sweep_row("unipc", 6, 0.93, 10.2), _sweep_row("unipc", 8, 0.941, 10.9),
         _sweep_row("unipc", 10, 0.95, 9.0), _sweep_row("deis", 10, 0.90, 10.0)]


def test_fewest_steps_that_keep_the_20_step_quality():
    """From the most steps down, the first count that loses accuracy (0.01) or FID (10%) ends the run: a lucky
    4 below a failing 6 does not count; a sampler whose every count fails keeps none."""
    assert card_steps.reference_row(SWEEP)["steps"] == 20 and card_steps.is_sweep(SWEEP)
    assert card_steps.fewest_steps(SWEEP) == {"dpm++": 20, "unipc": 8, "deis": None}
    assert not card_steps.is_sweep([_sweep_row("dpm++", 20, 0.95, 10.0), _sweep_row("unipc", 20, 0.95, 10.0)])
    line = card_steps.steps_summary(SWEEP)
    assert "dpm++: none below 20, unipc 8, deis: none below 20" in line and "0.950" in line and "10.00" in line
    table = card_steps.format_steps_table(SWEEP)
    assert table.splitlines()[0] == "| sampler | 4 steps | 6 steps | 8 steps | 10 steps | 20 steps |"
    assert "| deis |  |  |  | 0.900 / 10.00 |  |" in table and "| unipc | 0.950 / 10.50 | 0.930 / 10.20 |" in table


def test_write_card_steps_table(tmp_path, quadrant_model):
    """--steps-table stores the sweep beside the card's rows (never in them); a later sweep measured alike
    (n, guidance, precision) merges into it, one measured otherwise replaces it."""
    folder = quadrant_model.save(tmp_path / "tiny")
    main = [{"setting": "ddim 2 steps, guidance 2", "n": 8, "accuracy": 0.5, "fid": 3.25, "fid_floor": 1.5}]
    card_metrics.write_card(folder, ddpm.load(folder), main, "python -m ddpm evaluate --model x --dtype float32")
    card_metrics.write_card(folder, ddpm.load(folder), [{**r, "n": 200} for r in SWEEP[:2]], "cmd S0", steps=True)
    card_metrics.write_card(folder, ddpm.load(folder), SWEEP[:3], "cmd S1", steps=True)  # n 500: replaces
    card_metrics.write_card(folder, ddpm.load(folder), SWEEP[2:], "cmd S2", steps=True)  # alike: merges
    metrics = ddpm.load(folder).meta["metrics"]
    assert [r["setting"] for r in metrics["rows"]] == ["ddim 2 steps, guidance 2"]
    assert [(r["setting"], r["command"]) for r in metrics["steps"]["rows"]] == (
        [(r["setting"], "cmd S1") for r in SWEEP[:2]] + [(r["setting"], "cmd S2") for r in SWEEP[2:]])
    card = (folder / "README.md").read_text()
    assert "## Fewer steps" in card and "500 class-balanced samples per cell, guidance 1.5, bfloat16" in card
    assert card_steps.format_steps_table(SWEEP) in card and card_steps.steps_summary(SWEEP) in card
    assert "Measured with:\n\n- `cmd S1`\n- `cmd S2`\n" in card and "cmd S0" not in card
    card_metrics.write_card(folder, ddpm.load(folder), [{**main[0], "fid": 3.0}], "cmd M")  # the sweep stays
    assert "## Fewer steps" in (folder / "README.md").read_text()
    # what looking at the grids showed: in the card, kept by a sweep measured alike, gone with one measured otherwise
    card_metrics.set_steps_looked(folder, "the 8-step grid is grainier.")
    card_metrics.write_card(folder, ddpm.load(folder), SWEEP[3:5], "cmd S3", steps=True)
    card = (folder / "README.md").read_text()
    assert ("**Looked at:** the 8-step grid is grainier. So no step count below 20 is offered as keeping the "
            "quality.") in card and ddpm.load(folder).meta["metrics"]["steps"]["looked"]
    with pytest.raises(ValueError, match="empty verdict"):
        card_metrics.set_steps_looked(folder, "  ")
    card_metrics.write_card(folder, ddpm.load(folder), [{**r, "n": 100} for r in SWEEP[:2]], "cmd S4", steps=True)
    assert "looked" not in ddpm.load(folder).meta["metrics"]["steps"]
    card_metrics.set_steps_looked(folder, "x.")
    card_metrics.set_steps_looked(folder, None)
    assert "Looked at" not in (folder / "README.md").read_text()
    # a look that keeps a count: only one the sweep measured for the reference sampler, and whose numbers keep it
    rows = [_sweep_row("dpm++", n, a, f) for n, a, f in ((20, 0.95, 10.0), (10, 0.95, 10.4), (8, 0.95, 10.6),
                                                          (6, 0.945, 10.9), (4, 0.90, 20.0))]
    card_metrics.write_card(folder, ddpm.load(folder), rows, "cmd S5", steps=True)
    assert card_steps.fewest_steps(rows)["dpm++"] == 6
    card_metrics.set_steps_looked(folder, "the 4- and 6-step grids are blurred.", fewest=8)
    steps = ddpm.load(folder).meta["metrics"]["steps"]
    assert steps["looked_fewest"] == 8 and card_steps.offered_steps(steps) == {"dpm++": 8}
    assert ("**Looked at:** the 4- and 6-step grids are blurred. So dpm++ 8 steps is the fewest offered as keeping "
            "the quality.") in (folder / "README.md").read_text()
    for bad in (20, 7, True, "8", 4):  # the reference, unmeasured, not a count, a count the numbers do not keep
        with pytest.raises(ValueError, match="fewest=|do not keep"):
            card_metrics.set_steps_looked(folder, "x.", fewest=bad)
    assert ddpm.load(folder).meta["metrics"]["steps"]["looked_fewest"] == 8, "a refused look changes nothing"
    assert card_steps.offered_steps({**steps, "rows": rows[:2] + [_sweep_row("dpm++", 8, 0.90, 20.0)] + rows[3:]}) == {}, \
        "a count whose numbers a merged sweep no longer keeps is not offered"
    card_metrics.set_steps_looked(folder, "x.")  # a new look without a count keeps none
    assert card_steps.offered_steps(ddpm.load(folder).meta["metrics"]["steps"]) == {}
    card_metrics.set_steps_looked(folder, None)
    assert card_steps.offered_steps(ddpm.load(folder).meta["metrics"]["steps"]) == card_steps.fewest_steps(rows)
    with pytest.raises(ValueError, match="no steps sweep"):
        card_metrics.set_steps_looked(quadrant_model.save(tmp_path / "bare"), "x.")
    for bad, message in ((SWEEP[:1] + SWEEP[3:4], "needs a sweep over steps"),
                         (SWEEP[:2] + [_sweep_row("dpm++", 6, 0.9, 9.0, guidance=3)], "differ in guidance")):
        with pytest.raises(ValueError, match=message):
            card_metrics.write_card(folder, ddpm.load(folder), bad, "cmd X", steps=True)


def test_card_commands_name_their_precision(tmp_path, quadrant_model):
    """A row stored before --dtype was always written ran at float32 (or the precision its setting names):
    its command says so, now that the default is "auto"."""
    folder = quadrant_model.save(tmp_path / "tiny")
    rows = [{"setting": "ddim 2 steps, guidance 2", "n": 8, "accuracy": 0.5, "fid": 3.25, "fid_floor": 1.5},
            {"setting": "ddim 2 steps, guidance 2, bfloat16", "n": 8, "accuracy": 0.5, "fid": 3.25, "fid_floor": 1.5}]
    card_metrics.write_card(folder, ddpm.load(folder), rows[:1], "python -m ddpm evaluate --model x")
    card_metrics.write_card(folder, ddpm.load(folder), rows[1:], "python -m ddpm evaluate --model x --seed 0")
    card_metrics.write_card(folder, ddpm.load(folder), [{**rows[0], "setting": "s"}], "cmd B")
    card = (folder / "README.md").read_text()
    assert "- `python -m ddpm evaluate --model x --dtype float32`" in card
    assert "- `python -m ddpm evaluate --model x --seed 0 --dtype bfloat16`" in card and "- `cmd B`" in card
