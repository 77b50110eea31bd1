"""Tests for the emoji v2 dataset (ddpm.data.emoji2, ddpm.data.emoji_sources) on tiny synthetic
npm tarballs: no network, no fetched data, no SVG renderer."""

from __future__ import annotations

import csv
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ddpm import data
from ddpm.data import emoji2, emoji_sources
from ddpm.data.emoji2 import (
    EMOJI2_CLASSES, Emoji, SourceFiles, pick_tones, plan_images, select_emoji, split_by_code_point,
    subgroup_labels,
)
from ddpm.data.emoji_sources import SOURCES, EmojiSource, fluent_file, name_key, usable_sources

NOTO, TWEMOJI, FLUENT, OPENMOJI = SOURCES


# ---------------------------------------------------------------- classes from subgroups


def test_every_class_merges_its_own_subgroups_and_no_subgroup_is_claimed_twice():
    labels = subgroup_labels(EMOJI2_CLASSES)
    assert 8 <= len(EMOJI2_CLASSES) <= 12
    assert labels["face-smiling"] == labels["face-concerned"] == list(EMOJI2_CLASSES).index("faces")
    assert labels["food-fruit"] == labels["plant-flower"] != labels["food-prepared"]
    with pytest.raises(ValueError, match="two classes"):
        subgroup_labels({"a": ("heart",), "b": ("sport", "heart")})


def _entry(unified, subgroup, sort_order, name="X", tones=()):
    entry = {"unified": unified, "name": name, "subcategory": subgroup, "sort_order": sort_order,
             "image": unified.lower() + ".png"}
    if tones:
        entry["skin_variations"] = {t: {"image": f"{unified.lower()}-{t.lower()}.png"} for t in tones}
    return entry


def test_select_emoji_maps_subgroups_to_classes_and_drops_the_rest():
    entries = [
        _entry("1F697", "transport-ground", 3, "AUTOMOBILE"),
        _entry("1F600", "face-smiling", 1, "GRINNING FACE"),
        _entry("1F3FB", "skin-tone", 0),                              # a component: no class
        _entry("1F454", "clothing", 2, "NECKTIE"),                     # a subgroup left out
        _entry("26FD", "transport-ground", 4, "FUEL PUMP"),            # excluded by name
        _entry("1F44D", "hand-fingers-closed", 5, "THUMBS UP SIGN", tones=("1F3FB", "1F3FF", "1F3FB-1F3FF")),
    ]
    chosen = select_emoji(entries)
    names = list(EMOJI2_CLASSES)
    assert [(e.code_point, names[e.label]) for e in chosen] == [
        ("1F600", "faces"), ("1F697", "vehicles"), ("1F44D", "hands")]
    assert chosen[2].tones == ("1F3FB", "1F3FF")  # mixed multi-person tones are left out


# ---------------------------------------------------------------- split by code point


def _emoji(n_per_class: list[int]) -> list[Emoji]:
    out = []
    for label, n in enumerate(n_per_class):
        for i in range(n):
            cp = f"{label:02X}{i:03X}"
            out.append(Emoji(cp, cp, "s", label, ("1F3FB", "1F3FC", "1F3FD"),
                             {"image": f"{cp}.png",
                              "skin_variations": {t: {"image": f"{cp}-{t}.png"} for t in ("1F3FB", "1F3FC", "1F3FD")}}))
    return out


def test_split_holds_out_a_fraction_of_the_emoji_of_each_class_reproducibly():
    emoji = _emoji([40, 20, 7])
    test = split_by_code_point(emoji, 0.15, seed=0)
    per_class = [sum(e.code_point in test for e in emoji if e.label == k) for k in range(3)]
    assert per_class == [6, 3, 1]
    assert test == split_by_code_point(list(reversed(emoji)), 0.15, seed=0)  # order does not matter
    assert test != split_by_code_point(emoji, 0.15, seed=1)


def _png_source(name: str, image_dir: str) -> EmojiSource:
    return EmojiSource(name, f"{name}-pkg@1.0.0", "png", image_dir, "MIT", f"{name} art")


def test_no_code_point_is_in_both_splits_across_styles_and_tones():
    emoji = _emoji([12, 9])
    a, b = _png_source("a", "a/"), _png_source("b", "b/")
    files = [SourceFiles(a, {"a/" + e.entry["image"] for e in emoji}
                         | {"a/" + v["image"] for e in emoji for v in e.entry["skin_variations"].values()}),
             SourceFiles(b, {"b/" + e.entry["image"] for e in emoji})]  # b has no tones
    records = plan_images(emoji, files, tones_per_emoji=2)
    test = split_by_code_point(emoji, 0.25, seed=0)
    rows = emoji2.manifest_rows(records, test, ["x", "y"])
    splits_of: dict[str, set[str]] = {}
    for row in rows:
        splits_of.setdefault(row["code_point"], set()).add(row["split"])
    assert all(len(s) == 1 for s in splits_of.values())
    assert {cp for cp, s in splits_of.items() if s == {"test"}} == test
    # per emoji: a gives the base and 2 of its 3 tones, b only the base
    assert len(records) == len(emoji) * (3 + 1)
    assert sum(r.tone is not None for r in records if r.source is b) == 0


def test_pick_tones_caps_and_is_stable_per_emoji_and_source():
    tones = ("1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF")
    picked = pick_tones(tones, 2, "1F44Dnoto", seed=0)
    assert len(picked) == 2 and set(picked) <= set(tones)
    assert picked == pick_tones(tones, 2, "1F44Dnoto", seed=0)
    assert pick_tones(tones[:1], 2, "x", seed=0) == tones[:1]
    assert len({pick_tones(tones, 2, f"{i}", seed=0) for i in range(20)}) > 1  # not always the same two


# ---------------------------------------------------------------- Fluent names, licences


def test_fluent_files_are_found_by_cldr_name_with_and_without_tones():
    members = ["icons/flat/thumbs-up-default.svg", "icons/flat/thumbs-up-medium-dark.svg",
               "icons/flat/womans-hat.svg", "icons/flat/grinning-face.svg"]
    stems = {name_key(Path(m).stem): m for m in members}
    assert fluent_file(stems, name_key("thumbs_up"), None) == members[0]
    assert fluent_file(stems, name_key("thumbs_up"), "1F3FE") == members[1]
    assert fluent_file(stems, name_key("thumbs_up"), "1F3FB") is None      # that tone is missing
    assert fluent_file(stems, name_key("woman's hat"), None) == members[2]  # punctuation does not matter
    assert fluent_file(stems, None, None) is None


def test_licence_filter_keeps_attribution_licences_and_drops_share_alike():
    assert usable_sources() == (NOTO, TWEMOJI, FLUENT)
    assert OPENMOJI.licence == "CC-BY-SA-4.0" and not OPENMOJI.usable
    nc = EmojiSource("nc", "nc@1", "png", "x/", "CC-BY-NC-4.0", "")
    assert usable_sources((nc, NOTO)) == (NOTO,)
    text = emoji2.attribution_text((NOTO, FLUENT))
    assert "Apache-2.0" in text and "Microsoft" in text
    assert text.index("Left out") < text.index("CC-BY-SA-4.0") and text.index("Left out") < text.index("Twemoji")


# ---------------------------------------------------------------- end to end: fetch -> npz + manifest


def _png(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (64, 64), colour).save(buf, format="PNG")
    return buf.getvalue()


def _tarball(path: Path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


def test_fetch_writes_splits_and_a_manifest_that_matches_them(tmp_path, monkeypatch):
    a = EmojiSource("a", "pkg-a@1.0.0", "png", "package/img/a/64/", "Apache-2.0", "A art")
    b = EmojiSource("b", "pkg-b@1.0.0", "png", "package/img/b/64/", "CC-BY-4.0", "B art")
    monkeypatch.setattr(emoji2, "usable_sources", lambda: (a, b))
    monkeypatch.setattr(emoji_sources, "usable_sources", lambda: (a, b))
    subgroups = [s for subs in EMOJI2_CLASSES.values() for s in subs[:1]]
    entries = [_entry(f"1F{k:01X}{i:02X}", sub, 10 * k + i, f"E{k}-{i}", tones=("1F3FB",) if i == 0 else ())
               for k, sub in enumerate(subgroups) for i in range(4)]
    colours = {e["unified"]: (10 * k, 20 * i, 200, 255) for k in range(len(subgroups))
               for i, e in enumerate(entries[4 * k: 4 * k + 4])}
    raw = tmp_path / "raw" / "emoji2"
    raw.mkdir(parents=True)
    for source, shade in ((a, 0), (b, 1)):
        files = {"package/emoji.json": json.dumps(entries).encode()}
        for e in entries:
            r, g, bl, al = colours[e["unified"]]
            files[source.image_dir + e["image"]] = _png((r, g, bl - 100 * shade, al))
            for v in e.get("skin_variations", {}).values():
                files[source.image_dir + v["image"]] = _png((r, g, 50, 255))
        _tarball(emoji_sources.npm_tarball(raw, source.npm), files)
    _tarball(emoji_sources.npm_tarball(raw, emoji_sources.NAMES_NPM),
             {emoji_sources.NAMES_MEMBER: b"{}"})

    data.fetch(["emoji2"], root=tmp_path, log=lambda msg: None)

    folder = tmp_path / "emoji2"
    rows = list(csv.DictReader((folder / "manifest.csv").open()))
    splits = {s: data.load("emoji2", s, root=tmp_path) for s in data.SPLITS}
    assert len(rows) == sum(len(s) for s in splits.values()) == len(entries) * 2 + len(subgroups) * 2
    assert {r["split"] for r in rows if r["code_point"] == entries[0]["unified"]} in ({"train"}, {"test"})
    assert sum(r["split"] == "test" for r in rows) > 0
    for row in rows:
        split = splits[row["split"]]
        index = int(row["index"])
        assert int(split.labels[index]) == int(row["label"]) and split.class_names[int(row["label"])] == row["class"]
        assert row["licence"] == {"a": "Apache-2.0", "b": "CC-BY-4.0"}[row["source"]]
        r, g, bl, _ = colours[row["code_point"]]
        expected_blue = 50 if row["skin_tone"] else bl - 100 * (row["source"] == "b")
        assert split.images[index, :, 16, 16].tolist() == [r, g, expected_blue]
    attribution = (folder / "ATTRIBUTION.md").read_text()
    assert "A art" in attribution and "B art" in attribution
    assert np.array_equal(np.bincount(splits["train"].labels.numpy(), minlength=len(subgroups)) > 0,
                          np.ones(len(subgroups), bool))
