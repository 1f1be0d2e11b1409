"""Build ``foldoc_subjects.jsonl``: FOLDOC computing-dictionary definitions labelled with their subject.

Source: the Debian package ``dict-foldoc`` (the Free On-line Dictionary of Computing, editor Denis Howe,
GNU Free Documentation License 1.1 or later), fetched with ``apt-get download`` into a temporary directory
and unpacked with ``dpkg-deb -x``; ``foldoc.index`` gives each entry's offset in ``foldoc.dict.dz``.

Each entry whose definition starts with exactly one subject tag (``<networking>``) becomes a candidate row:

* ``text``: the first paragraph of the definition, with the tag removed, ``{cross-reference}`` braces unwrapped,
  URLs and e-mail addresses dropped, cut to at most ``--max-words`` words at a sentence end where possible,
* ``label``: the subject (``language``, ``networking``, ``hardware`` ...),
* ``group``: a coarse hand-made grouping of the subjects, see ``GROUPS`` below.

Only the subjects listed in ``GROUPS`` are kept (the frequent ones); texts under 5 words and texts shared
between subjects are dropped; each subject is capped at ``--per-label`` rows (seeded random sample).

Usage: ``python data/foldoc_subjects/prepare.py [--out DIR]``
"""

import argparse
import gzip
import json
import random
import re
import subprocess
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

PACKAGE = "dict-foldoc"
VERSION = "20230119-1"
NAME = "foldoc_subjects"
GROUPS = {
    "software": "language programming tool operating_system database application software file_format data testing "
    "text graphics character",
    "hardware": "hardware storage processor computer architecture electronics unit",
    "networking": "networking communications protocol messaging chat web security",
    "theory": "mathematics algorithm theory logic",
    "culture": "jargon company body person humour spelling games job project standard",
}
GROUP_OF = {subject.replace("_", " "): group for group, names in GROUPS.items() for subject in names.split()}
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def fetch(workdir: Path) -> Path:
    """Download and unpack the pinned .deb; return the folder holding ``foldoc.index`` and ``foldoc.dict.dz``."""
    workdir.chmod(0o755)  # lets apt's unprivileged _apt user write here (no "unsandboxed" warning)
    proc = subprocess.run(["apt-get", "download", f"{PACKAGE}={VERSION}"], cwd=workdir, capture_output=True, text=True)
    debs = sorted(workdir.glob(f"{PACKAGE}_*.deb"))
    if proc.returncode != 0 or not debs:
        raise RuntimeError(
            f"could not download apt package {PACKAGE}={VERSION} (is `apt-get update` done?): {proc.stderr.strip()}"
        )
    subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(workdir / "x")], check=True)
    return workdir / "x" / "usr" / "share" / "dictd"


def b64(value: str) -> int:
    """Decode a dictd index number (base64 digits, most significant first)."""
    number = 0
    for char in value:
        number = number * 64 + B64.index(char)
    return number


def clean(paragraph: str, max_words: int) -> str:
    """Unwrap cross-references, drop URLs and addresses, and cut to ``max_words`` at a sentence end."""
    text = re.sub(r"\{[^{}]*\(\w+:[^{}]*\)\}|\([a-z]+://[^)]*\)|<[^<>@]+@[^<>]+>", "", paragraph)
    text = " ".join(re.sub(r"[{}]", "", text).split())
    words = text.split()
    if len(words) > max_words:
        text = " ".join(words[:max_words])
        end = max(text.rfind(". "), text.rfind(".)"))
        text = text[: end + 1] if end > len(text) // 3 else text + " ..."
    return text


def read_entries(folder: Path, max_words: int) -> dict[str, set[str]]:
    """Map each kept subject to the set of cleaned definitions tagged with it alone."""
    data = gzip.decompress((folder / "foldoc.dict.dz").read_bytes())
    texts: dict[str, set[str]] = defaultdict(set)
    offsets = set()
    for line in (folder / "foldoc.index").read_text(encoding="utf-8").splitlines():
        _, offset, length = line.split("\t")
        if offset in offsets:  # synonyms point to the same entry
            continue
        offsets.add(offset)
        body = data[b64(offset) : b64(offset) + b64(length)].decode("utf-8", "replace")
        match = re.search(r"^\s+<([^<>]+)>\s+(.*?)(?:\n\s*\n|\Z)", body, re.MULTILINE | re.DOTALL)
        if match is None or "," in match.group(1) or match.group(1) not in GROUP_OF:
            continue
        text = clean(match.group(2), max_words)
        if len(text.split()) >= 5:
            texts[match.group(1)].add(text)
    return texts


def build(texts: dict[str, set[str]], per_label: int, seed: int) -> list[dict]:
    """Drop texts shared between subjects, cap each subject, return sorted rows."""
    count = Counter(t for items in texts.values() for t in items)
    rows = []
    for label in sorted(texts):
        items = sorted(t for t in texts[label] if count[t] == 1)
        if len(items) > per_label:
            items = sorted(random.Random(f"{seed}-{label}").sample(items, per_label))
        rows += [{"text": t, "label": label, "group": GROUP_OF[label]} for t in items]
    return sorted(rows, key=lambda r: (r["group"], r["label"], r["text"]))


def main() -> None:
    """Fetch, build and write the extract; print counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="output folder")
    parser.add_argument("--per-label", type=int, default=50, help="maximum rows per label")
    parser.add_argument("--max-words", type=int, default=60, help="maximum words per text")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        texts = read_entries(fetch(Path(tmp)), args.max_words)
    rows = build(texts, args.per_label, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{NAME}.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    per_label = Counter(row["label"] for row in rows)
    per_group = Counter(GROUP_OF[label] for label in per_label)
    print(f"{path}: {len(rows)} rows, {len(per_label)} labels, {len(per_group)} groups")
    for group, n in sorted(per_group.items()):
        print(f"  {group}: {n} labels")
    print("  " + ", ".join(f"{label} {n}" for label, n in sorted(per_label.items())))


if __name__ == "__main__":
    main()
