"""First-order MAML (FOMAML) over adapter parameters.

**References**

1. Finn, Abbeel, Levine 2017, "Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks", arXiv:1703.03400,
   sec. 5.2 (the first-order approximation).
2. Nichol, Achiam, Schulman 2018, "On First-Order Meta-Learning Algorithms", arXiv:1803.02999, sec. 4.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from metanlp.config import MetaConfig
from metanlp.tasks import Batch, Params, TaskFamily

__all__ = ["FOMAML", "inner_loop"]


def inner_loop(task: TaskFamily, params: Params, support: Batch, steps: int, lr: float) -> Params:
    """Adapt fast weights with ``steps`` full-batch SGD steps on the support loss; no graph is kept (first order).

    Args:
        task: gives ``task.loss(params, batch)``.
        params: starting fast weights (name -> tensor).
        support: the support batch.
        steps: adaptation steps.
        lr: inner learning rate.

    Returns:
        The adapted fast weights, detached (same keys and shapes as ``params``).
    """
    for _ in range(steps):
        params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        grads = torch.autograd.grad(task.loss(params, support), list(params.values()))
        params = {k: v - lr * g for (k, v), g in zip(params.items(), grads, strict=True)}
    return {k: v.detach() for k, v in params.items()}


@dataclass
class FOMAML:
    """First-order MAML: the meta-gradient is the query-loss gradient at the adapted weights.

    ``grad_theta L_query(theta')`` is approximated by ``grad_theta' L_query(theta')``, i.e. the Jacobian of the inner
    loop is taken as the identity (Finn et al. 2017, sec. 5.2).

    Args:
        inner_lr: inner learning rate.
        inner_steps: adaptation steps.
    """

    inner_lr: float = 0.5
    inner_steps: int = 5

    @classmethod
    def from_config(cls, cfg: MetaConfig) -> FOMAML:
        """Build from ``meta.inner_lr`` and ``meta.inner_steps``."""
        return cls(inner_lr=cfg.inner_lr, inner_steps=cfg.inner_steps)

    def extra_parameters(self) -> dict[str, torch.nn.Parameter]:
        """FOMAML meta-learns nothing beyond the adapter: ``{}``."""
        return {}

    def adapt(self, task: TaskFamily, meta_params: Params, support: Batch) -> Params:
        """Fast weights after ``inner_steps`` SGD steps from the task's initial fast weights."""
        fast = task.init_fast_weights(meta_params, support)
        return inner_loop(task, fast, support, self.inner_steps, self.inner_lr)

    def meta_gradient(self, task: TaskFamily, meta_params: Params, episode: Any) -> tuple[Params, dict[str, float]]:
        """``(grads, stats)``: the query-loss gradient at the adapted weights for every key of ``meta_params``."""
        support, query = task.batches(episode)
        fast = {k: v.requires_grad_(True) for k, v in self.adapt(task, meta_params, support).items()}
        query_loss = task.loss(fast, query)
        grads = torch.autograd.grad(query_loss, [fast[k] for k in meta_params])
        return dict(zip(meta_params, grads, strict=True)), {"query_loss": query_loss.item()}
