"""Second-order MAML over adapter parameters: backpropagation through the inner loop.

**References**

1. Finn, Abbeel, Levine 2017, "Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks", arXiv:1703.03400,
   sec. 2.2 (eq. 1) and Algorithm 1.
2. Triantafillou et al. 2020, "Meta-Dataset: A Dataset of Datasets for Learning to Learn from Few Examples",
   arXiv:1903.03096, sec. 3.2 (Proto-MAML: the head initialised from the support prototypes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from metanlp.algorithms.base import MetaLearner
from metanlp.core.config import MetaConfig
from metanlp.core.inner_loop import inner_loop
from metanlp.core.protocols import Batch, Params, TaskFamily

__all__ = ["MAML", "differentiable_inner_loop"]


def differentiable_inner_loop(task: TaskFamily, params: Params, support: Batch, steps: int, lr: float) -> Params:
    """``steps`` full-batch SGD steps on the support loss that keep the graph (``create_graph=True``).

    The result is a differentiable function of ``params``, so a loss on it can be backpropagated through the inner
    loop (Hessian-vector products appear in the backward pass).

    Args:
        task: gives ``task.loss(params, batch)``.
        params: starting fast weights (name -> tensor); every tensor must require grad.
        support: the support batch.
        steps: adaptation steps.
        lr: inner learning rate.

    Returns:
        The adapted fast weights, still attached to the graph (same keys and shapes as ``params``).
    """
    for _ in range(steps):
        grads = torch.autograd.grad(task.loss(params, support), list(params.values()), create_graph=True)
        params = {k: v - lr * g for (k, v), g in zip(params.items(), grads, strict=True)}
    return params


@dataclass
class MAML(MetaLearner):
    """MAML: the meta-gradient is ``d L_query(theta'(theta)) / d theta`` through all ``inner_steps`` SGD steps.

    The LoRA meta-parameters enter the inner loop as they are and the whole loop is differentiated (second order).
    Task-specific fast weights that ``task.init_fast_weights`` adds (the prototype-initialised head) start as leaves;
    the exact gradient w.r.t. their initial value is chained back to the meta-parameters with the family's
    ``init_vjp`` when it has one (Proto-MAML), so the result is the exact gradient of
    ``L_query(inner_loop(init_fast_weights(theta)))``. A family without ``init_vjp`` has task weights that do not
    depend on the meta-parameters. At adaptation time the inner loop is the same SGD as FOMAML's. ``meta.micro_batch``
    does not apply: the graph of the whole inner loop is kept anyway.

    Memory grows with ``inner_steps`` (the graph of every step is kept), and attention must support double backward:
    on CPU, torch's SDPA kernel does not, so load the backbone with ``model.attn_implementation: eager``.

    Args:
        inner_lr: inner learning rate.
        inner_steps: adaptation steps.
    """

    inner_lr: float = 0.5
    inner_steps: int = 5

    @classmethod
    def from_config(cls, cfg: MetaConfig, budget: Any = None) -> MAML:
        """Build from ``meta.inner_lr`` and ``meta.inner_steps`` (its inner loop is differentiable SGD: no
        ``budget``)."""
        return cls(inner_lr=cfg.inner_lr, inner_steps=cfg.inner_steps)

    def adapt(self, task: TaskFamily, meta_params: Params, support: Batch) -> Params:
        """Fast weights after ``inner_steps`` SGD steps (no graph kept: the same values as in meta-training)."""
        fast = task.init_fast_weights(meta_params, support)
        with torch.enable_grad():  # also when called under torch.no_grad()
            return inner_loop(task, fast, support, self.inner_steps, self.inner_lr)

    def meta_gradient(self, task: TaskFamily, meta_params: Params, episode: Any) -> tuple[Params, dict[str, float]]:
        """``(grads, stats)``: the exact gradient of the post-adaptation query loss w.r.t. every meta-parameter.

        Raises:
            ValueError: the backbone's attention has no double backward (SDPA on CPU); the message says to set
                ``model.attn_implementation=eager``.
        """
        support, query = task.batches(episode)
        theta = {k: v.detach().requires_grad_(True) for k, v in meta_params.items()}
        fast = task.init_fast_weights(meta_params, support)
        fast = {k: theta[k] if k in theta else v.detach().requires_grad_(True) for k, v in fast.items()}
        task_keys = [k for k in fast if k not in theta]
        try:
            adapted = differentiable_inner_loop(task, fast, support, self.inner_steps, self.inner_lr)
            query_loss = task.loss(adapted, query)
            g = torch.autograd.grad(query_loss, list(theta.values()) + [fast[k] for k in task_keys])
        except RuntimeError as e:
            if "scaled_dot_product" in str(e):
                raise ValueError(
                    "meta.algorithm=maml backpropagates through the inner loop, and this backbone's SDPA attention "
                    "has no double backward in torch on this device: set model.attn_implementation=eager "
                    f"(original error: {str(e).splitlines()[0]})"
                ) from e
            raise
        grads = dict(zip(theta, g[: len(theta)], strict=True))
        extra = (task.init_vjp(meta_params, support, dict(zip(task_keys, g[len(theta) :], strict=True)))
                 if task_keys else None)
        if extra is not None:  # the initial task weights are a function of theta (prototypes)
            grads = {k: grads[k] + extra[k] for k in grads}
        return grads, {"query_loss": query_loss.item()}
