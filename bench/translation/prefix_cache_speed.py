"""Bench: seconds per FOMAML meta-training episode on Gemma-3-270m, all-layer LoRA vs top-L LoRA + frozen-prefix cache.

Run: ``PYTHONPATH=. python bench/translation/prefix_cache_speed.py
[--episodes 3] [--top 2 4 6] [--all-layer-head | --precision]`` (needs the converted backbone; ~10 minutes on 2
cores). Writes ``bench/translation/prefix_cache_speed.json`` (``all_layer_head_speed.json``, ``precision_speed.json``).

The setups are built by the recipe's own code (``build_translation`` on
``recipes/translation/translation_meta_train.yaml``: pruned vocabulary, K=16 support, q=8 query, 4 full-batch inner
SGD steps at the recipe's inner learning rate) with ``adapter.layers`` set to ``[]`` (today: LoRA on all 18 layers,
the whole decoder and the LM head at every position at every pass) and to the top ``L`` layers (the frozen layers
below them computed once per batch, then only the LoRA layers, and the LM head at target positions only:
:mod:`metanlp.families.translation.prefix_cache`). One
episode is ``FOMAML.meta_gradient`` (encoding + prefix states + inner loop + query gradient), the same call
``meta_train`` makes; the variants run interleaved, episode by episode, in one process on the same episodes, with
1 torch thread. Before timing, the cached loss and LoRA gradients of the first episode's support batch are compared
with the uncached ones on the real backbone (``exactness``). The DDTP pairs of the recipe are used when
``data/ddtp/ddtp_pairs.jsonl`` exists (it is built at run time with network access), else left out (noted in the JSON).
Timings on a shared 2-core machine are noisy: the load average is recorded before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import provenance  # noqa: E402
from metanlp.algorithms import build_learner  # noqa: E402
from metanlp.core.comparison import adaptation_budget  # noqa: E402
from metanlp.core.recipe_loading import load_recipe  # noqa: E402
from metanlp.core.saving import write_json_atomic  # noqa: E402
from metanlp.families.translation.adapter import build_translation  # noqa: E402
from metanlp.families.translation.pairs import PairEpisodeSampler, load_pairs, split_pairs  # noqa: E402

RECIPE = ROOT / "recipes" / "translation" / "translation_meta_train.yaml"


def recipe_pairs() -> tuple[list[str], Any, Any, Any]:
    """``(overrides, cfg, corpus, splits)`` of the translation meta-train recipe as a bench runs it (from the repo
    root): its DDTP pairs when ``data/ddtp/ddtp_pairs.jsonl`` was built, else the committed Django + UDHR pairs."""
    ddtp = Path("data/ddtp/ddtp_pairs.jsonl")
    overrides = [] if ddtp.is_file() else ["translation.pairs=[data/translation/django_pairs.jsonl,"
                                           "data/translation/udhr_pairs.jsonl]",
                                           "translation.test_languages=[zu,so,mt,xh,it]"]  # fmt: skip
    cfg = load_recipe(RECIPE, overrides)
    t = cfg.translation
    corpus = load_pairs(t.pairs, t.max_chars)
    splits = split_pairs(corpus, t.val_languages, t.test_languages, cfg.task.k_shot + cfg.task.q_query)
    return overrides, cfg, corpus, splits


def _grad_check(setup, episode) -> dict[str, float]:  # noqa: ANN001
    """Max abs difference of the support loss and its LoRA gradients, cached vs uncached, on one episode."""
    task = setup.task
    support, _ = task.batches(episode)
    params = {k: v.detach().requires_grad_(True) for k, v in setup.meta_params.items()}
    plain = {k: v for k, v in support.items() if k != "hidden_states"}
    out = {}
    for name, batch in (("cached", support), ("uncached", plain)):
        loss = task.loss(params, batch)
        out[name] = (loss.detach(), torch.autograd.grad(loss, list(params.values())))
    (l1, g1), (l2, g2) = out["cached"], out["uncached"]
    return {
        "loss_cached": float(l1),
        "loss_uncached": float(l2),
        "loss_abs_diff": float((l1 - l2).abs()),
        "grad_max_abs_diff": max(float((a - b).abs().max()) for a, b in zip(g1, g2, strict=True)),
        "grad_max_abs": max(float(b.abs().max()) for b in g2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=3, help="timed episodes per variant (after one warm-up)")
    parser.add_argument("--top", type=int, nargs="+", default=[2, 4, 6], help="L values: LoRA on the top L layers")
    parser.add_argument(
        "--all-layer-head",
        action="store_true",
        help="instead: all-layer LoRA with the cache off (adapter.prefix_cache_mb=0: the LM head at "
        "every position) vs on (the embedding as the prefix, the LM head at target positions only)",
    )
    parser.add_argument("--precision", action="store_true",
                        help="instead: all-layer LoRA, model.precision fp32 vs bf16 (SDPA and eager attention)")
    parser.add_argument("--vs-today", action="store_true",
                        help="instead: the path of the speed issue's day (fp32, SDPA, LM head at every position, the "
                        "whole support in one padded batch) vs the recipe's default and meta.micro_batch 4 / 8 "
                        "(length-sorted micro-batches, each padded to its own longest pair)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # OpenMP threads spin-wait on a shared, oversubscribed machine: 1 is far faster
    os.chdir(ROOT)  # the recipe's data paths are relative to the repo
    ddtp = Path("data/ddtp/ddtp_pairs.jsonl")
    overrides, base_cfg, corpus, splits = recipe_pairs()
    train_langs = sorted({lang for task in splits.train for lang in task})
    texts = [x for key, pairs in corpus.pairs.items() if set(key) <= set(train_langs) for p in pairs for x in p]
    sampler = PairEpisodeSampler(corpus, splits.train, base_cfg.task.k_shot, base_cfg.task.q_query,
                                 seed=base_cfg.run.seed)  # fmt: skip
    episodes = [sampler.sample(i) for i in range(args.episodes + 1)]
    variants = {"all_layers": []} | {f"top{n}": list(range(-n, 0)) for n in args.top}
    extra = {name: [] for name in variants}
    if args.all_layer_head:  # "all_layers" is the baseline of the speed-ups: here the uncached, every-position head
        variants, extra = {"all_layers": [], "all_layers_cached": []}, {"all_layers": ["adapter.prefix_cache_mb=0"],
                                                                         "all_layers_cached": []}  # fmt: skip
    if args.precision:
        variants = {"all_layers": [], "all_layers_bf16": [], "all_layers_bf16_eager": []}
        extra = {"all_layers": ["model.precision=fp32"], "all_layers_bf16": ["model.precision=bf16"],
                 "all_layers_bf16_eager": ["model.precision=bf16", "model.attn_implementation=eager"]}
    if args.vs_today:
        today = ["model.precision=fp32", "model.attn_implementation=sdpa", "adapter.prefix_cache_mb=0",
                 "meta.micro_batch=0"]  # fmt: skip
        variants = {"all_layers": [], "default": [], "micro_batch_4": [], "micro_batch_8": []}
        extra = {"all_layers": today, "default": [], "micro_batch_4": ["meta.micro_batch=4"],
                 "micro_batch_8": ["meta.micro_batch=8"]}  # fmt: skip
    setups, learners = {}, {}
    for name, layers in variants.items():
        cfg = load_recipe(RECIPE, [*overrides, f"adapter.layers={layers}", *extra[name]])
        setups[name] = build_translation(cfg, texts, train_langs)
        learners[name] = build_learner(cfg.meta, budget=adaptation_budget(cfg))
        prefix = setups[name].task.prefix
        print(name, "prefix cache from layer", prefix.start_layer if prefix else None, flush=True)  # noqa: T201
    exactness = {name: _grad_check(s, episodes[0]) for name, s in setups.items() if s.task.prefix is not None}
    print("exactness", exactness, flush=True)  # noqa: T201
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {name: [] for name in variants}
    losses: dict[str, list[float]] = {name: [] for name in variants}
    for i, episode in enumerate(episodes):
        for name, setup in setups.items():
            start = time.perf_counter()
            _, stats = learners[name].meta_gradient(setup.task, setup.meta_params, episode)
            seconds = time.perf_counter() - start
            print(f"episode {i} {name}: {seconds:.1f} s (query loss {stats['query_loss']:.3f})", flush=True)  # noqa: T201
            if i > 0:  # episode 0 is the warm-up
                times[name].append(seconds)
                losses[name].append(stats["query_loss"])
    load_after = os.getloadavg()
    base = statistics.median(times["all_layers"])
    results = {
        name: {
            "adapter_layers": variants[name],
            "overrides": extra[name],
            "precision": setups[name].task.precision,
            "micro_batch": learners[name].micro_batch,
            "prefix_start_layer": setups[name].task.prefix.start_layer if setups[name].task.prefix else None,
            "lora_params": sum(v.numel() for v in setups[name].meta_params.values()),
            "episode_s_median": statistics.median(ts),
            "episode_s_all": ts,
            "speedup_vs_all_layers": base / statistics.median(ts),
            "query_loss": losses[name],
        }
        for name, ts in times.items()
    }
    vocab = setups["all_layers"].vocab
    out = {
        **provenance(),
        "benchmark": "seconds per FOMAML meta-training episode (FOMAML.meta_gradient), interleaved, same episodes",
        "recipe": str(RECIPE.relative_to(ROOT)),
        "overrides": overrides,
        "ddtp_pairs": ddtp.is_file(),
        "k_shot": base_cfg.task.k_shot,
        "q_query": base_cfg.task.q_query,
        "inner_steps": base_cfg.meta.inner_steps,
        "pruned_vocab": vocab.size if vocab is not None else None,
        "episodes_timed": args.episodes,
        "episode_pairs": [f"{e.source_lang}->{e.target_lang}" for e in episodes],
        "torch_threads": torch.get_num_threads(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "exactness": exactness,
        "results": results,
    }
    name = "precision_speed" if args.precision else "prefix_cache_speed"
    name = "all_layer_head_speed" if args.all_layer_head else name
    name = "vs_today_speed" if args.vs_today else name
    write_json_atomic(HERE / f"{name}.json", out)
    for name, r in results.items():
        print(f"{name:>10}: {r['episode_s_median']:6.1f} s/episode  x{r['speedup_vs_all_layers']:.2f}")  # noqa: T201
    print(f"load average before {load_before}, after {load_after}")  # noqa: T201


if __name__ == "__main__":
    main()
