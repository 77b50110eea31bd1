"""Emoji art styles from npm packages: which sets, their licences, and reading their images.

Each style is one :class:`EmojiSource`. The PNG sets (Noto, Twemoji) come in the
emoji-datasource layout (``img/<set>/64/<code points>.png``); Microsoft's Fluent flat SVGs
are named by the emoji's CLDR name (``grinning-face.svg``, ``thumbs-up-medium-dark.svg``)
and are matched to code points through the CLDR names in ``unicode-emoji-json``.

The licences below were read from the packages' own LICENSE/README files (see
``EMOJI_SOURCES.md`` next to this file). A set is used only if its licence is in
``ALLOWED_LICENCES``: OpenMoji (CC BY-SA 4.0) is catalogued but left out, because its
ShareAlike clause would bind the trained weights (adapted material) to CC BY-SA, which the
model's own licence does not follow.
"""

from __future__ import annotations

import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .downloads import Log, download_npm

# Licences whose terms a trained model can honour with an attribution line in its card.
ALLOWED_LICENCES = ("Apache-2.0", "MIT", "CC-BY-4.0")

# CLDR names of code points (MIT, Mu-An Chiou): maps Fluent's file names to code points.
NAMES_NPM = "unicode-emoji-json@0.9.0"
NAMES_MEMBER = "package/data-by-emoji.json"
EMOJI_JSON_MEMBER = "package/emoji.json"  # emoji-datasource: subgroups, skin variations

# emoji-datasource skin-tone keys -> Fluent file-name suffixes.
SKIN_TONES = {"1F3FB": "light", "1F3FC": "medium-light", "1F3FD": "medium",
              "1F3FE": "medium-dark", "1F3FF": "dark"}
RENDER_SIZE = 64  # SVGs are rasterised at the PNG sets' size, then all go through one resize


@dataclass(frozen=True)
class EmojiSource:
    """One emoji art style in one npm package.

    kind: "png" (emoji-datasource layout, files named by code point under ``image_dir``)
    or "svg-by-name" (SVG files under ``image_dir`` named by CLDR name).
    """

    name: str
    npm: str
    kind: str
    image_dir: str
    licence: str
    attribution: str

    @property
    def usable(self) -> bool:
        return self.licence in ALLOWED_LICENCES


SOURCES: tuple[EmojiSource, ...] = (
    EmojiSource("noto", "emoji-datasource-google@16.0.0", "png", "package/img/google/64/",
                "Apache-2.0", "Noto Emoji by Google (Apache License 2.0), via the npm package "
                "emoji-datasource-google 16.0.0 (package code MIT, Cal Henderson)"),
    EmojiSource("twemoji", "emoji-datasource-twitter@16.0.0", "png", "package/img/twitter/64/",
                "CC-BY-4.0", "Twemoji graphics by Twitter, Inc. and other contributors, licensed "
                "under CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/), via the npm "
                "package emoji-datasource-twitter 16.0.0"),
    EmojiSource("fluent", "fluentui-emoji@1.3.0", "svg-by-name", "package/icons/flat/",
                "MIT", "Fluent Emoji (flat style) by Microsoft Corporation (MIT License), via the "
                "npm package fluentui-emoji 1.3.0 (MIT, Mohammad Abu Mattar)"),
    EmojiSource("openmoji", "openmoji@17.0.0", "svg-by-code-point", "package/color/svg/",
                "CC-BY-SA-4.0", "OpenMoji (CC BY-SA 4.0): not used, ShareAlike would bind the weights"),
)


def usable_sources(sources: tuple[EmojiSource, ...] = SOURCES) -> tuple[EmojiSource, ...]:
    """The sources whose licence is in ``ALLOWED_LICENCES``, in catalogue order."""
    return tuple(s for s in sources if s.usable)


def npm_tarball(raw_dir: Path, spec: str) -> Path:
    """Where ``download_npm`` leaves ``spec`` inside ``raw_dir``."""
    name, _, version = spec.rpartition("@")
    return raw_dir / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"


def download_sources(raw_dir: Path, log: Log) -> Path:
    """npm-pack the usable sources and the CLDR name table into ``raw_dir`` (skipping those there)."""
    for spec in [s.npm for s in usable_sources()] + [NAMES_NPM]:
        download_npm(spec, raw_dir, log)
    return raw_dir


# -- reading the packages ------------------------------------------------------------------------
def read_members(tgz: Path, wanted: Callable[[str], bool]) -> dict[str, bytes]:
    """{member name: bytes} for the regular files of ``tgz`` whose name ``wanted`` accepts."""
    found = {}
    with tarfile.open(tgz, "r:gz") as tar:
        for member in tar:
            if member.isfile() and wanted(member.name):
                found[member.name] = tar.extractfile(member).read()
    return found


def read_json_member(tgz: Path, member: str):
    """One JSON file from an npm tarball; RuntimeError if it is missing."""
    found = read_members(tgz, lambda name: name == member)
    if member not in found:
        raise RuntimeError(f"{tgz}: {member} missing")
    return json.loads(found[member])


def name_key(name: str) -> str:
    """A CLDR name or file stem reduced to lowercase letters and digits ("woman's hat" == "womans-hat")."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


def code_point_chars(unified: str) -> str:
    """"1F44D-1F3FB" -> the emoji string."""
    return "".join(chr(int(part, 16)) for part in unified.split("-"))


def cldr_names(names_json: dict) -> dict[str, str]:
    """unicode-emoji-json's data-by-emoji -> {emoji string: name_key of its CLDR name}."""
    return {emoji: name_key(entry["slug"]) for emoji, entry in names_json.items()}


def fluent_file(stems: dict[str, str], cldr_key: str | None, tone: str | None) -> str | None:
    """The Fluent member for one emoji (and skin tone) or None.

    stems: {name_key(file stem): member name}. A toned emoji is ``<name>-<tone>``; the plain
    (yellow) one is ``<name>`` or, for emoji that have tones, ``<name>-default``.
    """
    if cldr_key is None:
        return None
    if tone is not None:
        return stems.get(cldr_key + name_key(SKIN_TONES[tone]))
    return stems.get(cldr_key) or stems.get(cldr_key + "default")


def render_svg(svg: bytes, size: int = RENDER_SIZE) -> bytes:
    """SVG bytes -> RGBA PNG bytes of ``size`` x ``size`` (resvg-py, imported only when needed)."""
    import resvg_py

    return bytes(resvg_py.svg_to_bytes(svg_string=svg.decode("utf-8"), width=size, height=size))

