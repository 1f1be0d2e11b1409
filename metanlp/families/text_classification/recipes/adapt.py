"""Recipe: adapt a meta-learned init to new text categories from a few labelled examples per class.

Run: ``metanlp adapt recipes/text_classification/text_new_categories.yaml [--set data.support=my.csv ...]``.
Reads ``data.support`` (``text,label``: the K examples per new class), optionally ``data.eval`` (labelled, to score
(a) centroid, (b) fine-tune from the pretrained backbone, (c) the meta-learned init) and ``data.predict``
(unlabelled). Writes ``run.output_dir``/{adapter/ (stock peft folder with head + label map), metrics.json,
predictions.jsonl, recipe.yaml}.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from metanlp.algorithms.base import adaptation_learner
from metanlp.core.comparison import compare, format_table, metric_records, standard_methods
from metanlp.core.config import RecipeConfig, adaptation_budget
from metanlp.core.files import write_text_atomic
from metanlp.core.inner_loop import copy_into
from metanlp.core.readers import read_texts
from metanlp.core.recipe_loading import recipe_to_yaml
from metanlp.core.run_dir import prepare_run_dir
from metanlp.core.saving import save_adapter, write_json_atomic
from metanlp.families.text_classification.adapter import head_names, predict_texts, set_head
from metanlp.families.text_classification.data import Episode, load_corpus
from metanlp.families.text_classification.setup import build_classification

log = logging.getLogger(__name__)


def read_unlabelled(path: str | Path, key: str = "data.predict") -> list[str]:
    """Texts to label (:func:`metanlp.core.readers.read_texts`: a ``text`` column or one text per line).

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: the file has no text or an empty line.
    """
    return read_texts(path, key)


def support_episode(cfg: RecipeConfig) -> Episode:
    """The user's support set (and optional labelled eval set as the query) as one :class:`Episode`.

    Raises:
        ValueError: ``data.support`` is unset, a class has fewer than ``task.k_shot`` examples, there are fewer than
            two classes, or ``data.eval`` has a label that is not in the support set (each message names file/label).
    """
    if not cfg.data.support:
        raise ValueError("data.support is empty: set it to a CSV/JSONL with text,label columns")
    support = load_corpus(cfg.data.support)
    by_class = support.by_class()
    labels = sorted(by_class)
    short = {c: len(v) for c, v in by_class.items() if len(v) < cfg.task.k_shot}
    if short:
        raise ValueError(
            f"{cfg.data.support}: class(es) with fewer than task.k_shot={cfg.task.k_shot} examples: {short}"
        )
    if len(labels) < 2:
        raise ValueError(f"{cfg.data.support}: needs at least 2 classes, found {labels}")
    index = {c: i for i, c in enumerate(labels)}
    s_txt = [t for c in labels for t in by_class[c]]
    s_lab = [index[c] for c in labels for _ in by_class[c]]
    q_txt, q_lab = [], []
    if cfg.data.eval:
        ev = load_corpus(cfg.data.eval)
        unknown = sorted(set(ev.labels) - set(labels))
        if unknown:
            raise ValueError(
                f"{cfg.data.eval}: label(s) {unknown[:5]} do not occur in data.support {cfg.data.support}"
            )
        q_txt, q_lab = ev.texts, [index[y] for y in ev.labels]
    return Episode(s_txt, s_lab, q_txt, q_lab, labels)


def run(cfg: RecipeConfig) -> dict[str, Any]:
    """Adapt every ``eval.methods`` row to the support set, score them on ``data.eval``, save the adapter of
    ``meta`` (or ``finetune`` when no ``adapter.init``), label ``data.predict``."""
    episode = support_episode(cfg)
    predict = read_unlabelled(cfg.data.predict) if cfg.data.predict else []
    out = prepare_run_dir(cfg, "adapt")
    setup = build_classification(cfg)
    learner = adaptation_learner(cfg, setup.meta_params)
    steps, lr = adaptation_budget(cfg)
    has_init = bool(cfg.adapter.init)
    names = [m for m in cfg.eval.methods if has_init or m != "meta"]
    methods = standard_methods(names, setup.pretrained, steps, lr, cfg.meta.micro_batch, setup.meta_params, learner)
    summary: dict[str, Any] = {"labels": episode.label_names, "support_examples": len(episode.support_texts)}
    if episode.query_texts:
        results = compare(setup.task, [episode], methods, cfg.run.progress)
        k = min(episode.support_labels.count(i) for i in range(episode.n_way))
        summary["records"] = metric_records(results, n_way=episode.n_way, k_shot=k, adapt_steps=steps,
                                            query_examples=len(episode.query_texts), data=cfg.data.eval)  # fmt: skip
        log.debug("results on %s:\n%s", cfg.data.eval, format_table(summary["records"]))
    # the adapter that is kept: the meta-learned init adapted, or the plain fine-tune when no init was given
    kept = standard_methods(["meta" if has_init else "finetune"], setup.pretrained, steps, lr, cfg.meta.micro_batch,
                            setup.meta_params, learner)[0]  # fmt: skip
    support, _ = setup.task.batches(episode)
    fast = kept.adapt(setup.task, kept.init, support)  # type: ignore[misc]
    w_name, b_name = head_names(setup.model)
    copy_into(setup.meta_params, fast)
    set_head(setup.model, fast[w_name], fast[b_name])
    metadata = {"family": "text_classification", "backbone": cfg.model.name, "hidden_size": fast[w_name].shape[1],
                "labels": episode.label_names, "max_length": cfg.model.max_length, "k_shot": cfg.task.k_shot,
                "method": kept.name, "meta_init": cfg.adapter.init,
                "support": cfg.data.support, "algorithm": cfg.meta.algorithm}  # fmt: skip
    save_adapter(setup.model, out / "adapter", metadata, recipe_to_yaml(cfg), summary)
    if predict:
        preds = predict_texts(setup.model, setup.tokenizer, predict, cfg.model.max_length)
        names_ = episode.label_names
        lines = [json.dumps({"text": t, "label": names_[i], "confidence": round(c, 4)}, ensure_ascii=False)
                 for t, (i, c) in zip(predict, preds, strict=True)]  # fmt: skip
        write_text_atomic(out / "predictions.jsonl", "\n".join(lines) + "\n")
        summary["predictions"] = str(out / "predictions.jsonl")
    write_json_atomic(out / "metrics.json", summary)
    summary["adapter"] = str(out / "adapter")
    return summary
