"""``metanlp predict ADAPTER --text ... | --file ...``: run any adapter (labels or translations), by the family
recorded in its ``metanlp.json`` (``metanlp translate`` is the same verb for translation adapters)."""

from __future__ import annotations

import argparse
import json
import sys

HELP = "label or translate texts with an adapter folder (or a hub repo id) written by `metanlp adapt`"
EPILOG = """\
examples:
  metanlp predict runs/new_categories/adapter --text "chest pain on exertion" --text "fracture of left femur"
  metanlp predict runs/new_categories/adapter --file notes.txt > predictions.jsonl
  metanlp predict runs/new_language_pair/adapter --text "Everyone has the right to life."
  metanlp predict user/my-adapter --revision main --text "..."      (pulled from the hub, see `metanlp pull`)

Prints one JSON line per text: {"text", "label", "confidence"} for a classifier, {"text", "translation"} for a
language-pair adapter (the family comes from the adapter's metanlp.json).
"""


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive number of texts, got {value}")
    return n


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``predict`` verb."""
    p = subparsers.add_parser("predict", help=HELP, description=HELP + ".", epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("adapter", metavar="ADAPTER", help="adapter folder, or hub repo id (user/name)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", action="append", help="a text to label or translate (repeatable)")
    src.add_argument("--file", help="file of texts: one per line, or CSV/JSONL with a text column")
    p.add_argument("--revision", default=None, help="hub revision when ADAPTER is a repo id")
    p.add_argument("--batch-size", type=_positive, default=64, help="texts per forward pass (default 64)")
    p.set_defaults(func=main)


def read_inputs(args: argparse.Namespace) -> list[str]:
    """The texts of ``--text`` (each non-empty) or ``--file`` (:func:`metanlp.core.readers.read_texts`).

    Raises:
        ValueError: an empty ``--text`` (the message names which one).
        FileNotFoundError: ``--file`` is missing.
    """
    from metanlp.core.readers import read_texts

    if args.file:
        return read_texts(args.file, "--file")
    texts = [" ".join(t.split()) for t in args.text]
    empty = [i + 1 for i, t in enumerate(texts) if not t]
    if empty:
        raise ValueError(f"--text #{empty[0]} is empty: give the text to process")
    return texts


def resolve_folder(adapter: str, revision: str | None):  # noqa: ANN201 - Path
    """A local adapter folder for ``ADAPTER`` (a folder, or a hub repo id pulled into the cache)."""
    from pathlib import Path

    folder = Path(adapter)
    if folder.is_dir():
        from metanlp.core.checks import check_adapter_folder

        check_adapter_folder(folder, "ADAPTER")  # names a missing adapter_model.safetensors, before peft reads it
        return folder
    if folder.exists() or adapter.startswith((".", "/", "~")) or adapter.count("/") > 1:
        raise FileNotFoundError(f"adapter folder not found: {adapter}")
    from metanlp.core.hub import resolve_adapter

    return resolve_adapter(adapter, revision=revision)


def main(args: argparse.Namespace) -> int:
    """Load the adapter (pulling it from the hub when it is not a local folder) and print one JSON line per text."""
    texts = read_inputs(args)
    from metanlp.core.files import read_metadata
    from metanlp.core.registry import family_spec, load_object

    folder = resolve_folder(args.adapter, args.revision)
    family = read_metadata(folder).get("family", "")
    spec = family_spec(family)
    records = load_object(spec.predict)(folder, texts, args.batch_size)
    for record in records:
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    return 0
