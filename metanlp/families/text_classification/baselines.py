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

from metanlp.core.protocols import Batch, EmbeddingFamily, Params

__all__ = ["frozen_embeddings", "logistic_regression_predict"]

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
