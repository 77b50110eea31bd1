"""``evaluate --write-card``: rows merged into a checkpoint's config.json and card, never downgraded."""
from __future__ import annotations

import pytest

import ddpm
from ddpm import card_metrics


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
    assert "Measured with `python -m ddpm evaluate --model x`." in card
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
