"""``metanlp translate ADAPTER_DIR --text ... | --file ...``: translate with a saved translation adapter."""

from __future__ import annotations

import argparse
import sys

HELP = ("translate sentences with a translation adapter "
        "(metanlp adapt recipes/translation/new_language_pair.yaml output)")
EPILOG = """\
examples:
  metanlp translate runs/new_pair/adapter --text "Everyone has the right to life."
  metanlp translate runs/new_pair/adapter --file sentences.txt > translations.txt
  metanlp translate runs/new_pair/adapter --source-lang en --target-lang zu --text "..."  (checked against adapter)
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``translate`` verb."""
    p = subparsers.add_parser("translate", help=HELP, description=HELP + ".", epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("adapter", metavar="ADAPTER_DIR", help="adapter folder with metanlp.json")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--text", action="append", help="a sentence to translate (repeatable)")
    group.add_argument("--file", help="a UTF-8 file with one sentence per line")
    p.add_argument("--source-lang", default="", help="expected source language code (checked against the adapter)")
    p.add_argument("--target-lang", default="", help="expected target language code (checked against the adapter)")
    p.add_argument("--backbone", default=None, help="override the backbone recorded in the adapter")
    p.set_defaults(func=main)


def read_sentences(args: argparse.Namespace) -> list[str]:
    """The sentences of ``--text`` or ``--file``, whitespace-normalised.

    Raises:
        FileNotFoundError: ``--file`` does not exist.
        ValueError: an empty sentence or blank line (the message names the line).
    """
    from pathlib import Path

    if args.file:
        path = Path(args.file)
        if not path.is_file():
            raise FileNotFoundError(f"--file not found: {path}")
        lines = path.read_text(encoding="utf-8").splitlines()
        while lines and not lines[-1].strip():
            lines.pop()
        where = f"{path}:"
    else:
        lines, where = list(args.text), "--text #"
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            raise ValueError(f"{where}{n}: empty sentence")
        out.append(" ".join(line.split()))
    if not out:
        raise ValueError(f"{where.rstrip(':#')}: nothing to translate")
    return out


def check_direction(meta: dict, source_lang: str, target_lang: str) -> None:
    """Raise when the requested direction differs from the adapter's (names both, flags a swap).

    Raises:
        ValueError: the codes do not match ``metanlp.json``'s ``source_lang``/``target_lang``.
    """
    have = (meta.get("source_lang"), meta.get("target_lang"))
    if not have[0]:
        raise ValueError("this adapter has no language direction (a meta-learned init?): adapt it to a pair first")
    want = (source_lang or have[0], target_lang or have[1])
    if want == have:
        return
    hint = " (source and target swapped?)" if want == (have[1], have[0]) else ""
    raise ValueError(f"the adapter translates {have[0]}->{have[1]}, but {want[0]}->{want[1]} was asked{hint}")


def main(args: argparse.Namespace) -> int:
    """Load the adapter, translate, print one translation per line."""
    sentences = read_sentences(args)
    from metanlp.core.files import read_metadata

    meta = read_metadata(args.adapter)
    if meta.get("family") != "translation":
        raise ValueError(f"{args.adapter}: family is {meta.get('family')!r}, not a translation adapter")
    check_direction(meta, args.source_lang, args.target_lang)
    from metanlp.families.translation.adapter import load_translation_adapter

    task, meta = load_translation_adapter(args.adapter, args.backbone)
    params = {k: v.detach() for k, v in task.model.named_parameters() if "lora_" in k}
    batch = task.encode([(s, "") for s in sentences], meta["source_lang"], meta["target_lang"])
    for line in task.translate_batch(params, batch):
        sys.stdout.write(line + "\n")
    return 0
