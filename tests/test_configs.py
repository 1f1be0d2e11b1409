"""Every recipe YAML under recipes/ (recursively) loads and passes the strict checks."""

from pathlib import Path

import pytest

from metanlp.core.recipe_loading import load_recipe
from metanlp.core.registry import family_names, recipe_module

RECIPES = sorted((Path(__file__).resolve().parent.parent / "recipes").rglob("*.yaml"))


def test_recipes_were_found() -> None:
    assert len(RECIPES) >= 3, "guard: the recipe glob found nothing"


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_validates(path: Path) -> None:
    cfg = load_recipe(path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#") and "Run:" in text, f"{path.name}: header comment with the Run: command missing"
    assert cfg.task.family in family_names()


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_names_the_script_the_cli_runs(path: Path) -> None:
    """The YAML's ``# Script:`` line is the module that ``metanlp VERB`` runs for it (verb from its Run: line)."""
    root = path.parents[2]
    lines = path.read_text(encoding="utf-8").splitlines()
    script = next((ln.split("Script:", 1)[1].strip() for ln in lines if ln.startswith("# Script:")), "")
    assert script, f"{path.name}: no '# Script: metanlp/...py' header line"
    run = next(ln for ln in lines if "metanlp " in ln and ("meta-train" in ln or "adapt" in ln))
    verb = "meta_train" if "meta-train" in run else "adapt"
    module = recipe_module(verb, load_recipe(path).task.family)
    assert Path(module.__file__).resolve() == (root / script).resolve()
