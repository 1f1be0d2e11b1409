"""Bench: seconds per FOMAML episode with LoRA on every layer vs LoRA on the top 2 layers with the frozen-prefix cache.

all-MiniLM-L6-v2 (6 layers), LoRA r=8 on query/key/value, ``model.max_length`` 48, CLINC150 meta-train intents
(``recipes/text_classification/clinc150_benchmark.yaml``), 5-way 5-shot 5-query, FOMAML with 5 inner steps
(``meta_gradient``: batches, prototype head, inner loop, query gradient, the Proto-MAML head term). Three settings,
interleaved episode by episode in one process so that shared-CPU noise hits them alike:

- ``all_layers``: ``adapter.layers: []`` (LoRA on layers 0-5; the whole encoder runs every pass, as before);
- ``top2_uncached``: ``adapter.layers: [-2, -1]``, ``adapter.prefix_cache_mb: 0`` (backward stops at layer 4, but
  every pass still runs layers 0-3);
- ``top2_cached``: ``adapter.layers: [-2, -1]`` with the cache: layers 0-3 run once per text;
- with ``--unsorted``, ``all_layers_unsorted``: ``all_layers`` with micro-batches cut in batch order and padded to the
  whole set's longest text (metanlp before length sorting); differs only when ``--micro-batch`` < N*K or N*Q.

Each episode is first run once untimed in every setting ("cold": fills the cache, reported separately), then
``--repeats`` timed passes ("warm": every text of the episode already cached, as after the first epoch over a
corpus). Also reported: the max |difference| between the top-2 meta-gradients with and without the cache.

Run: ``PYTHONPATH=. OMP_NUM_THREADS=1 python bench/run.py prefix_cache`` (~1-2 minutes on a busy core).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from bench.run import ROOT, write_results
from metanlp.algorithms.fomaml import FOMAML
from metanlp.core.recipe_loading import load_recipe
from metanlp.families.text_classification.setup import (
    ClassificationSetup,
    build_classification,
    make_sampler,
    task_samplers,
)

HERE = Path(__file__).resolve().parent
RECIPE = ROOT / "recipes" / "text_classification" / "clinc150_benchmark.yaml"
DATA = "../shared/data/clinc150"
SETTINGS = {
    "all_layers": ["adapter.layers=[]"],
    "top2_uncached": ["adapter.layers=[-2,-1]", "adapter.prefix_cache_mb=0"],
    "top2_cached": ["adapter.layers=[-2,-1]"],
}


def build(args: argparse.Namespace, extra: list[str]) -> tuple[ClassificationSetup, Any]:
    """MiniLM + LoRA as ``extra`` says, and a sampler over the CLINC150 meta-train intents."""
    overrides = [f"task.dataset={ROOT / DATA}", f"model.max_length={args.max_length}", f"task.n_way={args.n_way}",
                 f"task.k_shot={args.k_shot}", f"task.q_query={args.q_query}", f"meta.micro_batch={args.micro_batch}",
                 "run.progress=false", *extra]  # fmt: skip
    cfg = load_recipe(RECIPE, overrides)
    setup = build_classification(cfg)
    corpus, splits = task_samplers(cfg)
    return setup, make_sampler(cfg, corpus, splits.train, "train", args.n_way, args.k_shot, args.q_query)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--n-way", type=int, default=5)
    parser.add_argument("--k-shot", type=int, default=5)
    parser.add_argument("--q-query", type=int, default=5)
    parser.add_argument("--max-length", type=int, default=48)
    parser.add_argument("--inner-steps", type=int, default=5)
    parser.add_argument("--micro-batch", type=int, default=32)
    parser.add_argument("--unsorted", action="store_true", help="also time all_layers_unsorted (see above)")
    parser.add_argument("--tag", default="", help="write results to bench/prefix_cache/TAG/results.json instead")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    setups = {name: build(args, extra) for name, extra in SETTINGS.items()}
    if args.unsorted:  # the micro-batching before length sorting, for comparison (matters when micro_batch < N*K)
        setups["all_layers_unsorted"] = build(args, SETTINGS["all_layers"])
        setups["all_layers_unsorted"][0].task.sequence_keys = ()  # type: ignore[misc]
    sampler = setups["all_layers"][1]
    episodes = [sampler.sample(i) for i in range(args.episodes)]
    learner = FOMAML(inner_lr=0.5, inner_steps=args.inner_steps, micro_batch=args.micro_batch)
    cold: dict[str, list[float]] = {n: [] for n in setups}
    warm: dict[str, list[float]] = {n: [] for n in setups}
    grads: dict[str, dict[str, torch.Tensor]] = {}
    for ep in episodes:  # cold pass: fills the cache of top2_cached
        for name, (setup, _) in setups.items():
            t0 = time.perf_counter()
            g, _ = learner.meta_gradient(setup.task, setup.meta_params, ep)
            cold[name].append(time.perf_counter() - t0)
            grads.setdefault(name, g)
    for _ in range(args.repeats):
        for ep in episodes:
            for name, (setup, _) in setups.items():
                t0 = time.perf_counter()
                learner.meta_gradient(setup.task, setup.meta_params, ep)
                warm[name].append(time.perf_counter() - t0)
    diff = max(float((grads["top2_cached"][k] - grads["top2_uncached"][k]).abs().max()) for k in grads["top2_cached"])
    scale = max(float(v.abs().max()) for v in grads["top2_uncached"].values())
    cache = setups["top2_cached"][0].task.prefix.cache  # type: ignore[union-attr]
    warm_s = {n: statistics.median(v) for n, v in warm.items()}
    cold_s = {n: statistics.median(v) for n, v in cold.items()}
    results = {
        "setting": {
            **vars(args),
            "model": "sentence-transformers/all-MiniLM-L6-v2",
            "lora": "r=8 query,key,value",
            "data": DATA,
            "algorithm": "fomaml meta_gradient",
        },  # fmt: skip
        "seconds_per_episode_warm_median": warm_s,
        "seconds_per_episode_cold_median": cold_s,
        "speedup_warm_all_over_top2_cached": warm_s["all_layers"] / warm_s["top2_cached"],
        "speedup_warm_all_over_top2_uncached": warm_s["all_layers"] / warm_s["top2_uncached"],
        "speedup_warm_top2_uncached_over_cached": warm_s["top2_uncached"] / warm_s["top2_cached"],
        "speedup_cold_all_over_top2_cached": cold_s["all_layers"] / cold_s["top2_cached"],
        **(
            {"speedup_warm_unsorted_over_sorted_micro_batches": warm_s["all_layers_unsorted"] / warm_s["all_layers"]}
            if args.unsorted
            else {}
        ),  # fmt: skip
        "meta_gradient_max_abs_diff_cached_vs_uncached": diff,
        "meta_gradient_max_abs": scale,
        "cache": {"texts": len(cache), "mib": cache.nbytes / 2**20, "hits": cache.hits, "misses": cache.misses},
        "warm_seconds": warm,
        "cold_seconds": cold,
    }
    path = write_results(HERE / args.tag if args.tag else HERE, results)
    for n in setups:
        sys.stdout.write(f"{n:>14}: warm {warm_s[n]:.3f} s/episode, cold {cold_s[n]:.3f} s/episode\n")
    speedup = results["speedup_warm_all_over_top2_cached"]
    sys.stdout.write(f"all layers / top-2 cached (warm): {speedup:.2f}x; cached vs uncached meta-gradient "
                     f"max |diff| {diff:.2e} (max |g| {scale:.2e}); {path.relative_to(ROOT)}\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
