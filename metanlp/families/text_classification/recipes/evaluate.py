"""Recipe: score (a) frozen nearest centroid, (b) LoRA fine-tuning from the pretrained backbone and (c) the
meta-learned init fine-tuned the same way, on the same meta-test episodes.

Run: ``metanlp evaluate recipes/text_classification/clinc150_benchmark.yaml --set adapter.init=runs/clinc150/adapter``.
Writes ``run.output_dir``/metrics.json (records of method, metric, mean, ci95, n_way, k_shot, episodes).
"""

from __future__ import annotations

import logging
from typing import Any

from metanlp.algorithms.base import MetaLearner, adaptation_learner
from metanlp.core.checks import check_inputs
from metanlp.core.comparison import adaptation_budget, compare, format_table, metric_records
from metanlp.core.config import RecipeConfig
from metanlp.core.run_dir import staged_run
from metanlp.core.saving import write_json_atomic
from metanlp.families.text_classification.baselines import classification_methods
from metanlp.families.text_classification.data import LabelledCorpus
from metanlp.families.text_classification.setup import (
    ClassificationSetup,
    build_classification,
    make_sampler,
    task_samplers,
)

log = logging.getLogger(__name__)


def evaluate_split(
    cfg: RecipeConfig, setup: ClassificationSetup, learner: MetaLearner, corpus: LabelledCorpus, classes: list[str]
) -> list[dict[str, Any]]:
    """Evaluate every ``eval.methods`` on ``eval.episodes`` episodes of ``classes`` for each K in ``eval.k_shots``."""
    budget = adaptation_budget(cfg)
    methods = classification_methods(cfg.eval.methods, setup.pretrained, budget, setup.meta_params, learner,
                               seed=cfg.run.seed)  # fmt: skip
    records: list[dict[str, Any]] = []
    for k in cfg.eval.k_shots:
        n_way = cfg.eval.n_way or len(classes)
        sampler = make_sampler(cfg, corpus, classes, "test", n_way, k, cfg.eval.q_query)
        episodes = [sampler.sample(i, rank=1_000_003) for i in range(cfg.eval.episodes)]  # never a training index
        results = compare(setup.task, episodes, methods, cfg.run.progress)
        records += metric_records(results, n_way=n_way, k_shot=k, adapt=budget.describe(),
                                  dataset=corpus.source, algorithm=cfg.meta.algorithm)  # fmt: skip
    log.debug("meta-test results (%s):\n%s", corpus.source, format_table(records))
    return records


def run(cfg: RecipeConfig) -> dict[str, Any]:
    """Evaluate ``adapter.init`` (and the baselines) on the meta-test classes of ``task.dataset``."""
    check_inputs(cfg, "evaluate")
    setup = build_classification(cfg)
    corpus, splits = task_samplers(cfg)
    records = evaluate_split(cfg, setup, adaptation_learner(cfg, setup.meta_params), corpus, splits.test)
    summary = {"records": records, "meta_test_classes": splits.test}
    with staged_run(cfg, "evaluate") as out:
        write_json_atomic(out / "metrics.json", summary)
    return summary
