"""Metrics through ``evaluate`` (accuracy, macro-F1, chrF, BLEU) and mean with 95% CI over episodes.

The ``evaluate`` wheel ships no metric scripts and fetches them from the hub at ``evaluate.load`` time, which is not
possible offline. So the four metrics are declared here as ``evaluate.Metric`` modules (the same thin wrappers as the
hub's ``evaluate-metric/*`` scripts) that delegate the arithmetic to scikit-learn and sacrebleu. With internet,
``load_metric("hub:<name>")`` uses ``evaluate.load`` for anything else.
"""

from __future__ import annotations

import math
from functools import cache

import datasets
import evaluate
import numpy as np

__all__ = ["PER_EXAMPLE", "bootstrap_ci95", "load_metric", "mean_ci95"]

#: Key of ``task.score``'s optional per-example values (``{metric: [value per query example]}``, e.g. accuracy as
#: 0/1 correctness): :mod:`metanlp.core.comparison` bootstraps a single episode's interval over them.
PER_EXAMPLE = "per_example"


class _Accuracy(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="Fraction of correct predictions (scikit-learn accuracy_score).",
            citation="",
            inputs_description="predictions, references: lists of class indices",
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references):  # noqa: ANN001, ANN202
        from sklearn.metrics import accuracy_score

        return {"accuracy": float(accuracy_score(references, predictions))}


class _MacroF1(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="Unweighted mean of per-class F1 (scikit-learn f1_score, average='macro').",
            citation="",
            inputs_description="predictions, references: lists of class indices",
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references):  # noqa: ANN001, ANN202
        from sklearn.metrics import f1_score

        return {"f1": float(f1_score(references, predictions, average="macro", zero_division=0))}


_TEXT_FEATURES = datasets.Features(
    {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
)


class _ChrF(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="chrF (Popovic 2015), corpus level, sacrebleu defaults (char order 6, beta 2).",
            citation="Popovic 2015, chrF: character n-gram F-score for automatic MT evaluation, WMT.",
            inputs_description="predictions: list of strings; references: list of lists of strings",
            features=_TEXT_FEATURES,
        )

    def _compute(self, predictions, references):  # noqa: ANN001, ANN202
        import sacrebleu

        refs = [list(r) for r in zip(*references, strict=True)]
        return {"score": float(sacrebleu.corpus_chrf(predictions, refs).score)}


class _Bleu(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="BLEU (Papineni et al. 2002), corpus level, sacrebleu defaults (13a tokenizer).",
            citation="Post 2018, A Call for Clarity in Reporting BLEU Scores, WMT.",
            inputs_description="predictions: list of strings; references: list of lists of strings",
            features=_TEXT_FEATURES,
        )

    def _compute(self, predictions, references):  # noqa: ANN001, ANN202
        import sacrebleu

        refs = [list(r) for r in zip(*references, strict=True)]
        return {"score": float(sacrebleu.corpus_bleu(predictions, refs).score)}


_LOCAL = {"accuracy": _Accuracy, "f1": _MacroF1, "chrf": _ChrF, "bleu": _Bleu}


@cache
def load_metric(name: str) -> evaluate.Metric:
    """An ``evaluate`` metric by name: ``accuracy``, ``f1`` (macro), ``chrf``, ``bleu``, or ``hub:<id>``.

    Raises:
        ValueError: unknown name (the message lists the local ones).

    Example:
        >>> load_metric("accuracy").compute(predictions=[0, 1, 1], references=[0, 1, 0])
        {'accuracy': 0.6666666666666666}
    """
    if name.startswith("hub:"):
        return evaluate.load(name[4:])
    if name not in _LOCAL:
        raise ValueError(f"unknown metric {name!r}; available offline: {sorted(_LOCAL)} (or hub:<id> online)")
    return _LOCAL[name]()


def mean_ci95(values: list[float]) -> dict[str, float]:
    """Mean and half-width of the 95% confidence interval (Student t) of per-episode scores.

    Returns:
        ``{"mean", "ci95", "n"}``; ``ci95`` is 0 for a single value.

    Example:
        >>> r = mean_ci95([0.8, 0.9, 1.0])
        >>> round(r["mean"], 3), round(r["ci95"], 3), r["n"]
        (0.9, 0.248, 3)
    """
    from scipy import stats

    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        raise ValueError("mean_ci95 needs at least one value")
    if arr.size == 1:
        return {"mean": float(arr[0]), "ci95": 0.0, "n": 1}
    sem = arr.std(ddof=1) / math.sqrt(arr.size)
    return {"mean": float(arr.mean()), "ci95": float(stats.t.ppf(0.975, arr.size - 1) * sem), "n": int(arr.size)}


def bootstrap_ci95(values: list[float], resamples: int = 2000, seed: int = 0) -> dict[str, float]:
    """Mean and 95% percentile-bootstrap interval of per-example values (one episode, e.g. a user's eval set).

    Resamples the examples with replacement (``numpy``, fixed ``seed``: the same data gives the same interval).

    Returns:
        ``{"mean", "ci95", "low", "high", "n"}``; ``ci95`` is half the interval's width.

    Example:
        >>> r = bootstrap_ci95([1.0] * 8 + [0.0] * 2)
        >>> r["mean"], r["low"] < 0.8 < r["high"], r["n"]
        (0.8, True, 10)
    """
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        raise ValueError("bootstrap_ci95 needs at least one value")
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, arr.size, size=(resamples, arr.size))].mean(axis=1)
    low, high = (float(x) for x in np.percentile(means, [2.5, 97.5]))
    return {"mean": float(arr.mean()), "ci95": (high - low) / 2, "low": low, "high": high, "n": int(arr.size)}
