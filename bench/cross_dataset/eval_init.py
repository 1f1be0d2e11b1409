"""Score a saved meta-learned init on one held-out dataset's episodes of the leave-one-dataset-out benchmark.

The episodes, supports and methods are those of ``run.py`` for that dataset (same overrides, same seed), so the rows
compare with its results; extra ``--set`` overrides change the adaptation, e.g. ``adapt.epochs=0 adapt.min_steps=0``
scores the init's prototypes alone (no gradient step): how good its embeddings are before any fine-tuning.

Run: ``python bench/cross_dataset/eval_init.py foldoc_subjects runs/xd_val/protonet/adapter --algorithm protonet
--set adapt.epochs=0 --set adapt.min_steps=0`` (about a minute for FOLDOC on 2 cores).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

import run as xd  # noqa: E402  (the benchmark's own overrides)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("held_out", choices=sorted(xd.DATASETS))
    parser.add_argument("init", help="a meta-train adapter/ folder")
    parser.add_argument("--algorithm", default="fomaml", help="meta.algorithm the init was trained with")
    parser.add_argument("--methods", default="centroid,meta", help="eval.methods (comma-separated)")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="recipe overrides")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.chdir(xd.ROOT)
    from metanlp.core.recipe_loading import load_recipe
    from metanlp.families.text_classification.recipes import evaluate

    out = xd.ROOT / "runs" / "cross_dataset_eval" / f"{args.held_out}_{Path(args.init).parent.name}"
    sets = [*xd.overrides_for(args.held_out, args.episodes), f"meta.algorithm={args.algorithm}",
            f"adapter.init={Path(args.init).resolve()}", f"eval.methods=[{args.methods}]", f"run.output_dir={out}",
            "run.overwrite=true", *args.overrides]  # fmt: skip
    summary = evaluate.run(load_recipe(xd.RECIPE, sets))
    print("| held-out | K | method | accuracy (%) |\n|---|---|---|---|")  # noqa: T201
    for r in summary["records"]:
        if r["metric"] == "accuracy":
            acc = f"{100 * r['mean']:.2f} ± {100 * r['ci95']:.2f}"
            print(f"| {args.held_out} | {r['k_shot']} | {r['method']} | {acc} |")  # noqa: T201


if __name__ == "__main__":
    main()
