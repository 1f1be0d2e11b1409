"""Every recipe YAML under recipes/ (recursively) loads and passes the strict checks."""

from pathlib import Path

import pytest

from metanlp.core.recipe_loading import load_recipe

RECIPES = sorted((Path(__file__).resolve().parent.parent / "recipes").rglob("*.yaml"))


def test_recipes_were_found() -> None:
    assert len(RECIPES) >= 3, "guard: the recipe glob found nothing"


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_validates(path: Path) -> None:
    cfg = load_recipe(path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#") and "Run:" in text, f"{path.name}: header comment with the Run: command missing"
    assert cfg.task.family in ("text_classification", "translation")
