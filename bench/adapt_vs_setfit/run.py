"""Bench: adapting to a new many-way 5-shot task, metanlp vs SetFit, on the same backbone, supports and queries.

Tasks (``--setting``):

- ``45w``: the 45 intents of CLINC150's held-out domains auto_and_commute, banking and credit_cards (the meta-test
  split of ``recipes/text_classification/clinc150_benchmark.yaml``);
- ``77w``: 77 intents drawn (seeded) from all 150 CLINC150 intents: 385 supports at K = 5, a proxy for the 77-class
  intent set of issues #12/#13 that the project does not have.

K supports per intent from CLINC150's train split, ``--q-query`` test utterances per intent (0 = all 30) as queries;
the same episode (seeded) for every method.

- ``metanlp``: what ``metanlp adapt`` runs with the shipped recipe: prototype head + the recipe's adaptation budget
  (``metanlp.core.comparison.adaptation_budget``: AdamW mini-batches, ``AdaptBudget`` defaults) on LoRA on the top 2
  layers (``adapter.layers``, the frozen layers below cached) from the pretrained backbone (LoRA ``B = 0``); also
  from a meta-learned init when one exists (``--init``; it must be a MiniLM ``metanlp meta-train`` output with the
  same ``adapter.layers``).
- ``setfit``: SetFit 1.2.0 (Tunstall et al. 2022, arXiv:2209.11055) on the same all-MiniLM-L6-v2 folder
  (``metanlp.families.text_classification.backbone.resolve_model_path``): contrastive fine-tuning of the whole body,
  1 epoch, ``--setfit-iterations`` pairs per example (default 5), batch 16, then its logistic-regression head.

Adaptation seconds start from the raw support texts (tokenisation included) with the backbone already loaded;
prediction seconds cover every query; one torch thread for both by default.
Run: ``PYTHONPATH=. python bench/run.py adapt_vs_setfit`` (~4 minutes on
2 busy cores). Needs ``pip install -e '.[bench]'`` (setfit==1.2.0).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench.run import ROOT, write_results
from metanlp.core.adaptation import AdaptBudget, adapt
from metanlp.core.comparison import adaptation_budget
from metanlp.core.metrics import load_metric
from metanlp.core.recipe_loading import load_recipe
from metanlp.families.text_classification.adapter import lora_parameters
from metanlp.families.text_classification.backbone import resolve_model_path
from metanlp.families.text_classification.data import Episode, EpisodeSampler, load_corpus
from metanlp.families.text_classification.setup import (
    ClassificationSetup,
    build_classification,
    load_meta_init,
    make_sampler,
    task_samplers,
)

HERE = Path(__file__).resolve().parent
RECIPE = ROOT / "recipes" / "text_classification" / "clinc150_benchmark.yaml"
DEFAULT_INIT = ROOT / "data" / "examples" / "icd10_meta_init"
BACKBONE = "sentence-transformers/all-MiniLM-L6-v2"


def accuracy(preds: list[int], refs: list[int]) -> float:
    """Accuracy in [0, 1] (``evaluate``'s metric, as metanlp's evaluation)."""
    return float(load_metric("accuracy").compute(predictions=preds, references=refs)["accuracy"])


def metanlp_adapt(setup: ClassificationSetup, start: dict[str, torch.Tensor], ep: Episode, budget: AdaptBudget,
                  seed: int) -> dict[str, Any]:  # fmt: skip
    """Adapt from ``start`` (LoRA weights) to the episode's supports with ``budget``; score every query.

    The frozen-prefix cache is emptied first, so ``adapt_s`` includes computing the supports' frozen layers once.
    """
    task = setup.task
    if task.prefix is not None:
        task.prefix.cache.clear()
    t0 = time.perf_counter()
    support = task.tokenize(ep.support_texts, ep.support_labels)
    fast = adapt(task, start, support, budget, seed)
    t1 = time.perf_counter()
    preds = task.predict(fast, task.tokenize(ep.query_texts)).tolist()
    t2 = time.perf_counter()
    return {"adapt_s": t1 - t0, "predict_s": t2 - t1, "accuracy": accuracy(preds, ep.query_labels)}


def setfit_adapt(ep: Episode, iterations: int, max_length: int, seed: int) -> dict[str, Any]:
    """SetFit on the same backbone folder: load, contrastive fine-tuning + logistic regression, predict."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    t_load = time.perf_counter()
    model = SetFitModel.from_pretrained(resolve_model_path(BACKBONE))
    t0 = time.perf_counter()
    train = Dataset.from_dict({"text": ep.support_texts, "label": ep.support_labels})
    with tempfile.TemporaryDirectory() as scratch:  # SetFit's Trainer writes checkpoints to output_dir otherwise
        args = TrainingArguments(batch_size=16, num_epochs=1, num_iterations=iterations, max_length=max_length,
                                 seed=seed, report_to="none", show_progress_bar=False, output_dir=scratch,
                                 save_strategy="no", logging_strategy="no")  # fmt: skip
        Trainer(model=model, args=args, train_dataset=train).train()
    t1 = time.perf_counter()
    preds = [int(p) for p in model.predict(ep.query_texts, batch_size=256, show_progress_bar=False)]
    t2 = time.perf_counter()
    return {
        "adapt_s": t1 - t0,
        "predict_s": t2 - t1,
        "load_s": t0 - t_load,
        "accuracy": accuracy(preds, ep.query_labels),
    }


def main() -> None:
    p = argparse.ArgumentParser(description="adaptation to a new many-way 5-shot task: metanlp vs SetFit")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "clinc150"), help="CLINC150 folder")
    p.add_argument("--setting", choices=["45w", "77w"], default="45w", help="45 held-out intents or 77 of all 150")
    p.add_argument("--q-query", type=int, default=0, help="test utterances per intent as queries (0 = all 30)")
    p.add_argument("--out", default=str(HERE), help="folder of results.json (default bench/adapt_vs_setfit)")
    p.add_argument("--init", default=str(DEFAULT_INIT), help="meta-learned adapter folder (skipped when absent)")
    p.add_argument("--k-shot", type=int, default=5)
    p.add_argument("--episodes", type=int, default=1, help="held-out episodes (different supports), default 1")
    p.add_argument("--setfit-iterations", type=int, default=5, help="SetFit num_iterations (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads for both (default 1: the CPU is shared)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()

    cfg = load_recipe(RECIPE, [f"task.dataset={args.data}", f"run.seed={args.seed}", "run.progress=false"])
    budget = adaptation_budget(cfg)
    t_load = time.perf_counter()
    setup = build_classification(cfg, load_init=False)
    load_s = time.perf_counter() - t_load
    if args.setting == "45w":
        corpus, splits = task_samplers(cfg)
        sampler = make_sampler(cfg, corpus, splits.test, "test", len(splits.test), args.k_shot, args.q_query)
        episodes = [sampler.sample(i, rank=1_000_003) for i in range(args.episodes)]
    else:  # 77 of all 150 intents: supports from train, queries from test (as bench/top_layers' 77w5s)
        corpus = load_corpus(args.data)
        sampler = EpisodeSampler(corpus.by_class("train"), sorted(set(corpus.labels)), 77, args.k_shot, args.q_query,
                                 seed=args.seed, query_pool=corpus.by_class("test"), source="clinc150")  # fmt: skip
        episodes = [sampler.sample(i, rank=12_000_000 + args.k_shot) for i in range(args.episodes)]
    starts = {"metanlp_pretrained": setup.pretrained}
    if Path(args.init).is_dir():
        load_meta_init(setup.model, args.init, BACKBONE)
        starts["metanlp_meta_init"] = {k: v.detach().clone() for k, v in lora_parameters(setup.model).items()}
    else:
        sys.stdout.write(f"no meta-learned init at {args.init}: metanlp runs from the pretrained LoRA only\n")

    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in [*starts, "setfit"]}
    warm = AdaptBudget(steps=1, min_steps=1)  # warm-up (first-call allocations), not reported
    metanlp_adapt(setup, setup.pretrained, episodes[0], warm, args.seed)
    for ep in episodes:
        for name, start in starts.items():
            runs[name].append(metanlp_adapt(setup, start, ep, budget, args.seed))
        runs["setfit"].append(setfit_adapt(ep, args.setfit_iterations, cfg.model.max_length, args.seed))

    def mean(name: str, key: str) -> float:
        return sum(r[key] for r in runs[name]) / len(runs[name])

    summary = {n: {k: mean(n, k) for k in runs[n][0]} for n in runs}
    summary["metanlp_pretrained"]["load_s"] = load_s
    ratios = {f"adapt_speedup_{n}_over_setfit": summary["setfit"]["adapt_s"] / summary[n]["adapt_s"] for n in starts}
    ratios.update({f"accuracy_{n}_minus_setfit": summary[n]["accuracy"] - summary["setfit"]["accuracy"]
                   for n in starts})  # fmt: skip
    ep0 = episodes[0]
    lines = [f"{ep0.n_way}-way {args.k_shot}-shot, {len(ep0.query_texts)} queries, {args.episodes} episode(s)",
             f"{'method':<20} {'adapt s':>8} {'predict s':>9} {'accuracy':>8}"]  # fmt: skip
    for n, s in summary.items():
        lines.append(f"{n:<20} {s['adapt_s']:8.2f} {s['predict_s']:9.2f} {100 * s['accuracy']:7.2f}%")
    lines += [f"{k}: {v:.3f}" for k, v in ratios.items()]
    sys.stdout.write("\n".join(lines) + "\n")
    config = {**{k: v for k, v in vars(args).items()}, "n_way": ep0.n_way, "queries": len(ep0.query_texts),
              "held_out_domains": cfg.task.meta_test_groups if args.setting == "45w" else "77 of all 150 intents",
              "metanlp_budget": budget.describe(), "adapter_layers": list(cfg.adapter.layers),
              "max_length": cfg.model.max_length, "backbone": BACKBONE, "setfit_batch_size": 16,
              "setfit_epochs": 1, "command": "PYTHONPATH=. python bench/run.py adapt_vs_setfit",
              "seconds": round(time.perf_counter() - t_start, 1)}  # fmt: skip
    path = write_results(Path(args.out), {"config": config, "methods": summary, "per_episode": runs, "ratios": ratios},
                         packages=("setfit", "sentence-transformers"))  # fmt: skip
    sys.stdout.write(f"wrote {path}\n")


if __name__ == "__main__":
    main()
