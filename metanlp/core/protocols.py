"""Task families: what a meta-learner needs to know about a kind of task.

A family turns an :class:`~metanlp.families.text_classification.data.Episode` into tensors, gives the fast weights an
inner loop starts from, and computes the loss and the scores of given fast weights. Algorithms only talk to this
protocol, so FOMAML, MAML, Reptile ... run unchanged on text classification and on translation.

Adding a family: write ``metanlp/families/<name>/`` with a class that satisfies :class:`TaskFamily` and register it
(:func:`metanlp.core.registry.register_family`).
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

__all__ = ["Batch", "EmbeddingFamily", "Params", "Sampler", "TaskFamily"]

#: A tokenised support or query set: tensor name -> tensor (``input_ids``, ``attention_mask``, ``labels`` ...).
Batch = dict[str, torch.Tensor]
#: Fast weights: parameter name (as in ``model.named_parameters()``) -> tensor.
Params = dict[str, torch.Tensor]


class Sampler(Protocol):
    """The sampling protocol: episodes drawn by step, seeded by (seed, rank, step) so that every process and every
    resumed run draws the same episode for the same step (text: ``EpisodeSampler``; translation:
    ``PairEpisodeSampler``)."""

    def sample(self, step: int, rank: int = 0) -> Any:
        """The episode of outer step ``step`` on process ``rank`` (support set + query set)."""
        ...


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

    def init_vjp(
        self, meta_params: Params, support: Batch, task_grads: Params, micro_batch: int = 0
    ) -> Params | None:
        """Gradient w.r.t. the meta-parameters through the task-specific initial fast weights.

        ``task_grads`` holds the query-loss gradient of each fast weight that is not a meta-parameter (e.g. the
        prototype head, ``(N, hidden)`` and ``(N,)``); the result has a gradient for every key of ``meta_params``
        (first-order Proto-MAML, Triantafillou et al. 2020, sec. 3.2). None when no fast weight depends on the
        meta-parameters (translation), so learners add nothing.
        """
        ...

    # Optional: ``sequence_keys: tuple[str, ...]``, the batch tensors whose dim 1 is a right-padded sequence:
    # micro-batches are then length-sorted and trimmed (metanlp.core.micro_batches). Optional: ``loss_weight(batch)
    # -> int``, how many items ``loss`` is a mean over (default: examples; translation: target tokens), so that
    # micro-batch losses are weighted to the full batch's (metanlp.core.inner_loop.loss_and_grads).


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
