"""Recipes: small readable scripts (one loop each) that wire library calls; their YAMLs live in ``recipes/``.

Each module has ``run(cfg: RecipeConfig) -> dict``; the CLI picks the module by verb and ``task.family``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["dispatch"]

#: (verb, task family) -> recipe module. Translation recipes register here too.
RECIPES = {
    ("meta_train", "text_classification"): "metanlp.recipes.meta_train",
    ("adapt", "text_classification"): "metanlp.recipes.adapt",
    ("evaluate", "text_classification"): "metanlp.recipes.evaluate",
    ("meta_train", "translation"): "metanlp.recipes.translation_meta_train",
    ("adapt", "translation"): "metanlp.recipes.new_language_pair",
    ("evaluate", "translation"): "metanlp.recipes.new_language_pair",
}


def dispatch(verb: str, cfg) -> ModuleType:  # noqa: ANN001 - RecipeConfig
    """The recipe module for ``verb`` and ``cfg.task.family``.

    Raises:
        ValueError: no recipe for that verb and family in this version.
    """
    key = (verb, cfg.task.family)
    if key not in RECIPES:
        raise ValueError(f"no {verb} recipe for task.family={cfg.task.family!r}")
    try:
        return importlib.import_module(RECIPES[key])
    except ModuleNotFoundError as e:
        raise ValueError(f"the {verb} recipe for task.family={cfg.task.family!r} is not available: {e}") from e
