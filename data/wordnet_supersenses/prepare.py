"""Build ``wordnet_supersenses.jsonl``: WordNet 3.0 glosses labelled with their lexicographer file.

Source: the Debian package ``wordnet-base`` (WordNet 3.0, Princeton WordNet licence), fetched with
``apt-get download`` into a temporary directory and unpacked with ``dpkg-deb -x``.

Each synset in ``data.{noun,verb,adj,adv}`` becomes one row:

* ``text``: the definition part of the gloss (after `` | ``, with the quoted usage examples removed),
* ``label``: the lexicographer file ("supersense"), e.g. ``noun.animal``, from the synset's 2nd field,
* ``group``: the part of speech: ``noun``, ``verb`` or ``adj+adv`` (adverbs have a single lexicographer file).

Glosses shorter than 3 words and glosses shared by synsets of different lexicographer files are dropped;
each label is capped at ``--per-label`` rows (seeded random sample). Output is sorted and deterministic.

Usage: ``python data/wordnet_supersenses/prepare.py [--out DIR]``
"""

import argparse
import json
import random
import re
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path

PACKAGE = "wordnet-base"
VERSION = "1:3.0-37"
NAME = "wordnet_supersenses"
# The standard 45 lexicographer file names, indexed by lexfile number (WordNet lexnames(5WN)).
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body noun.cognition "
    "noun.communication noun.event noun.feeling noun.food noun.group noun.location noun.motive noun.object "
    "noun.person noun.phenomenon noun.plant noun.possession noun.process noun.quantity noun.relation noun.shape "
    "noun.state noun.substance noun.time verb.body verb.change verb.cognition verb.communication verb.competition "
    "verb.consumption verb.contact verb.creation verb.emotion verb.motion verb.perception verb.possession "
    "verb.social verb.stative verb.weather adj.ppl"
).split()
assert len(LEXNAMES) == 45
GROUP = {"noun": "noun", "verb": "verb", "adj": "adj+adv", "adv": "adj+adv"}


def fetch(workdir: Path) -> Path:
    """Download and unpack the pinned ``wordnet-base`` .deb; return the folder holding ``data.*``."""
    workdir.chmod(0o755)  # lets apt's unprivileged _apt user write here (no "unsandboxed" warning)
    cmd = ["apt-get", "download", f"{PACKAGE}={VERSION}"]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    debs = sorted(workdir.glob(f"{PACKAGE}_*.deb"))
    if proc.returncode != 0 or not debs:
        raise RuntimeError(
            f"could not download apt package {PACKAGE}={VERSION} (is `apt-get update` done?): {proc.stderr.strip()}"
        )
    subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(workdir / "x")], check=True)
    return workdir / "x" / "usr" / "share" / "wordnet"


def definition(gloss: str) -> str:
    """Keep the definition of a gloss: drop the double-quoted usage examples that follow it."""
    text = re.split(r';?\s*"', gloss, maxsplit=1)[0]
    return re.sub(r"\s+", " ", text).strip(" ;")


def read_synsets(wordnet_dir: Path) -> dict[str, set[str]]:
    """Map each definition text to the set of lexicographer files whose synsets use it."""
    labels_of: dict[str, set[str]] = defaultdict(set)
    for pos in ("noun", "verb", "adj", "adv"):
        with open(wordnet_dir / f"data.{pos}", encoding="utf-8") as f:
            for line in f:
                if line.startswith("  "):  # licence header
                    continue
                fields, _, gloss = line.partition(" | ")
                lexname = LEXNAMES[int(fields.split()[1])]
                text = definition(gloss)
                if len(text.split()) >= 3:
                    labels_of[text].add(lexname)
    return labels_of


def build(labels_of: dict[str, set[str]], per_label: int, seed: int) -> list[dict]:
    """Keep unambiguous texts, cap each label with a seeded sample, return sorted rows."""
    by_label: dict[str, list[str]] = defaultdict(list)
    for text, labels in labels_of.items():
        if len(labels) == 1:
            by_label[next(iter(labels))].append(text)
    rows = []
    for label in sorted(by_label):
        texts = sorted(by_label[label])
        if len(texts) > per_label:
            texts = sorted(random.Random(f"{seed}-{label}").sample(texts, per_label))
        rows += [{"text": t, "label": label, "group": GROUP[label.split(".")[0]]} for t in texts]
    return sorted(rows, key=lambda r: (r["group"], r["label"], r["text"]))


def main() -> None:
    """Fetch, build and write the extract; print counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="output folder")
    parser.add_argument("--per-label", type=int, default=80, help="maximum rows per label")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        labels_of = read_synsets(fetch(Path(tmp)))
    rows = build(labels_of, args.per_label, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{NAME}.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    per_group: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        per_group[row["group"]].add(row["label"])
    print(f"{path}: {len(rows)} rows, {sum(map(len, per_group.values()))} labels, {len(per_group)} groups")
    for group, labels in sorted(per_group.items()):
        print(f"  {group}: {len(labels)} labels")


if __name__ == "__main__":
    main()
