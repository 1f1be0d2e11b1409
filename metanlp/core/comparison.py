"""The one comparison engine: every method on the same episodes, one budget rule, one way to compute intervals.

A :class:`Method` is a row of the table: the adapter weights it starts from, how it adapts to a support set (or not
at all), and how its query set is read. Both families and every bench build their rows with :func:`standard_methods`
and score them with :func:`compare`, so the same name always means the same procedure:

- ``prompting`` (0): the pretrained backbone, no training, the query read with in-context examples (translation);
- ``centroid`` (a): the frozen backbone's nearest class centroid (the prototype head, no adaptation step);
- ``logreg`` (e): logistic regression on the frozen backbone's embeddings (text; the family builds the row);
- ``finetune`` (b): LoRA fine-tuned on the support set from the pretrained backbone (the transfer baseline);
- ``meta`` (c): the meta-learned init, adapted by the learner's own inner loop with the same budget;
- ``multitask`` (d): a multi-task transfer adapter (trained on the meta-train tasks as one problem), adapted like
  ``finetune``.

The letters are for README tables; code and outputs use the names.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from metanlp.algorithms.base import MetaLearner
from metanlp.core.adaptation import adapt
from metanlp.core.budget import AdaptBudget, budget_from_config
from metanlp.core.config import EVAL_METHODS
from metanlp.core.metrics import PER_EXAMPLE, bootstrap_ci95, mean_ci95
from metanlp.core.protocols import Batch, Params, TaskFamily

__all__ = [
    "LETTERS",
    "METHODS",
    "Method",
    "adaptation_budget",
    "compare",
    "format_table",
    "metric_records",
    "standard_methods",
]

log = logging.getLogger(__name__)

METHODS = EVAL_METHODS
#: README letters; the same letter means the same method in both families.
LETTERS = {"prompting": "(0)", "centroid": "(a)", "finetune": "(b)", "meta": "(c)", "multitask": "(d)",
           "logreg": "(e)"}


def adaptation_budget(cfg: Any) -> AdaptBudget:
    """The :class:`~metanlp.core.budget.AdaptBudget` of every method that adapts, from the recipe's ``adapt`` section
    (``meta.inner_steps``/``meta.inner_lr`` fill ``adapt.steps``/``adapt.lr`` = -1 under ``adapt.procedure:
    inner_loop``; ``meta.micro_batch`` bounds memory). FOMAML's meta-training inner loop runs its first steps.

    Args:
        cfg: the recipe.
    """
    return budget_from_config(cfg.adapt, cfg.meta.inner_steps, cfg.meta.inner_lr, cfg.meta.micro_batch)


@dataclass
class Method:
    """One method of the comparison.

    Attributes:
        name: one of :data:`METHODS` (or a bench's own name).
        init: the adapter weights it starts from (name -> tensor).
        adapt: ``(task, init, support) -> fast weights``; None = no training (``task.init_fast_weights`` only).
        reads: how its adapted model is scored: suffix -> ``(episode) -> query batch``; the suffix is appended to the
            name in the results (``""`` = the family's default query batch, ``task.batches(episode)[1]``).
    """

    name: str
    init: Params
    adapt: Callable[[TaskFamily, Params, Batch], Params] | None = None
    reads: dict[str, Callable[[Any], Batch] | None] = field(default_factory=lambda: {"": None})


def standard_methods(
    names: list[str] | tuple[str, ...],
    pretrained: Params,
    budget: AdaptBudget,
    meta: Params | None = None,
    learner: MetaLearner | None = None,
    multitask: Params | None = None,
    seed: int = 0,
) -> list[Method]:
    """The rows named in ``names`` (a subset of :data:`METHODS` except ``prompting`` and ``logreg``, which a family
    builds itself), all with the same adaptation budget.

    ``finetune`` and ``multitask`` run :func:`metanlp.core.adaptation.adapt` with ``budget`` (mini-batch order from
    ``seed``); ``meta`` runs ``learner.adapt`` (FOMAML: the same budget; Meta-SGD: its meta-learned rates).

    Raises:
        ValueError: an unknown name, or ``meta``/``multitask`` without their weights (the message says which key
            provides them).
    """
    own = ("prompting", "logreg")
    unknown = [m for m in names if m not in METHODS or m in own]
    if unknown:
        raise ValueError(f"unknown evaluation method(s) {unknown}; choose from {[m for m in METHODS if m not in own]}")
    if "meta" in names and (meta is None or learner is None):
        raise ValueError("method 'meta' needs a meta-learned adapter: set adapter.init to a meta-train output")
    if "multitask" in names and multitask is None:
        raise ValueError("method 'multitask' needs a multi-task adapter: set adapter.multitask_init")

    def plain(task: TaskFamily, init: Params, support: Batch) -> Params:
        return adapt(task, init, support, budget, seed)

    rows = {
        "centroid": lambda: Method("centroid", pretrained),
        "finetune": lambda: Method("finetune", pretrained, plain),
        "multitask": lambda: Method("multitask", multitask, plain),  # type: ignore[arg-type]
        "meta": lambda: Method("meta", meta, lambda task, init, s: learner.adapt(task, init, s)),  # type: ignore
    }
    return [rows[n]() for n in names]


def compare(
    task: TaskFamily, episodes: list[Any], methods: list[Method], progress: bool = True
) -> dict[str, dict[str, list[float]]]:
    """Adapt and score every method on every episode (the same support and query for every method).

    Args:
        task: the task family.
        episodes: the evaluation episodes (meta-test classes or language pairs, or one user-given task).
        methods: the rows (see :func:`standard_methods`).
        progress: show a progress bar.

    Returns:
        ``{name + read suffix: {metric: [score per episode], "seconds": [adaptation seconds per episode]}}``.
    """
    results: dict[str, dict[str, list[float]]] = {}
    for ep in tqdm(episodes, desc="evaluate", unit="episode", disable=not progress):
        support, query = task.batches(ep)
        for m in methods:
            t0 = time.perf_counter()
            fast = m.adapt(task, m.init, support) if m.adapt is not None else task.init_fast_weights(m.init, support)
            seconds = time.perf_counter() - t0
            for suffix, read in m.reads.items():
                scores = dict(task.score(fast, query if read is None else read(ep)))
                for metric, values in scores.pop(PER_EXAMPLE, {}).items():  # kept for a bootstrap interval
                    results.setdefault(m.name + suffix, {}).setdefault(f"{PER_EXAMPLE}:{metric}", []).append(values)
                for k, v in {**scores, "seconds": seconds}.items():
                    results.setdefault(m.name + suffix, {}).setdefault(k, []).append(v)
                log.debug("%s%s: %s", m.name, suffix, scores)
    return results


def metric_records(results: dict[str, dict[str, list[float]]], **context: Any) -> list[dict[str, Any]]:
    """Flatten per-episode scores into records ``{method, metric, mean, ci95, interval, episodes, values,
    **context}``; ``values`` are the per-episode scores, in episode order (the same for every method, so two methods
    compare pairwise).

    ``ci95`` is the half-width of a 95% Student-t interval over episodes (``interval: "episodes"``). With a single
    episode (a user's own eval set) it is a 95% percentile bootstrap over its examples (``interval: "bootstrap over
    examples"``, :func:`~metanlp.core.metrics.bootstrap_ci95`) when the family scored each example (accuracy), and
    0 otherwise (``interval: "none"``). ``context`` carries what the numbers are about (``n_way``, ``k_shot``,
    ``dataset`` ...).
    """
    records = []
    for method, metrics in results.items():
        for metric, values in metrics.items():
            if metric.startswith(f"{PER_EXAMPLE}:"):
                continue
            s = mean_ci95(values)
            record = {"method": method, "metric": metric, "mean": s["mean"], "ci95": s["ci95"],
                      "interval": "episodes" if s["n"] > 1 else "none", "episodes": s["n"],
                      "values": [float(v) for v in values], **context}  # fmt: skip
            examples = metrics.get(f"{PER_EXAMPLE}:{metric}")
            if s["n"] == 1 and examples and len(examples[0]) > 1:
                b = bootstrap_ci95(examples[0])
                record.update(ci95=b["ci95"], ci95_low=b["low"], ci95_high=b["high"],
                              interval="bootstrap over examples")  # fmt: skip
            records.append(record)
    return records


def format_table(records: list[dict[str, Any]], metric: str = "accuracy", scale: float = 100.0) -> str:
    """A plain-text table, one row per (setting, method): ``mean ± ci95`` of ``metric`` and adaptation seconds."""
    rows = [r for r in records if r["metric"] == metric]
    secs = {(r.get("k_shot"), r.get("n_way"), r["method"]): r["mean"] for r in records if r["metric"] == "seconds"}
    lines = [f"{'N-way':>6} {'K-shot':>6}  {'method':<16} {metric:>18}  {'adapt s':>8}  episodes"]
    for r in rows:
        key = (r.get("k_shot"), r.get("n_way"), r["method"])
        has_ci = r["episodes"] > 1 or r.get("interval") == "bootstrap over examples"
        score = f"{r['mean'] * scale:6.2f} ± {r['ci95'] * scale:5.2f}" if has_ci else f"{r['mean'] * scale:6.2f}"
        lines.append(
            f"{r.get('n_way', ''):>6} {r.get('k_shot', ''):>6}  {r['method']:<16} {score:>18}  "
            f"{secs.get(key, float('nan')):8.1f}  {r['episodes']}"
        )
    return "\n".join(lines)
