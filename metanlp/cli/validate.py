"""``metanlp validate RECIPE [--set ...]``: check a recipe without running it; ``--keys`` lists every key."""

from __future__ import annotations

import argparse
import sys

HELP = "check a recipe (unknown keys, types, cross-field rules) and print it resolved"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``validate`` verb."""
    p = subparsers.add_parser("validate", help=HELP, description=HELP + ".")
    p.add_argument("recipe", nargs="?", metavar="RECIPE", help="recipe YAML path or shipped recipe name")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key, checked like the YAML")  # fmt: skip
    p.add_argument("--keys", action="store_true", help="list every recipe key with its meaning and default")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Print the resolved recipe (or the key reference with ``--keys``)."""
    from metanlp.cli.recipe_args import key_docs, load_from_args
    from metanlp.core.recipe_loading import recipe_to_yaml

    if args.keys:
        sys.stdout.write(key_docs() + "\n")
        return 0
    if not args.recipe:
        raise ValueError("give a RECIPE to validate, or --keys")
    sys.stdout.write(recipe_to_yaml(load_from_args(args)))
    sys.stdout.write(f"# {args.recipe}: OK\n")
    return 0
