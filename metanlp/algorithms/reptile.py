"""Reptile over adapter parameters: move the initialisation towards the weights adapted to each task.

**References**

1. Nichol, Achiam, Schulman 2018, "On First-Order Meta-Learning Algorithms", arXiv:1803.02999, sec. 3 and
   Algorithms 1-2 (``theta - W`` may be fed to Adam as a gradient); the experiments use more shots per class in the
   inner loop at meta-training time than at test time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from metanlp.algorithms.base import MetaLearner
from metanlp.core.config import MetaConfig
from metanlp.core.inner_loop import inner_loop, loss_and_grads
from metanlp.core.protocols import Batch, Params, TaskFamily

__all__ = ["Reptile", "joint_inner_loop"]


def _examples(batch: Batch) -> int:
    return int(next(iter(batch.values())).shape[0])


def joint_inner_loop(
    task: TaskFamily, params: Params, batches: list[Batch], steps: int, lr: float, micro_batch: int = 0
) -> tuple[Params, list[float]]:
    """Full-batch SGD on the union of ``batches``: the loss of a step is the example-weighted mean of their losses.

    Args:
        task: gives ``task.loss(params, batch)`` (a mean over the batch's examples).
        params: starting fast weights (name -> tensor).
        batches: e.g. ``[support, query]``; the weight of each loss is its number of examples (first dimension).
        steps: SGD steps.
        lr: learning rate.
        micro_batch: examples per forward/backward pass (0 = each batch at once); steps stay full-batch.

    Returns:
        ``(adapted, first_losses)``: the adapted weights (detached) and each batch's loss before the first step.
    """
    sizes = [_examples(b) for b in batches]
    first: list[float] = []
    for _ in range(steps):
        params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        grads = {k: torch.zeros_like(v) for k, v in params.items()}
        losses = []
        for b, n in zip(batches, sizes, strict=True):
            loss, g = loss_and_grads(task, params, b, micro_batch=micro_batch)
            losses.append(loss)
            for k, gk in zip(params, g, strict=True):
                grads[k] += gk * (n / sum(sizes))
        first = first or losses
        params = {k: v - lr * grads[k] for k, v in params.items()}
    if not first:
        with torch.no_grad():
            first = [task.loss(params, b).item() for b in batches]
    return {k: v.detach() for k, v in params.items()}, first


@dataclass
class Reptile(MetaLearner):
    """Reptile: the meta-gradient of a task is ``theta - W``, where ``W`` are the weights after the inner loop.

    The outer optimiser treats ``theta - W`` as a gradient, so its step moves ``theta`` towards ``W`` (plain SGD with
    rate ``eps`` gives Reptile's ``theta <- theta + eps (W - theta)``; the paper also suggests Adam on ``theta - W``).

    Choice: at meta-training time the inner loop trains on the support *and* query sets together (full batch,
    ``inner_steps`` SGD steps from the prototype-initialised head). Reptile has no separate query loss, and the paper
    found more shots per task in the inner loop at meta-training time to help. At adaptation time (``adapt``) only
    the support set is labelled, so the same SGD runs on the support set alone. The logged ``query_loss`` is the
    query loss *before* adaptation (the query set is trained on afterwards, so a post-adaptation value would not be
    held out); ``joint_loss_before`` is the loss on support + query before adaptation.

    Args:
        inner_lr: inner learning rate.
        inner_steps: SGD steps of the inner loop (Reptile needs >= 2 to differ from joint training).
        micro_batch: examples per forward/backward pass (0 = whole support/query set); steps stay full-batch.
    """

    inner_lr: float = 0.5
    inner_steps: int = 5
    micro_batch: int = 0

    @classmethod
    def from_config(cls, cfg: MetaConfig, budget: Any = None) -> Reptile:
        """Build from ``meta.inner_lr``, ``meta.inner_steps`` and ``meta.micro_batch`` (SGD inner loop; no
        ``budget``)."""
        return cls(inner_lr=cfg.inner_lr, inner_steps=cfg.inner_steps, micro_batch=cfg.micro_batch)

    def adapt(self, task: TaskFamily, meta_params: Params, support: Batch) -> Params:
        """Fast weights after ``inner_steps`` SGD steps on the support set."""
        fast = task.init_fast_weights(meta_params, support)
        with torch.enable_grad():  # also when called under torch.no_grad()
            return inner_loop(task, fast, support, self.inner_steps, self.inner_lr, self.micro_batch)

    def meta_gradient(self, task: TaskFamily, meta_params: Params, episode: Any) -> tuple[Params, dict[str, float]]:
        """``(grads, stats)`` with ``grads[k] = meta_params[k] - W[k]``, ``W`` adapted on support + query."""
        support, query = task.batches(episode)
        fast = task.init_fast_weights(meta_params, support)
        adapted, (support_loss, query_loss) = joint_inner_loop(
            task, fast, [support, query], self.inner_steps, self.inner_lr, self.micro_batch
        )
        grads = {k: v.detach() - adapted[k] for k, v in meta_params.items()}
        n_s, n_q = _examples(support), _examples(query)
        joint = (support_loss * n_s + query_loss * n_q) / (n_s + n_q)
        return grads, {"query_loss": query_loss, "joint_loss_before": joint}
