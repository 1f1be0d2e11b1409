"""Recipe: meta-train a LoRA init for few-shot text classification (FOMAML by default), then evaluate it.

Run: ``metanlp meta-train recipes/text_classification/text_meta_train.yaml [--set key=value ...]``;
on N GPUs: ``accelerate launch --num_processes N -m metanlp meta-train RECIPE``; on N CPU processes (gloo):
``ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N -m metanlp meta-train RECIPE``
(``accelerate launch --cpu`` starts a single process on one machine, huggingface/accelerate#2741).
Writes ``run.output_dir``/{adapter/, checkpoints/last/, log.jsonl, recipe.yaml, run_info.json, metrics.json}, and
with ``text_classification.multitask_baseline`` also ``multitask_adapter/``: the multi-task transfer baseline (d) at
equal compute (:mod:`metanlp.families.text_classification.multitask`), scored beside the others in ``metrics.json``
and by ``metanlp adapt`` / ``evaluate`` with ``adapter.multitask_init``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from accelerate.utils import is_tensorboard_available
from safetensors.torch import save_file

from metanlp.algorithms.base import adaptation_learner, build_learner
from metanlp.core.checks import check_inputs
from metanlp.core.comparison import adaptation_budget
from metanlp.core.config import RecipeConfig
from metanlp.core.meta_train import meta_train
from metanlp.core.recipe_loading import recipe_to_yaml
from metanlp.core.run_dir import staged_run, start_meta_run
from metanlp.core.saving import save_adapter, write_json_atomic
from metanlp.families.text_classification.data import load_corpus
from metanlp.families.text_classification.multitask import run_multitask_baseline, save_multitask_adapter
from metanlp.families.text_classification.recipes.evaluate import evaluate_split
from metanlp.families.text_classification.setup import build_classification, make_sampler, source_split, task_samplers

log = logging.getLogger(__name__)


def run(cfg: RecipeConfig) -> dict[str, Any]:
    """Meta-train on the meta-train classes, validate on meta-val, save the adapter, evaluate on meta-test."""
    check_inputs(cfg, "meta_train")  # before anything is written (resume: the checkpoint's adapter shape too)
    accelerator = Accelerator(log_with="tensorboard" if is_tensorboard_available() else None,
                              project_dir=cfg.run.output_dir)  # fmt: skip
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        start_meta_run(cfg)
    accelerator.wait_for_everyone()
    setup = build_classification(cfg)
    setup.model.to(accelerator.device)
    corpus, splits = task_samplers(cfg)
    t = cfg.task
    cactus = None
    if t.unlabelled:  # CACTUs pseudo-classes of unlabelled text (metanlp.families.text_classification.unsupervised)
        from metanlp.families.text_classification.unsupervised import cactus_sampler

        with setup.model.disable_adapter():  # cluster the pretrained backbone's embeddings
            encoder = setup.model.get_base_model().encoder
            cactus = cactus_sampler(t, encoder, setup.tokenizer, cfg.run.seed, cfg.model.max_length)
    cactus_only = cactus is not None and not (t.mixture or t.smlmt)  # then task.dataset only gives val/test
    if cactus_only:
        train = cactus
    elif t.mixture or t.n_way_max or t.smlmt:  # several datasets, N varied per episode, SMLMT / CACTUs tasks
        from metanlp.families.text_classification.mixture import mixture_sampler

        train = mixture_sampler(cfg, corpus, splits.train, setup.tokenizer.mask_token or "[MASK]", cactus)
    else:
        train = make_sampler(cfg, corpus, splits.train, "train", t.n_way, t.k_shot, t.q_query)
    val_eps = None
    val_corpus, val_classes = corpus, splits.val
    if cfg.text_classification.val_dataset:  # meta-val on a dataset of its own (leave-one-dataset-out)
        val_corpus = load_corpus(cfg.text_classification.val_dataset, "text_classification.val_dataset")
        pool, query_pool = source_split(val_corpus, "val")
        need = t.k_shot + (0 if query_pool is not None else t.q_query)
        val_classes = sorted(c for c, v in pool.items() if len(v) >= need)
        log.info("meta-val: %d classes of %s (%d with fewer than %d examples left out)", len(val_classes),
                 val_corpus.source, len(pool) - len(val_classes), need)  # fmt: skip
        if len(val_classes) < 2:
            raise ValueError(f"text_classification.val_dataset={cfg.text_classification.val_dataset}: "
                             f"{len(val_classes)} class(es) with >= task.k_shot + task.q_query = {need} examples; "
                             "meta-val needs 2 or more")  # fmt: skip
    if val_classes and cfg.meta.eval_every:
        n_val = min(t.n_way or len(val_classes), len(val_classes))
        val = make_sampler(cfg, val_corpus, val_classes, "val", n_val, t.k_shot, t.q_query)
        val_eps = [val.sample(i) for i in range(cfg.meta.val_episodes)]
    learner = build_learner(cfg.meta, setup.meta_params, adaptation_budget(cfg))  # inner loop: the first steps
    if accelerator.trackers is not None and is_tensorboard_available():
        accelerator.init_trackers("meta_train")
    result = meta_train(setup.task, learner, setup.meta_params, lambda i: train.sample(i), cfg.meta,
                        cfg.run.output_dir, accelerator, val_eps, cfg.run.progress)  # fmt: skip
    accelerator.end_training()
    summary: dict[str, Any] = {"meta_train": asdict(result), "processes": accelerator.num_processes}
    if not accelerator.is_main_process:
        return summary
    metadata = {"family": "text_classification", "backbone": cfg.model.name,
                "hidden_size": setup.task.model.get_base_model().encoder.hidden_size, "labels": [],
                "algorithm": cfg.meta.algorithm, "meta_train_classes": [] if cactus_only else splits.train,
                "n_way": t.n_way, "k_shot": t.k_shot, "data": t.unlabelled if cactus_only else t.dataset,
                "mixture": list(t.mixture), "smlmt": list(t.smlmt),
                "smlmt_fraction": t.smlmt_fraction if t.smlmt or cactus is not None else 0.0,
                "unlabelled": t.unlabelled}  # fmt: skip
    extra = learner.extra_parameters()
    multitask = None
    if cfg.text_classification.multitask_baseline:  # (d) from the same fresh LoRA, on the meta-train examples
        multitask, base = run_multitask_baseline(cfg, setup, corpus, splits.train, result.steps, cactus)
        summary["multitask"] = asdict(base)
    if cfg.eval.episodes > 0:
        eval_learner = adaptation_learner(cfg, setup.meta_params)  # budget adapt.*; extras copied over below
        for k, p in eval_learner.extra_parameters().items():
            p.data.copy_(extra[k].detach())
        summary["records"] = evaluate_split(cfg, setup, eval_learner, corpus, splits.test, multitask)
    with staged_run(cfg, "meta_train", resume=True) as out:  # outputs swapped in together; checkpoints carried over
        save_adapter(setup.model, out / "adapter", metadata, recipe_to_yaml(cfg), summary)
        if extra:
            save_file({k: v.detach().contiguous() for k, v in extra.items()},
                      str(out / "adapter" / "learner.safetensors"))  # fmt: skip
        if multitask is not None:
            save_multitask_adapter(setup.model, multitask, out / "multitask_adapter", metadata,
                                   recipe_to_yaml(cfg), summary)  # fmt: skip
        write_json_atomic(out / "metrics.json", summary)
    log.info("meta-learned adapter written to %s (%.2f episodes/s, peak RSS %.0f MiB)",
             Path(cfg.run.output_dir) / "adapter", result.episodes_per_s, result.peak_rss_mib)  # fmt: skip
    return summary
