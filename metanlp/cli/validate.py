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
    p.add_argument("--verb", choices=["meta-train", "adapt", "evaluate"], default=None,
                   help="the verb the recipe is for (checks its files and run.output_dir as that verb would); "
                   "default: read from the recipe's '# Run: metanlp VERB' header line")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="check as `VERB --overwrite` would run")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Print the resolved recipe (or the key reference with ``--keys``)."""
    from metanlp.cli.recipe_args import key_docs, load_from_args, resolve_recipe
    from metanlp.core.recipe_loading import recipe_to_yaml

    if args.keys:
        sys.stdout.write(key_docs() + "\n")
        return 0
    if not args.recipe:
        raise ValueError("give a RECIPE to validate, or --keys")
    cfg = load_from_args(args)
    if args.overwrite:
        cfg.run.overwrite = True
    verb = args.verb or recipe_verb_of(resolve_recipe(args.recipe))
    checked = ""
    if verb:
        from metanlp.core.checks import check_inputs

        plan = check_inputs(cfg, verb.replace("-", "_"))
        checked = f" (inputs checked for `metanlp {verb}`; run.output_dir: {plan})"
    sys.stdout.write(recipe_to_yaml(cfg))
    sys.stdout.write(f"# {args.recipe}: OK{checked}\n")
    return 0


def recipe_verb_of(path) -> str:  # noqa: ANN001 - Path
    """The verb named by a recipe's ``# Run: metanlp VERB ...`` header line ("" when there is none)."""
    import re

    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        m = re.search(r"metanlp (meta-train|adapt|evaluate)\b", line)
        if m:
            return m.group(1)
    return ""
