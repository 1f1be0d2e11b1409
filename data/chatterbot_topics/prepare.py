"""Build ``chatterbot_topics.jsonl``: English ChatterBot corpus lines labelled with their topic file.

Source: the PyPI package ``chatterbot-corpus==1.3.3`` (BSD-3-Clause). The wheel is fetched with
``pip download --no-deps`` into a temporary directory and its YAML files
``chatterbot_corpus/data/english/<category>.yml`` are read with PyYAML.

Every line of every conversation (questions and answers alike) becomes one row:

* ``text``: the line, whitespace-normalised,
* ``label``: the category, i.e. the YAML file name without ``.yml`` (``ai``, ``food``, ``sports`` ...),
* ``group``: ``english`` for every row (the corpus has no coarser topic grouping).

Lines shorter than 3 words are dropped, duplicates within a category are merged, and a line that occurs in
more than one category is dropped everywhere (its label would be ambiguous). Output is sorted and
deterministic.

Usage: ``python data/chatterbot_topics/prepare.py [--out DIR]``
"""

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter, defaultdict
from pathlib import Path

import yaml

PACKAGE = "chatterbot-corpus"
VERSION = "1.3.3"
NAME = "chatterbot_topics"
LANGUAGE = "english"


def fetch(workdir: Path) -> Path:
    """Download and unzip the pinned wheel; return the folder holding the English YAML files."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
           "--dest", str(workdir), f"{PACKAGE}=={VERSION}"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(workdir.glob("chatterbot_corpus-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise RuntimeError(f"could not download PyPI package {PACKAGE}=={VERSION}: {proc.stderr.strip()}")
    with zipfile.ZipFile(wheels[0]) as zf:
        zf.extractall(workdir / "wheel")
    return workdir / "wheel" / "chatterbot_corpus" / "data" / LANGUAGE


def read_lines(folder: Path) -> dict[str, set[str]]:
    """Map each category to the set of its conversation lines with at least 3 words."""
    lines: dict[str, set[str]] = defaultdict(set)
    files = sorted(folder.glob("*.yml"))
    if not files:
        raise RuntimeError(f"no YAML files in {folder}: has the layout of {PACKAGE}=={VERSION} changed?")
    for path in files:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for conversation in data.get("conversations") or []:
            for line in conversation:
                text = " ".join(str(line).split())
                if len(text.split()) >= 3:
                    lines[path.stem].add(text)
    return lines


def build(lines: dict[str, set[str]]) -> list[dict]:
    """Drop lines shared between categories and return sorted rows."""
    count = Counter(text for texts in lines.values() for text in texts)
    rows = [
        {"text": text, "label": label, "group": LANGUAGE}
        for label, texts in lines.items()
        for text in texts
        if count[text] == 1
    ]
    return sorted(rows, key=lambda r: (r["group"], r["label"], r["text"]))


def main() -> None:
    """Fetch, build and write the extract; print counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="output folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lines = read_lines(fetch(Path(tmp)))
    rows = build(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{NAME}.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    per_label = Counter(row["label"] for row in rows)
    print(f"{path}: {len(rows)} rows, {len(per_label)} labels, 1 group ({LANGUAGE})")
    print(f"  labels with >= 10 rows: {sum(n >= 10 for n in per_label.values())}")
    print("  " + ", ".join(f"{label} {n}" for label, n in sorted(per_label.items())))


if __name__ == "__main__":
    main()
