"""Emoji v2: classes by look (merged CLDR subgroups), drawn in several open art styles.

One *emoji* is a base code point (``unified`` in emoji-datasource's emoji.json, skin tones
stripped); its images are the base emoji and up to ``TONES_PER_EMOJI`` of its single skin tones,
in every usable style (``emoji_sources.usable_sources``). The test split is drawn by emoji, per
class, so no emoji is in the test split in one style or tone and in the training split in another.

``convert_emoji2`` returns the splits and two files written next to them: ``manifest.csv``
(one row per image: split, index, class, code point, skin tone, source, licence, file) and
``ATTRIBUTION.md`` (the licences and attribution lines of the sources used).
"""

from __future__ import annotations

import csv
import io
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .downloads import Log
from .emoji import emoji_png_to_rgb
from .emoji_sources import (
    EMOJI_JSON_MEMBER, NAMES_MEMBER, NAMES_NPM, SOURCES, EmojiSource, cldr_names, code_point_chars,
    fluent_file, name_key, npm_tarball, read_json_member, read_members, render_svg, usable_sources,
)

# Class name -> the CLDR subgroups (emoji.json "subcategory") it merges. Chosen by looking at
# contact sheets of each candidate in all styles (see EMOJI_SOURCES.md).
EMOJI2_CLASSES: dict[str, tuple[str, ...]] = {
    "faces": ("face-smiling", "face-affection", "face-tongue", "face-hand", "face-neutral-skeptical",
              "face-sleepy", "face-unwell", "face-hat", "face-glasses", "face-concerned",
              "face-negative"),
    "people": ("person", "person-gesture", "person-role"),
    "hands": ("hand-fingers-open", "hand-fingers-partial", "hand-single-finger",
              "hand-fingers-closed", "hands", "hand-prop"),
    "animals": ("animal-mammal", "animal-bird", "animal-marine", "animal-bug", "animal-reptile",
                "animal-amphibian"),
    "plants & fruit": ("plant-flower", "plant-other", "food-fruit", "food-vegetable"),
    "food": ("food-prepared", "food-asian", "food-sweet"),
    "vehicles": ("transport-ground", "transport-air", "transport-water"),
    "sky & weather": ("sky & weather",),
    "flags": ("country-flag", "subdivision-flag", "flag"),
    "signs": ("alphanum", "av-symbol", "keycap", "arrow", "zodiac"),
}

# Emoji of those subgroups that do not look like their class (emoji.json names, lower case):
# the transport subgroups also hold signs, lights, rails, fuel pumps and seats; sky & weather
# holds umbrellas and a thermometer.
EXCLUDED_NAMES = frozenset((
    "thermometer", "closed umbrella", "umbrella", "umbrella with rain drops", "umbrella on ground",
    "station", "bus stop", "motorway", "railway track", "oil drum", "fuel pump", "wheel",
    "police cars revolving light", "horizontal traffic light", "vertical traffic light",
    "octagonal sign", "construction sign", "roller skate", "manual wheelchair",
    "motorized wheelchair", "anchor", "ring buoy", "parachute", "seat", "airplane departure",
    "airplane arriving", "satellite",
))

EMOJI2_SIZE = 32
EMOJI2_TEST_FRACTION = 0.15
EMOJI2_SEED = 0
TONES_PER_EMOJI = 2  # skin-tone images per emoji and style, besides the base (yellow) one


@dataclass(frozen=True)
class Emoji:
    """One base emoji: code point, name, CLDR subgroup, class label, skin tones it has."""

    code_point: str
    name: str
    subgroup: str
    label: int
    tones: tuple[str, ...]
    entry: dict  # its emoji.json entry (image file names, has_img_* flags)


@dataclass(frozen=True)
class ImageRecord:
    """One image of the dataset: which emoji, which tone (None = base), which source and file."""

    emoji: Emoji
    tone: str | None
    source: EmojiSource
    member: str


def subgroup_labels(classes: dict[str, tuple[str, ...]]) -> dict[str, int]:
    """{subgroup: class index}; ValueError if a subgroup is claimed by two classes."""
    labels: dict[str, int] = {}
    for index, subgroups in enumerate(classes.values()):
        for subgroup in subgroups:
            if subgroup in labels:
                raise ValueError(f"subgroup {subgroup!r} is in two classes")
            labels[subgroup] = index
    return labels


def select_emoji(entries: list[dict], classes: dict[str, tuple[str, ...]] = EMOJI2_CLASSES) -> list[Emoji]:
    """emoji.json entries -> the base emoji whose subgroup is in a class, in the data's sort order.

    Entries named in ``EXCLUDED_NAMES`` are left out.
    Only single skin tones (keys like "1F3FB") count; the mixed tones of multi-person emoji
    ("1F3FB-1F3FC") are left out.
    """
    labels = subgroup_labels(classes)
    chosen = []
    for entry in sorted(entries, key=lambda e: e.get("sort_order", 0)):
        label = labels.get(entry.get("subcategory"))
        if label is None or (entry.get("name") or "").lower() in EXCLUDED_NAMES:
            continue
        tones = tuple(sorted(t for t in entry.get("skin_variations") or {} if "-" not in t))
        chosen.append(Emoji(entry["unified"], entry.get("name") or entry["unified"],
                            entry["subcategory"], label, tones, entry))
    return chosen


def split_by_code_point(emoji: list[Emoji], test_fraction: float, seed: int) -> set[str]:
    """The code points of the test split: round(test_fraction * n) random emoji of each class."""
    test: set[str] = set()
    for label in sorted({e.label for e in emoji}):
        members = sorted(e.code_point for e in emoji if e.label == label)
        rng = np.random.default_rng([seed, label])
        n_test = int(round(test_fraction * len(members)))
        test.update(members[i] for i in rng.permutation(len(members))[:n_test])
    return test


def pick_tones(tones: tuple[str, ...], k: int, key: str, seed: int) -> tuple[str, ...]:
    """Up to ``k`` of ``tones``, a stable random choice for ``key`` (emoji and source)."""
    if len(tones) <= k:
        return tones
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    return tuple(sorted(tones[i] for i in rng.choice(len(tones), size=k, replace=False)))


class SourceFiles:
    """Which file of one source draws an emoji (in a tone), from the source's file list."""

    def __init__(self, source: EmojiSource, members: set[str], names: dict[str, str] | None = None):
        self.source, self.members, self.names = source, members, names or {}
        self.stems = {name_key(Path(m).stem): m for m in members}

    def member(self, emoji: Emoji, tone: str | None) -> str | None:
        if self.source.kind == "png":
            entry = emoji.entry if tone is None else emoji.entry["skin_variations"][tone]
            member = self.source.image_dir + entry["image"]
            return member if member in self.members else None
        if self.source.kind == "svg-by-name":
            return fluent_file(self.stems, self.names.get(code_point_chars(emoji.code_point)), tone)
        raise ValueError(f"unknown source kind {self.source.kind!r}")


def plan_images(emoji: list[Emoji], files: list[SourceFiles], tones_per_emoji: int = TONES_PER_EMOJI,
                seed: int = EMOJI2_SEED) -> list[ImageRecord]:
    """Every image to make: per emoji and source, the base image and up to ``tones_per_emoji`` tones."""
    records = []
    for e in emoji:
        for f in files:
            available = tuple(t for t in e.tones if f.member(e, t) is not None)
            for tone in (None, *pick_tones(available, tones_per_emoji, e.code_point + f.source.name, seed)):
                member = f.member(e, tone)
                if member is not None:
                    records.append(ImageRecord(e, tone, f.source, member))
    return records


MANIFEST_FIELDS = ("split", "index", "label", "class", "code_point", "skin_tone", "name", "subgroup",
                   "source", "licence", "file")


def manifest_rows(records: list[ImageRecord], test: set[str], class_names: list[str]) -> list[dict]:
    """One manifest row per record; ``index`` is the record's position in its split's arrays."""
    counters = {"train": 0, "test": 0}
    rows = []
    for r in records:
        split = "test" if r.emoji.code_point in test else "train"
        rows.append({"split": split, "index": counters[split], "label": r.emoji.label,
                     "class": class_names[r.emoji.label], "code_point": r.emoji.code_point,
                     "skin_tone": r.tone or "", "name": r.emoji.name, "subgroup": r.emoji.subgroup,
                     "source": r.source.name, "licence": r.source.licence, "file": r.member})
        counters[split] += 1
    return rows


def manifest_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def attribution_text(used: tuple[EmojiSource, ...]) -> str:
    """The licence and attribution lines of the sources used, and those left out and why."""
    lines = ["# Emoji images: sources and licences", ""]
    lines += [f"- **{s.name}** ({s.licence}): {s.attribution}" for s in used]
    left_out = [s for s in SOURCES if s not in used]
    if left_out:
        lines += ["", "Left out:"] + [f"- **{s.name}** ({s.licence}): {s.attribution}" for s in left_out]
    return "\n".join(lines) + "\n"


def convert_emoji2(raw_dir: Path, log: Log) -> dict:
    """The npm tarballs in ``raw_dir`` -> {"train": (images, labels), "test": ..., "files": {...}}."""
    used = usable_sources()
    entries = read_json_member(npm_tarball(raw_dir, used[0].npm), EMOJI_JSON_MEMBER)
    names = cldr_names(read_json_member(npm_tarball(raw_dir, NAMES_NPM), NAMES_MEMBER))
    emoji = select_emoji(entries)
    class_names = list(EMOJI2_CLASSES)
    blobs: dict[str, dict[str, bytes]] = {}
    files = []
    for source in used:
        blobs[source.name] = read_members(npm_tarball(raw_dir, source.npm),
                                          lambda m, d=source.image_dir: m.startswith(d))
        files.append(SourceFiles(source, set(blobs[source.name]), names))
        log(f"  {source.name}: {len(blobs[source.name])} files in {source.npm}")
    records = plan_images(emoji, files)
    test = split_by_code_point(emoji, EMOJI2_TEST_FRACTION, EMOJI2_SEED)
    rows = manifest_rows(records, test, class_names)
    images = np.stack([image_of(r, blobs[r.source.name][r.member]) for r in records])
    labels = np.array([r.emoji.label for r in records], dtype=np.int64)
    is_test = np.array([row["split"] == "test" for row in rows])
    return {
        "train": (images[~is_test], labels[~is_test]),
        "test": (images[is_test], labels[is_test]),
        "files": {"manifest.csv": manifest_csv(rows), "ATTRIBUTION.md": attribution_text(used)},
    }


def image_of(record: ImageRecord, data: bytes) -> np.ndarray:
    """uint8 (3, 32, 32) on white from a source file (PNG, or SVG rendered at 64 px first)."""
    png = render_svg(data) if record.member.endswith(".svg") else data
    return emoji_png_to_rgb(png, EMOJI2_SIZE)
