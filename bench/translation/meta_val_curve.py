"""Bench: the meta-val chrF curve of a translation meta-training run, beside the inits it has to beat.

The run's ``log.jsonl`` holds ``val_chrf`` every ``meta.eval_every`` outer steps: the meta-learned init at that step,
adapted (``meta.inner_steps`` SGD steps at ``meta.inner_lr``) to each meta-val episode (``meta.val_episodes``, round
robin over the meta-val directions, seed ``run.seed + 1``: exactly the recipe's) and scored by corpus chrF on the
episode's query pairs. This script scores, on those same episodes with the same adaptation, the pretrained
backbone's fresh LoRA (what meta-training starts from) and the run's multi-task init (``multitask_adapter/``, when
there), and draws them as dashed lines on ``metanlp plot``'s figure. ``--no-baselines`` only redraws the curve (for a
live run: seconds).

Run: ``PYTHONPATH=. python bench/translation/meta_val_curve.py [--run runs/translation_meta]``
Writes ``bench/translation/meta_val_curve.png`` and ``meta_val_curve.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from metanlp.algorithms import build_learner  # noqa: E402
from metanlp.core.comparison import adaptation_budget  # noqa: E402
from metanlp.core.meta_train import validate  # noqa: E402
from metanlp.core.plotting import plot_curves, read_log  # noqa: E402
from metanlp.core.recipe_loading import load_recipe  # noqa: E402
from metanlp.core.saving import write_json_atomic  # noqa: E402
from metanlp.families.translation.adapter import build_translation, lora_weights  # noqa: E402
from metanlp.families.translation.pairs import PairEpisodeSampler, load_pairs, split_pairs  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/translation_meta", help="output folder of the meta-train recipe")
    ap.add_argument("--no-baselines", action="store_true", help="redraw the curve only (no adaptation)")
    args = ap.parse_args()
    run = Path(args.run) if Path(args.run).is_absolute() else ROOT / args.run
    out_json = HERE / "meta_val_curve.json"
    saved = json.loads(out_json.read_text(encoding="utf-8")) if out_json.is_file() else {}
    baselines = saved.get("baselines", {})
    if not args.no_baselines:
        torch.set_num_threads(1)
        cfg = load_recipe(run / "recipe.yaml", ["run.progress=false"])  # the run's own resolved recipe
        t = cfg.translation
        corpus = load_pairs([ROOT / p for p in t.pairs], t.max_chars)
        splits = split_pairs(corpus, t.val_languages, t.test_languages, cfg.task.k_shot + cfg.task.q_query)
        train_langs = sorted({lang for task in splits.train for lang in task})
        texts = [x for key, ps in corpus.pairs.items() if set(key) <= set(train_langs) for p in ps for x in p]
        setup = build_translation(cfg, texts, train_langs)  # the vocabulary meta-training had
        val = PairEpisodeSampler(corpus, splits.val, cfg.task.k_shot, cfg.task.q_query, seed=cfg.run.seed + 1)
        episodes = val.round_robin(cfg.meta.val_episodes)
        learner = build_learner(cfg.meta, budget=adaptation_budget(cfg))
        inits = {"pretrained backbone (no meta-training)": setup.pretrained}
        if (run / "multitask_adapter").is_dir():
            inits["multi-task init (equal passes)"] = lora_weights(setup, run / "multitask_adapter")
        baselines = {}
        for label, init in inits.items():
            t0 = time.perf_counter()
            scores = validate(setup.task, learner, init, episodes)
            baselines[label] = scores["val_chrf"]
            print(f"{label}: meta-val chrF {scores['val_chrf']:.2f} ({time.perf_counter() - t0:.0f} s)")  # noqa: T201
    png = plot_curves(run, HERE / "meta_val_curve.png", baselines=baselines)
    val = [{"step": e["step"], "val_chrf": e["val_chrf"], "val_ci95": e["val_ci95"]}
           for e in read_log(run) if "val_chrf" in e]  # fmt: skip
    write_json_atomic(out_json, {"run": str(run.relative_to(ROOT)) if run.is_relative_to(ROOT) else str(run),
                                 "baselines": baselines, "meta_val": val})  # fmt: skip
    print(png)  # noqa: T201


if __name__ == "__main__":
    main()
