"""First-order MAML (FOMAML) over adapter parameters.

**References**

1. Finn, Abbeel, Levine 2017, "Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks", arXiv:1703.03400,
   sec. 5.2 (the first-order approximation).
2. Nichol, Achiam, Schulman 2018, "On First-Order Meta-Learning Algorithms", arXiv:1803.02999, sec. 4.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from metanlp.algorithms.base import MetaLearner
from metanlp.core import adaptation
from metanlp.core.budget import AdaptBudget
from metanlp.core.config import MetaConfig
from metanlp.core.inner_loop import inner_loop, loss_and_grads
from metanlp.core.protocols import Batch, Params, TaskFamily

__all__ = ["FOMAML"]


@dataclass
class FOMAML(MetaLearner):
    """First-order MAML: the meta-gradient is the query-loss gradient at the adapted weights.

    ``grad_theta L_query(theta')`` is approximated by ``grad_theta' L_query(theta')``, i.e. the Jacobian of the inner
    loop is taken as the identity (Finn et al. 2017, sec. 5.2). When the task initialises extra fast weights from the
    meta-parameters (the prototype head of text classification), their query-loss gradient is chained back through
    that initialisation with ``task.init_vjp`` (first-order Proto-MAML, Triantafillou et al. 2020, sec. 3.2).

    With a ``budget`` (what recipes build: :func:`~metanlp.core.comparison.adaptation_budget`) the inner loop is
    :func:`metanlp.core.adaptation.inner_loop`: :meth:`adapt` (test time) runs the whole budget, and meta-training
    runs its first ``inner_steps`` steps, so meta-training optimises the start of the very procedure used at test
    time. Without one it is ``inner_steps`` full-batch SGD steps at ``inner_lr``
    (:func:`metanlp.core.inner_loop.inner_loop`).

    Args:
        inner_lr: inner learning rate of the SGD inner loop (no ``budget``).
        inner_steps: inner steps per meta-training episode (and per adaptation without a ``budget``).
        micro_batch: examples per forward/backward pass (0 = whole support/query set); bounds activation memory.
        budget: the adaptation budget, or None for the plain SGD inner loop.
        seed: seed of the budget's mini-batch order.
    """

    inner_lr: float = 0.5
    inner_steps: int = 5
    micro_batch: int = 0
    budget: AdaptBudget | None = None
    seed: int = 0

    @classmethod
    def from_config(cls, cfg: MetaConfig, budget: AdaptBudget | None = None) -> FOMAML:
        """Build from ``meta.inner_lr``, ``meta.inner_steps``, ``meta.micro_batch`` and the recipe's budget."""
        return cls(inner_lr=cfg.inner_lr, inner_steps=cfg.inner_steps, micro_batch=cfg.micro_batch, budget=budget)

    def _inner(self, task: TaskFamily, meta_params: Params, support: Batch, steps: int | None) -> Params:
        fast = task.init_fast_weights(meta_params, support)
        if self.budget is None:
            return inner_loop(task, fast, support, self.inner_steps, self.inner_lr, self.micro_batch)
        return adaptation.inner_loop(task, fast, support, self.budget, self.seed, steps=steps)

    def adapt(self, task: TaskFamily, meta_params: Params, support: Batch) -> Params:
        """Fast weights adapted from the task's initial ones: the whole budget (or ``inner_steps`` SGD steps)."""
        return self._inner(task, meta_params, support, steps=None)

    def meta_gradient(self, task: TaskFamily, meta_params: Params, episode: Any) -> tuple[Params, dict[str, float]]:
        """``(grads, stats)``: the query-loss gradient at the adapted weights for every key of ``meta_params``
        (after ``inner_steps`` inner steps)."""
        support, query = task.batches(episode)
        fast = self._inner(task, meta_params, support, self.inner_steps)
        fast = {k: v.requires_grad_(True) for k, v in fast.items()}
        query_loss, g = loss_and_grads(task, fast, query, list(fast), self.micro_batch)
        g_fast = dict(zip(fast, g, strict=True))
        grads = {k: g_fast[k] for k in meta_params}
        task_grads = {k: v for k, v in g_fast.items() if k not in meta_params}
        extra = task.init_vjp(meta_params, support, task_grads, self.micro_batch)
        if extra is not None:  # task weights initialised from the meta-parameters (Proto-MAML head): chain through
            grads = {k: grads[k] + extra[k] for k in grads}
        return grads, {"query_loss": query_loss}
