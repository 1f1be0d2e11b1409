"""Task families: what a meta-learner needs to know about a kind of task.

A family turns an :class:`~metanlp.episodes.Episode` into tensors, gives the fast weights an inner loop starts from,
and computes the loss and the scores of given fast weights. Algorithms only talk to this protocol, so FOMAML, MAML,
Reptile ... run unchanged on text classification and on translation.

Adding a family: write ``metanlp/tasks/<name>.py`` with a class that satisfies :class:`TaskFamily`, and add one line to
``FAMILIES`` below.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

__all__ = ["FAMILIES", "Batch", "EmbeddingFamily", "Params", "TaskFamily"]

#: A tokenised support or query set: tensor name -> tensor (``input_ids``, ``attention_mask``, ``labels`` ...).
Batch = dict[str, torch.Tensor]
#: Fast weights: parameter name (as in ``model.named_parameters()``) -> tensor.
Params = dict[str, torch.Tensor]


class TaskFamily(Protocol):
    """The interface between a task family and a meta-learning algorithm."""

    def batches(self, episode: Any) -> tuple[Batch, Batch]:
        """Tokenise an episode into ``(support, query)`` batches on the model's device."""
        ...

    def init_fast_weights(self, meta_params: Params, support: Batch) -> Params:
        """Fast weights at the start of the inner loop: the meta-parameters (detached) plus task-specific weights
        (e.g. a prototype-initialised head). Keys of ``meta_params`` keep their names."""
        ...

    def loss(self, params: Params, batch: Batch) -> torch.Tensor:
        """Scalar mean loss of the model run on ``params`` (``functional_call``) over ``batch``."""
        ...

    # Optional: ``init_vjp(meta_params, support, task_grads, micro_batch) -> Params``, the gradient w.r.t. the
    # meta-parameters through the task-specific initial fast weights (see TextClassificationFamily.init_vjp).
    # Optional: ``sequence_keys: tuple[str, ...]``, the batch tensors whose dim 1 is a right-padded sequence, for a
    # per-example mean loss: micro-batches are then length-sorted and trimmed (metanlp.micro_batches).

    def score(self, params: Params, batch: Batch) -> dict[str, float]:
        """Task metrics of ``params`` on ``batch`` (accuracy, macro-F1; or chrF, BLEU)."""
        ...


class EmbeddingFamily(TaskFamily, Protocol):
    """A family whose model is an encoder + a linear head on its pooled embeddings (text classification).

    Learners that adapt only the head over embeddings computed once (ANIL) or use the prototypes directly
    (ProtoNet) need this much more than :class:`TaskFamily`: ``logits = embed(params, x) @ W.T + b`` with
    ``W = params[head_weight]``, ``b = params[head_bias]``, the cross-entropy loss, and the prototype temperature.
    """

    head_weight: str
    head_bias: str
    head_scale: float

    def embed(self, params: Params, batch: Batch) -> torch.Tensor:
        """``(batch, hidden)`` embeddings under the adapter weights in ``params`` (with autograd if they need it)."""
        ...


#: Registered family name -> "module:class"; imported lazily so that a family's heavy imports load only when used.
FAMILIES = {
    "text_classification": "metanlp.tasks.text_classification:TextClassificationFamily",
    "translation": "metanlp.tasks.translation:TranslationFamily",
}
