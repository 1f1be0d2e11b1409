"""Bench: the accuracy cost and the adaptation time of LoRA on the top L layers only (issue #12), no meta-training.

Protocol: CLINC150 fold 0 held-out domains (auto_and_commute, banking, credit_cards: 45 intents, ``FOLDS[0]`` of
bench/clinc150/run.py) as the test classes. Settings:

- ``45w1s`` / ``45w5s``: every one of the 45 intents, K = 1 / 5 supports per intent from CLINC150's train split,
  drawn with a seed per episode (``EpisodeSampler(seed=--seed).sample(episode)``); queries: the intents' test
  utterances (``--q-query`` per intent, 0 = all 30);
- ``77w5s``: 77 intents drawn (seeded, per episode) from all 150 CLINC150 intents, 5 supports each (385), scored on
  their test utterances: CLINC150 as a proxy for a 77-class intent set (issue target: adaptation <= 20 s on 2 cores).

Methods, each from the pretrained all-MiniLM-L6-v2 + LoRA r=8 on q/k/v with ``B = 0`` (recipe
recipes/text_classification/clinc150_benchmark.yaml, ``model.max_length`` 32), on the same supports and queries:

- ``centroid``: the prototype head on frozen embeddings, no step;
- ``logreg``: scikit-learn logistic regression on the frozen embeddings
  (metanlp.families.text_classification.baselines.logistic_regression_predict);
- ``lora_top1`` / ``lora_top2`` / ``lora_top3``: ``adapter.layers`` = [-1] / [-2,-1] / [-3,-2,-1] with the
  frozen-prefix cache (default ``adapter.prefix_cache_mb``), fine-tuned with ``AdaptBudget()`` (AdamW 3e-3, batch 32,
  10 epochs in [10, 150] steps, cosine, stop_loss 1e-3) via ``metanlp.core.adaptation.inner_loop``;
- ``lora_all``: ``adapter.layers = []`` (all 6 layers; no prefix to cache), same budget.

Seconds per row: ``adapt_s`` = prototype head + optimiser steps on prepared batches (logreg: support + query
embedding and the fit, minus a separate timing of the query embedding: see ``logreg_query_embed_s``);
``prep_s`` = turning the support texts into a batch: tokenisation, and for top-L the one-off fill of the frozen-prefix
cache (the cache is cleared before each row, so this is the cold cost); ``total_s`` = ``prep_s + adapt_s``, what a
user waits from support texts to adapted weights. Query preparation and scoring are timed apart (``query_prep_s``,
``eval_s``). Rows are written to ``results.json`` (via bench.run.write_results, with the 1-minute load average) after
each one; a rerun skips rows already there, so a killed run resumes.

Run: ``PYTHONPATH=. python bench/top_layers/run.py [--episodes 3] [--episodes-77 2] [--threads 2]``;
``--table`` prints the tables of the results so far and exits.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
RECIPE = ROOT / "recipes" / "text_classification" / "clinc150_benchmark.yaml"
HELD_OUT = ("auto_and_commute", "banking", "credit_cards")  # FOLDS[0] of bench/clinc150/run.py
#: setting -> (n_way (0 = all 45 held-out intents), k_shot, class pool: "held_out" or "all")
SETTINGS = {"45w1s": (0, 1, "held_out"), "45w5s": (0, 5, "held_out"), "77w5s": (77, 5, "all")}
#: LoRA method -> recipe overrides
LORA = {
    "lora_top1": ["adapter.layers=[-1]"],
    "lora_top2": ["adapter.layers=[-2,-1]"],
    "lora_top3": ["adapter.layers=[-3,-2,-1]"],
    "lora_all": ["adapter.layers=[]"],
}
METHODS = {"45w1s": ["centroid", "logreg", *LORA], "45w5s": ["centroid", "logreg", *LORA],
           "77w5s": ["centroid", "logreg", "lora_top1", "lora_top2", "lora_all"]}  # fmt: skip
TARGET_77_S = 20.0


def load_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of an earlier run (``[]`` without one)."""
    return json.loads(path.read_text(encoding="utf-8")).get("rows", []) if path.is_file() else []


def _fmt(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    from metanlp.core.metrics import mean_ci95

    if not values:
        return ""
    r = mean_ci95([scale * v for v in values])
    return f"{r['mean']:.{digits}f}" + (f" ± {r['ci95']:.{digits}f}" if r["n"] > 1 else "")


def markdown(rows: list[dict[str, Any]]) -> str:
    """Two tables: accuracy (%) and adaptation seconds per method x setting, mean ± 95% CI over episodes; then the
    cold prefix-fill / total seconds and steps."""
    settings = [s for s in SETTINGS if any(r["setting"] == s for r in rows)]
    methods = [m for m in ["centroid", "logreg", *LORA] if any(r["method"] == m for r in rows)]

    def cell(m: str, s: str, key: str, scale: float = 1.0, digits: int = 1) -> str:
        return _fmt([r[key] for r in rows if r["method"] == m and r["setting"] == s and r[key] is not None],
                    scale, digits)  # fmt: skip

    def n_ep(s: str) -> int:
        return len({r["episode"] for r in rows if r["setting"] == s})

    head = "| method | " + " | ".join(f"{s} acc % ({n_ep(s)} ep)" for s in settings) + " | "
    head += " | ".join(f"{s} adapt s" for s in settings) + " |"
    lines = [head, "|---" * (1 + 2 * len(settings)) + "|"]
    for m in methods:
        accs = [cell(m, s, "accuracy", 100.0) for s in settings]
        secs = [cell(m, s, "adapt_s", 1.0, 2) for s in settings]
        lines.append(f"| {m} | " + " | ".join(accs) + " | " + " | ".join(secs) + " |")
    lines += ["", "| method | " + " | ".join(f"{s} prep s / total s / steps" for s in settings) + " |",
              "|---" * (1 + len(settings)) + "|"]  # fmt: skip
    for m in methods:
        cells = []
        for s in settings:
            if not any(r["method"] == m and r["setting"] == s for r in rows):
                cells.append("")
                continue
            cells.append(f"{cell(m, s, 'prep_s', 1.0, 2)} / {cell(m, s, 'total_s', 1.0, 2)} / "
                         f"{cell(m, s, 'steps', 1.0, 0)}")  # fmt: skip
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "clinc150"), help="CLINC150 folder")
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--methods", nargs="+", default=["centroid", "logreg", *LORA],
                   choices=["centroid", "logreg", *LORA])
    p.add_argument("--episodes", type=int, default=3, help="episodes of 45w1s and 45w5s (default 3)")
    p.add_argument("--episodes-77", type=int, default=2, help="episodes of 77w5s (default 2)")
    p.add_argument("--q-query", type=int, default=0, help="test utterances per intent as queries (0 = all, default)")
    p.add_argument("--seed", type=int, default=0, help="episode and mini-batch seed")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--out", default=str(HERE), help="folder of results.json (default bench/top_layers)")
    p.add_argument("--table", action="store_true", help="print the tables of --out/results.json and exit")
    args = p.parse_args(argv)
    out = Path(args.out) / "results.json"
    sys.path.insert(0, str(ROOT))
    if args.table:
        sys.stdout.write(markdown(load_rows(out)) + "\n")
        return 0
    logging.basicConfig(level=logging.WARNING)
    import torch

    from bench.run import write_results
    from metanlp.core.adaptation import AdaptBudget, inner_loop
    from metanlp.core.metrics import load_metric
    from metanlp.core.recipe_loading import load_recipe
    from metanlp.families.text_classification.baselines import frozen_embeddings, logistic_regression_predict
    from metanlp.families.text_classification.data import EpisodeSampler, load_corpus
    from metanlp.families.text_classification.setup import build_classification

    torch.set_num_threads(args.threads)
    budget = AdaptBudget()
    corpus = load_corpus(args.data)
    pools = {"held_out": corpus.classes_of_groups(list(HELD_OUT)), "all": sorted(set(corpus.labels))}
    assert len(pools["held_out"]) == 45 and len(pools["all"]) == 150, {k: len(v) for k, v in pools.items()}
    train, test = corpus.by_class("train"), corpus.by_class("test")

    wanted = sorted({m for s in args.settings for m in METHODS[s] if m in args.methods})
    lora_needed = [m for m in LORA if m in wanted]
    setups = {}
    t0 = time.perf_counter()
    for m in lora_needed:  # centroid / logreg use the all-layer model's pretrained (B = 0) weights: the plain encoder
        cfg = load_recipe(RECIPE, [f"task.dataset={args.data}", "run.progress=false", f"run.seed={args.seed}",
                                   *LORA[m]])
        setups[m] = build_classification(cfg)
    if "lora_all" not in setups and {"centroid", "logreg"} & set(wanted):
        cfg = load_recipe(RECIPE, [f"task.dataset={args.data}", "run.progress=false", f"run.seed={args.seed}",
                                   *LORA["lora_all"]])  # fmt: skip
        setups["lora_all"] = build_classification(cfg)
    build_s = time.perf_counter() - t0
    for m, st in setups.items():
        lowest = st.task.prefix.start_layer if st.task.prefix is not None else 0
        sys.stdout.write(f"{m}: LoRA tensors {len(st.pretrained)}, frozen prefix below layer {lowest}\n")
    max_length = setups["lora_all"].task.max_length if "lora_all" in setups else 32

    rows = load_rows(out)
    done = {(r["setting"], r["method"], r["episode"], r["q_query"], r["seed"]) for r in rows}
    context = {"benchmark": "top_layers", "held_out_domains": list(HELD_OUT), "q_query": args.q_query,
               "seed": args.seed, "threads": args.threads, "max_length": max_length,
               "backbone": "sentence-transformers/all-MiniLM-L6-v2", "adapter": "LoRA r=8 q,k,v from B=0",
               "budget": {k: v for k, v in vars(budget).items()}, "recipe": str(RECIPE.relative_to(ROOT)),
               "data": "../shared/data/clinc150", "build_seconds": build_s}  # fmt: skip
    for s in args.settings:
        n_way, k_shot, pool_name = SETTINGS[s]
        sampler = EpisodeSampler(train, pools[pool_name], n_way, k_shot, args.q_query, seed=args.seed,
                                 query_pool=test, source="clinc150")  # fmt: skip
        n_episodes = args.episodes_77 if s == "77w5s" else args.episodes
        for i in range(n_episodes):
            ep = sampler.sample(i, rank=12_000_000 + k_shot)  # same rank for every method: same episode
            for m in [m for m in METHODS[s] if m in args.methods]:
                if (s, m, i, args.q_query, args.seed) in done:
                    continue
                st = setups[m if m in LORA else "lora_all"]
                task = st.task
                cache = task.prefix.cache if task.prefix is not None else None
                if cache is not None:
                    cache.clear()  # cold: the prefix fill of this episode's supports is part of prep_s
                t0 = time.perf_counter()
                support = task.tokenize(ep.support_texts, ep.support_labels)
                prep_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                query = task.tokenize(ep.query_texts, ep.query_labels)
                query_prep_s = time.perf_counter() - t0
                steps, support_loss, q_embed_s = 0, None, None
                if m == "logreg":
                    t0 = time.perf_counter()
                    preds = logistic_regression_predict(task, st.pretrained, support, query, seed=args.seed).tolist()
                    whole = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    frozen_embeddings(task, st.pretrained, query)
                    q_embed_s = time.perf_counter() - t0
                    adapt_s = max(whole - q_embed_s, 0.0)
                    t0 = time.perf_counter()
                    refs = query["labels"].tolist()
                    scores = {name: load_metric(metric).compute(predictions=preds, references=refs)[metric]
                              for name, metric in (("accuracy", "accuracy"), ("macro_f1", "f1"))}  # fmt: skip
                    eval_s = q_embed_s
                else:
                    t0 = time.perf_counter()
                    fast = task.init_fast_weights(st.pretrained, support)
                    if m in LORA:
                        info: dict[str, float] = {}
                        fast = inner_loop(task, fast, support, budget, seed=args.seed + i, stats=info)
                        steps = int(info["steps"])
                    adapt_s = time.perf_counter() - t0
                    with torch.no_grad():
                        support_loss = task.loss(fast, support).item()
                    t0 = time.perf_counter()
                    scores = task.score(fast, query)
                    eval_s = time.perf_counter() - t0
                row = {"setting": s, "method": m, "episode": i, "seed": args.seed, "q_query": args.q_query,
                       "n_way": ep.n_way, "k_shot": k_shot, "n_support": len(ep.support_texts),
                       "n_query": len(ep.query_texts), "accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"],
                       "steps": steps, "support_loss": support_loss, "prep_s": prep_s, "adapt_s": adapt_s,
                       "total_s": prep_s + adapt_s, "query_prep_s": query_prep_s, "eval_s": eval_s,
                       "logreg_query_embed_s": q_embed_s,
                       "cached_texts": len(cache) if cache is not None else None,
                       "load_average_1min": round(__import__("os").getloadavg()[0], 2)}  # fmt: skip
                rows.append(row)
                write_results(out.parent, {**context, "target_77w5s_adapt_s": TARGET_77_S, "table": markdown(rows),
                                           "rows": rows})  # fmt: skip
                sys.stdout.write(f"{s} ep{i} {m:>9}: acc {row['accuracy']:.4f} steps {steps:3d} "
                                 f"prep {prep_s:.2f}s adapt {adapt_s:.2f}s eval {eval_s:.2f}s "
                                 f"load {row['load_average_1min']}\n")  # fmt: skip
                sys.stdout.flush()
    sys.stdout.write(markdown(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
