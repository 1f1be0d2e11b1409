"""Prototypical networks over a LoRA-adapted encoder: a metric head, no inner loop.

**References**

1. Snell, Swersky, Zemel 2017, "Prototypical Networks for Few-shot Learning", arXiv:1703.05175, eq. 1-2 and
   Algorithm 1 (squared Euclidean distance).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F

from metanlp.algorithms.base import MetaLearner
from metanlp.core import adaptation
from metanlp.core.budget import AdaptBudget
from metanlp.core.config import MetaConfig
from metanlp.core.protocols import Batch, EmbeddingFamily, Params
from metanlp.families.text_classification.adapter import prototype_head

__all__ = ["ProtoNet"]


@dataclass
class ProtoNet(MetaLearner):
    """ProtoNet: classify a query by its squared Euclidean distance to the support prototypes (class means).

    ``adapt`` starts from the family's prototype head: the linear head ``W = 2 s C``, ``b = -s ||C||^2`` gives
    ``softmax(-s ||x - c||^2)``, the ProtoNet classifier at temperature ``s = task.head_scale``
    (:func:`~metanlp.families.text_classification.adapter.prototype_head`). With a ``budget`` (what recipes build) it
    then fine-tunes with it, like every other method of the comparison; a budget of no step (``adapt.epochs=0
    adapt.min_steps=0``, or no budget) is the classic ProtoNet classifier. The meta-gradient is the gradient of the
    query cross-entropy w.r.t. the LoRA weights, with the prototypes computed *with* gradient (Snell et al.
    Algorithm 1). Meta-training has no inner learning rate or steps (``meta.inner_*`` are ignored) and runs the
    encoder once on the whole support and query sets (``meta.micro_batch`` does not apply).

    Args:
        budget: the adaptation budget of :meth:`adapt` (None = the prototype head only).
        seed: seed of the budget's mini-batch order.
    """

    budget: AdaptBudget | None = None
    seed: int = 0

    @classmethod
    def from_config(cls, cfg: MetaConfig, budget: AdaptBudget | None = None) -> ProtoNet:
        """ProtoNet takes only the budget (the temperature is the family's ``head_scale``)."""
        return cls(budget=budget)

    def adapt(self, task: EmbeddingFamily, meta_params: Params, support: Batch) -> Params:
        """The meta-learned LoRA weights and the prototype head of ``support``, then the budget's steps (if any)."""
        fast = task.init_fast_weights(meta_params, support)
        return fast if self.budget is None else adaptation.inner_loop(task, fast, support, self.budget, self.seed)

    def meta_gradient(
        self, task: EmbeddingFamily, meta_params: Params, episode: Any
    ) -> tuple[Params, dict[str, float]]:
        """``(grads, stats)``: gradient of the prototype classifier's query loss w.r.t. every meta-parameter.

        Raises:
            ValueError: the family has no ``embed`` (ProtoNet needs embeddings: text_classification).
        """
        if not hasattr(task, "embed") or not hasattr(task, "head_scale"):
            raise ValueError(f"ProtoNet needs a task family with embeddings (text_classification), got {type(task)}")
        support, query = task.batches(episode)
        theta = {k: v.detach().requires_grad_(True) for k, v in meta_params.items()}
        emb_s, emb_q = task.embed(theta, support), task.embed(theta, query)
        n_way = int(support["labels"].max()) + 1
        w, b = prototype_head(emb_s, support["labels"], n_way, task.head_scale)
        logits = F.linear(emb_q, w, b)
        query_loss = F.cross_entropy(logits, query["labels"])
        grads = torch.autograd.grad(query_loss, list(theta.values()))
        accuracy = (logits.argmax(-1) == query["labels"]).float().mean().item()
        return dict(zip(theta, grads, strict=True)), {"query_loss": query_loss.item(), "query_accuracy": accuracy}
