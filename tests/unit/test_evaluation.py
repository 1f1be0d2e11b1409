"""metanlp.evaluation on real held-out classes with the real backbone: every method must beat chance clearly."""

from pathlib import Path

import pytest

from metanlp.algorithms.fomaml import FOMAML
from metanlp.builders import build_classification, make_sampler, task_samplers
from metanlp.evaluation import evaluate_episodes, format_table, metric_records
from metanlp.recipe_loading import load_recipe


@pytest.fixture(scope="module")
def icd_setup(root: Path):
    cfg = load_recipe(root / "recipes" / "text_meta_train.yaml", ["run.progress=false"])
    return cfg, build_classification(cfg), *task_samplers(cfg)


def test_methods_beat_chance_on_held_out_icd_chapters(icd_setup) -> None:
    cfg, setup, corpus, splits = icd_setup
    sampler = make_sampler(cfg, corpus, splits.test, "test", n_way=8, k_shot=5, q_query=5)
    episodes = [sampler.sample(i) for i in range(2)]
    results = evaluate_episodes(setup.task, episodes, setup.pretrained, setup.meta_params, FOMAML(0.5, 2),
                                steps=2, lr=0.5, progress=False)  # fmt: skip
    chance = 1 / 8
    for method, scores in results.items():
        mean_acc = sum(scores["accuracy"]) / len(scores["accuracy"])
        assert mean_acc > 3 * chance, f"{method}: accuracy {mean_acc:.2f} is not clearly above chance {chance:.2f}"
    records = metric_records(results, n_way=8, k_shot=5)
    assert {r["method"] for r in records} == {"centroid", "finetune", "meta"}
    assert "centroid" in format_table(records)


def test_unknown_method_and_missing_meta_weights(icd_setup) -> None:
    _, setup, _, _ = icd_setup
    with pytest.raises(ValueError, match="unknown evaluation method"):
        evaluate_episodes(setup.task, [], setup.pretrained, None, FOMAML(), 1, 0.1, methods=["magic"])
    with pytest.raises(ValueError, match="adapter.init"):
        evaluate_episodes(setup.task, [], setup.pretrained, None, FOMAML(), 1, 0.1, methods=["meta"])
