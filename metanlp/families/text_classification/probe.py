"""A linear probe: the classification head as an L2-regularised logistic regression on frozen support embeddings.

Used twice: as the baseline (e) (logistic regression on the pretrained backbone's embeddings, ``baselines.py``), and
as the head of an adaptation that takes no step (``AdaptBudget.probe_head``): a 1-shot support set that the
prototype head already fits leaves gradient steps nothing to learn from, and there the probe is the better linear
head (CLINC150 meta-val 45-way 1-shot: 71.2 vs 70.0 for the prototype head, 4 of 4 episodes; ICD-10 meta-val chapter
8-way 1-shot: +1.2 / +1.4 points from the meta-learned / pretrained LoRA, 12 episodes; ``bench/adapt_budget``).

**References**

1. Tian et al. 2020, "Rethinking Few-Shot Image Classification: a Good Embedding Is All You Need?",
   arXiv:2003.11539, sec. 3 (logistic regression on frozen embeddings).
2. Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features and Underperform Out-of-Distribution", ICLR
   (a linear probe as the head before, or instead of, fine-tuning).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

__all__ = ["fit_logistic_head"]


def fit_logistic_head(
    embeddings: torch.Tensor, labels: torch.Tensor, c: float = 1.0, max_iter: int = 1000, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit scikit-learn's multinomial ``LogisticRegression`` (L2, L-BFGS) and return it as a linear head.

    Args:
        embeddings: ``(n_support, hidden)`` support embeddings (float).
        labels: ``(n_support,)`` class indices in ``[0, N)``; every class must occur.
        c: inverse L2 regularisation strength (scikit-learn's ``C``; 1.0 = its default).
        max_iter: L-BFGS iterations.
        seed: the solver's ``random_state``.

    Returns:
        ``(weight, bias)`` of shapes ``(N, hidden)`` and ``(N,)``, dtype and device of ``embeddings``:
        ``logits = embeddings @ weight.T + bias``.

    Raises:
        ValueError: fewer than two classes, or a class index in ``[0, max]`` with no example.

    Example:
        >>> w, b = fit_logistic_head(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]]), torch.tensor([0, 1, 0]))
        >>> tuple(w.shape), tuple(b.shape), int((torch.tensor([[0.8, 0.2]]) @ w.T + b).argmax())
        ((2, 2), (2,), 0)
    """
    from sklearn.linear_model import LogisticRegression

    y = labels.cpu().numpy()
    present = np.unique(y)
    if len(present) < 2:
        raise ValueError("logistic regression needs at least two classes in the support set")
    if len(present) != int(y.max()) + 1:
        missing = sorted(set(range(int(y.max()) + 1)) - set(present.tolist()))
        raise ValueError(f"classes {missing} have no support example; every class needs at least one")
    x = embeddings.detach().float().cpu().numpy()
    with warnings.catch_warnings():  # 1-shot: "more unique classes than 50% of the samples" is the task, not a bug
        warnings.filterwarnings("ignore", message="The number of unique classes", category=UserWarning)
        clf = LogisticRegression(C=c, max_iter=max_iter, random_state=seed).fit(x, y)
    coef, intercept = clf.coef_, clf.intercept_
    if coef.shape[0] == 1:  # scikit-learn returns one row for two classes: logit_1 - logit_0
        coef, intercept = np.concatenate([-coef / 2, coef / 2]), np.concatenate([-intercept / 2, intercept / 2])
    as_t = {"dtype": embeddings.dtype, "device": embeddings.device}
    return torch.as_tensor(coef, **as_t), torch.as_tensor(intercept, **as_t)
