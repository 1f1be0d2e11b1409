"""The one registry: a family registered from outside metanlp is read by config, recipes and the CLI's dispatch."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass

import pytest

from metanlp.core import registry
from metanlp.core.config import ConfigError, recipe_schema
from metanlp.core.recipe_loading import load_recipe


def test_builtin_families_and_learners_are_registered() -> None:
    assert registry.family_names() == ["text_classification", "translation"]
    assert set(registry.learner_names()) == {"fomaml", "maml", "reptile", "metasgd", "anil", "protonet"}
    assert "translation" in {f.name for f in __import__("dataclasses").fields(recipe_schema())}


def test_unknown_family_and_learner_are_refused_with_the_names() -> None:
    with pytest.raises(ConfigError, match=r"task.family='text_clasification'.*did you mean 'text_classification'"):
        load_recipe(None, ["task.family=text_clasification"])
    with pytest.raises(ConfigError, match=r"meta.algorithm='fomal'.*did you mean 'fomaml'"):
        load_recipe(None, ["meta.algorithm=fomal"])
    with pytest.raises(ValueError, match="task.family=.nope. is not one of text_classification, translation"):
        registry.family_spec("nope")


def test_a_new_family_registers_its_section_and_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    @dataclass
    class ToyConfig:
        """Toy section.

        Attributes:
            size: a number.
        """

        size: int = 3

    mod = types.ModuleType("toy_family")
    mod.ToyConfig = ToyConfig
    mod.run = lambda cfg: {"size": cfg.toy.size}
    monkeypatch.setitem(sys.modules, "toy_family", mod)
    spec = registry.FamilySpec("toy", "toy_family:ToyFamily", {"adapt": "toy_family"}, "",
                               ("toy", "toy_family:ToyConfig"))  # fmt: skip
    monkeypatch.setitem(registry._FAMILIES, "toy", spec)
    recipe_schema.cache_clear()
    try:
        cfg = load_recipe(None, ["task.family=toy", "toy.size=7"])
        assert registry.recipe_module("adapt", cfg.task.family).run(cfg) == {"size": 7}
        with pytest.raises(ValueError, match="no meta_train recipe for task.family='toy'"):
            registry.recipe_module("meta_train", "toy")
        with pytest.raises(ConfigError, match="toy.sise"):
            load_recipe(None, ["toy.sise=1"])
    finally:
        monkeypatch.undo()
        recipe_schema.cache_clear()
    assert "toy" not in registry.family_names()
