"""Unlabelled text for CACTUs meta-training: the ICD-10-CM descriptions of the meta-train chapters of
recipes/text_classification/text_meta_train.yaml (every chapter but the meta-val / meta-test ones), one per line,
labels dropped, order shuffled.

Run: python data/icd10_unlabelled/prepare.py   (reads ../icd10_blocks/icd10_blocks.jsonl; no download)
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "icd10_blocks" / "icd10_blocks.jsonl"
OUT = HERE / "icd10_unlabelled.txt"
#: Chapters that recipes/text_classification/text_meta_train.yaml and
#: recipes/text_classification/text_unsupervised_meta_train.yaml validate / test on.
HELD_OUT = ("09 ", "10 ", "11 ", "12 ", "14 ")


def main() -> None:
    rows = [json.loads(line) for line in SOURCE.read_text(encoding="utf-8").splitlines()]
    texts = sorted({r["text"] for r in rows if not r["group"].startswith(HELD_OUT)})
    random.Random(0).shuffle(texts)  # the source is sorted by label: shuffle so the order leaks nothing
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text("\n".join(texts) + "\n", encoding="utf-8")
    tmp.replace(OUT)
    print(f"wrote {OUT}: {len(texts)} texts")  # noqa: T201


if __name__ == "__main__":
    main()
