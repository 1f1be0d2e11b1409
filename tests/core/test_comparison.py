"""metanlp.core.comparison on real held-out classes with the real backbone: every method must beat chance clearly."""

from pathlib import Path

import pytest

from metanlp.algorithms.fomaml import FOMAML
from metanlp.core.budget import AdaptBudget
from metanlp.core.comparison import Method, compare, format_table, metric_records, standard_methods
from metanlp.core.recipe_loading import load_recipe
from metanlp.families.text_classification.baselines import (
    classification_methods,
    logistic_regression_head,
    logistic_regression_predict,
)
from metanlp.families.text_classification.setup import build_classification, make_sampler, task_samplers


@pytest.fixture(scope="module")
def icd_setup(root: Path):
    cfg = load_recipe(root / "recipes" / "text_classification" / "text_meta_train.yaml", ["run.progress=false"])
    return cfg, build_classification(cfg), *task_samplers(cfg)


def test_methods_beat_chance_on_held_out_icd_chapters(icd_setup) -> None:
    cfg, setup, corpus, splits = icd_setup
    sampler = make_sampler(cfg, corpus, splits.test, "test", n_way=8, k_shot=5, q_query=5)
    episodes = [sampler.sample(i) for i in range(2)]
    budget = AdaptBudget(batch_size=16, steps=4)  # the default procedure, few steps
    methods = classification_methods(["centroid", "logreg", "finetune", "meta"], setup.pretrained, budget,
                                     setup.meta_params, FOMAML(budget=budget))  # fmt: skip
    results = compare(setup.task, episodes, methods, progress=False)
    chance = 1 / 8
    for method, scores in results.items():
        mean_acc = sum(scores["accuracy"]) / len(scores["accuracy"])
        assert mean_acc > 3 * chance, f"{method}: accuracy {mean_acc:.2f} is not clearly above chance {chance:.2f}"
    records = metric_records(results, n_way=8, k_shot=5)
    assert {r["method"] for r in records} == {"centroid", "logreg", "finetune", "meta"}
    for r in records:  # per-episode scores, in episode order, for paired comparisons
        assert r["values"] == pytest.approx(results[r["method"]][r["metric"]])
        assert r["mean"] == pytest.approx(sum(r["values"]) / 2)
    assert "centroid" in format_table(records)


def test_unknown_method_and_missing_meta_weights(icd_setup) -> None:
    _, setup, _, _ = icd_setup
    with pytest.raises(ValueError, match="unknown evaluation method"):
        standard_methods(["magic"], setup.pretrained, AdaptBudget())
    with pytest.raises(ValueError, match="adapter.init"):
        standard_methods(["meta"], setup.pretrained, AdaptBudget())
    with pytest.raises(ValueError, match="adapter.multitask_init"):
        standard_methods(["multitask"], setup.pretrained, AdaptBudget())


def test_reads_score_one_adaptation_several_ways(icd_setup) -> None:
    """A method adapted once and read two ways gives two result rows; the seconds are the same adaptation's."""
    cfg, setup, corpus, splits = icd_setup
    episode = make_sampler(cfg, corpus, splits.test, "test", n_way=4, k_shot=2, q_query=3).sample(0)
    short = lambda ep: setup.task.batches(type(ep)(ep.support_texts, ep.support_labels, ep.query_texts[:4],  # noqa: E731
                                                   ep.query_labels[:4], ep.label_names))[1]
    results = compare(setup.task, [episode], [Method("centroid", setup.pretrained, reads={"": None, "+4": short})],
                      progress=False)  # fmt: skip
    assert set(results) == {"centroid", "centroid+4"}
    assert results["centroid"]["seconds"] == results["centroid+4"]["seconds"]


def test_logreg_head_predicts_as_scikit_learn_does(icd_setup) -> None:
    cfg, setup, corpus, splits = icd_setup
    ep = make_sampler(cfg, corpus, splits.test, "test", n_way=6, k_shot=3, q_query=4).sample(0)
    support, query = setup.task.batches(ep)
    fast = logistic_regression_head(setup.task, setup.pretrained, support)
    expected = logistic_regression_predict(setup.task, setup.pretrained, support, query)
    assert setup.task.predict(fast, query).tolist() == expected.tolist()
    assert fast.keys() == setup.task.init_fast_weights(setup.pretrained, support).keys()
