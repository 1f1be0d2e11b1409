"""Bench: choose the translation recipes' ``adapter.layers`` and inner learning rate on meta-val pairs only.

For each ``adapter.layers`` (all 18 layers of Gemma-3-270m, the top 2, the top 4) and each inner learning rate, the
LoRA from the pretrained backbone (``B = 0``) is adapted with the recipe's adaptation (``adapt.procedure:
inner_loop``: ``meta.inner_steps`` full-batch SGD steps) on K=16 support pairs of each meta-val pair (sw, cy, both
directions as the corpus has them; one episode each), then scored on that episode's query pairs: query loss (nats
per target token) and corpus chrF of greedy translations with the recipe's prompt (``FOMAML.adapt``,
``TranslationFamily.score``: the code ``metanlp adapt`` runs). Held-out (meta-test) languages are never loaded into
an episode. The same episodes for every variant.

Run: ``PYTHONPATH=. python bench/translation/layers_meta_val.py [--episodes 0] [--lrs 0.03 0.1 0.3]``
(needs the converted backbone, made once by any translation recipe; ~15 minutes on 2 cores).
Writes ``bench/translation/layers_meta_val.json`` after every row.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import provenance  # noqa: E402
from bench.translation.prefix_cache_speed import recipe_pairs  # noqa: E402
from metanlp.algorithms.fomaml import FOMAML  # noqa: E402
from metanlp.core.recipe_loading import load_recipe  # noqa: E402
from metanlp.core.saving import write_json_atomic  # noqa: E402
from metanlp.families.translation.adapter import build_translation  # noqa: E402
from metanlp.families.translation.pairs import PairEpisodeSampler  # noqa: E402

RECIPE = ROOT / "recipes" / "translation" / "translation_meta_train.yaml"
VARIANTS = {"all_layers": [], "top2": [-2, -1], "top4": [-4, -3, -2, -1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=0, help="meta-val directions used (0 = all, default)")
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.03, 0.1, 0.3], help="inner learning rates")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.chdir(ROOT)
    ddtp = Path("data/ddtp/ddtp_pairs.jsonl")
    overrides, base, corpus, splits = recipe_pairs()
    train_langs = sorted({lang for task in splits.train for lang in task})
    use_langs = sorted(set(train_langs) | {lang for task in splits.val for lang in task})
    texts = [x for key, pairs in corpus.pairs.items() if set(key) <= set(use_langs) for p in pairs for x in p]
    tasks = splits.val[: args.episodes or None]  # one episode per meta-val direction
    episodes = [PairEpisodeSampler(corpus, [task], base.task.k_shot, base.task.q_query, seed=base.run.seed).sample(0)
                for task in tasks]  # fmt: skip
    rows: list[dict] = []
    out_path = HERE / "layers_meta_val.json"
    for name in args.variants:
        cfg = load_recipe(RECIPE, [*overrides, f"adapter.layers={VARIANTS[name]}"])
        setup = build_translation(cfg, texts, use_langs)
        for lr in args.lrs:
            learner = FOMAML(inner_lr=lr, inner_steps=cfg.meta.inner_steps)
            for i, ep in enumerate(episodes):
                start = time.perf_counter()
                support, query = setup.task.batches(ep)
                fast = learner.adapt(setup.task, setup.meta_params, support)
                adapt_s = time.perf_counter() - start
                with torch.no_grad():
                    loss = float(setup.task.loss(fast, query))
                scores = setup.task.score(fast, query)
                row = {"variant": name, "adapter_layers": VARIANTS[name], "inner_lr": lr, "episode": i,
                       "pair": f"{ep.source_lang}->{ep.target_lang}", "query_loss": loss, "chrf": scores["chrf"],
                       "bleu": scores["bleu"], "adapt_s": adapt_s,
                       "load_average_1min": os.getloadavg()[0]}  # fmt: skip
                rows.append(row)
                print(f"{name} lr {lr} {row['pair']}: loss {loss:.3f} chrF {scores['chrf']:.1f} "  # noqa: T201
                      f"({adapt_s:.0f} s)", flush=True)  # fmt: skip
                write_json_atomic(out_path, {**provenance(), "recipe": str(RECIPE.relative_to(ROOT)),
                                             "overrides": overrides, "ddtp_pairs": ddtp.is_file(),
                                             "k_shot": base.task.k_shot, "q_query": base.task.q_query,
                                             "inner_steps": base.meta.inner_steps, "rows": rows})  # fmt: skip
    for name in args.variants:
        for lr in args.lrs:
            sel = [r for r in rows if r["variant"] == name and r["inner_lr"] == lr]
            print(f"{name:>10} lr {lr:<5} mean query loss {sum(r['query_loss'] for r in sel) / len(sel):.3f} "  # noqa: T201
                  f"chrF {sum(r['chrf'] for r in sel) / len(sel):.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
