"""Few-shot evaluation: every method on the same episodes, mean and 95% CI over episodes, ``metrics.json``.

Methods (text classification):

- ``centroid``: frozen backbone, nearest class centroid (the prototype head with no adaptation step);
- ``finetune``: LoRA fine-tuned on the support set from the pretrained backbone with the same adaptation budget as
  the meta-learned init and no meta-training (the transfer baseline);
- ``meta``: the meta-learned init, adapted by the learner's own inner loop (for FOMAML: the same SGD steps).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from tqdm.auto import tqdm

from metanlp.algorithms import MetaLearner
from metanlp.algorithms.fomaml import inner_loop
from metanlp.metrics import mean_ci95
from metanlp.tasks import Params, TaskFamily

__all__ = ["METHODS", "evaluate_episodes", "format_table", "metric_records"]

log = logging.getLogger(__name__)

METHODS = ("centroid", "finetune", "meta")

#: ``(task, support) -> adapted fast weights`` for one method.
Adapter = Callable[[Any], Params]


def evaluate_episodes(
    task: TaskFamily,
    episodes: list[Any],
    pretrained: Params,
    meta: Params | None,
    learner: MetaLearner,
    steps: int,
    lr: float,
    methods: tuple[str, ...] | list[str] = METHODS,
    progress: bool = True,
    micro_batch: int = 0,
) -> dict[str, dict[str, list[float]]]:
    """Adapt and score each method on each episode (same support and query for every method).

    Args:
        task: the task family.
        episodes: the evaluation episodes (meta-test classes).
        pretrained: adapter weights before meta-training (LoRA with ``B = 0``: the backbone's own function).
        meta: meta-learned adapter weights (required for ``meta``).
        learner: adapts the meta-learned init (``learner.adapt``).
        steps: adaptation steps of ``finetune`` (the learner's budget for ``meta``).
        lr: learning rate of ``finetune``'s adaptation steps.
        methods: subset of :data:`METHODS`.
        progress: show a progress bar.
        micro_batch: examples per forward/backward pass of ``finetune``'s steps (0 = whole support set).

    Returns:
        ``{method: {metric: [score per episode], "seconds": [adaptation seconds per episode]}}``.

    Raises:
        ValueError: an unknown method, or ``meta`` requested without meta-learned weights.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown evaluation method(s) {unknown}; choose from {list(METHODS)}")
    if "meta" in methods and meta is None:
        raise ValueError("method 'meta' needs a meta-learned adapter: set adapter.init to a meta-train output")
    adapters: dict[str, Callable[[Any], Params]] = {
        "centroid": lambda s: task.init_fast_weights(pretrained, s),
        "finetune": lambda s: inner_loop(task, task.init_fast_weights(pretrained, s), s, steps, lr, micro_batch),
        "meta": lambda s: learner.adapt(task, meta, s),  # type: ignore[arg-type]
    }
    results: dict[str, dict[str, list[float]]] = {m: {} for m in methods}
    for ep in tqdm(episodes, desc="evaluate", unit="episode", disable=not progress):
        support, query = task.batches(ep)
        for m in methods:
            t0 = time.perf_counter()
            fast = adapters[m](support)
            seconds = time.perf_counter() - t0
            for k, v in {**task.score(fast, query), "seconds": seconds}.items():
                results[m].setdefault(k, []).append(v)
    return results


def metric_records(results: dict[str, dict[str, list[float]]], **context: Any) -> list[dict[str, Any]]:
    """Flatten per-episode scores into records ``{method, metric, mean, ci95, episodes, **context}``.

    ``context`` carries what the numbers are about (``n_way``, ``k_shot``, ``dataset`` ...).
    """
    records = []
    for method, metrics in results.items():
        for metric, values in metrics.items():
            s = mean_ci95(values)
            records.append({"method": method, "metric": metric, "mean": s["mean"], "ci95": s["ci95"],
                            "episodes": s["n"], **context})  # fmt: skip
    return records


def format_table(records: list[dict[str, Any]], metric: str = "accuracy", scale: float = 100.0) -> str:
    """A plain-text table, one row per (setting, method): ``mean ± ci95`` of ``metric`` and adaptation seconds."""
    rows = [r for r in records if r["metric"] == metric]
    secs = {(r.get("k_shot"), r.get("n_way"), r["method"]): r["mean"] for r in records if r["metric"] == "seconds"}
    lines = [f"{'N-way':>6} {'K-shot':>6}  {'method':<10} {metric:>18}  {'adapt s':>8}  episodes"]
    for r in rows:
        key = (r.get("k_shot"), r.get("n_way"), r["method"])
        score = f"{r['mean'] * scale:6.2f} ± {r['ci95'] * scale:5.2f}"
        lines.append(
            f"{r.get('n_way', ''):>6} {r.get('k_shot', ''):>6}  {r['method']:<10} {score:>18}  "
            f"{secs.get(key, float('nan')):8.1f}  {r['episodes']}"
        )
    return "\n".join(lines)
