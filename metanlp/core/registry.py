"""The one registry of task families and meta-learners; config, recipes, the CLI and the API read it.

A task family is a package under ``metanlp/families/`` whose ``__init__.py`` calls :func:`register_family` (as each
peft method's ``__init__`` calls ``register_peft_method``); a learner is registered with :func:`register_learner`.
Entries are ``"module:attribute"`` strings, imported only when used, so registering costs nothing: ``metanlp
--help`` and ``metanlp validate`` never import torch.

Adding a family: write ``metanlp/families/<name>/`` (family class, recipe scripts, optional config section) with an
``__init__.py`` that registers it, and import that package in ``metanlp/families/__init__.py``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FamilySpec",
    "family_names",
    "family_spec",
    "learner_names",
    "learner_target",
    "load_object",
    "recipe_module",
    "register_family",
    "register_learner",
]


@dataclass(frozen=True)
class FamilySpec:
    """What metanlp needs to know about a task family.

    Attributes:
        name: the ``task.family`` value (``text_classification``, ``translation``).
        family: ``"module:Class"`` of its :class:`~metanlp.core.protocols.TaskFamily` implementation.
        recipes: verb (``meta_train``, ``adapt``, ``evaluate``) -> module with ``run(cfg) -> dict``.
        predict: ``"module:function"`` that ``metanlp predict`` calls for an adapter of this family:
            ``function(adapter_dir, texts, batch_size) -> list[dict]`` (one JSON-able record per input).
        config_section: ``(section name, "module:Class")`` of the family's own recipe section (e.g.
            ``translation``), or None when the family uses only the core sections.
        summary: one line for ``metanlp ls`` and the docs.
        checks: ``"module:function"`` ``(cfg, verb) -> None`` that checks the family's inputs (files, values) before
            any model loads, raising a one-line user error; run by ``metanlp validate`` and by every recipe verb
            (see :func:`metanlp.core.checks.check_inputs`). Its module must not import torch.
    """

    name: str
    family: str
    recipes: dict[str, str] = field(default_factory=dict)
    predict: str = ""
    config_section: tuple[str, str] | None = None
    summary: str = ""
    checks: str = ""


_FAMILIES: dict[str, FamilySpec] = {}
_LEARNERS: dict[str, str] = {}
_loaded = False


def register_family(spec: FamilySpec) -> None:
    """Add a task family (called from the family package's ``__init__``).

    Raises:
        ValueError: another family already registered under ``spec.name``.
    """
    if spec.name in _FAMILIES and _FAMILIES[spec.name] != spec:
        raise ValueError(f"task family {spec.name!r} is registered twice")
    _FAMILIES[spec.name] = spec
    from metanlp.core import config  # the recipe schema depends on the registered sections

    config.recipe_schema.cache_clear()


def register_learner(name: str, target: str) -> None:
    """Add a meta-learner: ``meta.algorithm: name`` builds ``target`` (``"module:Class"``, with ``from_config``).

    Raises:
        ValueError: ``name`` is already registered for another target.
    """
    if _LEARNERS.get(name, target) != target:
        raise ValueError(f"meta.algorithm {name!r} is registered twice ({_LEARNERS[name]} and {target})")
    _LEARNERS[name] = target


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        importlib.import_module("metanlp.algorithms")  # registers fomaml, maml, reptile, metasgd
        importlib.import_module("metanlp.families")  # registers the families (and their own learners)


def family_names() -> list[str]:
    """Registered ``task.family`` names, sorted."""
    _load_builtins()
    return sorted(_FAMILIES)


def family_spec(name: str) -> FamilySpec:
    """The :class:`FamilySpec` of ``task.family = name``.

    Raises:
        ValueError: no such family (the message lists the registered ones).
    """
    _load_builtins()
    if name not in _FAMILIES:
        raise ValueError(f"task.family={name!r} is not one of {', '.join(sorted(_FAMILIES))}")
    return _FAMILIES[name]


def families() -> list[FamilySpec]:
    """Every registered family, by name."""
    _load_builtins()
    return [_FAMILIES[k] for k in sorted(_FAMILIES)]


def learner_names() -> list[str]:
    """Registered ``meta.algorithm`` names, sorted."""
    _load_builtins()
    return sorted(_LEARNERS)


def learner_target(name: str) -> str:
    """``"module:Class"`` of ``meta.algorithm = name``.

    Raises:
        ValueError: no such learner (the message lists the registered ones).
    """
    _load_builtins()
    if name not in _LEARNERS:
        raise ValueError(f"meta.algorithm={name!r}; available: {', '.join(sorted(_LEARNERS))}")
    return _LEARNERS[name]


def load_object(target: str) -> Any:
    """Import ``"module:attribute"`` and return the attribute.

    Raises:
        ValueError: the module or attribute is missing (the message names the target).
    """
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"{target} is not available in this version: {e}") from e


def recipe_module(verb: str, family: str) -> Any:
    """The recipe script (module with ``run(cfg)``) for ``verb`` and ``task.family``.

    Raises:
        ValueError: the family is unknown or has no recipe for that verb.
    """
    spec = family_spec(family)
    if verb not in spec.recipes:
        raise ValueError(f"no {verb} recipe for task.family={family!r}; it has: {', '.join(sorted(spec.recipes))}")
    return importlib.import_module(spec.recipes[verb])
