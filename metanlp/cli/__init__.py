"""The ``metanlp`` command: one verb per module in this package (``add_parser(subparsers)`` + ``main(args)``).

Multi-process runs go through Accelerate's launcher, not ours:
``accelerate launch --num_processes 4 -m metanlp meta-train recipes/text_classification/text_meta_train.yaml`` (GPUs),
or on CPU ``ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 -m metanlp meta-train RECIPE``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys

__all__ = ["main"]

#: verb -> module under metanlp.cli (a verb whose module is absent in this build is simply not offered).
VERBS = {
    "meta-train": "meta_train",
    "adapt": "adapt",
    "evaluate": "evaluate",
    "predict": "predict",
    "translate": "translate",
    "push": "push",
    "pull": "pull",
    "plot": "plot",
    "ls": "ls",
    "cp": "cp",
    "validate": "validate",
    "env": "env",
}

EPILOG = (
    "examples:\n"
    "  metanlp ls                                          list the recipes that ship with metanlp\n"
    "  metanlp adapt recipes/text_classification/text_new_categories.yaml      adapt a meta-learned init to your few "
    "examples\n"
    "  metanlp meta-train recipes/text_classification/text_meta_train.yaml --set meta.outer_steps=50\n"
    "  metanlp evaluate recipes/text_classification/clinc150_benchmark.yaml    (a) centroid vs (b) fine-tune vs (c) "
    "meta-learned init\n"
    "  metanlp predict runs/new_categories/adapter --text \"my card was declined\"\n"
    "  metanlp <verb> --help                               everything a verb takes\n"
)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every available verb."""
    parser = argparse.ArgumentParser(
        prog="metanlp",
        description="Meta-learned LoRA adapters for few-shot text classification and translation.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for module in VERBS.values():
        name = f"metanlp.cli.{module}"
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``metanlp`` console script; returns the exit status.

    Errors that come from the user's input (recipe, files, hub) are printed as one line, ``metanlp: error: ...``,
    with exit status 2; ``-v`` shows the traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("httpx", "httpx2", "urllib3", "filelock", "datasets", "huggingface_hub", "accelerate"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from metanlp.core.errors import USER_ERRORS

    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as e:
        if args.verbose:
            raise
        parser.exit(2, f"metanlp: error: {e}\n")
    except KeyboardInterrupt:
        parser.exit(130, "metanlp: interrupted\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
