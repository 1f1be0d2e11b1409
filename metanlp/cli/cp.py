"""``metanlp cp RECIPE DEST``: copy a shipped recipe YAML to edit it."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

HELP = "copy a shipped recipe (from the installed metanlp) to a file you can edit"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``cp`` verb."""
    p = subparsers.add_parser("cp", help=HELP, description=HELP + ".",
                              epilog="example: metanlp cp text_new_categories my_recipe.yaml")  # fmt: skip
    p.add_argument("recipe", help="name of a shipped recipe (see `metanlp ls`)")
    p.add_argument("dest", help="destination file or folder")
    p.add_argument("--force", action="store_true", help="overwrite an existing destination file")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Copy the YAML; refuse to overwrite an existing file unless ``--force``."""
    from metanlp.cli.recipe_args import resolve_recipe

    src = resolve_recipe(args.recipe)
    dest = Path(args.dest)
    if dest.is_dir():
        dest = dest / src.name
    if dest.exists() and not args.force:
        raise FileExistsError(f"{dest} exists; pass --force to overwrite it")
    shutil.copyfile(src, dest)
    sys.stdout.write(f"copied {src} -> {dest}\n")
    return 0
