"""Bench: seconds of metanlp's 77-way 5-shot adaptation (the shipped recipe's budget, top-2 LoRA) at 1 and 2 torch
threads, on the episode of ``run.py --setting 77w`` (same supports), for the <= 20 s target of issue #12.

Each thread count adapts the same episode ``--repeats`` times (the frozen-prefix cache emptied before each, so its
fill is counted); the median is reported with the load average. Run on otherwise idle cores:
``PYTHONPATH=. python -m bench.adapt_vs_setfit.time_77w`` (~2 minutes). Writes
``bench/adapt_vs_setfit/time_77w/results.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import torch

from bench.adapt_vs_setfit.run import HERE, RECIPE, ROOT, metanlp_adapt
from bench.run import write_results
from metanlp.core.comparison import adaptation_budget
from metanlp.core.recipe_loading import load_recipe
from metanlp.families.text_classification.data import EpisodeSampler, load_corpus
from metanlp.families.text_classification.setup import build_classification


def main() -> None:
    p = argparse.ArgumentParser(description="77-way 5-shot adaptation seconds at 1 and 2 torch threads")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "clinc150"))
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--q-query", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    cfg = load_recipe(RECIPE, [f"task.dataset={args.data}", f"run.seed={args.seed}", "run.progress=false"])
    budget = adaptation_budget(cfg)
    setup = build_classification(cfg, load_init=False)
    corpus = load_corpus(args.data)
    sampler = EpisodeSampler(corpus.by_class("train"), sorted(set(corpus.labels)), 77, 5, args.q_query,
                             seed=args.seed, query_pool=corpus.by_class("test"), source="clinc150")  # fmt: skip
    ep = sampler.sample(0, rank=12_000_005)  # the episode of run.py --setting 77w
    rows = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        runs = [metanlp_adapt(setup, setup.pretrained, ep, budget, args.seed) for _ in range(args.repeats)]
        rows[str(threads)] = {"adapt_s_median": statistics.median(r["adapt_s"] for r in runs),
                              "adapt_s_all": [r["adapt_s"] for r in runs], "accuracy": runs[0]["accuracy"],
                              "load_average_1min": os.getloadavg()[0]}  # fmt: skip
        sys.stdout.write(f"{threads} thread(s): {rows[str(threads)]['adapt_s_median']:.1f} s, "
                         f"accuracy {100 * runs[0]['accuracy']:.2f}%\n")  # fmt: skip
    config = {"n_support": len(ep.support_texts), "n_query": len(ep.query_texts), "budget": budget.describe(),
              "adapter_layers": list(cfg.adapter.layers), "target_s": 20.0,
              "command": "PYTHONPATH=. python -m bench.adapt_vs_setfit.time_77w"}  # fmt: skip
    path = write_results(HERE / "time_77w", {"config": config, "threads": rows})
    sys.stdout.write(f"wrote {path}\n")


if __name__ == "__main__":
    main()
