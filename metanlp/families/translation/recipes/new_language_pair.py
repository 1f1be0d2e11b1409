"""Recipe: a translation adapter for a new language pair from a few sentence pairs.

Run: ``metanlp adapt recipes/translation/new_language_pair.yaml --set data.support=pairs.tsv
--set translation.source_lang=en --set translation.target_lang=zu [--set data.predict=sentences.txt]
[--set data.eval=held_out.tsv]``.
Starts from the meta-learned init in ``adapter.init`` (or the pretrained backbone when empty), adapts with the
learner's inner loop (``adapt.steps`` / ``adapt.lr``; -1 = the ``meta.*`` values, the procedure used at
meta-training), and writes ``run.output_dir/adapter/`` (stock peft + ``metanlp.json``), ``translations.tsv`` for
``data.predict`` and ``metrics.json``. With ``data.eval`` it scores, on the same sentences with the same greedy
decoding, side by side: (0) in-context prompting with ``translation.prompt_shots`` support pairs, no training;
(a) LoRA adapted from the pretrained backbone; (b) the multi-task transfer adapter ``adapter.multitask_init`` adapted
the same way (when given); (c) the meta-learned ``adapter.init`` adapted the same way (when given). With
``translation.prompt_retrieval: bm25`` (the default) every row is also read with a retrieval prompt: per eval
sentence, the ``prompt_shots`` support pairs most similar to it by BM25 (``prompting_bm25``, ``finetune_bm25`` ...;
:mod:`metanlp.families.translation.prompt_retrieval`). The comparison goes to ``metrics.json`` and to the adapter's
``metanlp.json`` (``comparison``), from which the model card's table is built.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from metanlp.algorithms.base import adaptation_learner
from metanlp.core.checks import check_inputs as check_core_inputs
from metanlp.core.comparison import LETTERS, Method, adaptation_budget, compare, standard_methods
from metanlp.core.config import RecipeConfig
from metanlp.core.files import read_metadata, write_text_atomic
from metanlp.core.inner_loop import copy_into
from metanlp.core.protocols import Params
from metanlp.core.readers import read_texts
from metanlp.core.recipe_loading import recipe_to_yaml
from metanlp.core.run_dir import staged_run
from metanlp.core.saving import write_json_atomic
from metanlp.families.translation.adapter import (
    TranslationSetup,
    build_translation,
    lora_weights,
    save_translation_adapter,
)
from metanlp.families.translation.backbone import TINY_TRANSLATOR, backbone_licence
from metanlp.families.translation.pairs import PairEpisode, language_name, load_pairs, read_user_pairs
from metanlp.families.translation.prompt_retrieval import prompt_examples

log = logging.getLogger(__name__)


#: Suffix of the rows read with the BM25 retrieval prompt (``prompting_bm25``, ``finetune_bm25`` ...).
BM25_READ = "_bm25"
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
    sentences = read_texts(cfg.data.predict, "data.predict") if cfg.data.predict else []
    return support, evals, sentences


def compare_methods(
    cfg: RecipeConfig,
    setup: TranslationSetup,
    learner: Any,
    support_pairs: list[tuple[str, str]],
    eval_pairs: list[tuple[str, str]],
    adapted: Params,
) -> dict[str, dict[str, float]]:
    """chrF/BLEU (sacrebleu, 0-100) of every method on ``eval_pairs`` with the one comparison engine (same sentences,
    same greedy decoding): ``prompting`` (the pretrained backbone read with the first ``translation.prompt_shots``
    support pairs in the prompt), ``finetune``, ``multitask`` (when ``adapter.multitask_init``) and ``meta`` (when
    ``adapter.init``), the adapted ones read with a zero-shot prompt.

    With ``translation.prompt_retrieval: bm25`` and ``prompt_shots > 0`` each method is also read with, per eval
    sentence, the ``prompt_shots`` support pairs most similar to its source by BM25 (Agrawal et al. 2023, "In-context
    Examples Selection for Machine Translation"): rows ``prompting_bm25``, ``finetune_bm25`` ... after each method's
    own row, so that each method's best prompt can be read off.

    ``adapted`` is the adapter already adapted from ``setup.meta_params`` (``meta`` when ``adapter.init`` is set,
    else ``finetune``), so that init is not adapted twice.

    Returns:
        ``{row: {"chrf": float, "bleu": float}}`` in table order (what each row's prompt is: :func:`row_prompts`).
    """
    t, task = cfg.translation, setup.task
    src, tgt = t.source_lang, t.target_lang
    episode = PairEpisode(src, tgt, support_pairs, eval_pairs)
    zero_shot = lambda ep: task.encode(ep.query, src, tgt)  # noqa: E731
    prompted = lambda ep: task.encode(ep.query, src, tgt, ep.support[: t.prompt_shots])  # noqa: E731
    retrieved = lambda ep: task.encode(  # noqa: E731
        ep.query, src, tgt, per_query_shots=prompt_examples(ep.support, ep.query, t.prompt_shots, "bm25")
    )
    extra = {BM25_READ: retrieved} if t.prompt_retrieval == "bm25" and t.prompt_shots > 0 else {}
    budget = adaptation_budget(cfg)
    names = ["finetune"] + (["multitask"] if cfg.adapter.multitask_init else [])
    names += ["meta"] if cfg.adapter.init else []
    multitask = lora_weights(setup, cfg.adapter.multitask_init) if cfg.adapter.multitask_init else None
    methods = [Method("prompting", setup.pretrained, reads={"": prompted, **extra})]
    methods += standard_methods(names, setup.pretrained, budget, setup.meta_params, learner, multitask,
                                seed=cfg.run.seed)  # fmt: skip
    for m in methods[1:]:
        m.reads = {"": zero_shot, **extra}
        if m.name == ("meta" if cfg.adapter.init else "finetune"):
            m.adapt = lambda *_: adapted  # adapted already
    with torch.enable_grad():
        results = compare(task, [episode], methods, cfg.run.progress)
    rows = {name: {k: v[0] for k, v in r.items() if k != "seconds"} for name, r in results.items()}
    for name, r in rows.items():
        log.info("%s: chrF %.1f BLEU %.1f", name, r["chrf"], r["bleu"])
    return rows


def row_prompts(rows: Iterable[str], shots: int) -> dict[str, str]:
    """What the prompt of each row of :func:`compare_methods` holds, in words (``{row: description}``); ``shots``:
    examples per prompt (``translation.prompt_shots``, at most the number of support pairs)."""

    def what(name: str) -> str:
        if shots > 0 and name.endswith(BM25_READ):
            return f"{shots} pairs by BM25"
        return f"first {shots} pairs" if shots > 0 and name == "prompting" else "zero-shot"

    return {name: what(name) for name in rows}


def format_methods(
    rows: dict[str, dict[str, float]], pair: str, k: int, n_eval: int, prompts: dict[str, str] | None = None
) -> str:
    """The side-by-side table printed by ``metanlp adapt`` (markdown; README letters beside the method names, a
    ``prompt`` column when ``prompts`` (:func:`row_prompts`) is given)."""
    prompts = prompts or {}
    col = " prompt |" if prompts else ""
    lines = [f"| {pair}, K = {k}, {n_eval} eval pairs |{col} chrF | BLEU |", "|---|" + "---|" * (2 + bool(prompts))]
    for name, r in rows.items():
        letter = LETTERS.get(name.removesuffix(BM25_READ), "")
        cell = f" {prompts.get(name, '')} |" if prompts else ""
        lines.append(f"| {letter} {name} |{cell} {r['chrf']:.1f} | {r['bleu']:.1f} |")
    return "\n".join(lines)


def run(cfg: RecipeConfig) -> dict[str, Any]:
    """Adapt to the user's pairs, save the adapter, translate ``data.predict``, score ``data.eval``."""
    check_core_inputs(cfg, "adapt")
    support_pairs, eval_pairs, sentences = check_inputs(cfg)
    t = cfg.translation
    src, tgt = t.source_lang, t.target_lang
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
    budget = adaptation_budget(cfg)
    learner = adaptation_learner(cfg, setup.meta_params)
    support = task.with_states(task.encode(support_pairs, src, tgt))  # frozen-prefix states with adapter.layers
    start = time.perf_counter()
    with torch.enable_grad():
        fast = learner.adapt(task, setup.meta_params, support)
    seconds = time.perf_counter() - start
    log.info("adapted to %s->%s on %d pairs in %.0f s (%s)", src, tgt, len(support_pairs), seconds,
             budget.describe())  # fmt: skip
    metrics: dict[str, Any] = {"adapt_seconds": seconds, "support_pairs": len(support_pairs),
                               "adapt": budget.describe()}  # fmt: skip
    comparison: dict[str, Any] = {}
    if eval_pairs:
        rows = compare_methods(cfg, setup, learner, support_pairs, eval_pairs, fast)
        prompts = row_prompts(rows, min(t.prompt_shots, len(support_pairs)))
        comparison = {"pair": f"{src}->{tgt}", "k_shot": len(support_pairs), "eval_pairs": len(eval_pairs),
                      "prompt_shots": t.prompt_shots, "prompt_retrieval": t.prompt_retrieval,
                      "methods": rows, "prompts": prompts}  # fmt: skip
        metrics.update(methods=rows, prompts=prompts, eval_pairs=len(eval_pairs), prompt_shots=t.prompt_shots)
        metrics["table"] = format_methods(rows, f"{src}->{tgt}", len(support_pairs), len(eval_pairs), prompts)
    copy_into(setup.meta_params, fast)
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
        "k_shot": len(support_pairs),
        "max_length": t.max_length,
        "max_new_tokens": t.max_new_tokens,
        "seed": cfg.run.seed,
        "translations": [{"source": s, "translation": x} for s, x in zip(sentences, translations, strict=True)],
    }
    if comparison:  # the pair, K and chrF/BLEU of every method (+ read), for the model card
        metadata["comparison"] = comparison
    if cfg.model.name == TINY_TRANSLATOR:
        metadata["tiny_tokenizer_texts"] = setup.tokenizer_texts
    with staged_run(cfg, "new_language_pair") as out:  # replaces run.output_dir only when complete
        save_translation_adapter(setup, out / "adapter", metadata, recipe_to_yaml(cfg), metrics)
        if sentences:
            lines = "".join(f"{s}\t{x}\n" for s, x in zip(sentences, translations, strict=True))
            write_text_atomic(out / "translations.tsv", lines)
        write_json_atomic(out / "metrics.json", metrics)
    return metrics
