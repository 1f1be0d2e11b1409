"""``metanlp predict ADAPTER --text ... | --file ...``: label texts with an adapted classifier (folder or hub repo)."""

from __future__ import annotations

import argparse
import json
import sys

HELP = "label texts with an adapter folder (or a hub repo id) written by `metanlp adapt`"
EPILOG = """\
examples:
  metanlp predict runs/new_categories/adapter --text "chest pain on exertion" --text "fracture of left femur"
  metanlp predict runs/new_categories/adapter --file notes.txt > predictions.jsonl
  metanlp predict user/my-adapter --revision main --text "..."      (pulled from the hub, see `metanlp pull`)

Prints one JSON line per text: {"text", "label", "confidence"}.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``predict`` verb."""
    p = subparsers.add_parser("predict", help=HELP, description=HELP + ".", epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("adapter", metavar="ADAPTER", help="adapter folder, or hub repo id (user/name)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", action="append", help="a text to label (repeatable)")
    src.add_argument("--file", help="file of texts: one per line, or CSV/JSONL with a text column")
    p.add_argument("--revision", default=None, help="hub revision when ADAPTER is a repo id")
    p.add_argument("--batch-size", type=int, default=64, help="texts per forward pass (default 64)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Load the adapter (pulling it from the hub when it is not a local folder) and print predictions."""
    from pathlib import Path

    from metanlp.recipes.adapt import read_unlabelled
    from metanlp.saving import load_classifier, predict_texts

    folder = Path(args.adapter)
    if not folder.is_dir():
        from metanlp.hub import resolve_adapter

        folder = resolve_adapter(args.adapter, revision=args.revision)
    model, tokenizer, meta = load_classifier(folder)
    texts = args.text if args.text else read_unlabelled(args.file)
    preds = predict_texts(model, tokenizer, texts, meta.get("max_length", 48), args.batch_size)
    for text, (i, conf) in zip(texts, preds, strict=True):
        record = {"text": text, "label": meta["labels"][i], "confidence": round(conf, 4)}
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    return 0
