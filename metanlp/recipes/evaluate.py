"""Recipe: score (a) frozen nearest centroid, (b) LoRA fine-tuning from the pretrained backbone and (c) the
meta-learned init fine-tuned the same way, on the same meta-test episodes.

Run: ``metanlp evaluate recipes/clinc150_benchmark.yaml --set adapter.init=runs/clinc150/adapter``.
Writes ``run.output_dir``/metrics.json (records of method, metric, mean, ci95, n_way, k_shot, episodes).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from safetensors.torch import load_file

from metanlp.algorithms import MetaLearner, build_learner
from metanlp.builders import ClassificationSetup, build_classification, make_sampler, prepare_run_dir, task_samplers
from metanlp.config import RecipeConfig
from metanlp.episodes import LabelledCorpus
from metanlp.evaluation import evaluate_episodes, format_table, metric_records
from metanlp.saving import write_json_atomic

log = logging.getLogger(__name__)


def adaptation_budget(cfg: RecipeConfig) -> tuple[int, float]:
    """``(steps, lr)`` of adaptation: ``adapt.*`` when set, else the inner loop's ``meta.inner_steps/inner_lr``."""
    steps = cfg.adapt.steps if cfg.adapt.steps >= 0 else cfg.meta.inner_steps
    lr = cfg.adapt.lr if cfg.adapt.lr > 0 else cfg.meta.inner_lr
    return steps, lr


def load_learner(cfg: RecipeConfig, meta_params: dict[str, Any] | None = None) -> MetaLearner:
    """The recipe's learner with adaptation budget ``adapt.*``; Meta-SGD etc. get their meta-learned extras
    (``meta_params``: the adapter's meta-parameters, which shape Meta-SGD's learning rates)."""
    meta_cfg = cfg.meta
    steps, lr = adaptation_budget(cfg)
    meta_cfg = type(meta_cfg)(**{**meta_cfg.__dict__, "inner_steps": steps, "inner_lr": lr})
    learner = build_learner(meta_cfg, meta_params)
    extra_file = Path(cfg.adapter.init) / "learner.safetensors" if cfg.adapter.init else None
    if extra_file is not None and extra_file.is_file():
        saved = load_file(str(extra_file))
        for k, p in learner.extra_parameters().items():
            if k not in saved:
                raise ValueError(
                    f"{extra_file} lacks {k!r}: was adapter.init made with meta.algorithm={cfg.meta.algorithm}?"
                )
            p.data.copy_(saved[k])
    return learner


def evaluate_split(
    cfg: RecipeConfig, setup: ClassificationSetup, learner: MetaLearner, corpus: LabelledCorpus, classes: list[str]
) -> list[dict[str, Any]]:
    """Evaluate every ``eval.methods`` on ``eval.episodes`` episodes of ``classes`` for each K in ``eval.k_shots``."""
    steps, lr = adaptation_budget(cfg)
    records: list[dict[str, Any]] = []
    for k in cfg.eval.k_shots:
        n_way = cfg.eval.n_way or len(classes)
        sampler = make_sampler(cfg, corpus, classes, "test", n_way, k, cfg.eval.q_query)
        episodes = [sampler.sample(i, rank=1_000_003) for i in range(cfg.eval.episodes)]  # never a training index
        results = evaluate_episodes(setup.task, episodes, setup.pretrained, setup.meta_params, learner, steps, lr,
                                    cfg.eval.methods, cfg.run.progress, cfg.meta.micro_batch)  # fmt: skip
        records += metric_records(results, n_way=n_way, k_shot=k, adapt_steps=steps, adapt_lr=lr,
                                  dataset=corpus.source, algorithm=cfg.meta.algorithm)  # fmt: skip
    log.debug("meta-test results (%s):\n%s", corpus.source, format_table(records))
    return records


def run(cfg: RecipeConfig) -> dict[str, Any]:
    """Evaluate ``adapter.init`` (and the baselines) on the meta-test classes of ``task.dataset``."""
    if "meta" in cfg.eval.methods and not cfg.adapter.init:
        raise ValueError("eval.methods includes 'meta' but adapter.init is empty: point it at a meta-train adapter/")
    out = prepare_run_dir(cfg, "evaluate")
    setup = build_classification(cfg)
    corpus, splits = task_samplers(cfg)
    records = evaluate_split(cfg, setup, load_learner(cfg, setup.meta_params), corpus, splits.test)
    summary = {"records": records, "meta_test_classes": splits.test}
    write_json_atomic(out / "metrics.json", summary)
    return summary
