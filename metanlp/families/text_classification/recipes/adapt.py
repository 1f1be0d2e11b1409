"""Recipe: adapt a meta-learned init to new text categories from a few labelled examples per class.

Run: ``metanlp adapt recipes/text_classification/text_new_categories.yaml [--set data.support=my.csv ...]``.
Reads ``data.support`` (``text,label``: the K examples per new class), optionally ``data.eval`` (labelled, to score
(a) centroid, (b) fine-tune from the pretrained backbone, (c) the meta-learned init and, with
``adapter.multitask_init``, (d) the multi-task transfer init fine-tuned like (b)) and ``data.predict`` (unlabelled).
Writes ``run.output_dir``/{adapter/ (stock peft folder with head + label map), metrics.json, predictions.jsonl,
recipe.yaml}.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from metanlp.algorithms.base import adaptation_learner
from metanlp.core.checks import check_inputs
from metanlp.core.comparison import adaptation_budget, compare, format_table, metric_records, standard_methods
from metanlp.core.config import RecipeConfig
from metanlp.core.files import read_metadata, write_text_atomic
from metanlp.core.inner_loop import copy_into
from metanlp.core.protocols import Params
from metanlp.core.readers import read_texts
from metanlp.core.recipe_loading import recipe_to_yaml
from metanlp.core.run_dir import staged_run
from metanlp.core.saving import save_adapter, write_json_atomic
from metanlp.families.text_classification.adapter import head_names, predict_texts, set_head
from metanlp.families.text_classification.baselines import classification_methods
from metanlp.families.text_classification.checks import support_episode
from metanlp.families.text_classification.multitask import load_multitask_init
from metanlp.families.text_classification.recipes.evaluate import method_names
from metanlp.families.text_classification.setup import build_classification

log = logging.getLogger(__name__)


def read_unlabelled(path: str | Path, key: str = "data.predict") -> list[str]:
    """Texts to label (:func:`metanlp.core.readers.read_texts`: a ``text`` column or one text per line).

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: the file has no text or an empty line.
    """
    return read_texts(path, key)


def _init_provenance(init: str) -> dict[str, Any]:
    """What the init in ``adapter.init`` was meta-trained on (its ``metanlp.json``), for the model card."""
    if not init:
        return {}
    meta = read_metadata(init)
    return {"init_data": meta.get("data", ""), "init_meta_train_classes": meta.get("meta_train_classes", []),
            "init_algorithm": meta.get("algorithm", "")}  # fmt: skip


def _remembered(fn: Callable[..., Params], store: list[Params]) -> Callable[..., Params]:
    """``fn`` that also appends what it returns to ``store``."""

    def wrapped(*args: Any) -> Params:
        store.append(fn(*args))
        return store[-1]

    return wrapped


def run(cfg: RecipeConfig) -> dict[str, Any]:
    """Adapt every ``eval.methods`` row to the support set, score them on ``data.eval``, save the adapter of
    ``meta`` (or ``finetune`` when no ``adapter.init``), label ``data.predict``.

    Every input is checked first (:func:`metanlp.core.checks.check_inputs`); the outputs are written into a staging
    folder that replaces ``run.output_dir`` only when complete (:func:`metanlp.core.run_dir.staged_run`).
    """
    check_inputs(cfg, "adapt")
    episode = support_episode(cfg)
    predict = read_unlabelled(cfg.data.predict) if cfg.data.predict else []
    provenance = _init_provenance(cfg.adapter.init)
    setup = build_classification(cfg)
    learner = adaptation_learner(cfg, setup.meta_params)
    budget = adaptation_budget(cfg)
    has_init = bool(cfg.adapter.init)
    multitask = None
    if cfg.adapter.multitask_init:  # (d): its LoRA, the model keeps adapter.init's
        multitask = load_multitask_init(setup.model, cfg.adapter.multitask_init, cfg.model.name)
    names = method_names([m for m in cfg.eval.methods if has_init or m != "meta"], multitask)
    methods = classification_methods(names, setup.pretrained, budget, setup.meta_params, learner, multitask,
                                     seed=cfg.run.seed)  # fmt: skip
    # the adapter that is kept: the meta-learned init adapted, or the plain fine-tune when no init was given; when it
    # is also a row of the comparison, its adaptation there is the one kept (adapted once, timed once)
    kept = standard_methods(["meta" if has_init else "finetune"], setup.pretrained, budget, setup.meta_params, learner,
                            seed=cfg.run.seed)[0]  # fmt: skip
    adapted: list[Params] = []
    for m in methods:
        if m.name == kept.name and m.adapt is not None:
            m.adapt = _remembered(m.adapt, adapted)
    summary: dict[str, Any] = {"labels": episode.label_names, "support_examples": len(episode.support_texts)}
    k = min(episode.support_labels.count(i) for i in range(episode.n_way))
    if episode.query_texts:
        results = compare(setup.task, [episode], methods, cfg.run.progress)
        summary["records"] = metric_records(results, n_way=episode.n_way, k_shot=k, adapt=budget.describe(),
                                            query_examples=len(episode.query_texts), data=cfg.data.eval)  # fmt: skip
        log.debug("results on %s:\n%s", cfg.data.eval, format_table(summary["records"]))
    support, _ = setup.task.batches(episode)
    fast = adapted[0] if adapted else kept.adapt(setup.task, kept.init, support)  # type: ignore[misc]
    w_name, b_name = head_names(setup.model)
    copy_into(setup.meta_params, fast)
    set_head(setup.model, fast[w_name], fast[b_name])
    metadata = {"family": "text_classification", "backbone": cfg.model.name, "hidden_size": fast[w_name].shape[1],
                "labels": episode.label_names, "max_length": cfg.model.max_length, "k_shot": k,
                "n_way": episode.n_way, "dataset": cfg.data.support, "method": kept.name,
                "meta_init": cfg.adapter.init,
                **provenance, "support": cfg.data.support, "algorithm": cfg.meta.algorithm}  # fmt: skip
    with staged_run(cfg, "adapt") as out:
        save_adapter(setup.model, out / "adapter", metadata, recipe_to_yaml(cfg), summary)
        if predict:
            preds = predict_texts(setup.model, setup.tokenizer, predict, cfg.model.max_length)
            names_ = episode.label_names
            lines = [json.dumps({"text": t, "label": names_[i], "confidence": round(c, 4)}, ensure_ascii=False)
                     for t, (i, c) in zip(predict, preds, strict=True)]  # fmt: skip
            write_text_atomic(out / "predictions.jsonl", "\n".join(lines) + "\n")
            summary["predictions"] = str(Path(cfg.run.output_dir) / "predictions.jsonl")
        write_json_atomic(out / "metrics.json", summary)
    summary["adapter"] = str(Path(cfg.run.output_dir) / "adapter")
    return summary
