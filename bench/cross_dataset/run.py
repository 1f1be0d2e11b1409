"""Leave-one-dataset-out benchmark: meta-train on every other dataset (+ SMLMT cloze tasks), adapt all-way to the
held-out one at K = 5 and 10, and score every method on all of its remaining examples.

For each held-out dataset D, ``recipes/text_classification/cross_dataset_meta_train.yaml`` runs with D as
``task.dataset`` held out whole (``task.test_fraction: 1``: no class of D is meta-trained on), the other datasets as
``task.mixture`` (square-root sampling, N in [10, 30], 5-shot 5-query episodes), SMLMT cloze tasks over the other
datasets' texts (half the episodes) and the multi-task baseline over the same mixture at equal compute. Then, on
``--episodes`` sampled support sets of D per K (all-way; CLINC150: supports from its train split, queries its
whole test split; the others: every example not in the support set), the methods of the adaptation issue: (a)
frozen centroid, (e) logistic regression on frozen embeddings, (b) LoRA fine-tune from the pretrained backbone, (d)
multi-task transfer, (c) the meta-learned init, all adapted with the recipe's budget. Results are written after each
dataset to ``bench/cross_dataset/results.json`` (a dataset already there is skipped, so a killed run continues;
meta-training checkpoints every 10 outer steps and resumes too) with a markdown table.

FOLDOC subjects (``VAL_DATASET``) is the meta-val dataset: in no test split's meta-training, and
``--held-out foldoc_subjects`` scores a variant on it before any test split sees it. ``--target-text`` adds the
held-out dataset's texts, without labels, to the SMLMT cloze tasks; ``--target-cactus`` makes the same texts
``task.unlabelled``, whose CACTUs k-means partitions (``task.cactus_clusters``) then share the self-supervised
episodes; ``--runs DIR --results FILE`` keep a variant's run folders and results beside the default ones. No split
uses the shipped recipe's own CACTUs file (ICD-10 texts), so that the table's runs stay as measured.

Run: ``python bench/cross_dataset/run.py [--held-out brown_genres wordnet_supersenses icd10_blocks clinc150]
[--episodes 3] [--set meta.outer_steps=60 ...]`` (~15-30 minutes per dataset on 2 cores with bfloat16, 3-4x that in
float32).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
RECIPE = ROOT / "recipes" / "text_classification" / "cross_dataset_meta_train.yaml"
#: every labelled dataset: name -> path (relative to the repo root)
DATASETS = {
    "brown_genres": "data/brown_genres/brown_genres.jsonl",
    "wordnet_supersenses": "data/wordnet_supersenses/wordnet_supersenses.jsonl",
    "icd10_blocks": "data/icd10_blocks/icd10_blocks.jsonl",
    "clinc150": "../shared/data/clinc150",
    "chatterbot_topics": "data/chatterbot_topics/chatterbot_topics.jsonl",
    "foldoc_subjects": "data/foldoc_subjects/foldoc_subjects.jsonl",
}
#: the meta-val dataset: choices (learner, steps, lr) are made holding it out (``--held-out foldoc_subjects``); it is
#: in no test split's meta-training, so no choice is made on a dataset of the table (built by data/prepare_all.py)
VAL_DATASET = "foldoc_subjects"
METHODS = [("centroid", "(a) centroid"), ("logreg", "(e) logreg"), ("finetune", "(b) fine-tune"),
           ("multitask", "(d) multi-task"), ("meta", "(c) meta-learned")]  # fmt: skip


def unlabelled_texts(held_out: str, runs: str) -> str:
    """A text file (one text a line) of the held-out dataset's texts without labels, for SMLMT: CLINC150's train split
    (its test split, the queries, stays unseen), every text of the other datasets (queries included: transductive)."""
    from metanlp.families.text_classification.data import load_corpus

    corpus = load_corpus(DATASETS[held_out])
    by_class = corpus.by_class("train") if "train" in corpus.splits else corpus.by_class()
    out = ROOT / runs / f"{held_out}_unlabelled.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(f"{t}\n" for texts in by_class.values() for t in texts), encoding="utf-8")
    return str(out.relative_to(ROOT))


def overrides_for(
    held_out: str, episodes: int, runs: str = "runs/cross_dataset", target_text: bool = False,
    target_cactus: bool = False,
) -> list[str]:
    """Recipe overrides that hold ``held_out`` out whole and meta-train on the other datasets found on disk; with
    ``target_text``, the held-out dataset's texts (no labels, :func:`unlabelled_texts`) join the SMLMT cloze tasks,
    with ``target_cactus`` they are ``task.unlabelled`` (CACTUs partitions)."""
    others = [p for n, p in DATASETS.items() if n not in (held_out, VAL_DATASET) and (ROOT / p).exists()]
    cloze = [p for p in others if p.endswith(".jsonl")] + ([unlabelled_texts(held_out, runs)] if target_text else [])
    unlabelled = unlabelled_texts(held_out, runs) if target_cactus else ""
    return [f"task.dataset={DATASETS[held_out]}", "task.split_by=seed", "task.test_fraction=1.0",
            "task.val_fraction=0", "task.meta_val_groups=[]", "task.meta_test_groups=[]",
            f"task.mixture=[{','.join(others)}]", f"task.smlmt=[{','.join(cloze)}]", f"task.unlabelled={unlabelled}",
            "meta.eval_every=0",
            f"eval.episodes={episodes}", "eval.n_way=0", "eval.k_shots=[5,10]", "eval.q_query=0",
            "eval.methods=[centroid,logreg,finetune,meta]", f"run.output_dir={runs}/{held_out}",
            "run.progress=false"]  # fmt: skip


def markdown(results: dict) -> str:
    """One row per (held-out dataset, K): mean ± CI95 accuracy of each method, and (c) minus the best other."""
    head = "| held-out dataset | N | K | " + " | ".join(label for _, label in METHODS) + " | (c) − best other |"
    rows = [head, "|" + "---|" * (len(METHODS) + 4)]
    for name, r in results.items():
        for k in (5, 10):
            cell = {x["method"]: x for x in r["records"] if x["k_shot"] == k and x["metric"] == "accuracy"}
            if not cell:
                continue
            n_way = next(iter(cell.values()))["n_way"]
            best = max((v["mean"] for m, v in cell.items() if m != "meta"), default=float("nan"))
            gap = 100 * (cell["meta"]["mean"] - best) if "meta" in cell else float("nan")
            vals = [f"{100 * cell[m]['mean']:.2f} ± {100 * cell[m]['ci95']:.2f}" if m in cell else ""
                    for m, _ in METHODS]  # fmt: skip
            rows.append(f"| {name} | {n_way} | {k} | " + " | ".join(vals) + f" | {gap:+.2f} |")
    return "\n".join(rows)


def worst_splits(results: dict) -> dict[str, dict[str, float]]:
    """Per K and method: the mean over held-out datasets and the worst one (accuracy, %)."""
    out: dict[str, dict[str, float]] = {}
    for k in (5, 10):
        for m, _ in METHODS:
            accs = {n: x["mean"] for n, r in results.items() for x in r["records"]
                    if x["k_shot"] == k and x["metric"] == "accuracy" and x["method"] == m}  # fmt: skip
            if accs:
                worst = min(accs, key=accs.get)
                out[f"K={k} {m}"] = {"mean": 100 * statistics.mean(accs.values()), "worst": 100 * accs[worst],
                                     "worst_dataset": worst}  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--held-out", nargs="+", default=["brown_genres", "wordnet_supersenses", "icd10_blocks",
                                                          "clinc150"], choices=sorted(DATASETS))  # fmt: skip
    parser.add_argument("--episodes", type=int, default=3, help="sampled support sets per K (default 3)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="recipe overrides")
    parser.add_argument("--results", default=str(HERE / "results.json"),
                        help="results JSON, written after each held-out dataset (one already there is skipped)")
    parser.add_argument("--runs", default="runs/cross_dataset", help="run folders: RUNS/<held-out dataset>")
    parser.add_argument("--target-text", action="store_true",
                        help="add the held-out dataset's texts, without labels, to the SMLMT cloze tasks")  # fmt: skip
    parser.add_argument("--target-cactus", action="store_true",
                        help="the held-out dataset's texts, without labels, as task.unlabelled: CACTUs partitions "
                             "(k: --set task.cactus_clusters=[...]) share the self-supervised episodes")  # fmt: skip
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("accelerate").setLevel(logging.WARNING)
    sys.path.insert(0, str(ROOT))
    import os

    os.chdir(ROOT)
    from metanlp.core.recipe_loading import load_recipe
    from metanlp.core.run_dir import git_commit
    from metanlp.core.saving import write_json_atomic
    from metanlp.families.text_classification.recipes import meta_train

    out = Path(args.results)
    saved = json.loads(out.read_text()) if out.is_file() else {}
    results = saved.get("results", {})
    for name in args.held_out:
        if name in results:
            print(f"{name}: already in {out}, skipped", flush=True)  # noqa: T201
            continue
        if not (ROOT / DATASETS[name]).exists():
            print(f"{name}: {DATASETS[name]} not found, skipped", flush=True)  # noqa: T201
            continue
        sets = [*overrides_for(name, args.episodes, args.runs, args.target_text, args.target_cactus), *args.overrides]
        cfg = load_recipe(RECIPE, sets)
        t0 = time.perf_counter()
        summary = meta_train.run(cfg)
        results[name] = {"seconds": round(time.perf_counter() - t0, 1), "overrides": sets,
                         "meta_train": summary["meta_train"], "multitask": summary.get("multitask"),
                         "records": summary["records"]}  # fmt: skip
        payload = {"benchmark": "leave-one-dataset-out", "recipe": str(RECIPE.relative_to(ROOT)),
                   "git_commit": git_commit(), "precision": cfg.model.precision, "results": results,
                   "summary": worst_splits(results), "table": markdown(results)}  # fmt: skip
        write_json_atomic(out, payload)
        print(markdown(results), flush=True)  # noqa: T201


if __name__ == "__main__":
    main()
