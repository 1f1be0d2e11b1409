"""Build the quickstart's "new categories" files from the ICD-10-CM blocks of the four held-out chapters.

The classes are the blocks of the chapters that recipes/text_classification/text_meta_train.yaml holds out (meta-test),
so the shipped meta-learned init never saw them. Writes, deterministically (seed 0):

- new_categories/support.csv: K=5 labelled examples per block (what a user would label by hand);
- new_categories/eval.csv: the remaining examples of those blocks (to compare methods);
- new_categories/unlabelled.txt: 20 texts without labels (to show predictions).

and, for recipes/translation/new_language_pair.yaml, from the UDHR English-Zulu paragraphs (Zulu is held out of
translation meta-training in both directions; paragraphs of <= 200 characters, as the translation recipes):

- new_language_pair/support.en-zu.tsv: K=16 sentence pairs (source<TAB>target);
- new_language_pair/eval.en-zu.tsv: 12 further pairs (to compare methods);
- new_language_pair/sentences.en.txt: 4 further English paragraphs (to show translations);

and the same for English->Italian from the Django catalogs (support.en-it.tsv, eval.en-it.tsv with 24 pairs,
sentences-it.en.txt): the recipe's default demo, a language the backbone knows, held out of translation meta-training.

Run: python data/examples/prepare.py
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
HELD_OUT = (
    "09 Diseases of the circulatory system",
    "10 Diseases of the respiratory system",
    "11 Diseases of the digestive system",
    "12 Diseases of the skin and subcutaneous tissue",
)


def new_language_pair(source: Path, out: Path, pair: tuple[str, str] = ("en", "zu"), k: int = 16, n_eval: int = 12,
                      n_predict: int = 4) -> None:  # fmt: skip
    """The ``pair`` files of recipes/translation/new_language_pair.yaml: a seeded shuffle of that pair's rows of
    ``source`` (pairs of <= 200 characters), cut into K support pairs, ``n_eval`` eval pairs and ``n_predict``
    sentences; the sentences file is named by the pair (``sentences-it.en.txt``: tagged with the source language, as
    the recipe checks)."""
    src, tgt = pair
    pairs = []
    for line in source.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if (row["source_lang"], row["target_lang"]) == pair and max(len(row["source"]), len(row["target"])) <= 200:
            pairs.append((row["source"], row["target"]))
    random.Random(0).shuffle(pairs)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in ((f"support.{src}-{tgt}.tsv", pairs[:k]), (f"eval.{src}-{tgt}.tsv", pairs[k : k + n_eval])):
        (out / name).write_text("".join(f"{a}\t{b}\n" for a, b in rows), encoding="utf-8")
    predict = [a for a, _ in pairs[k + n_eval : k + n_eval + n_predict]]
    name = "sentences.en.txt" if pair == ("en", "zu") else f"sentences-{tgt}.{src}.txt"  # en-zu: its original name
    (out / name).write_text("\n".join(predict) + "\n", encoding="utf-8")
    print(f"{src}->{tgt}: {k} support, {n_eval} eval, {len(predict)} sentences of {len(pairs)} pairs")  # noqa: T201


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default=str(HERE.parent / "icd10_blocks" / "icd10_blocks.jsonl"))
    parser.add_argument("--out", default=str(HERE / "new_categories"))
    parser.add_argument("--k-shot", type=int, default=5)
    parser.add_argument("--udhr", default=str(HERE.parent / "translation" / "udhr_pairs.jsonl"))
    parser.add_argument("--django", default=str(HERE.parent / "translation" / "django_pairs.jsonl"))
    parser.add_argument("--pair-out", default=str(HERE / "new_language_pair"))
    args = parser.parse_args()
    new_language_pair(Path(args.udhr), Path(args.pair_out))  # the hard case: a language the backbone barely knows
    new_language_pair(Path(args.django), Path(args.pair_out), ("en", "it"), n_eval=24)  # the demo: one it knows
    by_label: dict[str, list[str]] = defaultdict(list)
    with open(args.source, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row["group"] in HELD_OUT:
                by_label[row["label"]].append(row["text"])
    rng = random.Random(0)
    support, evaluation = [], []
    for label in sorted(by_label):
        texts = sorted(by_label[label])
        rng.shuffle(texts)
        support += [(t, label) for t in texts[: args.k_shot]]
        evaluation += [(t, label) for t in texts[args.k_shot :]]
    rng.shuffle(evaluation)
    unlabelled, evaluation = [t for t, _ in evaluation[:20]], evaluation[20:]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("support.csv", support), ("eval.csv", evaluation)):
        with open(out / name, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows(rows)
    (out / "unlabelled.txt").write_text("\n".join(unlabelled) + "\n", encoding="utf-8")
    print(f"{len(by_label)} classes: {len(support)} support, {len(evaluation)} eval, {len(unlabelled)} unlabelled")  # noqa: T201


if __name__ == "__main__":
    main()
