"""Meta-training tasks from unlabelled text: k-means pseudo-classes over backbone embeddings (CACTUs).

The texts are embedded once with the frozen backbone, clustered ``n_partitions`` times with k-means (different
``k``, seeds and a random per-dimension scaling of the embedding space, for diverse partitions), and each cluster
becomes a pseudo-class ``p{partition}_c{cluster}`` whose group is its partition ``p{partition}``. Clusters of
different partitions overlap in meaning, so an episode draws all its classes from one partition
(:class:`PartitionEpisodeSampler`).

**References**

1. Hsu, Levine, Finn 2019, "Unsupervised Learning via Meta-Learning", arXiv:1810.02334, sec. 3 (CACTUs:
   clustering to automatically construct tasks for unsupervised meta-learning).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from metanlp.core.config import TaskConfig
from metanlp.core.readers import read_texts
from metanlp.families.text_classification.data import Episode, EpisodeSampler, LabelledCorpus

__all__ = ["PartitionEpisodeSampler", "cactus_corpus", "cactus_sampler", "embed_texts", "load_texts"]

log = logging.getLogger(__name__)


def load_texts(path: str | Path) -> list[str]:
    """Read a plain text file with one text per line (blank lines dropped): :func:`metanlp.core.readers.read_texts`.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file holds no text, or is not UTF-8 (the message names the file).
    """
    return read_texts(path, "task.unlabelled", blank_lines="skip")


@torch.no_grad()
def embed_texts(
    texts: Sequence[str],
    encoder: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int = 48,
    batch_size: int = 64,
) -> np.ndarray:
    """Embed texts with a frozen :class:`~metanlp.families.text_classification.backbone.TextEncoder`.

    Args:
        texts: the texts.
        encoder: maps ``(batch, seq_len)`` ids and mask to ``(batch, hidden)`` embeddings.
        tokenizer: the encoder's tokenizer.
        max_length: tokens per text after truncation.
        batch_size: texts per forward pass.

    Returns:
        ``(len(texts), hidden)`` float32 array.
    """
    device = next(encoder.parameters()).device
    out = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(list(texts[i : i + batch_size]), padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt").to(device)  # fmt: skip
        out.append(encoder(enc["input_ids"], enc["attention_mask"]).float().cpu().numpy())
    return np.concatenate(out)


def cactus_corpus(
    texts: Sequence[str],
    encoder: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    n_partitions: int,
    n_clusters: int | Sequence[int],
    min_cluster_size: int,
    seed: int = 0,
    max_length: int = 48,
) -> LabelledCorpus:
    """Pseudo-labelled corpus: every text appears once per partition, labelled by its k-means cluster there.

    Partition ``p`` runs scikit-learn ``KMeans(k_p, random_state=seed + p)`` on the embeddings with each dimension
    multiplied by a factor drawn from ``U(0, 1)`` (``numpy.random.default_rng([seed, p])``), so that partitions
    differ. Clusters with fewer than ``min_cluster_size`` texts are dropped.

    Args:
        texts: unlabelled texts (duplicates are kept).
        encoder: the frozen backbone (:class:`~metanlp.families.text_classification.backbone.TextEncoder`).
        tokenizer: its tokenizer.
        n_partitions: number of partitions P.
        n_clusters: k of every partition, or one k per partition (cycled when shorter than P).
        min_cluster_size: smallest cluster kept (use at least K + Q of the episodes to sample).
        seed: seed of the k-means runs and scalings.
        max_length: tokens per text when embedding.

    Returns:
        A :class:`~metanlp.families.text_classification.data.LabelledCorpus` with labels ``p{partition}_c{cluster}``
        and groups ``p{partition}``.

    Raises:
        ValueError: P < 1, some k < 2 or > the number of texts, or no cluster of some partition is big enough.
    """
    ks = [n_clusters] * n_partitions if isinstance(n_clusters, int) else [int(k) for k in n_clusters]
    if n_partitions < 1 or not ks:
        raise ValueError(f"n_partitions={n_partitions} and n_clusters={n_clusters} must be >= 1 / non-empty")
    ks = [ks[p % len(ks)] for p in range(n_partitions)]
    bad = [k for k in ks if not 2 <= k <= len(texts)]
    if bad:
        raise ValueError(f"n_clusters={bad[0]} must be between 2 and the number of texts ({len(texts)})")
    from sklearn.cluster import KMeans

    emb = embed_texts(texts, encoder, tokenizer, max_length)
    out_texts, labels, groups = [], [], []
    for p, k in enumerate(ks):
        scale = np.random.default_rng([seed, p]).uniform(0.0, 1.0, emb.shape[1]).astype(emb.dtype)
        assign = KMeans(n_clusters=k, n_init=3, random_state=seed + p).fit_predict(emb * scale)
        sizes = np.bincount(assign, minlength=k)
        kept = {c for c in range(k) if sizes[c] >= min_cluster_size}
        if not kept:
            raise ValueError(f"partition {p}: no cluster of k={k} has min_cluster_size={min_cluster_size} texts "
                             f"(largest has {sizes.max()}); lower k or min_cluster_size")  # fmt: skip
        log.info("CACTUs partition %d: k=%d, kept %d clusters of >= %d texts", p, k, len(kept), min_cluster_size)
        for t, c in zip(texts, assign.tolist(), strict=True):
            if c in kept:
                out_texts.append(t)
                labels.append(f"p{p}_c{c}")
                groups.append(f"p{p}")
    return LabelledCorpus(out_texts, labels, groups, source=f"CACTUs({len(texts)} texts, {n_partitions} partitions)")


class PartitionEpisodeSampler:
    """N-way K-shot episodes whose classes all come from one partition (group) of a corpus.

    The partition of ``(seed, rank, step)`` is drawn uniformly among those with at least ``n_way`` classes of at
    least ``K + Q`` texts; the episode is then :class:`~metanlp.families.text_classification.data.EpisodeSampler`'s
    over that partition.

    Args:
        corpus: e.g. :func:`cactus_corpus` output (group = partition).
        n_way: classes per episode (0 = every usable class of the drawn partition).
        k_shot: support examples per class.
        q_query: query examples per class.
        seed: run seed.

    Attributes:
        classes: every usable pseudo-class, all partitions together (a mixture draws N up to their number; each
            episode's N is then capped by its own partition's).

    Raises:
        ValueError: no partition has ``n_way`` classes with ``K + Q`` texts.

    Example:
        >>> texts = [f"t{i}" for i in range(12)]
        >>> corpus = LabelledCorpus(texts * 2, [f"p{i // 12}_c{i % 3}" for i in range(24)], ["p0"] * 12 + ["p1"] * 12)
        >>> ep = PartitionEpisodeSampler(corpus, n_way=2, k_shot=2, q_query=1).sample(step=0)
        >>> len({name.split("_")[0] for name in ep.label_names})
        1
    """

    def __init__(self, corpus: LabelledCorpus, n_way: int, k_shot: int, q_query: int, seed: int = 0) -> None:
        self.seed = seed
        pool = corpus.by_class()
        self.samplers: dict[str, EpisodeSampler] = {}
        for group in sorted(set(corpus.groups)):
            classes = [c for c in corpus.classes_of_groups([group]) if len(pool[c]) >= k_shot + q_query]
            if len(classes) >= max(n_way, 2):
                sampler = EpisodeSampler(pool, classes, n_way, k_shot, q_query, seed, source=corpus.source)
                self.samplers[group] = sampler
        if not self.samplers:
            raise ValueError(f"{corpus.source}: no partition has n_way={n_way} classes with K + Q = "
                             f"{k_shot + q_query} texts; use fewer clusters or smaller episodes")  # fmt: skip
        self.partitions = sorted(self.samplers)
        self.classes = [c for group in self.partitions for c in self.samplers[group].classes]

    def sample(self, step: int, rank: int = 0, n_way: int | None = None) -> Episode:
        """The episode of ``(seed, rank, step)``: one partition, then an N-way K-shot episode inside it (``n_way``
        overrides N, capped by the drawn partition's classes, as in a cross-dataset mixture)."""
        rng = np.random.default_rng([self.seed, rank, step, 1])
        sampler = self.samplers[self.partitions[int(rng.integers(len(self.partitions)))]]
        return sampler.sample(step, rank, n_way=min(n_way, len(sampler.classes)) if n_way else None)


def cactus_sampler(
    cfg: TaskConfig, encoder: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, seed: int = 0, max_length: int = 48
) -> PartitionEpisodeSampler:
    """Meta-training episodes from ``cfg.unlabelled``: load the texts, build the CACTUs corpus, sample by partition.

    Args:
        cfg: the ``task`` section (``unlabelled``, ``cactus_*``, ``n_way``, ``k_shot``, ``q_query``).
        encoder: the frozen backbone (embed with the adapter disabled or still at its ``B = 0`` init).
        tokenizer: its tokenizer.
        seed: run seed (k-means, scalings and episode sampling).
        max_length: tokens per text when embedding.

    Raises:
        FileNotFoundError: ``task.unlabelled`` does not exist.
        ValueError: the file is empty, or the clusters are too small for the episodes (the message says which).
    """
    texts = load_texts(cfg.unlabelled)
    min_size = cfg.cactus_min_cluster_size or cfg.k_shot + cfg.q_query
    corpus = cactus_corpus(texts, encoder, tokenizer, cfg.cactus_partitions, list(cfg.cactus_clusters), min_size,
                           seed, max_length)  # fmt: skip
    corpus.source = f"task.unlabelled={cfg.unlabelled}"
    return PartitionEpisodeSampler(corpus, cfg.n_way, cfg.k_shot, cfg.q_query, seed)
