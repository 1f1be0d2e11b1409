"""The recipe's ``adapt`` section becomes one AdaptBudget for every method that adapts, and FOMAML follows it."""

from pathlib import Path

import pytest

from metanlp.algorithms.base import adaptation_learner
from metanlp.algorithms.fomaml import FOMAML
from metanlp.core.budget import AdaptBudget, AdaptConfig, budget_from_config
from metanlp.core.comparison import adaptation_budget
from metanlp.core.errors import ConfigError
from metanlp.core.recipe_loading import load_recipe


def test_default_adapt_section_is_the_budget_chosen_on_meta_val(root: Path) -> None:
    cfg = load_recipe(root / "recipes" / "text_classification" / "text_new_categories.yaml")
    budget = adaptation_budget(cfg)
    assert budget == AdaptBudget(micro_batch=cfg.meta.micro_batch)
    assert budget.total_steps(385) == 121  # 77-way 5-shot: 10 passes over 385 supports in batches of 32
    learner = adaptation_learner(cfg)
    assert isinstance(learner, FOMAML) and learner.budget == budget


def test_inner_loop_procedure_is_full_batch_sgd_at_the_meta_values(root: Path) -> None:
    cfg = load_recipe(root / "recipes" / "translation" / "new_language_pair.yaml")
    budget = adaptation_budget(cfg)
    assert (budget.optimizer, budget.lr, budget.momentum) == ("sgd", cfg.meta.inner_lr, 0.0)
    assert budget.total_steps(16) == cfg.adapt.steps and budget.batch_for(16) == 16  # the meta-val choice
    same = load_recipe(root / "recipes" / "translation" / "new_language_pair.yaml", ["adapt.steps=-1"])
    assert adaptation_budget(same).total_steps(16) == same.meta.inner_steps  # -1: meta-training's inner loop
    over = load_recipe(root / "recipes" / "translation" / "new_language_pair.yaml", ["adapt.steps=7", "adapt.lr=0.1"])
    assert adaptation_budget(over).total_steps(16) == 7 and adaptation_budget(over).lr == 0.1
    assert adaptation_learner(over).inner_steps == 7  # SGD learners read the same numbers


def test_steps_zero_means_prototype_head_only() -> None:
    assert budget_from_config(AdaptConfig(steps=0), 5, 0.5).total_steps(500) == 0
    assert budget_from_config(AdaptConfig(procedure="inner_loop", steps=0), 5, 0.5).total_steps(500) == 0
    assert budget_from_config(AdaptConfig(steps=12), 5, 0.5).total_steps(500) == 12


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("adapt.procedure=adam", "adapt.procedure='adam'"),
        ("adapt.optimizer=adam", "adapt.optimizer"),
        ("adapt.warmup=1.5", "adapt.warmup"),
        ("adapt.schedule=step", "adapt.schedule"),
        ("adapt.batch_size=-2", "adapt.batch_size"),
        ("adapt.lr=0", "adapt.lr=0"),
    ],
)
def test_bad_adapt_fields_name_the_recipe_key(root: Path, override: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.").replace("'", ".")):
        load_recipe(root / "recipes" / "text_classification" / "text_new_categories.yaml", [override])
