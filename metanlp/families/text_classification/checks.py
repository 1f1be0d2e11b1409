"""Input checks of the text-classification recipes, run by ``metanlp validate`` and before any model loads.

Registered as the family's ``checks`` (:func:`metanlp.core.checks.check_inputs` calls :func:`check_inputs`). Imports
no torch: only the corpus readers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from metanlp.core.config import ConfigError
from metanlp.families.text_classification.data import Episode, eval_classes, load_corpus, split_classes

__all__ = ["check_inputs", "check_smlmt", "support_episode"]

#: The ``eval.methods`` this family runs.
TEXT_METHODS = ("centroid", "logreg", "finetune", "meta", "multitask")


def support_episode(cfg: Any) -> Episode:
    """The user's support set (and optional labelled eval set as the query) as one :class:`Episode`.

    Raises:
        ValueError: ``data.support`` is unset, a class has fewer than ``task.k_shot`` examples, there are fewer than
            two classes, or ``data.eval`` has a label that is not in the support set (each message names file/label).
    """
    if not cfg.data.support:
        raise ValueError("data.support is empty: set it to a CSV/JSONL with text,label columns")
    support = load_corpus(cfg.data.support, "data.support")
    by_class = support.by_class()
    labels = sorted(by_class)
    short = {c: len(v) for c, v in by_class.items() if len(v) < cfg.task.k_shot}
    if short:
        raise ValueError(
            f"data.support={cfg.data.support}: class(es) with fewer than task.k_shot={cfg.task.k_shot} examples: "
            f"{short}; add examples or lower task.k_shot"
        )
    if len(labels) < 2:
        raise ValueError(f"data.support={cfg.data.support}: needs at least 2 classes, found {labels}")
    index = {c: i for i, c in enumerate(labels)}
    s_txt = [t for c in labels for t in by_class[c]]
    s_lab = [index[c] for c in labels for _ in by_class[c]]
    q_txt, q_lab = [], []
    if cfg.data.eval:
        ev = load_corpus(cfg.data.eval, "data.eval")
        unknown = sorted(set(ev.labels) - set(labels))
        if unknown:
            raise ValueError(
                f"data.eval={cfg.data.eval}: label(s) {unknown[:5]} do not occur in data.support {cfg.data.support}"
            )
        q_txt, q_lab = ev.texts, [index[y] for y in ev.labels]
    return Episode(s_txt, s_lab, q_txt, q_lab, labels)


def _check_init(cfg: Any, key: str, folder: str) -> None:
    from metanlp.core.files import read_metadata

    meta = read_metadata(folder)
    if meta.get("family") != "text_classification":
        raise ValueError(f"{key}={folder}: family {meta.get('family')!r} is not text_classification")
    if meta.get("backbone") != cfg.model.name:
        raise ValueError(f"{key}={folder} was meta-trained on backbone {meta.get('backbone')!r}, but "
                         f"model.name is {cfg.model.name!r}: set model.name to it")  # fmt: skip


def _check_multitask_baseline(cfg: Any) -> None:
    section = getattr(cfg, "text_classification", None)
    if section is None or not section.multitask_baseline:
        return
    if cfg.task.unlabelled and not (cfg.task.mixture or cfg.task.smlmt):
        raise ConfigError("text_classification.multitask_baseline needs labelled meta-train classes, but "
                          "task.unlabelled alone (CACTUs pseudo-classes) replaces them: drop one of them, or add "
                          "task.mixture / task.smlmt")  # fmt: skip
    if cfg.meta.outer_steps < 1:
        raise ConfigError("text_classification.multitask_baseline trains for meta-training's compute, but "
                          "meta.outer_steps=0: set meta.outer_steps >= 1 or drop the baseline")  # fmt: skip


def check_smlmt(task: Any) -> None:
    """The ``task.smlmt*`` rules (beside :class:`~metanlp.core.config.TaskConfig`'s own, whose module is full).

    Raises:
        ConfigError: ``task.smlmt_fraction`` outside ``[0, 1]``, or 0 with ``task.smlmt`` set (or with
            ``task.unlabelled`` in a ``task.mixture``: its CACTUs episodes share that fraction); ``task.smlmt`` with
            a file twice or with ``task.n_way=0`` (an all-way cloze episode is not defined).
    """
    f = task.smlmt_fraction
    if not 0 <= f <= 1:
        raise ConfigError(f"task.smlmt_fraction={f!r} must be a probability in [0, 1] (0.5 = Hybrid-SMLMT's half "
                          "of the episodes)")  # fmt: skip
    if f == 0 and task.unlabelled and task.mixture:
        raise ConfigError(f"task.smlmt_fraction=0 with task.unlabelled={task.unlabelled} in a task.mixture: no "
                          "episode would be a CACTUs one; set a fraction in (0, 1] or task.unlabelled=''")  # fmt: skip
    if not task.smlmt:
        return
    files = list(task.smlmt)
    if f == 0:
        raise ConfigError(f"task.smlmt_fraction=0 with task.smlmt={files}: no episode would be a cloze one; "
                          "set a fraction in (0, 1] or task.smlmt=[]")  # fmt: skip
    if len({str(Path(p)) for p in files}) != len(files) or any(not str(p).strip() for p in files):
        raise ConfigError(f"task.smlmt={files} has an empty or repeated file: list each unlabelled file once")
    if task.n_way < 2:
        raise ConfigError(f"task.smlmt={files} needs task.n_way >= 2 (cloze episodes are not all-way), got "
                          f"task.n_way={task.n_way}")  # fmt: skip


def check_inputs(cfg: Any, verb: str) -> None:
    """Check what a ``verb`` run of the text family reads, without loading a model.

    Raises:
        ConfigError: an ``eval.methods`` entry this family does not run, ``meta`` without ``adapter.init`` or
            ``multitask`` without ``adapter.multitask_init`` (evaluate), or ``text_classification.multitask_baseline``
            with ``task.unlabelled`` but no ``task.mixture`` / ``task.smlmt``, or no outer steps (meta-train), a
            ``task.smlmt*`` value :func:`check_smlmt` refuses, or a ``text_classification.val_dataset`` that is also
            ``task.dataset``, a ``task.mixture`` or a ``task.smlmt`` file (meta-train).
        FileNotFoundError, ValueError: a data file is missing or malformed (see :func:`load_corpus`), a K of
            ``eval.k_shots`` that too few meta-test classes can give (see :func:`eval_classes`), or
            ``adapter.init`` / ``adapter.multitask_init`` was made for another family or backbone.
    """
    from metanlp.core.readers import read_texts

    other = [m for m in cfg.eval.methods if m not in TEXT_METHODS]
    if other:
        raise ConfigError(f"eval.methods={list(cfg.eval.methods)}: {other} not run by this task.family; "
                          f"choose from {', '.join(TEXT_METHODS)}")  # fmt: skip
    for key, folder in (("adapter.init", cfg.adapter.init), ("adapter.multitask_init", cfg.adapter.multitask_init)):
        if folder:
            _check_init(cfg, key, folder)
    if verb == "adapt":
        support_episode(cfg)
        if cfg.data.predict:
            read_texts(cfg.data.predict, "data.predict")
        return
    if verb == "evaluate" and "meta" in cfg.eval.methods and not cfg.adapter.init:
        raise ConfigError("eval.methods includes 'meta' but adapter.init is empty: point it at a meta-train adapter/ "
                          "or drop 'meta'")  # fmt: skip
    if verb == "evaluate" and "multitask" in cfg.eval.methods and not cfg.adapter.multitask_init:
        raise ConfigError("eval.methods includes 'multitask' but adapter.multitask_init is empty: point it at a "
                          "meta-train multitask_adapter/ or drop 'multitask'")  # fmt: skip
    check_smlmt(cfg.task)
    if verb == "meta_train":
        _check_multitask_baseline(cfg)
        for i, path in enumerate(cfg.task.smlmt):
            read_texts(path, f"task.smlmt[{i}]", blank_lines="skip")
    if cfg.task.unlabelled:
        read_texts(cfg.task.unlabelled, "task.unlabelled", blank_lines="skip")
    corpus = load_corpus(cfg.task.dataset, "task.dataset")
    test = split_classes(corpus, cfg.task).test
    if cfg.eval.episodes > 0 and test:  # each K of the meta-test evaluation has enough classes (before any training)
        for k in cfg.eval.k_shots:
            eval_classes(corpus, test, cfg.eval.n_way, k, cfg.eval.q_query)
    for i, path in enumerate(cfg.task.mixture):
        load_corpus(path, f"task.mixture[{i}]")
    if verb == "meta_train":
        _check_val_dataset(cfg)


def _check_val_dataset(cfg: Any) -> None:
    section = getattr(cfg, "text_classification", None)
    val = section.val_dataset if section is not None else ""
    if not val:
        return
    same = [key for key, path in [("task.dataset", cfg.task.dataset),
                                  *((f"task.mixture[{i}]", p) for i, p in enumerate(cfg.task.mixture)),
                                  *((f"task.smlmt[{i}]", p) for i, p in enumerate(cfg.task.smlmt))]
            if Path(path).resolve() == Path(val).resolve()]  # fmt: skip
    if same:
        raise ConfigError(f"text_classification.val_dataset={val} is also {', '.join(same)}: meta-val must be a "
                          "dataset that is neither meta-trained on nor the meta-test split")  # fmt: skip
    corpus = load_corpus(val, "text_classification.val_dataset")
    if len(corpus.by_class()) < 2:
        raise ConfigError(f"text_classification.val_dataset={val}: needs at least 2 classes")
