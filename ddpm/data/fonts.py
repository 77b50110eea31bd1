"""Font collection for the letters dataset: font packages, reading their files, choosing faces."""

from __future__ import annotations

import hashlib
import io
import re
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .downloads import Log, download_debs, download_wheels, extract_deb
from .glyphs import RENDER_SIZE

LETTER_FONT_DEBS = (
    "fonts-adf-berenis", "fonts-adf-gillius", "fonts-breip", "fonts-bwht", "fonts-cabin",
    "fonts-comfortaa", "fonts-comic-neue", "fonts-croscore", "fonts-dancingscript",
    "fonts-dkg-handwriting", "fonts-dustin", "fonts-femkeklaver", "fonts-freefont-ttf",
    "fonts-humor-sans", "fonts-inconsolata", "fonts-kristi", "fonts-leckerli-one",
    "fonts-liberation2", "fonts-lobster", "fonts-lobstertwo", "fonts-open-sans",
    "fonts-quicksand", "fonts-roboto-slab", "fonts-roboto-unhinted", "fonts-rufscript",
    "fonts-sjfonts", "fonts-staypuft", "fonts-urw-base35", "fonts-yanone-kaffeesatz",
)
# One Google Fonts family per wheel, files under fontpkg_<name>/files/. Versions pinned
# so that the rendered dataset is reproducible.
LETTER_FONT_WHEELS = tuple(f"fontpkg-{spec}" for spec in """
abeezee==1.3 abel==1.3 abril-fatface==1.1 acme==1.2 albert-sans==1.25 alegreya-sans==2.4
alfa-slab-one==2.0 almarai==1.100 alumni-sans==1.18 amiri==1.2 andada-pro==3.3
anek-telugu==1.3 antic-slab==1.2 anton==2.116 archivo==2.1 archivo-black==1.6
archivo-narrow==3.2 arimo==1.341 arvo==1.6 asap==3.2 assistant==3.0
atkinson-hyperlegible==1.6 baloo-2==1.700 barlow==1.408 barlow-condensed==1.408
barlow-semi-condensed==1.408 be-vietnam-pro==1.2 bebas-neue==2.0 bitter==3.21
black-ops-one==1.4 bodoni-moda==2.5 bricolage-grotesque==1.1 bungee==2.0 cabin==3.1
cairo==3.130 cardo==1.45 catamaran==2.0 caveat==2.0 chakra-petch==1.0 changa-one==1.3
chivo==2.2 cinzel==2.0 comfortaa==3.105 cormorant==4.0 cormorant-garamond==4.1
crimson-pro==1.3 crimson-text==1.100 dancing-script==2.1 delius==1.1 dm-mono==1.0
dm-sans==4.4 dm-serif-display==5.200 dm-serif-text==5.200 domine==2.0 dosis==3.2
eb-garamond==1.3 encode-sans==3.2 epilogue==2.112 exo==2.1 exo-2==2.10 figtree==2.2
fira-code==5.2.post1 fira-sans==4.203 fira-sans-condensed==4.203 fjalla-one==1.2
frank-ruhl-libre==6.4 fraunces==1.0 fredoka==2.1 geist==1.800 geist-mono==1.701
geologica==1.10 gravitas-one==1.1 great-vibes==1.103 hammersmith-one==1.3
hanken-grotesk==3.13 heebo==3.100 hind==2.1 hind-siliguri==1.1 ibm-plex-mono==2.3
ibm-plex-sans==3.201 ibm-plex-sans-arabic==1.101 ibm-plex-sans-condensed==1.3
ibm-plex-serif==2.6 inconsolata==3.1 indie-flower==2.0 instrument-sans==1.0
instrument-serif==1.0 inter==4.1.post1 inter-tight==3.4 jetbrains-mono==2.211
josefin-sans==2.1 jost==3.710 kalam==2.1 kanit==2.0 karla==2.4 lato==2.15
league-spartan==2.2 lexend==1.7 lexend-deca==1.7 libre-baskerville==2.5
libre-franklin==3.0 lilita-one==1.2 literata==3.103 lobster==2.100 lobster-two==1.6
lora==3.8 luckiest-guy==1.1 manrope==4.505 marcellus==1.0 maven-pro==2.103
merriweather==2.100 merriweather-sans==2.1 montserrat==9.0 mukta==2.538 mulish==3.603
news-cycle==0.510 newsreader==1.3 noto-kufi-arabic==2.109 noto-sans==2.15
noto-sans-arabic==2.12 noto-sans-devanagari==2.7 noto-sans-display==2.3
noto-sans-khmer==2.4 noto-sans-tamil==2.4 noto-sans-telugu==2.5 noto-sans-thai==2.2
noto-serif==2.15 nunito==3.602 nunito-sans==3.101 oleo-script==1.2 onest==2.1
open-sans==3.3 orbitron==2.1 oswald==4.103 outfit==1.100 overpass==4.0 oxygen==0.201
pacifico==3.1 permanent-marker==1.1 play==2.101 playfair-display==1.203
plus-jakarta-sans==2.71 poppins==4.4 press-start-2p==3.0 prompt==1.1 pt-sans==2.3
pt-sans-narrow==2.3 pt-serif==1.0 public-sans==2.1 questrial==2.0 quicksand==3.6
rajdhani==1.201 raleway==4.26 ramabhadra==1.0 red-hat-display==1.30 red-hat-text==1.30
rethink-sans==1.1 righteous==1.0 roboto==3.15 roboto-condensed==3.8 roboto-flex==3.200
roboto-mono==3.1 roboto-slab==2.2 rowdies==1.0 rubik==2.300 russo-one==1.0
saira==1.101 saira-condensed==0.72 sanchez==1.1 sarabun==1.0 satisfy==1.1
schibsted-grotesk==1.100 shadows-into-light==1.0 share-tech==1.100 signika==2.3
slabo-27px==1.20 smooch-sans==1.10 sofia-sans==4.101 sora==2.0 source-code-pro==1.26
source-sans-3==3.52 source-serif-4==4.4 space-grotesk==2.0
space-mono==1.3 spectral==2.5 syne==2.200 tajawal==1.700 teko==2.0 titan-one==1.1
titillium-web==1.2 unbounded==1.701 urbanist==1.303 varela-round==3.10 viga==1.1
vollkorn==5.1 work-sans==2.12 yanone-kaffeesatz==2.3 yellowtail==1.2 zeyada==1.2
zilla-slab==1.2
""".split())

# Faces whose letters are pictures, not letters (dingbats, symbols, math alphabets).
SYMBOL_FONT_WORDS = ("symbol", "dingbat", "d050000l", "math", "emoji", "icon", "ornament")
FONT_EXTENSIONS = (".ttf", ".otf")
MAX_FACES_PER_FAMILY = 3  # Regular, Bold, Italic when the family has them


@dataclass(frozen=True)
class FontFace:
    """One renderable face: a font file (bytes) plus, for variable fonts, a named instance."""

    family: str
    style: str
    data: bytes
    source: str                    # where it came from, for logs
    instance: str | None = None    # variable-font named instance, None for static fonts

    @property
    def group(self) -> str:
        """Split key: the family's first word, so "Roboto", "Roboto Slab" and
        "Roboto Mono" never land on both sides of the train/test split."""
        words = self.family.lower().split()
        return "".join(ch for ch in (words[0] if words else "") if ch.isalnum())


def download_letter_fonts(raw_dir: Path, log: Log) -> Path:
    """Debian font packages into raw_dir/debian, fontpkg wheels into raw_dir/pypi."""
    download_debs(list(LETTER_FONT_DEBS), raw_dir / "debian", log)
    download_wheels(list(LETTER_FONT_WHEELS), raw_dir / "pypi", log)
    return raw_dir


def read_font_files(raw_dir: Path) -> list[tuple[str, bytes]]:
    """All .ttf/.otf files (source label, bytes) in the downloaded .debs and wheels.

    Type 1 copies (.pfb/.t1) duplicate the .otf faces and are skipped; symlinks are
    skipped (they point at files already read); identical files are read once.
    """
    files: list[tuple[str, bytes]] = []
    seen: set[str] = set()

    def add(label: str, data: bytes) -> None:
        digest = hashlib.sha256(data).hexdigest()
        if digest not in seen:
            seen.add(digest)
            files.append((label, data))

    with tempfile.TemporaryDirectory() as tmp:
        for deb in sorted((raw_dir / "debian").glob("*.deb")):
            tree = extract_deb(deb, Path(tmp) / deb.stem)
            for path in sorted(tree.rglob("*")):
                if path.suffix.lower() in FONT_EXTENSIONS and path.is_file() and not path.is_symlink():
                    add(f"{deb.name.split('_')[0]}/{path.name}", path.read_bytes())
    for wheel in sorted((raw_dir / "pypi").glob("*.whl")):
        with zipfile.ZipFile(wheel) as zf:
            for member in sorted(zf.namelist()):
                if "/files/" in member and member.lower().endswith(FONT_EXTENSIONS):
                    add(f"{wheel.name.split('-')[0]}/{member.rsplit('/', 1)[-1]}", zf.read(member))
    return files


def style_rank(style: str) -> tuple[int, str]:
    """Preference for keeping a face: Regular, Bold, Italic, Bold Italic, then the rest."""
    words = style.lower().replace("-", " ").split()
    italic = any(w in ("italic", "oblique") for w in words)
    weight = [w for w in words if w not in ("italic", "oblique", "regular", "roman", "book", "normal")]
    if not weight:
        return (2 if italic else 0, style)
    if weight == ["bold"]:
        return (3 if italic else 1, style)
    return (4, style)


def is_symbol_face(family: str, style: str) -> bool:
    """True for faces named like symbol/dingbat/math faces (their "letters" are pictures)."""
    words = re.findall(r"[a-z0-9]+", f"{family} {style}".lower())
    return any(word.startswith(symbol) for word in words for symbol in SYMBOL_FONT_WORDS)


def list_font_faces(font_files: list[tuple[str, bytes]]) -> tuple[list[FontFace], Counter]:
    """Turn font files into faces, at most MAX_FACES_PER_FAMILY per family.

    Variable fonts contribute their named instances (Regular, Bold, ...) as faces.
    Symbol/dingbat faces and repeated (family, style) pairs are dropped.
    Returns (faces sorted by family then style, counts of drop reasons).
    """
    from PIL import ImageFont

    dropped: Counter = Counter()
    by_family: dict[str, dict[str, FontFace]] = {}
    for source, data in font_files:
        try:
            font = ImageFont.truetype(io.BytesIO(data), RENDER_SIZE)
        except OSError:
            dropped["unreadable"] += 1
            continue
        family, style = (s or "" for s in font.getname())
        if is_symbol_face(family, style):
            dropped["symbol face"] += 1
            continue
        try:
            instances = [n.decode() if isinstance(n, bytes) else n for n in font.get_variation_names()]
        except (OSError, AttributeError):
            instances = []
        candidates = [(name, name) for name in instances] or [(style, None)]
        faces = by_family.setdefault(family.strip(), {})
        for face_style, instance in candidates:
            key = face_style.lower()
            if key in faces:
                dropped["duplicate face"] += 1
                continue
            faces[key] = FontFace(family.strip(), face_style, data, source, instance)
    kept: list[FontFace] = []
    for family in sorted(by_family):
        ranked = sorted(by_family[family].values(), key=lambda f: style_rank(f.style))
        kept.extend(ranked[:MAX_FACES_PER_FAMILY])
        dropped["over family cap"] += max(0, len(ranked) - MAX_FACES_PER_FAMILY)
    return kept, dropped
