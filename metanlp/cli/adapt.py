"""``metanlp adapt RECIPE [--set key=value ...]``: adapt a meta-learned init to new categories from a few
labelled examples."""

from __future__ import annotations

import argparse
import json
import sys

from metanlp.cli.recipe_args import add_recipe_arguments, load_from_args

HELP = "adapt a meta-learned init to new categories from a few labelled examples"
EPILOG = """\
example:
  metanlp adapt recipes/text_new_categories.yaml --set run.output_dir=runs/mine

Outputs go to run.output_dir: the resolved recipe.yaml, run_info.json (versions, git commit), metrics.json
and, for meta-train/adapt, an adapter/ folder that stock peft loads. `metanlp validate --keys` lists every key.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``adapt`` verb."""
    p = subparsers.add_parser("adapt", help=HELP, description=HELP + ".", epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    add_recipe_arguments(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Load the recipe, run it, print the results table (and where the outputs are)."""
    from metanlp.recipes import dispatch

    cfg = load_from_args(args)
    summary = dispatch("adapt", cfg).run(cfg)
    from metanlp.evaluation import format_table

    if summary.get("records"):
        sys.stdout.write(format_table(summary["records"]) + "\n")
    sys.stdout.write(
        json.dumps({k: v for k, v in summary.items() if k not in ("records",)}, default=str)[:2000] + "\n"
    )
    sys.stdout.write(f"outputs: {cfg.run.output_dir}\n")
    return 0
