"""Recipe: a translation adapter for a new language pair from a few sentence pairs.

Run: ``metanlp adapt recipes/new_language_pair.yaml --set data.support=pairs.tsv --set translation.source_lang=en
--set translation.target_lang=zu [--set data.predict=sentences.txt] [--set data.eval=held_out.tsv]``.
Starts from the meta-learned init in ``adapter.init`` (or the pretrained backbone when empty), adapts with the
learner's inner loop (``adapt.steps`` / ``adapt.lr``; -1 = the ``meta.*`` values, the procedure used at
meta-training), and writes ``run.output_dir/adapter/`` (stock peft + ``metanlp.json``), ``translations.tsv`` for
``data.predict`` and ``metrics.json``. With ``data.eval`` it scores, on the same sentences with the same greedy
decoding, side by side: (0) in-context prompting with ``translation.prompt_shots`` support pairs, no training;
(a) LoRA adapted from the pretrained backbone; (b) the multi-task transfer adapter ``adapter.multitask_init`` adapted
the same way (when given); (c) the meta-learned ``adapter.init`` adapted the same way (when given).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from metanlp.adapters import read_metadata
from metanlp.algorithms import build_learner
from metanlp.builders import prepare_run_dir
from metanlp.config import RecipeConfig
from metanlp.language_pairs import language_name, load_pairs, read_user_pairs
from metanlp.recipe_loading import recipe_to_yaml
from metanlp.saving import write_json_atomic
from metanlp.tasks import Params
from metanlp.translation_adapters import TranslationSetup, build_translation, lora_weights, save_translation_adapter
from metanlp.translation_backbone import TINY_TRANSLATOR, backbone_licence

log = logging.getLogger(__name__)


def _read_sentences(path: str) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"data.predict file not found: {p}")
    lines = [" ".join(line.split()) for line in p.read_text(encoding="utf-8").splitlines()]
    empty = [i + 1 for i, line in enumerate(lines) if not line]
    if empty:
        raise ValueError(f"{p}: empty line(s) {empty[:5]}: one sentence per line, no blank lines")
    return lines


_LANGUAGE_TAG = re.compile(r"[^.]+\.([a-z]{2,3}(?:-[a-z]{2,3})?)\.(?:tsv|jsonl|txt)")


def check_file_languages(cfg: RecipeConfig) -> None:
    """A data file whose name carries language codes (``support.en-zu.tsv``, ``sentences.en.txt``, as the shipped
    example) must match the recipe's languages: overriding ``translation.target_lang`` or ``data.support`` alone
    would otherwise score or translate another pair's files.

    Raises:
        ValueError: the tag in the file name names other languages (the message names the key and the file).
    """
    t = cfg.translation
    for key, path, want in (("data.support", cfg.data.support, f"{t.source_lang}-{t.target_lang}"),
                            ("data.eval", cfg.data.eval, f"{t.source_lang}-{t.target_lang}"),
                            ("data.predict", cfg.data.predict, t.source_lang)):  # fmt: skip
        tag = _LANGUAGE_TAG.fullmatch(Path(path).name) if path else None
        if tag and tag.group(1) != want:
            raise ValueError(
                f"{key}={path} is named for {tag.group(1)}, but this recipe translates "
                f"{t.source_lang}->{t.target_lang}: point {key} at your own file (or set it to '')"
            )


def check_inputs(cfg: RecipeConfig) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[str]]:
    """Validate languages and files before any work: ``(support pairs, eval pairs, sentences to translate)``.

    Raises:
        ValueError: a language code is missing/unknown, fewer pairs than ``task.k_shot``, a malformed file, or the
            direction is the reverse of the ``adapter.init`` adapter's.
        FileNotFoundError: a file is missing.
    """
    t = cfg.translation
    if not t.source_lang or not t.target_lang:
        raise ValueError("set translation.source_lang and translation.target_lang (language codes, e.g. en and zu)")
    for code in (t.source_lang, t.target_lang):
        language_name(code, t.language_names)
    check_file_languages(cfg)
    if not cfg.data.support:
        raise ValueError("data.support is empty: give a TSV (source<TAB>target) or JSONL file of sentence pairs")
    support = read_user_pairs(cfg.data.support)
    if len(support) < cfg.task.k_shot:
        raise ValueError(
            f"{cfg.data.support}: {len(support)} sentence pairs, fewer than task.k_shot={cfg.task.k_shot}"
        )
    for key, folder in (("adapter.init", cfg.adapter.init), ("adapter.multitask_init", cfg.adapter.multitask_init)):
        if not folder:
            continue
        meta = read_metadata(folder)
        if meta.get("family") != "translation":
            raise ValueError(f"{key}={folder}: family {meta.get('family')!r} is not translation")
        if (meta.get("source_lang"), meta.get("target_lang")) == (t.target_lang, t.source_lang):
            raise ValueError(
                f"{key}={folder} translates {meta['source_lang']}->{meta['target_lang']}, but this "
                f"recipe asks for {t.source_lang}->{t.target_lang}: swapped source and target?"
            )
    evals = read_user_pairs(cfg.data.eval) if cfg.data.eval else []
    sentences = _read_sentences(cfg.data.predict) if cfg.data.predict else []
    return support, evals, sentences


def compare_methods(
    cfg: RecipeConfig,
    setup: TranslationSetup,
    learner: Any,
    support_pairs: list[tuple[str, str]],
    eval_pairs: list[tuple[str, str]],
    adapted: Params,
) -> dict[str, dict[str, float]]:
    """chrF/BLEU of (0), (a), (b), (c) on ``eval_pairs`` (same sentences, same greedy decoding).

    ``adapted`` is the adapter already adapted from ``setup.meta_params`` (the (c) row when ``adapter.init`` is set,
    else the (a) row), so that init is not adapted twice.
    """
    t, task = cfg.translation, setup.task
    src, tgt = t.source_lang, t.target_lang
    shots = support_pairs[: t.prompt_shots]
    rows = {"(0) prompting": task.score(setup.pretrained, task.encode(eval_pairs, src, tgt, shots))}
    support, batch = task.encode(support_pairs, src, tgt), task.encode(eval_pairs, src, tgt)
    main = "(c) meta-learned + adapt" if cfg.adapter.init else "(a) pretrained + adapt"
    inits: dict[str, Params] = {"(a) pretrained + adapt": setup.pretrained}
    if cfg.adapter.multitask_init:
        inits["(b) multi-task + adapt"] = lora_weights(setup, cfg.adapter.multitask_init)
    inits[main] = setup.meta_params  # adapted already: ``adapted``
    for name, init in inits.items():
        if name == main:
            params = adapted
        else:
            with torch.enable_grad():
                params = learner.adapt(task, init, support)
        rows[name] = task.score(params, batch)
        log.info("%s: chrF %.1f BLEU %.1f", name, rows[name]["chrf"], rows[name]["bleu"])
    return rows


def format_methods(rows: dict[str, dict[str, float]], pair: str, k: int, n_eval: int) -> str:
    """The side-by-side table printed by ``metanlp adapt`` (markdown)."""
    lines = [f"| {pair}, K = {k}, {n_eval} eval pairs | chrF | BLEU |", "|---|---|---|"]
    lines += [f"| {name} | {r['chrf']:.1f} | {r['bleu']:.1f} |" for name, r in rows.items()]
    return "\n".join(lines)


def run(cfg: RecipeConfig) -> dict[str, Any]:
    """Adapt to the user's pairs, save the adapter, translate ``data.predict``, score ``data.eval``."""
    support_pairs, eval_pairs, sentences = check_inputs(cfg)
    t = cfg.translation
    src, tgt = t.source_lang, t.target_lang
    out = prepare_run_dir(cfg, "new_language_pair")
    vocab_texts = [x for p in support_pairs for x in p] + sentences + [s for s, _ in eval_pairs]
    corpora = [f for f in t.pairs if Path(f).is_file()]
    if t.prune_vocab and corpora:
        # a vocabulary of K pairs alone is far too small to write new sentences (measured: chrF 1.7 vs 11.5 en->zu);
        # the pieces of the pair corpora at hand (50+ languages) widen it; adapter.init adds its own kept pieces
        corpus = load_pairs(corpora)
        vocab_texts += [x for pairs in corpus.pairs.values() for p in pairs for x in p]
    keep = read_metadata(cfg.adapter.multitask_init).get("vocab_pruning", {}) if cfg.adapter.multitask_init else {}
    setup = build_translation(cfg, vocab_texts, [src, tgt], keep_ids=keep.get("kept"))
    task = setup.task
    steps = cfg.adapt.steps if cfg.adapt.steps >= 0 else cfg.meta.inner_steps
    lr = cfg.adapt.lr if cfg.adapt.lr >= 0 else cfg.meta.inner_lr
    learner = build_learner(replace(cfg.meta, inner_steps=steps, inner_lr=lr))
    support = task.encode(support_pairs, src, tgt)
    start = time.perf_counter()
    with torch.enable_grad():
        fast = learner.adapt(task, setup.meta_params, support)
    seconds = time.perf_counter() - start
    log.info("adapted to %s->%s on %d pairs in %.0f s (%d steps, lr %g)", src, tgt, len(support_pairs), seconds,
             steps, lr)  # fmt: skip
    metrics: dict[str, Any] = {"adapt_seconds": seconds, "support_pairs": len(support_pairs), "steps": steps, "lr": lr}
    if eval_pairs:
        metrics["methods"] = compare_methods(cfg, setup, learner, support_pairs, eval_pairs, fast)
        metrics["eval_pairs"] = len(eval_pairs)
        metrics["table"] = format_methods(metrics["methods"], f"{src}->{tgt}", len(support_pairs), len(eval_pairs))
    with torch.no_grad():
        for k, p in setup.meta_params.items():
            p.copy_(fast[k])
    translations: list[str] = []
    if sentences:
        start = time.perf_counter()
        translations = task.translate_batch(fast, task.encode([(s, "") for s in sentences], src, tgt))
        metrics["sentences_per_s"] = len(sentences) / (time.perf_counter() - start)
    metadata = {
        "family": "translation",
        "backbone": cfg.model.name,
        "base_model_licence": backbone_licence(cfg.model.name),
        "source_lang": src,
        "target_lang": tgt,
        "languages": {src: language_name(src, t.language_names), tgt: language_name(tgt, t.language_names)},
        "language_names": t.language_names,
        "init": cfg.adapter.init or "pretrained backbone",
        "support_pairs": len(support_pairs),
        "max_length": t.max_length,
        "max_new_tokens": t.max_new_tokens,
        "seed": cfg.run.seed,
        "translations": [{"source": s, "translation": x} for s, x in zip(sentences, translations, strict=True)],
    }
    if cfg.model.name == TINY_TRANSLATOR:
        metadata["tiny_tokenizer_texts"] = setup.tokenizer_texts
    save_translation_adapter(setup, out / "adapter", metadata, recipe_to_yaml(cfg), metrics)
    if sentences:
        tsv = out / "translations.tsv"
        tmp = tsv.with_suffix(".tmp")
        tmp.write_text("".join(f"{s}\t{x}\n" for s, x in zip(sentences, translations, strict=True)), encoding="utf-8")
        tmp.replace(tsv)
    write_json_atomic(out / "metrics.json", metrics)
    return metrics
