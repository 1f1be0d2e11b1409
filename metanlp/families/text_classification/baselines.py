"""Transfer baselines that a meta-learned init has to beat: logistic regression on frozen pooled embeddings.

In ../shared/FINDINGS.md this baseline reached 80.1 on a 77-way 5-shot intent task where the nearest class centroid
reached 70.7, so a table without it flatters any adapted model.

**References**

1. Tian et al. 2020, "Rethinking Few-Shot Image Classification: a Good Embedding Is All You Need?",
   arXiv:2003.11539 (logistic regression on frozen embeddings as the few-shot baseline).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from metanlp.algorithms.base import MetaLearner
from metanlp.core.budget import AdaptBudget
from metanlp.core.comparison import Method, standard_methods
from metanlp.core.protocols import Batch, EmbeddingFamily, Params
from metanlp.families.text_classification.probe import fit_logistic_head

__all__ = ["classification_methods", "frozen_embeddings", "logistic_regression_head", "logistic_regression_predict"]

log = logging.getLogger(__name__)


@torch.no_grad()
def frozen_embeddings(task: EmbeddingFamily, params: Params, batch: Batch, chunk_size: int = 256) -> torch.Tensor:
    """``(batch, hidden)`` pooled embeddings of ``batch`` under ``params``, computed in chunks without gradients."""
    n = next(iter(batch.values())).shape[0]
    parts = []
    for i in range(0, n, chunk_size):
        chunk = {k: v[i : i + chunk_size] for k, v in batch.items() if k != "labels"}
        parts.append(task.embed(params, chunk))
    return torch.cat(parts)


def logistic_regression_predict(
    task: EmbeddingFamily,
    params: Params,
    support: Batch,
    query: Batch,
    c: float = 1.0,
    max_iter: int = 1000,
    seed: int = 0,
) -> torch.Tensor:
    """Fit scikit-learn's ``LogisticRegression`` (multinomial, L2) on the support embeddings; predict the query.

    The encoder is not trained: embeddings come from ``task.embed`` under ``params`` (the pretrained LoRA with
    ``B = 0`` gives the backbone's own embeddings; a meta-learned or adapted LoRA gives its embeddings).

    Args:
        task: a family with ``embed(params, batch) -> (batch, hidden)`` (text classification).
        params: adapter weights to embed with (the head, if any, is unused).
        support: labelled support batch; ``labels`` of shape ``(n_support,)`` in ``[0, N)``.
        query: query batch (``labels``, if present, are ignored).
        c: inverse L2 regularisation strength (scikit-learn's ``C``).
        max_iter: L-BFGS iterations.
        seed: ``random_state`` of the solver.

    Returns:
        ``(n_query,)`` predicted class indices (``torch.long``).

    Raises:
        ValueError: the support has fewer than two classes.

    Example:
        >>> from metanlp.families.text_classification.adapter import attach_lora, lora_parameters
        >>> from metanlp.families.text_classification.backbone import tiny_encoder
        >>> from metanlp.core.config import AdapterConfig
        >>> from metanlp.families.text_classification.family import TextClassificationFamily
        >>> enc, tok = tiny_encoder()
        >>> task = TextClassificationFamily(attach_lora(enc, AdapterConfig(r=2)), tok)
        >>> support = task.tokenize(["red car", "blue sky", "red rose", "blue sea"], [0, 1, 0, 1])
        >>> logistic_regression_predict(task, lora_parameters(task.model), support, task.tokenize(["red"])).shape
        torch.Size([1])
    """
    from sklearn.linear_model import LogisticRegression

    labels = support["labels"].cpu().numpy()
    if len(np.unique(labels)) < 2:
        raise ValueError("logistic regression needs at least two classes in the support set")
    x_support = frozen_embeddings(task, params, support).cpu().numpy()
    x_query = frozen_embeddings(task, params, query).cpu().numpy()
    clf = LogisticRegression(C=c, max_iter=max_iter, random_state=seed)
    clf.fit(x_support, labels)
    return torch.as_tensor(clf.predict(x_query), dtype=torch.long)


def logistic_regression_head(
    task: EmbeddingFamily, params: Params, support: Batch, c: float = 1.0, max_iter: int = 1000, seed: int = 0
) -> Params:
    """Fast weights whose linear head is a logistic regression fitted on the frozen support embeddings.

    The text family's head is linear on the pooled embedding (``logits = emb @ W.T + b``), so scikit-learn's
    ``coef_`` ``(N, hidden)`` and ``intercept_`` ``(N,)`` are that head: the row scores, saves and predicts like
    every other adapter. The LoRA weights in ``params`` are left as they are (not trained).

    Args:
        task: the text family (``embed``, ``init_fast_weights``, ``head_weight``/``head_bias``).
        params: adapter weights to embed with (the pretrained LoRA, ``B = 0``, for the baseline).
        support: labelled support batch, ``labels`` ``(n_support,)`` in ``[0, N)``.
        c, max_iter, seed: scikit-learn's ``C``, L-BFGS iterations and ``random_state``.

    Raises:
        ValueError: the support has fewer than two classes
            (:func:`~metanlp.families.text_classification.probe.fit_logistic_head`).
    """
    fast = task.init_fast_weights(params, support)  # type: ignore[attr-defined]
    w_key, b_key = task.head_weight, task.head_bias  # type: ignore[attr-defined]
    emb = frozen_embeddings(task, fast, support)
    fast[w_key], fast[b_key] = fit_logistic_head(emb, support["labels"], c, max_iter, seed)
    return fast


def classification_methods(
    names: list[str] | tuple[str, ...],
    pretrained: Params,
    budget: AdaptBudget,
    meta: Params | None = None,
    learner: MetaLearner | None = None,
    multitask: Params | None = None,
    seed: int = 0,
) -> list[Method]:
    """The text family's rows in the order of ``names``: ``logreg`` built here (logistic regression on the frozen
    pretrained embeddings), the rest by :func:`metanlp.core.comparison.standard_methods` with ``budget``.

    Raises:
        ValueError: see :func:`~metanlp.core.comparison.standard_methods`.
    """
    shared = standard_methods([n for n in names if n != "logreg"], pretrained, budget, meta, learner, multitask, seed)
    by_name = {m.name: m for m in shared}
    logreg = Method("logreg", pretrained,
                    lambda task, init, support: logistic_regression_head(task, init, support, seed=seed))  # fmt: skip
    return [logreg if n == "logreg" else by_name[n] for n in names]
