"""CLINC150 domain-held-out benchmark: meta-train on 7 domains, evaluate 45-way 1-shot and 5-shot on the other 3.

Each fold holds out three different domains (fold 0 is the protocol of ../../../shared/FINDINGS.md); every fold
meta-trains from scratch with recipes/text_classification/clinc150_benchmark.yaml and scores, on the same episodes, (a)
frozen nearest centroid, (b) LoRA fine-tuned from the pretrained backbone, (c) the meta-learned init fine-tuned the
same way. Writes bench/clinc150/results.json and prints a markdown table.

Run: python bench/clinc150/run.py [--folds 0 1 2] [--data ../shared/data/clinc150] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDS = [
    ["auto_and_commute", "banking", "credit_cards"],
    ["home", "kitchen_and_dining", "meta"],
    ["small_talk", "travel", "utility"],
]


def markdown(records: list[dict]) -> str:
    """One row per (fold, K) with mean ± CI95 accuracy of each method."""
    rows = ["| fold (held-out domains) | K | (a) centroid | (e) logreg | (b) LoRA fine-tune | (d) multi-task | "
            "(c) meta-learned init |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    keys = sorted({(r["fold"], r["k_shot"]) for r in records})
    for fold, k in keys:
        cell = {}
        for r in records:
            if r["fold"] == fold and r["k_shot"] == k and r["metric"] == "accuracy":
                cell[r["method"]] = f"{100 * r['mean']:.2f} ± {100 * r['ci95']:.2f}"
        rows.append(f"| {fold}: {', '.join(FOLDS[fold])} | {k} | {cell.get('centroid', '')} | "
                    f"{cell.get('logreg', '')} | {cell.get('finetune', '')} | {cell.get('multitask', '')} | "
                    f"{cell.get('meta', '')} |")  # fmt: skip
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(  # relative to the working directory, so results files hold no machine's absolute path
        "--data", default=os.path.relpath(ROOT.parent / "shared" / "data" / "clinc150")
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="recipe overrides")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench_clinc150"))
    parser.add_argument("--results", default="", help="results JSON (default bench/clinc150/results.json)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("accelerate").setLevel(logging.WARNING)
    sys.path.insert(0, str(ROOT))
    from metanlp.core.recipe_loading import load_recipe
    from metanlp.core.run_dir import git_commit
    from metanlp.families.text_classification.recipes import meta_train

    records: list[dict] = []
    timings = {}
    for fold in args.folds:
        held_out = "[" + ",".join(FOLDS[fold]) + "]"
        cfg = load_recipe(ROOT / "recipes" / "text_classification" / "clinc150_benchmark.yaml", [
            f"task.dataset={args.data}", f"task.meta_test_groups={held_out}",
            f"run.output_dir={args.out}/fold{fold}", "run.progress=false", *args.overrides])  # fmt: skip
        t0 = time.perf_counter()
        summary = meta_train.run(cfg)
        timings[f"fold{fold}"] = {"seconds": time.perf_counter() - t0, **summary["meta_train"]}
        records += [{**r, "fold": fold} for r in summary["records"]]
        print(markdown(records), flush=True)  # noqa: T201
    results = {
        "benchmark": "clinc150_domain_held_out",
        "date": datetime.date.today().isoformat(),
        "git_commit": git_commit(),
        "device": f"{platform.machine()} cpu",
        "overrides": args.overrides,
        "timings": timings,
        "records": records,
        "table": markdown(records),
    }
    out = Path(args.results) if args.results else Path(__file__).resolve().parent / "results.json"
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")  # noqa: T201


if __name__ == "__main__":
    main()
