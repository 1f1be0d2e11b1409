"""Meta-training episodes drawn from several datasets: a size-tempered mixture, N varied per episode.

Meta-learning that transfers across NLP datasets trains on many diverse task distributions: LEOPARD (Bansal et al.
2020, "Learning to Few-Shot Learn Across Diverse Natural Language Classification Tasks", sec. 4) and Hybrid-SMLMT
(Bansal et al. 2020, "Self-Supervised Meta-Learning for Few-Shot Natural Language Classification Tasks", sec. 3.2)
draw each episode's dataset with probability proportional to the square root of its size, so that large datasets do
not drown small ones, and vary the number of classes per episode. :class:`MixtureSampler` does that over one
:class:`~metanlp.families.text_classification.data.EpisodeSampler` per dataset: an episode never mixes datasets, and
``(seed, rank, step)`` always gives the same episode, as for a single sampler.

Recipe keys (``task.*``): ``mixture`` (extra meta-train datasets; every class of each is meta-trained on),
``mixture_alpha`` (the exponent: 0.5 = square root, 1 = proportional to size, 0 = uniform over datasets) and
``n_way_max`` (N drawn uniformly from ``[n_way, n_way_max]``, capped by a dataset's class count). The classes of
``task.dataset``'s meta-train split are one more member of the mixture; its meta-val / meta-test classes stay out.
``smlmt`` (unlabelled files) adds self-supervised cloze episodes (:mod:`~metanlp.families.text_classification.smlmt`):
each episode is one with probability ``smlmt_fraction`` (0.5: Hybrid-SMLMT, Bansal et al. 2020 sec. 3.2), drawn
apart from the dataset weights, which pick among the supervised datasets. ``unlabelled`` beside ``mixture`` or
``smlmt`` adds CACTUs episodes (k-means pseudo-classes, one partition per episode:
:mod:`~metanlp.families.text_classification.unsupervised`) to the self-supervised share: with both, a self-supervised
episode is a cloze or a CACTUs one with equal probability (diverse self-supervised tasks: Bansal et al. 2021, "Diverse
Distribution of Self-Supervised Tasks for Meta-Learning in NLP", sec. 3).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metanlp.families.text_classification.data import Episode, EpisodeSampler, LabelledCorpus, load_corpus
from metanlp.families.text_classification.smlmt import ClozeEpisodeSampler, smlmt_sampler
from metanlp.families.text_classification.unsupervised import PartitionEpisodeSampler

__all__ = ["MixtureSampler", "mixture_pool", "mixture_sampler"]

log = logging.getLogger(__name__)


@dataclass
class MixtureSampler:
    """Episodes from one of several datasets, the dataset drawn with probability ``size ** alpha / sum``.

    Args:
        samplers: one episode sampler per dataset name (each over that dataset's meta-train classes).
        sizes: examples per dataset (the ``size`` of the mixture weights).
        alpha: the exponent of the sizes (0.5: square-root sampling, Bansal et al. 2020; 0: uniform over datasets).
        n_way_range: ``(low, high)``: N drawn uniformly from ``[low, min(high, classes of the dataset)]``; ``high = 0``
            keeps each sampler's own N.
        seed: run seed; the dataset and N of step ``i`` come from ``numpy.random.default_rng([seed, rank, i, 1])``.
        smlmt: optional self-supervised cloze sampler (:mod:`~metanlp.families.text_classification.smlmt`).
        smlmt_fraction: probability that an episode is self-supervised (from ``smlmt`` or ``cactus``) instead of
            from a dataset, drawn from ``numpy.random.default_rng([seed, rank, i, 2])`` (apart from the dataset
            weights).
        cactus: optional CACTUs sampler (:class:`~metanlp.families.text_classification.unsupervised.
            PartitionEpisodeSampler`); with ``smlmt`` too, a self-supervised episode is either one with probability
            1/2 (``numpy.random.default_rng([seed, rank, i, 3])``).

    Raises:
        ValueError: no sampler, a size that is not positive, a negative ``alpha``, ``low < 2``, or
            ``smlmt_fraction`` outside ``[0, 1]``.

    Example:
        >>> pool = {c: [f"{c} {i}" for i in range(4)] for c in "abcdefgh"}
        >>> small = EpisodeSampler(pool, list("abc"), 2, 1, 1)
        >>> big = EpisodeSampler(pool, list("defgh"), 2, 1, 1)
        >>> mix = MixtureSampler({"small": small, "big": big}, {"small": 12, "big": 20}, n_way_range=(2, 5))
        >>> round(mix.probabilities["big"], 3)
        0.564
        >>> ep = mix.sample(0)
        >>> 2 <= ep.n_way <= 5 and len(ep.support_texts) == ep.n_way
        True
    """

    samplers: dict[str, EpisodeSampler]
    sizes: dict[str, int]
    alpha: float = 0.5
    n_way_range: tuple[int, int] = (5, 0)
    seed: int = 0
    smlmt: ClozeEpisodeSampler | None = None
    smlmt_fraction: float = 0.0
    cactus: PartitionEpisodeSampler | None = None
    probabilities: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        if not self.samplers:
            raise ValueError("MixtureSampler needs at least one dataset")
        bad = {k: v for k, v in self.sizes.items() if v <= 0}
        if bad or set(self.sizes) != set(self.samplers):
            raise ValueError(f"MixtureSampler: sizes must be > 0 for every dataset, got {self.sizes}")
        if self.alpha < 0:
            raise ValueError(f"task.mixture_alpha={self.alpha} must be >= 0")
        if self.n_way_range[1] and self.n_way_range[0] < 2:
            raise ValueError(f"task.n_way={self.n_way_range[0]} must be >= 2 when task.n_way_max is set")
        if not 0 <= self.smlmt_fraction <= 1:
            raise ValueError(f"task.smlmt_fraction={self.smlmt_fraction} must be in [0, 1]")
        weights = {k: float(self.sizes[k]) ** self.alpha for k in self.samplers}
        total = sum(weights.values())
        self.probabilities = {k: w / total for k, w in weights.items()}

    def sample(self, step: int, rank: int = 0) -> Episode:
        """The episode of ``(seed, rank, step)``: a dataset by the mixture weights (or, with probability
        ``smlmt_fraction``, the cloze sampler), N in the range, then that sampler at the same ``(step, rank)``."""
        rng = np.random.default_rng([self.seed, rank, step, 1])
        names = list(self.samplers)
        name = names[int(rng.choice(len(names), p=[self.probabilities[k] for k in names]))]
        sampler: EpisodeSampler | ClozeEpisodeSampler | PartitionEpisodeSampler = self.samplers[name]
        kind = self.self_supervised(step, rank)
        if kind == "smlmt" and self.smlmt is not None:
            sampler = self.smlmt
        elif kind == "cactus" and self.cactus is not None:
            sampler = self.cactus
        low, high = self.n_way_range
        n_way = None
        if high:
            top = min(high, len(sampler.classes))
            n_way = int(rng.integers(min(low, top), top + 1))
        return sampler.sample(step, rank, n_way=n_way)

    def self_supervised(self, step: int, rank: int = 0) -> str | None:
        """``"smlmt"`` or ``"cactus"`` if the episode of ``(seed, rank, step)`` is self-supervised, else None."""
        if self.smlmt is None and self.cactus is None:
            return None
        if float(np.random.default_rng([self.seed, rank, step, 2]).random()) >= self.smlmt_fraction:
            return None
        if self.smlmt is not None and self.cactus is not None:
            return "smlmt" if float(np.random.default_rng([self.seed, rank, step, 3]).random()) < 0.5 else "cactus"
        return "smlmt" if self.smlmt is not None else "cactus"

    def is_smlmt(self, step: int, rank: int = 0) -> bool:
        """Whether the episode of ``(seed, rank, step)`` is a cloze one (always False without ``smlmt``)."""
        return self.self_supervised(step, rank) == "smlmt"


def _classes_with(pool: dict[str, list[str]], classes: list[str], need: int) -> list[str]:
    return [c for c in classes if len(pool.get(c, [])) >= need]


def _members(cfg: Any, corpus: LabelledCorpus, train_classes: list[str]) -> dict[str, tuple[dict, list[str]]]:
    """``{member name: (texts by class, classes)}``: ``task.dataset``'s meta-train classes, then each mixture file."""
    from metanlp.core.config import ConfigError
    from metanlp.families.text_classification.setup import source_split

    t = cfg.task
    paths = [str(Path(p)) for p in t.mixture]
    if str(Path(t.dataset)) in paths or len(set(paths)) != len(paths):
        raise ConfigError(f"task.mixture={list(t.mixture)} repeats a dataset (or task.dataset={t.dataset}): "
                          "list each meta-train dataset once")  # fmt: skip
    members: dict[str, tuple[dict, list[str]]] = {}
    if train_classes:
        pool, _ = source_split(corpus, "train")
        members[Path(t.dataset).stem or str(t.dataset)] = (pool, train_classes)
    for i, path in enumerate(t.mixture):
        other = load_corpus(path, f"task.mixture[{i}]")
        members[Path(path).stem or path] = (other.by_class(), sorted(set(other.labels)))
    return members


def mixture_pool(
    cfg: Any,
    corpus: LabelledCorpus,
    train_classes: list[str],
    mask: str = "[MASK]",
    cactus: PartitionEpisodeSampler | None = None,
) -> dict[str, list[str]]:
    """Every meta-train class of the mixture as one labelled pool, for the multi-task baseline over the same data:
    ``{"<member>/<class>": texts}`` for each member of :func:`mixture_sampler` (classes with >= K + Q examples, as
    there), with ``task.smlmt`` ``{"smlmt/<word>": masked texts}`` for its cloze words, and with ``cactus`` the
    pseudo-classes of its first partition, ``{"cactus/<class>": texts}`` (one partition: the others label the same
    texts again, which one softmax head cannot learn).

    Raises:
        ConfigError, FileNotFoundError, ValueError: as :func:`mixture_sampler`.
    """
    t = cfg.task
    need = t.k_shot + t.q_query
    pool = {f"{name}/{c}": texts[c] for name, (texts, classes) in _members(cfg, corpus, train_classes).items()
            for c in _classes_with(texts, classes, need)}  # fmt: skip
    if t.smlmt:
        cloze = smlmt_sampler(t, cfg.run.seed, mask)
        pool.update({f"smlmt/{w}": cloze.texts[w] for w in cloze.classes})
    if cactus is not None:
        first = cactus.samplers[cactus.partitions[0]]
        pool.update({f"cactus/{c}": first.pool[c] for c in first.classes})
    return pool


def mixture_sampler(
    cfg: Any,
    corpus: LabelledCorpus,
    train_classes: list[str],
    mask: str = "[MASK]",
    cactus: PartitionEpisodeSampler | None = None,
) -> MixtureSampler:
    """The meta-training sampler of a recipe with ``task.mixture``, ``task.n_way_max`` or ``task.smlmt``.

    Members: ``task.dataset``'s meta-train classes (under its file name) and every class of each ``task.mixture``
    dataset. Classes with fewer than ``K + Q`` examples are left out of the mixture (logged), not an error: a
    cross-dataset mixture has long tails. With ``task.smlmt``, a fraction ``task.smlmt_fraction`` of the episodes
    are cloze tasks of those files, masked with ``mask`` (the tokenizer's mask token). ``cactus`` (the CACTUs
    sampler of ``task.unlabelled``, :func:`~metanlp.families.text_classification.unsupervised.cactus_sampler`)
    shares that fraction with the cloze tasks, half each, or has it alone without ``task.smlmt``.

    Raises:
        ConfigError: a ``task.mixture`` entry repeats ``task.dataset`` or another entry.
        FileNotFoundError, ValueError: a mixture dataset or ``task.smlmt`` file is missing or malformed (the message
            names it).
        ValueError: a member keeps fewer classes than ``task.n_way`` (the message names it).
    """
    t = cfg.task
    need = t.k_shot + t.q_query
    members = _members(cfg, corpus, train_classes)
    samplers, sizes = {}, {}
    for name, (pool, classes) in members.items():
        kept = _classes_with(pool, classes, need)
        if len(kept) < len(classes):
            log.info("mixture %s: %d of %d classes have >= K + Q = %d examples", name, len(kept), len(classes), need)
        if len(kept) < max(t.n_way, 2):
            raise ValueError(f"task.mixture member {name}: {len(kept)} classes with >= {need} examples, fewer than "
                             f"task.n_way={t.n_way}")  # fmt: skip
        samplers[name] = EpisodeSampler(pool, kept, t.n_way, t.k_shot, t.q_query, seed=cfg.run.seed, source=name)
        sizes[name] = sum(len(pool[c]) for c in kept)
    cloze = smlmt_sampler(t, cfg.run.seed, mask) if t.smlmt else None
    mix = MixtureSampler(samplers, sizes, t.mixture_alpha, (t.n_way, t.n_way_max), cfg.run.seed, cloze,
                         t.smlmt_fraction if t.smlmt or cactus is not None else 0.0, cactus)  # fmt: skip
    log.info("meta-train mixture: %s", ", ".join(f"{k} {100 * p:.1f}%" for k, p in mix.probabilities.items()))
    share = 100 * mix.smlmt_fraction / (2 if cloze is not None and cactus is not None else 1)
    if cloze is not None:
        log.info("SMLMT: %.0f%% of the episodes, %d cloze words", share, len(cloze.classes))
    if cactus is not None:
        log.info("CACTUs: %.0f%% of the episodes, %d pseudo-classes in %d partitions", share, len(cactus.classes),
                 len(cactus.partitions))  # fmt: skip
    return mix
