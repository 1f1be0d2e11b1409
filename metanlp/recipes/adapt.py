"""Recipe: adapt a meta-learned init to new text categories from a few labelled examples per class.

Run: ``metanlp adapt recipes/text_new_categories.yaml [--set data.support=my.csv ...]``.
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

import torch

from metanlp.adapters import head_names, set_head
from metanlp.builders import build_classification, prepare_run_dir
from metanlp.config import RecipeConfig
from metanlp.episodes import Episode, load_corpus
from metanlp.evaluation import evaluate_episodes, format_table, metric_records
from metanlp.recipe_loading import recipe_to_yaml
from metanlp.recipes.evaluate import adaptation_budget, load_learner
from metanlp.saving import predict_texts, save_adapter, write_json_atomic

log = logging.getLogger(__name__)


def read_unlabelled(path: str | Path) -> list[str]:
    """Texts to label: a ``.csv``/``.jsonl`` with a ``text`` column, or a plain file with one text per line.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: the file has no text.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"data.predict file not found: {p}")
    if p.suffix.lower() in (".csv", ".tsv", ".jsonl", ".json"):
        import datasets

        kwargs = {"delimiter": "\t"} if p.suffix.lower() == ".tsv" else {}
        builder = "csv" if p.suffix.lower() in (".csv", ".tsv") else "json"
        ds = datasets.load_dataset(builder, data_files=str(p), split="train", **kwargs)
        if "text" not in ds.column_names:
            raise ValueError(f"{p}: no 'text' column; found {ds.column_names}")
        texts = [str(t) for t in ds["text"] if t and str(t).strip()]
    else:
        texts = [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        raise ValueError(f"{p}: no texts to predict")
    return texts


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
    """Adapt (a)/(b)/(c) to the support set, score them on ``data.eval``, save (c)'s adapter, label
    ``data.predict``."""
    episode = support_episode(cfg)
    predict = read_unlabelled(cfg.data.predict) if cfg.data.predict else []
    out = prepare_run_dir(cfg, "adapt")
    setup = build_classification(cfg)
    learner = load_learner(cfg, setup.meta_params)
    steps, lr = adaptation_budget(cfg)
    has_init = bool(cfg.adapter.init)
    methods = [m for m in cfg.eval.methods if has_init or m != "meta"]
    summary: dict[str, Any] = {"labels": episode.label_names, "support_examples": len(episode.support_texts)}
    if episode.query_texts:
        results = evaluate_episodes(setup.task, [episode], setup.pretrained, setup.meta_params, learner, steps, lr,
                                    methods, cfg.run.progress, cfg.meta.micro_batch)  # fmt: skip
        k = min(episode.support_labels.count(i) for i in range(episode.n_way))
        summary["records"] = metric_records(results, n_way=episode.n_way, k_shot=k, adapt_steps=steps,
                                            query_examples=len(episode.query_texts), data=cfg.data.eval)  # fmt: skip
        log.debug("results on %s:\n%s", cfg.data.eval, format_table(summary["records"]))
    # the adapter that is kept: (c) from the meta-learned init, or (b) when no init was given
    support, _ = setup.task.batches(episode)
    if has_init:
        fast = learner.adapt(setup.task, setup.meta_params, support)
    else:
        from metanlp.algorithms.fomaml import inner_loop

        start = setup.task.init_fast_weights(setup.pretrained, support)
        fast = inner_loop(setup.task, start, support, steps, lr, cfg.meta.micro_batch)
    w_name, b_name = head_names(setup.model)
    with torch.no_grad():
        for k, p in setup.meta_params.items():
            p.copy_(fast[k])
    set_head(setup.model, fast[w_name], fast[b_name])
    metadata = {"family": "text_classification", "backbone": cfg.model.name, "hidden_size": fast[w_name].shape[1],
                "labels": episode.label_names, "max_length": cfg.model.max_length, "k_shot": cfg.task.k_shot,
                "method": "meta" if has_init else "finetune", "meta_init": cfg.adapter.init,
                "support": cfg.data.support, "algorithm": cfg.meta.algorithm}  # fmt: skip
    save_adapter(setup.model, out / "adapter", metadata, recipe_to_yaml(cfg), summary)
    if predict:
        preds = predict_texts(setup.model, setup.tokenizer, predict, cfg.model.max_length)
        names = episode.label_names
        lines = [json.dumps({"text": t, "label": names[i], "confidence": round(c, 4)}, ensure_ascii=False)
                 for t, (i, c) in zip(predict, preds, strict=True)]  # fmt: skip
        tmp = out / ".predictions.jsonl.tmp"
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        tmp.replace(out / "predictions.jsonl")
        summary["predictions"] = str(out / "predictions.jsonl")
    write_json_atomic(out / "metrics.json", summary)
    summary["adapter"] = str(out / "adapter")
    return summary
