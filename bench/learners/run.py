"""Issue 6: every meta-learner against the transfer baselines on CLINC150 with held-out domains (45-way, 1-shot and
5-shot, the same evaluation episodes for every row), and supervised against unsupervised (CACTUs) meta-training.

Rows: (a) frozen nearest centroid and (b) LoRA fine-tuned from the pretrained backbone (no meta-training), then one
row per learner meta-trained on the 7 other domains' labelled intents
(recipes/text_classification/clinc150_benchmark.yaml with ``meta.algorithm`` set), then CACTUs rows: the same learner
meta-trained on the same utterances *without labels* (k-means pseudo-classes, ``task.unlabelled``). Every row
meta-trains in its own process (``python -m metanlp meta-train``), so its meta-training seconds and peak resident
memory are its own; evaluation episodes are drawn from ``(run.seed, rank 1000003, i)`` by every process, i.e. they are
the same for all rows (the baselines run once, in the first row). Accuracy is the mean over episodes with its 95% CI;
timings on a shared machine are noisy.

Run (full size: ~1.5-2 h on 2 otherwise idle CPU cores, estimated from FOMAML's ~10 min per 100 outer steps):
    PYTHONPATH=. python -m bench.learners.run
Smoke run at a tiny size (about 2 minutes; writes elsewhere than bench/learners/results.json):
    PYTHONPATH=. python -m bench.learners.run --results /tmp/learners_smoke --set model.name=tiny-random-bert \
        --set meta.outer_steps=2 --set eval.episodes=1 --set eval.q_query=3 --set task.n_way=5 \
        --set meta.inner_steps=1 --set task.cactus_clusters=[20] --max-unlabelled 600
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.run import ROOT, write_results

HERE = Path(__file__).resolve().parent
RECIPE = ROOT / "recipes" / "text_classification" / "clinc150_benchmark.yaml"
HELD_OUT = ["auto_and_commute", "banking", "credit_cards"]
LEARNERS = ["fomaml", "maml", "reptile", "metasgd", "anil", "protonet"]
#: Extra overrides a learner needs (second-order MAML: attention with a double backward on CPU).
NEEDS = {"maml": ["model.attn_implementation=eager"]}


def write_unlabelled(clinc: Path, out: Path, limit: int = 0) -> Path:
    """The train-split utterances of the meta-train domains, one a line, labels dropped, order shuffled (seed 0)."""
    from metanlp.families.text_classification.data import load_corpus

    corpus = load_corpus(clinc)
    texts = sorted({t for t, g, s in zip(corpus.texts, corpus.groups, corpus.splits, strict=True)
                    if s == "train" and g not in HELD_OUT})  # fmt: skip
    random.Random(0).shuffle(texts)
    texts = texts[:limit] if limit else texts
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return out


def run_row(name: str, overrides: list[str], out: Path) -> dict[str, Any]:
    """Meta-train + evaluate one row in a fresh process; returns its metrics.json plus the wall seconds."""
    shutil.rmtree(out, ignore_errors=True)  # a leftover checkpoint would be resumed and fake the timing
    sets = [a for s in [*overrides, f"run.output_dir={out}", "run.progress=false"] for a in ("--set", s)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "metanlp", "meta-train", str(RECIPE), *sets], cwd=ROOT, env=env)
    if proc.returncode:
        raise SystemExit(f"row {name} failed (exit status {proc.returncode}); its output is in {out}")
    return {**json.loads((out / "metrics.json").read_text(encoding="utf-8")), "wall_s": time.perf_counter() - t0}


def table(rows: dict[str, dict[str, Any]]) -> str:
    """Markdown: accuracy ± CI95 per K, meta-training seconds, peak RSS, episodes/s, final meta-train query loss."""
    ks = sorted({r["k_shot"] for row in rows.values() for r in row["records"]})
    head = " | ".join(f"{k}-shot acc (%)" for k in ks)
    lines = [f"| method | {head} | meta-train s | peak RSS MiB | episodes/s | final query loss |",
             "|---" * (len(ks) + 5) + "|"]  # fmt: skip
    first = next(iter(rows.values()))
    for method, label in (("centroid", "(a) frozen centroid"), ("finetune", "(b) LoRA fine-tune, no meta-training")):
        cells = [_cell(first["records"], method, k) for k in ks]
        lines.append(f"| {label} | {' | '.join(cells)} | - | - | - | - |")
    for name, row in rows.items():
        m = row["meta_train"]
        cells = [_cell(row["records"], "meta", k) for k in ks]
        lines.append(f"| {name} | {' | '.join(cells)} | {m['seconds']:.1f} | {m['peak_rss_mib']:.0f} | "
                     f"{m['episodes_per_s']:.2f} | {m['final_query_loss']:.3f} |")  # fmt: skip
    lines.append(
        "\nfinal query loss: mean meta-training query loss of the last 10 outer steps, after adaptation "
        "(Reptile: before adaptation, as it trains on the query set; metanlp/algorithms/reptile.py)."
    )
    return "\n".join(lines)


def _cell(records: list[dict[str, Any]], method: str, k: int) -> str:
    for r in records:
        if r["method"] == method and r["metric"] == "accuracy" and r["k_shot"] == k:
            return f"{100 * r['mean']:.2f} ± {100 * r['ci95']:.2f}"
    return "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--learners", nargs="+", default=LEARNERS, choices=LEARNERS, help="supervised rows")
    parser.add_argument("--unsupervised", nargs="*", default=["fomaml", "protonet"], choices=LEARNERS,
                        help="learners that also get a CACTUs row (meta-trained without labels)")  # fmt: skip
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "clinc150"), help="CLINC150 folder")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="recipe override, every row")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench_learners"), help="run folders")
    parser.add_argument("--results", default=str(HERE), help="folder for results.json")
    parser.add_argument("--max-unlabelled", type=int, default=0, help="cap on CACTUs texts (0 = all, ~10.5k)")
    args = parser.parse_args()
    out = Path(args.out)
    data = os.path.relpath(args.data, ROOT)  # rows run with cwd=ROOT; results.json keeps no machine paths
    base = [f"task.dataset={data}", f"task.meta_test_groups=[{','.join(HELD_OUT)}]", "eval.k_shots=[1,5]",
            "eval.n_way=0"]  # fmt: skip
    plan = [(name, [f"meta.algorithm={name}", *NEEDS.get(name, [])]) for name in args.learners]
    if args.unsupervised:
        pile = write_unlabelled(Path(args.data), out / "clinc150_meta_train_unlabelled.txt", args.max_unlabelled)
        cactus = [f"task.unlabelled={pile}", "task.cactus_partitions=5", "task.cactus_clusters=[100,150]"]
        plan += [(f"{n} (CACTUs, no labels)", [f"meta.algorithm={n}", *NEEDS.get(n, []), *cactus])
                 for n in args.unsupervised]  # fmt: skip
    rows: dict[str, dict[str, Any]] = {}
    config = {"recipe": str(RECIPE.relative_to(ROOT)), "held_out_domains": HELD_OUT, "overrides": args.overrides,
              "unlabelled_texts": args.max_unlabelled or "all"}  # fmt: skip
    for i, (name, sets) in enumerate(plan):
        methods = [] if i == 0 else ["eval.methods=[meta]"]  # baselines once: the episodes are the same
        rows[name] = run_row(name, [*base, *sets, *args.overrides, *methods], out / f"row{i}")
        print(table(rows), flush=True)  # noqa: T201
        # written after every row, so a long run interrupted late still leaves the rows it finished
        path = write_results(args.results, {"config": config, "rows": rows, "table": table(rows)})
    print(f"wrote {path}")  # noqa: T201


if __name__ == "__main__":
    main()
