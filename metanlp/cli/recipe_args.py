"""Arguments shared by the verbs that run a recipe (``RECIPE``, ``--set key=value``), and key documentation
generated from the config dataclasses' docstrings (each field is documented once, in ``metanlp/core/config.py`` and
each family's ``config.py``)."""

from __future__ import annotations

import argparse
import inspect
import re
from dataclasses import fields
from pathlib import Path

__all__ = [
    "add_recipe_arguments",
    "installed_recipes_dir",
    "key_docs",
    "load_from_args",
    "recipe_verb",
    "resolve_recipe",
]


def installed_recipes_dir() -> Path:
    """The recipes shipped with metanlp: ``metanlp/_recipes`` in a wheel, ``recipes/`` in a source checkout."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_recipes", here.parent / "recipes"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("no recipes folder found next to the metanlp package")


def resolve_recipe(name: str) -> Path:
    """A recipe path as given, or the name of a shipped recipe (``text_new_categories`` or ``...yaml``).

    Raises:
        FileNotFoundError: neither a file nor a shipped recipe (the message lists the shipped ones).
    """
    p = Path(name)
    if p.is_file():
        return p
    shipped = installed_recipes_dir()
    for candidate in (shipped / name, shipped / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    stem = name.removesuffix(".yaml")
    matches = sorted(f for f in shipped.rglob("*.yaml") if f.stem == stem)  # recipes/<family>/<name>.yaml
    if len(matches) == 1:
        return matches[0]
    names = sorted(str(f.relative_to(shipped).with_suffix("")) for f in shipped.rglob("*.yaml"))
    raise FileNotFoundError(f"recipe {name!r} not found; shipped recipes: {', '.join(names)} (see `metanlp ls`)")


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """``RECIPE`` and repeated ``--set key.sub=value``."""
    parser.add_argument("recipe", metavar="RECIPE", help="recipe YAML path, or the name of a shipped recipe")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe key, e.g. --set meta.outer_steps=50 --set task.k_shot=1 (repeatable; "
        "`metanlp validate --keys` lists every key)",
    )


def load_from_args(args: argparse.Namespace):  # noqa: ANN201 - RecipeConfig, imported lazily
    """Resolve and load the recipe named on the command line with its ``--set`` overrides."""
    from metanlp.core.recipe_loading import load_recipe

    return load_recipe(resolve_recipe(args.recipe), args.overrides)


def key_docs() -> str:
    """Every recipe key with its one-paragraph meaning and default, from the dataclass docstrings."""
    from metanlp.core.config import recipe_schema

    lines = []
    for section in fields(recipe_schema()):
        cls = section.default_factory
        doc = inspect.getdoc(cls) or ""
        lines.append(f"{section.name}:  {doc.splitlines()[0] if doc else ''}")
        attrs = doc.split("Attributes:", 1)[1] if "Attributes:" in doc else ""
        described = dict(re.findall(r"^\s{4}(\w+): (.+?)(?=^\s{4}\w+: |\Z)", attrs, flags=re.S | re.M))
        instance = cls()  # type: ignore[misc]
        for f in fields(cls):
            text = " ".join(described.get(f.name, "").split())
            lines.append(f"  {section.name}.{f.name} = {getattr(instance, f.name)!r}\n      {text}")
    return "\n".join(lines)


RUN_EPILOG = """\
example:
  metanlp {verb} {example} --set run.output_dir=runs/mine

Outputs go to run.output_dir: the resolved recipe.yaml, run_info.json (versions, git commit), metrics.json
and, for meta-train/adapt, an adapter/ folder that stock peft loads. They are written into a hidden sibling and
moved into place only when complete; a non-empty run.output_dir is refused unless --overwrite (meta-train resumes
its own checkpoint without it). `metanlp validate --keys` lists every key.
"""


def recipe_verb(verb: str, recipe: str, help_text: str, example: str):  # noqa: ANN201 - returns two callables
    """``(add_parser, main)`` of a verb that runs a recipe module (picked by verb and ``task.family``).

    ``main`` loads the recipe with its overrides, runs it, and prints the results table and the output folder.
    """

    def add_parser(subparsers: argparse._SubParsersAction) -> None:
        p = subparsers.add_parser(verb, help=help_text, description=help_text + ".",
                                  epilog=RUN_EPILOG.format(verb=verb, example=example),
                                  formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
        add_recipe_arguments(p)
        p.add_argument("--overwrite", action="store_true",
                       help="replace a non-empty run.output_dir (same as --set run.overwrite=true); the previous "
                       "run is kept beside it as <dir>.previous-<time>")  # fmt: skip
        p.set_defaults(func=main)

    def main(args: argparse.Namespace) -> int:
        import sys

        from metanlp.core.comparison import format_table
        from metanlp.core.registry import recipe_module

        cfg = load_from_args(args)
        if getattr(args, "overwrite", False):
            cfg.run.overwrite = True
        if cfg.run.threads:
            import torch

            torch.set_num_threads(cfg.run.threads)
        summary = recipe_module(recipe, cfg.task.family).run(cfg)
        if summary.get("records") and cfg.task.family == "text_classification":
            sys.stdout.write(format_table(summary["records"]) + "\n")
        if isinstance(summary.get("table"), str):
            sys.stdout.write(summary["table"] + "\n")
        sys.stdout.write(f"outputs: {cfg.run.output_dir}\n")
        return 0

    return add_parser, main
