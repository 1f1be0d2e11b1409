"""Recipe: score (a) frozen nearest centroid, (b) LoRA fine-tuning from the pretrained backbone, (c) the
meta-learned init fine-tuned the same way and, with ``adapter.multitask_init``, (d) the multi-task transfer init
(:mod:`metanlp.families.text_classification.multitask`) fine-tuned like (b), on the same meta-test episodes.

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
from metanlp.core.protocols import Params
from metanlp.core.run_dir import staged_run
from metanlp.core.saving import write_json_atomic
from metanlp.families.text_classification.baselines import classification_methods
from metanlp.families.text_classification.data import LabelledCorpus, eval_classes
from metanlp.families.text_classification.multitask import load_multitask_init
from metanlp.families.text_classification.setup import (
    ClassificationSetup,
    build_classification,
    make_sampler,
    task_samplers,
)

log = logging.getLogger(__name__)


def method_names(methods: list[str], multitask: Params | None) -> list[str]:
    """``eval.methods`` with ``multitask`` (d) added when its LoRA is given and dropped when it is not."""
    names = [m for m in methods if m != "multitask"]
    return names + ["multitask"] if multitask is not None else names


def evaluate_split(
    cfg: RecipeConfig,
    setup: ClassificationSetup,
    learner: MetaLearner,
    corpus: LabelledCorpus,
    classes: list[str],
    multitask: Params | None = None,
) -> list[dict[str, Any]]:
    """Evaluate every ``eval.methods`` on ``eval.episodes`` episodes of ``classes`` for each K in ``eval.k_shots``;
    with ``multitask`` (LoRA weights keyed like ``setup.meta_params``) also the ``multitask`` row. At each K only the
    classes with enough examples take part (:func:`~metanlp.families.text_classification.data.eval_classes`; each
    record's ``n_way`` says how many).

    Raises:
        ValueError: at some K fewer usable classes than an episode needs (checked up front by ``check_inputs``).
    """
    budget = adaptation_budget(cfg)
    methods = classification_methods(method_names(cfg.eval.methods, multitask), setup.pretrained, budget,
                                     setup.meta_params, learner, multitask, seed=cfg.run.seed)  # fmt: skip
    records: list[dict[str, Any]] = []
    for k in cfg.eval.k_shots:
        usable = eval_classes(corpus, classes, cfg.eval.n_way, k, cfg.eval.q_query)  # all-way: those with K + 1
        n_way = cfg.eval.n_way or len(usable)
        sampler = make_sampler(cfg, corpus, usable, "test", n_way, k, cfg.eval.q_query)
        episodes = [sampler.sample(i, rank=1_000_003) for i in range(cfg.eval.episodes)]  # never a training index
        results = compare(setup.task, episodes, methods, cfg.run.progress)
        records += metric_records(results, n_way=n_way, k_shot=k, adapt=budget.describe(),
                                  dataset=corpus.source, algorithm=cfg.meta.algorithm)  # fmt: skip
    log.debug("meta-test results (%s):\n%s", corpus.source, format_table(records))
    return records


def run(cfg: RecipeConfig) -> dict[str, Any]:
    """Evaluate ``adapter.init`` (and the baselines, with ``adapter.multitask_init`` also (d)) on the meta-test
    classes of ``task.dataset``."""
    check_inputs(cfg, "evaluate")
    setup = build_classification(cfg)
    multitask = None
    if cfg.adapter.multitask_init:
        multitask = load_multitask_init(setup.model, cfg.adapter.multitask_init, cfg.model.name)
    corpus, splits = task_samplers(cfg)
    learner = adaptation_learner(cfg, setup.meta_params)
    records = evaluate_split(cfg, setup, learner, corpus, splits.test, multitask)
    summary = {"records": records, "meta_test_classes": splits.test}
    with staged_run(cfg, "evaluate") as out:
        write_json_atomic(out / "metrics.json", summary)
    return summary
