"""Recipe: meta-train a LoRA init for few-shot translation (FOMAML over language-pair tasks).

Run: ``metanlp meta-train recipes/translation/translation_meta_train.yaml [--set key=value ...]``.
Each task is one directed language pair of the meta-train split (held-out languages never appear, in either
direction); the support set is ``task.k_shot`` pairs and the query set ``task.q_query`` further pairs. The inner loop
is FOMAML's ``adapt`` (``meta.inner_steps`` SGD steps at ``meta.inner_lr``): the same procedure that
``recipes/translation/new_language_pair.yaml`` runs at adaptation time. The outer loop is
:func:`metanlp.core.meta_train.meta_train`.
Writes ``run.output_dir``/{adapter/, checkpoints/last/, log.jsonl, recipe.yaml, run_info.json, metrics.json}, and
with ``translation.multitask_baseline`` also ``multitask_adapter/``: the multi-task transfer baseline (b) at equal
compute (:mod:`metanlp.core.multitask`), for ``recipes/translation/new_language_pair.yaml``'s side-by-side scores.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

import torch
from accelerate import Accelerator

from metanlp.algorithms import build_learner
from metanlp.core.checks import check_inputs
from metanlp.core.comparison import adaptation_budget
from metanlp.core.config import RecipeConfig
from metanlp.core.meta_train import meta_train
from metanlp.core.multitask import equal_compute_passes, multitask_train
from metanlp.core.recipe_loading import recipe_to_yaml
from metanlp.core.run_dir import staged_run, start_meta_run
from metanlp.core.saving import write_json_atomic
from metanlp.families.translation.adapter import build_translation, save_translation_adapter
from metanlp.families.translation.backbone import TINY_TRANSLATOR, backbone_licence
from metanlp.families.translation.pairs import PairEpisodeSampler, load_pairs, split_pairs

log = logging.getLogger(__name__)


def run(cfg: RecipeConfig) -> dict[str, Any]:
    """Meta-train on the meta-train language pairs and save the meta-learned LoRA init as ``adapter/``."""
    if cfg.task.family != "translation":
        raise ValueError(f"task.family={cfg.task.family!r}: this recipe needs task.family=translation")
    check_inputs(cfg, "meta_train")  # before anything is written (resume: the checkpoint's adapter shape too)
    accelerator = Accelerator()
    if accelerator.is_main_process:
        start_meta_run(cfg)
    accelerator.wait_for_everyone()
    t = cfg.translation
    corpus = load_pairs(t.pairs, t.max_chars)
    splits = split_pairs(corpus, t.val_languages, t.test_languages, cfg.task.k_shot + cfg.task.q_query)
    train_langs = sorted({lang for task in splits.train for lang in task})
    texts = [x for key, pairs in corpus.pairs.items() if set(key) <= set(train_langs) for p in pairs for x in p]
    setup = build_translation(cfg, texts, train_langs)
    setup.model.to(accelerator.device)
    sampler = PairEpisodeSampler(corpus, splits.train, cfg.task.k_shot, cfg.task.q_query, seed=cfg.run.seed,
                                 alpha=t.pair_alpha)  # fmt: skip
    learner = build_learner(cfg.meta, budget=adaptation_budget(cfg))  # inner loop: the first steps of adapt.*
    val_eps = None
    if splits.val and cfg.meta.eval_every:  # meta-val language pairs: adapt, translate the query set, chrF
        val = PairEpisodeSampler(corpus, splits.val, cfg.task.k_shot, cfg.task.q_query, seed=cfg.run.seed + 1)
        val_eps = val.round_robin(cfg.meta.val_episodes)  # every meta-val direction alike
    log.info("meta-training on %d directed pairs (%d languages; pair_alpha %.2f, largest pair drawn %.1f%%); "
             "held out: %s", len(splits.train), len(train_langs), t.pair_alpha, 100 * sampler.probabilities.max(),
             sorted(set(t.val_languages) | set(t.test_languages)))  # fmt: skip
    result = meta_train(setup.task, learner, setup.meta_params, lambda i: sampler.sample(i), cfg.meta,
                        cfg.run.output_dir, accelerator, val_eps, cfg.run.progress)  # fmt: skip
    summary: dict[str, Any] = {"meta_train": asdict(result), "processes": accelerator.num_processes}
    if not accelerator.is_main_process:
        return summary
    metadata = {
        "family": "translation",
        "backbone": cfg.model.name,
        "base_model_licence": backbone_licence(cfg.model.name),
        "algorithm": cfg.meta.algorithm,
        "meta_train_pairs": [f"{a}->{b}" for a, b in splits.train],
        "held_out_languages": sorted(set(t.val_languages) | set(t.test_languages)),
        "pair_alpha": t.pair_alpha,
        "k_shot": cfg.task.k_shot,
        "inner_steps": cfg.meta.inner_steps,
        "inner_lr": cfg.meta.inner_lr,
        "max_length": t.max_length,
        "max_new_tokens": t.max_new_tokens,
        "language_names": t.language_names,
        "seed": cfg.run.seed,
    }
    if cfg.model.name == TINY_TRANSLATOR:
        metadata["tiny_tokenizer_texts"] = setup.tokenizer_texts
    with staged_run(cfg, "translation_meta_train", resume=True) as out:  # swapped in together at the end
        save_translation_adapter(setup, out / "adapter", metadata, recipe_to_yaml(cfg), summary)
        log.info("meta-learned translation init written to %s (%.3f episodes/s)", out / "adapter",
                 result.episodes_per_s)  # fmt: skip
        if t.multitask_baseline:
            with torch.no_grad():  # (b) starts where meta-training started: the pretrained backbone's fresh LoRA
                for name, p in setup.meta_params.items():
                    p.copy_(setup.pretrained[name])
            passes = equal_compute_passes(cfg.meta, result.steps)
            base = multitask_train(setup.task, setup.meta_params, lambda i: sampler.sample(10**7 + i), passes,
                                   cfg.meta.outer_lr, cfg.run.progress, cfg.meta.micro_batch)  # fmt: skip
            summary["multitask"] = asdict(base)
            save_translation_adapter(setup, out / "multitask_adapter", {**metadata, "algorithm": "multitask"},
                                     recipe_to_yaml(cfg), summary)  # fmt: skip
        write_json_atomic(out / "metrics.json", summary)
    return summary
