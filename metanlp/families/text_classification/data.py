"""Labelled corpora, disjoint meta-train / meta-val / meta-test class splits, and N-way K-shot episode sampling.

An :class:`Episode` holds an explicit support set and query set (never split by index parity). Sampling is seeded by
``(seed, rank, step)`` so that every process of a distributed run draws different, reproducible tasks, and a resumed
run draws exactly the tasks the interrupted one would have drawn.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from metanlp.core.config import TaskConfig

__all__ = [
    "ClassSplits",
    "Episode",
    "EpisodeSampler",
    "LabelledCorpus",
    "eval_classes",
    "load_corpus",
    "source_split",
    "split_classes",
]

log = logging.getLogger(__name__)


@dataclass
class LabelledCorpus:
    """Texts with class labels, an optional coarse ``group`` per label and an optional data ``split`` per row.

    Attributes:
        texts: one string per example.
        labels: class name per example.
        groups: group name per example (e.g. CLINC150 domain); "" when the source has none.
        splits: source split per example (``train``/``val``/``test``); "" when the source has none.
        source: where the rows came from (for error messages).
    """

    texts: list[str]
    labels: list[str]
    groups: list[str] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)
    source: str = "<memory>"

    def __post_init__(self) -> None:
        n = len(self.texts)
        self.groups = self.groups or [""] * n
        self.splits = self.splits or [""] * n
        if not (len(self.labels) == len(self.groups) == len(self.splits) == n):
            raise ValueError(f"{self.source}: texts, labels, groups and splits differ in length")

    def by_class(self, split: str | None = None) -> dict[str, list[str]]:
        """Texts of each class, optionally only rows of one source split (order as in the source)."""
        out: dict[str, list[str]] = defaultdict(list)
        for t, y, s in zip(self.texts, self.labels, self.splits, strict=True):
            if split is None or s == split:
                out[y].append(t)
        return dict(out)

    def classes_of_groups(self, groups: list[str]) -> list[str]:
        """Sorted labels whose group is in ``groups``.

        Raises:
            ValueError: a group name does not occur in the corpus (the message lists the known groups).
        """
        known = sorted(set(self.groups))
        unknown = [g for g in groups if g not in known]
        if unknown:
            raise ValueError(f"{self.source}: unknown group(s) {unknown}; groups in this corpus: {known}")
        return sorted({y for y, g in zip(self.labels, self.groups, strict=True) if g in groups})


def load_corpus(path: str | Path, key: str = "task.dataset") -> LabelledCorpus:
    """Load a labelled corpus with ``datasets``: a ``.jsonl``/``.json``/``.csv``/``.tsv`` file with ``text`` and
    ``label`` columns (optional ``group``, ``split``), or a CLINC150 folder (``data_full.json`` + ``domains.json``;
    online: ``load_dataset("clinc_oos", "plus")``), whose rows get ``group`` = domain and ``split`` = train/val/test.

    Args:
        path: the file or CLINC150 folder.
        key: what it is called in messages (``task.dataset``, ``data.support``, ``data.eval``).

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file is not UTF-8, is empty or header-only, has a duplicated column, lacks a ``text`` or
            ``label`` column, or has an empty text or label or a label with surrounding spaces (the message names the
            file, the column and the row).
    """
    import datasets

    from metanlp.core.readers import check_table_file

    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"{key} not found: {p}")
    datasets.disable_progress_bars()
    if p.is_dir():
        return _load_clinc(p)
    suffix = p.suffix.lower()
    builder = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv"}.get(suffix)
    if builder is None:
        raise ValueError(f"{p}: unsupported file type {suffix!r}; use .jsonl, .json, .csv or .tsv")
    check_table_file(p, key, ("text", "label") if builder == "csv" else ())
    kwargs = {"delimiter": "\t"} if suffix == ".tsv" else {}
    try:
        ds = datasets.load_dataset(builder, data_files=str(p), split="train", **kwargs)
    except Exception as e:  # datasets raises several types for malformed files
        raise ValueError(f"{key}={p}: cannot be read as {builder}: {str(e).splitlines()[0][:300]}") from None
    missing = [c for c in ("text", "label") if c not in ds.column_names]
    if missing:
        raise ValueError(f"{key}={p}: missing column(s) {missing}; found {ds.column_names}. Expected text,label")
    if len(ds) == 0:
        raise ValueError(f"{key}={p}: no rows")
    texts, labels = ds["text"], [str(x) if x is not None else "" for x in ds["label"]]
    for i, (t, y) in enumerate(zip(texts, labels, strict=True)):
        if not t or not str(t).strip() or not y.strip():
            col = "text" if not t or not str(t).strip() else "label"
            raise ValueError(f"{key}={p}: row {i + 1} has an empty {col!r}")
        if y != y.strip():
            raise ValueError(f"{key}={p}: row {i + 1} has label {y!r} with surrounding whitespace (a class "
                             f"of its own, apart from {y.strip()!r}); remove the spaces")  # fmt: skip
    groups = [str(g) for g in ds["group"]] if "group" in ds.column_names else []
    splits = [str(s) for s in ds["split"]] if "split" in ds.column_names else []
    return LabelledCorpus([str(t) for t in texts], labels, groups, splits, source=str(p))


def _load_clinc(folder: Path) -> LabelledCorpus:
    import datasets

    full, domains_file = folder / "data_full.json", folder / "domains.json"
    for f in (full, domains_file):
        if not f.is_file():
            raise FileNotFoundError(f"{folder} is not a CLINC150 folder: {f.name} is missing")
    domain_of = {i: d for d, intents in _read_json(domains_file).items() for i in intents}
    texts, labels, groups, splits = [], [], [], []
    for split in ("train", "val", "test"):
        ds = datasets.load_dataset("json", data_files=str(full), field=split, split="train")
        for row in ds:
            text, intent = row.values() if isinstance(row, dict) else row
            texts.append(text)
            labels.append(intent)
            groups.append(domain_of[intent])
            splits.append(split)
    return LabelledCorpus(texts, labels, groups, splits, source=str(folder))


def _read_json(path: Path) -> dict:
    import json

    return json.loads(path.read_text(encoding="utf-8"))


@dataclass
class ClassSplits:
    """Disjoint class lists for meta-train, meta-val and meta-test."""

    train: list[str]
    val: list[str]
    test: list[str]

    def __post_init__(self) -> None:
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            shared = set(getattr(self, a)) & set(getattr(self, b))
            if shared:
                raise ValueError(f"meta-{a} and meta-{b} classes overlap: {sorted(shared)[:5]}")


def split_classes(corpus: LabelledCorpus, cfg: TaskConfig) -> ClassSplits:
    """Split the corpus's classes into disjoint meta-train / meta-val / meta-test sets.

    ``split_by: group`` takes the classes of the named groups (meta-train defaults to every group not held out);
    ``split_by: seed`` shuffles the sorted class names with ``task.seed`` and cuts by the fractions. With
    ``task.mixture`` the meta-train split may be empty (``test_fraction: 1``): the dataset is then held out whole and
    meta-training uses only the mixture (leave-one-dataset-out, ``bench/cross_dataset``).

    Raises:
        ValueError: a named group does not exist, or a split ends up empty (meta-train: without ``task.mixture``).
    """
    if cfg.split_by == "group":
        test = corpus.classes_of_groups(cfg.meta_test_groups)
        val = corpus.classes_of_groups(cfg.meta_val_groups) if cfg.meta_val_groups else []
        train_groups = cfg.meta_train_groups or sorted(
            set(corpus.groups) - set(cfg.meta_test_groups) - set(cfg.meta_val_groups)
        )
        train = corpus.classes_of_groups(train_groups)
    else:
        classes = sorted(set(corpus.labels))
        order = np.random.default_rng(cfg.seed).permutation(len(classes))
        shuffled = [classes[i] for i in order]
        n_test = max(1, round(cfg.test_fraction * len(classes)))
        n_val = round(cfg.val_fraction * len(classes))
        test, val, train = shuffled[:n_test], shuffled[n_test : n_test + n_val], shuffled[n_test + n_val :]
    splits = ClassSplits(sorted(train), sorted(val), sorted(test))
    for name in ("train", "test"):
        if not getattr(splits, name) and not (name == "train" and cfg.mixture):
            raise ValueError(f"{corpus.source}: the meta-{name} split has no classes (check task.split_by and groups)")
    return splits


def source_split(corpus: LabelledCorpus, role: str) -> tuple[dict[str, list[str]], dict[str, list[str]] | None]:
    """Pools for a sampler: with train/test source splits (CLINC150), support from ``train`` and query from
    ``test`` (``val`` for meta-val); without them, one pool for both."""
    if {"train", "test"} <= set(corpus.splits):
        query = {"train": "train", "val": "val", "test": "test"}[role]
        return corpus.by_class("train"), corpus.by_class(query) if role != "train" else None
    return corpus.by_class(), None


def eval_classes(corpus: LabelledCorpus, classes: list[str], n_way: int, k_shot: int, q_query: int) -> list[str]:
    """The meta-test ``classes`` that can give a K-shot episode: at least ``k_shot + max(q_query, 1)`` examples (with
    train/test source splits: ``k_shot`` train examples and one test example). The others are left out with a
    warning, as an all-way benchmark does (every class that has K + 1 examples).

    Args:
        corpus: the dataset the classes come from.
        classes: the meta-test split's class names.
        n_way: classes per episode; 0 = all-way (every usable class).
        k_shot: support examples per class.
        q_query: query examples per class (0: every example not in the support set).

    Returns:
        The usable classes, sorted.

    Raises:
        ValueError: fewer usable classes than ``n_way`` (or than 2 all-way); names the source, K and the counts.
    """
    pool, query_pool = source_split(corpus, "test")
    need = k_shot if query_pool is not None else k_shot + max(q_query, 1)
    usable = sorted(c for c in classes if len(pool.get(c, [])) >= need and (query_pool is None or query_pool.get(c)))
    short = sorted(set(classes) - set(usable))
    if len(usable) < max(n_way, 2):
        raise ValueError(f"{corpus.source}: {len(usable)} of {len(classes)} meta-test classes have >= {need} examples "
                         f"(K = {k_shot}), but an episode needs {max(n_way, 2)}; lower eval.k_shots, eval.q_query or "
                         "eval.n_way")  # fmt: skip
    if short:
        log.warning("%s: %d of %d meta-test classes have fewer than %d examples, left out at K = %d: %s",
                    corpus.source, len(short), len(classes), need, k_shot, ", ".join(short[:10]))  # fmt: skip
    return usable


@dataclass
class Episode:
    """One few-shot task.

    Attributes:
        support_texts: ``N * K`` texts.
        support_labels: class index in ``[0, N)`` per support text.
        query_texts: query texts (Q per class, or fewer when a class has fewer left).
        query_labels: class index per query text.
        label_names: the N class names; index i is class i.
    """

    support_texts: list[str]
    support_labels: list[int]
    query_texts: list[str]
    query_labels: list[int]
    label_names: list[str]

    @property
    def n_way(self) -> int:
        """Number of classes N."""
        return len(self.label_names)


class EpisodeSampler:
    """N-way K-shot Q-query episodes over a fixed list of classes (Vinyals et al. 2016, arXiv:1606.04080).

    Args:
        pool: texts per class to draw the support (and, without ``query_pool``, the query) from.
        classes: the classes of this split (meta-train, meta-val or meta-test).
        n_way: classes per episode; 0 = all-way (every class of ``classes``).
        k_shot: support examples per class.
        q_query: query examples per class; ``0`` = all of the class (without ``query_pool``: all but its support);
            with ``query_pool`` it is a cap.
        seed: run seed; episodes are drawn from ``numpy.random.default_rng([seed, rank, step])``.
        query_pool: optional separate texts per class for the query set (e.g. CLINC150's test split).

    Raises:
        ValueError: a class has fewer than ``K + Q`` examples (``K`` with ``query_pool``), or ``n_way`` exceeds the
            number of classes; the message names the class, its count and the source.

    Example:
        >>> pool = {c: [f"{c} {i}" for i in range(6)] for c in "abcd"}
        >>> ep = EpisodeSampler(pool, list("abcd"), n_way=3, k_shot=2, q_query=1, seed=0).sample(step=0)
        >>> ep.n_way, len(ep.support_texts), len(ep.query_texts)
        (3, 6, 3)
    """

    def __init__(
        self,
        pool: dict[str, list[str]],
        classes: list[str],
        n_way: int,
        k_shot: int,
        q_query: int,
        seed: int = 0,
        query_pool: dict[str, list[str]] | None = None,
        source: str = "dataset",
    ) -> None:
        self.pool, self.query_pool = pool, query_pool
        self.classes = sorted(classes)
        self.n_way = n_way or len(self.classes)
        self.k_shot, self.q_query, self.seed = k_shot, q_query, seed
        need = k_shot if query_pool is not None else k_shot + max(q_query, 1)
        for c in self.classes:
            have = len(pool.get(c, []))
            if have < need:
                what = "K" if query_pool is not None else f"K + Q = {k_shot} + {max(q_query, 1)}"
                raise ValueError(f"{source}: class {c!r} has {have} examples, fewer than {what} = {need}")
            if query_pool is not None and not query_pool.get(c):
                raise ValueError(f"{source}: class {c!r} has no query examples")
        if self.n_way > len(self.classes):
            raise ValueError(f"{source}: n_way={self.n_way} but the split has only {len(self.classes)} classes")

    def sample(self, step: int, rank: int = 0, n_way: int | None = None) -> Episode:
        """Draw the episode of ``(seed, rank, step)``; the same triple always gives the same episode.

        ``n_way`` overrides the sampler's N for this episode (a mixture that varies N per episode).
        """
        rng = np.random.default_rng([self.seed, rank, step])
        n = min(n_way or self.n_way, len(self.classes))
        chosen = [self.classes[i] for i in sorted(rng.choice(len(self.classes), n, replace=False))]
        s_txt, s_lab, q_txt, q_lab = [], [], [], []
        for idx, c in enumerate(chosen):
            texts = self.pool[c]
            order = rng.permutation(len(texts))
            s_txt += [texts[i] for i in order[: self.k_shot]]
            s_lab += [idx] * self.k_shot
            if self.query_pool is None:
                q = [texts[i] for i in order[self.k_shot : self.k_shot + self.q_query if self.q_query else None]]
            else:
                qs = self.query_pool[c]
                q = [qs[i] for i in rng.permutation(len(qs))[: self.q_query or len(qs)]]
            q_txt += q
            q_lab += [idx] * len(q)
        return Episode(s_txt, s_lab, q_txt, q_lab, chosen)
