"""``metanlp ls``: list the recipes that ship with metanlp (read from the folder, no registry)."""

from __future__ import annotations

import argparse
import sys

HELP = "list the shipped recipes and the command that runs each"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``ls`` verb."""
    p = subparsers.add_parser("ls", help=HELP, description=HELP + ".")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Print each recipe's name, the first comment line of its YAML (what it does) and its run command."""
    from metanlp.cli.recipe_args import installed_recipes_dir

    root = installed_recipes_dir()
    files = sorted(root.rglob("*.yaml"))
    if not files:
        raise FileNotFoundError(f"no recipes in {root}")
    for f in files:
        lines = f.read_text(encoding="utf-8").splitlines()
        about = next((ln.lstrip("# ").strip() for ln in lines if ln.startswith("#")), "")
        run = next((ln.split("Run:", 1)[1].strip() for ln in lines if "Run:" in ln), "")
        sys.stdout.write(f"{f.relative_to(root).with_suffix('')!s:<44} {about}\n{'':<44} {run}\n")
    return 0
