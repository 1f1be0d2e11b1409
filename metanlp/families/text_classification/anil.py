"""ANIL (Almost No Inner Loop): only the head adapts in the inner loop; the LoRA body is meta-learned.

**References**

1. Raghu, Raghu, Bengio, Vinyals 2020, "Rapid Learning or Feature Reuse? Towards Understanding the Effectiveness of
   MAML", arXiv:1909.09157 (the ANIL algorithm).
2. Triantafillou et al. 2020, "Meta-Dataset: A Dataset of Datasets for Learning to Learn from Few Examples",
   arXiv:1903.03096, sec. 3.2 (the prototype-initialised head of Proto-MAML).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F

from metanlp.algorithms.base import MetaLearner
from metanlp.core.config import MetaConfig
from metanlp.core.protocols import Batch, EmbeddingFamily, Params
from metanlp.families.text_classification.adapter import prototype_head

__all__ = ["ANIL", "head_inner_loop"]


def head_inner_loop(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    steps: int,
    lr: float,
    create_graph: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-batch SGD on the cross-entropy of a linear head over fixed embeddings.

    Args:
        embeddings: ``(n_support, hidden)`` support embeddings (attached to the graph when meta-training).
        labels: ``(n_support,)`` class indices in ``[0, N)``.
        weight: ``(N, hidden)`` initial head weight (must require grad).
        bias: ``(N,)`` initial head bias (must require grad).
        steps: adaptation steps.
        lr: inner learning rate.
        create_graph: keep the graph of the updates, so the result is differentiable w.r.t. the embeddings and the
            initial head (second order, cheap: the head has ``N * (hidden + 1)`` weights).

    Returns:
        ``(weight, bias)`` after ``steps`` steps, shapes ``(N, hidden)`` and ``(N,)``.
    """
    for _ in range(steps):
        loss = F.cross_entropy(F.linear(embeddings, weight, bias), labels)
        g_w, g_b = torch.autograd.grad(loss, (weight, bias), create_graph=create_graph)
        weight, bias = weight - lr * g_w, bias - lr * g_b
    return weight, bias


def _check(task: Any) -> None:
    missing = [a for a in ("embed", "head_weight", "head_bias", "head_scale") if not hasattr(task, a)]
    if missing:
        raise ValueError(f"ANIL needs a task family with embeddings and a linear head (text_classification); "
                         f"{type(task).__name__} lacks {missing}")  # fmt: skip


@dataclass
class ANIL(MetaLearner):
    """ANIL with a prototype-initialised head: the encoder (LoRA) runs once per episode, the head adapts.

    Meta-training: support and query embeddings are computed once *with* gradient under the LoRA meta-parameters;
    the head starts as the support prototypes (:func:`~metanlp.families.text_classification.adapter.prototype_head`),
    takes ``inner_steps`` SGD steps on the support cross-entropy with the graph kept, and the query cross-entropy of
    the adapted head is backpropagated to the LoRA weights: through the query embeddings, the prototypes and the head's
    inner loop (exact, second order in the head only). Adaptation: the same head loop on the frozen meta-learned LoRA.
    The encoder runs once on the support and once on the query set, whole (``meta.micro_batch`` does not apply).

    Args:
        inner_lr: inner learning rate of the head.
        inner_steps: adaptation steps of the head.
    """

    inner_lr: float = 0.5
    inner_steps: int = 5

    @classmethod
    def from_config(cls, cfg: MetaConfig, budget: Any = None) -> ANIL:
        """Build from ``meta.inner_lr`` and ``meta.inner_steps`` (head-only SGD inner loop; no ``budget``)."""
        return cls(inner_lr=cfg.inner_lr, inner_steps=cfg.inner_steps)

    def adapt(self, task: EmbeddingFamily, meta_params: Params, support: Batch) -> Params:
        """The meta-learned LoRA weights (unchanged) and the prototype head after ``inner_steps`` head steps.

        Raises:
            ValueError: the family has no embeddings and linear head.
        """
        _check(task)
        fast = task.init_fast_weights(meta_params, support)
        with torch.no_grad():
            emb = task.embed(fast, support)
        w = fast[task.head_weight].detach().requires_grad_(True)
        b = fast[task.head_bias].detach().requires_grad_(True)
        with torch.enable_grad():
            w, b = head_inner_loop(emb, support["labels"], w, b, self.inner_steps, self.inner_lr, False)
        fast[task.head_weight], fast[task.head_bias] = w.detach(), b.detach()
        return fast

    def meta_gradient(
        self, task: EmbeddingFamily, meta_params: Params, episode: Any
    ) -> tuple[Params, dict[str, float]]:
        """``(grads, stats)``: the exact gradient of the adapted head's query loss w.r.t. every meta-parameter.

        Raises:
            ValueError: the family has no embeddings and linear head.
        """
        _check(task)
        support, query = task.batches(episode)
        theta = {k: v.detach().requires_grad_(True) for k, v in meta_params.items()}
        emb_s, emb_q = task.embed(theta, support), task.embed(theta, query)
        n_way = int(support["labels"].max()) + 1
        w, b = prototype_head(emb_s, support["labels"], n_way, task.head_scale)
        w, b = head_inner_loop(emb_s, support["labels"], w, b, self.inner_steps, self.inner_lr, True)
        logits = F.linear(emb_q, w, b)
        query_loss = F.cross_entropy(logits, query["labels"])
        grads = torch.autograd.grad(query_loss, list(theta.values()))
        accuracy = (logits.argmax(-1) == query["labels"]).float().mean().item()
        return dict(zip(theta, grads, strict=True)), {"query_loss": query_loss.item(), "query_accuracy": accuracy}
