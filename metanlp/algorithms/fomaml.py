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
from metanlp.micro_batches import micro_batches
from metanlp.tasks import Batch, Params, TaskFamily

__all__ = ["FOMAML", "inner_loop", "loss_and_grads"]


def loss_and_grads(
    task: TaskFamily, params: Params, batch: Batch, keys: list[str] | None = None, micro_batch: int = 0
) -> tuple[float, list[torch.Tensor]]:
    """Mean loss over ``batch`` and its gradient w.r.t. ``params[k]`` for ``k`` in ``keys`` (default: all).

    With ``micro_batch > 0`` the batch is cut into chunks of that many examples along dim 0 and the gradients of
    ``loss(chunk) * len(chunk) / n`` are summed: the same gradient as the full batch for per-example mean losses,
    with activation memory bounded by the chunk instead of the whole support or query set. A family that names its
    padded tensors in ``task.sequence_keys`` gets length-sorted chunks, each padded only to its own longest sequence
    (:func:`metanlp.micro_batches.micro_batches`).

    Args:
        task: gives ``task.loss(params, batch)``; ``params`` values must require grad.
        params: fast weights.
        batch: tensors of shape ``(n_examples, ...)``.
        keys: which parameters to differentiate (default: every key of ``params``).
        micro_batch: examples per forward/backward pass (0 = the whole batch at once).

    Returns:
        ``(loss, grads)`` with ``grads[i]`` shaped like ``params[keys[i]]``.
    """
    keys = list(params) if keys is None else keys
    inputs = [params[k] for k in keys]
    n = next(iter(batch.values())).shape[0]
    if micro_batch <= 0 or n <= micro_batch:
        loss = task.loss(params, batch)
        return loss.item(), list(torch.autograd.grad(loss, inputs))
    total, grads = 0.0, None
    for _, chunk in micro_batches(batch, micro_batch, getattr(task, "sequence_keys", ())):
        loss = task.loss(params, chunk) * (next(iter(chunk.values())).shape[0] / n)
        g = torch.autograd.grad(loss, inputs)
        grads = list(g) if grads is None else [a + b for a, b in zip(grads, g, strict=True)]
        total += loss.item()
    assert grads is not None
    return total, grads


@torch.enable_grad()
def inner_loop(
    task: TaskFamily, params: Params, support: Batch, steps: int, lr: float, micro_batch: int = 0
) -> Params:
    """Adapt fast weights with ``steps`` full-batch SGD steps on the support loss; no graph is kept (first order).

    Args:
        task: gives ``task.loss(params, batch)``.
        params: starting fast weights (name -> tensor).
        support: the support batch.
        steps: adaptation steps.
        lr: inner learning rate.
        micro_batch: examples per forward/backward pass (0 = all); the step is still full-batch.

    Returns:
        The adapted fast weights, detached (same keys and shapes as ``params``).
    """
    for _ in range(steps):
        params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        _, grads = loss_and_grads(task, params, support, micro_batch=micro_batch)
        params = {k: v - lr * g for (k, v), g in zip(params.items(), grads, strict=True)}
    return {k: v.detach() for k, v in params.items()}


@dataclass
class FOMAML:
    """First-order MAML: the meta-gradient is the query-loss gradient at the adapted weights.

    ``grad_theta L_query(theta')`` is approximated by ``grad_theta' L_query(theta')``, i.e. the Jacobian of the inner
    loop is taken as the identity (Finn et al. 2017, sec. 5.2). When the task initialises extra fast weights from the
    meta-parameters (the prototype head of text classification), their query-loss gradient is chained back through
    that initialisation with ``task.init_vjp`` (first-order Proto-MAML, Triantafillou et al. 2020, sec. 3.2).

    Args:
        inner_lr: inner learning rate.
        inner_steps: adaptation steps.
        micro_batch: examples per forward/backward pass (0 = whole support/query set); bounds activation memory.
    """

    inner_lr: float = 0.5
    inner_steps: int = 5
    micro_batch: int = 0

    @classmethod
    def from_config(cls, cfg: MetaConfig) -> FOMAML:
        """Build from ``meta.inner_lr``, ``meta.inner_steps`` and ``meta.micro_batch``."""
        return cls(inner_lr=cfg.inner_lr, inner_steps=cfg.inner_steps, micro_batch=cfg.micro_batch)

    def extra_parameters(self) -> dict[str, torch.nn.Parameter]:
        """FOMAML meta-learns nothing beyond the adapter: ``{}``."""
        return {}

    def adapt(self, task: TaskFamily, meta_params: Params, support: Batch) -> Params:
        """Fast weights after ``inner_steps`` SGD steps from the task's initial fast weights."""
        fast = task.init_fast_weights(meta_params, support)
        return inner_loop(task, fast, support, self.inner_steps, self.inner_lr, self.micro_batch)

    def meta_gradient(self, task: TaskFamily, meta_params: Params, episode: Any) -> tuple[Params, dict[str, float]]:
        """``(grads, stats)``: the query-loss gradient at the adapted weights for every key of ``meta_params``."""
        support, query = task.batches(episode)
        fast = {k: v.requires_grad_(True) for k, v in self.adapt(task, meta_params, support).items()}
        query_loss, g = loss_and_grads(task, fast, query, list(fast), self.micro_batch)
        g_fast = dict(zip(fast, g, strict=True))
        grads = {k: g_fast[k] for k in meta_params}
        init_vjp = getattr(task, "init_vjp", None)
        if init_vjp is not None:  # task weights initialised from the meta-parameters (Proto-MAML head): chain through
            task_grads = {k: v for k, v in g_fast.items() if k not in meta_params}
            extra = init_vjp(meta_params, support, task_grads, self.micro_batch)
            grads = {k: grads[k] + extra[k] for k in grads}
        return grads, {"query_loss": query_loss}
