"""Bench: metanlp's FOMAML meta-gradient (its default: LoRA on the top 2 layers + the frozen-prefix cache) against
metanlp with LoRA on every layer, the same FOMAML written with ``higher``, and with a deep copy per task.

All run on the same backbone (all-MiniLM-L6-v2 + LoRA r=8 on query/key/value, built by
``metanlp.families.text_classification.setup.build_classification``), the same episodes (ICD-10 meta-train classes,
5-way 5-shot 5-query, seed 0) and the same inner loop (full-batch SGD on the support set from the prototype-initialised
head, then the query-loss gradient at the adapted weights, Finn et al. 2017 sec. 5.2, plus the first-order
Proto-MAML head term, Triantafillou et al. 2020 sec. 3.2, for every method):

- ``metanlp``: ``metanlp.algorithms.fomaml.FOMAML.meta_gradient`` (``torch.func.functional_call`` on fast weights)
  with metanlp's default ``adapter.layers: [-2, -1]``: layers 0-3 run once per text (cached), every pass runs 4-5;
- ``metanlp_all_layers``: the same with ``adapter.layers: []`` (LoRA on all 6 layers: nothing to cache);
- ``metanlp_top1``: the same with ``adapter.layers: [-1]`` (LoRA on layer 5 only, layers 0-4 cached);
- ``metanlp_fp32``, ``metanlp_all_layers_fp32``: the same with ``model.precision: fp32`` (metanlp's default, ``auto``,
  is bfloat16 autocast with eager attention on a CPU with native bfloat16; the default rows' max|Δgrad| is against
  these, i.e. what bfloat16 changes);
- ``higher``: ``higher.innerloop_ctx(peft_model, SGD, track_higher_grads=False)`` (higher 0.2.1), LoRA on all layers;
- ``higher_top2``: ``higher`` with LoRA on the top 2 layers (backward stops at layer 4; no cache: every pass runs 0-5);
- ``deepcopy``: ``copy.deepcopy(peft_model)`` per task + ``torch.optim.SGD`` + ``.backward()``, LoRA on all layers.

Measured: episodes/s, interleaved episode by episode in one process (shared-CPU noise hits every method alike), each
timed episode run ``--repeats`` times: the first sight of an episode's texts is ``cold`` for metanlp's cache (its
texts' frozen prefix is computed then), the later ones ``warm`` (as after one pass over a meta-train pool: the cache
holds 512 MiB of prefixes by default, i.e. every ICD-10 text); the max |difference| of each peer's meta-gradients
from metanlp's with the same LoRA layers; peak RSS growth over the process's resting RSS while computing one task's
meta-gradient (one subprocess with glibc's mmap threshold pinned so that freed tensors leave RSS; each method warmed
up first), for 1, 5 and 10 inner steps (metanlp, both layer settings) and 5 (the peers). One torch thread.

Run: ``PYTHONPATH=. python bench/run.py fomaml_vs_higher`` (~3-4 minutes on 2 quiet cores; ``--episodes`` to change).
Needs ``pip install -e '.[bench]'`` (higher==0.2.1).
"""

from __future__ import annotations

import abc
import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from bench.run import ROOT, peak_rss_growth, write_results
from metanlp.algorithms.fomaml import FOMAML
from metanlp.core.recipe_loading import load_recipe
from metanlp.families.text_classification.adapter import set_head
from metanlp.families.text_classification.data import Episode, EpisodeSampler
from metanlp.families.text_classification.setup import (
    ClassificationSetup,
    build_classification,
    make_sampler,
    task_samplers,
)

HERE = Path(__file__).resolve().parent
RECIPE = ROOT / "recipes" / "text_classification" / "text_meta_train.yaml"
#: method -> (implementation, adapter setting); a setting is the recipe override of ``adapter.layers``
METHODS = {
    "metanlp": ("metanlp", "top2"),
    "metanlp_fp32": ("metanlp", "top2_fp32"),
    "metanlp_all_layers": ("metanlp", "all"),
    "metanlp_all_layers_fp32": ("metanlp", "all_fp32"),
    "metanlp_top1": ("metanlp", "top1"),
    "higher": ("higher", "all_fp32"),
    "higher_top2": ("higher", "top2_fp32"),
    "deepcopy": ("deepcopy", "all_fp32"),
}
#: setting -> recipe overrides: LoRA layers, and for the ``_fp32`` ones float32 with transformers' default attention
#: (the peers run the model directly, outside metanlp's autocast: they are float32 whatever the recipe says)
FP32 = ["model.precision=fp32"]
LAYERS = {"top2": ["adapter.layers=[-2,-1]"], "all": ["adapter.layers=[]"], "top1": ["adapter.layers=[-1]"],
          "top2_fp32": ["adapter.layers=[-2,-1]", *FP32], "all_fp32": ["adapter.layers=[]", *FP32]}  # fmt: skip
#: method -> the metanlp method its meta-gradient is compared with (same LoRA layers; metanlp's default precision
#: against float32, so its max|Δgrad| is what bfloat16 changes)
REFERENCE = {"metanlp": "metanlp_fp32", "metanlp_fp32": "metanlp_fp32",
             "metanlp_all_layers": "metanlp_all_layers_fp32", "metanlp_all_layers_fp32": "metanlp_all_layers_fp32",
             "metanlp_top1": "metanlp_top1",
             "higher": "metanlp_all_layers_fp32", "higher_top2": "metanlp_fp32",
             "deepcopy": "metanlp_all_layers_fp32"}  # fmt: skip


def build(args: argparse.Namespace, layers: str) -> tuple[ClassificationSetup, EpisodeSampler]:
    """MiniLM + LoRA (the recipe's adapter on ``LAYERS[layers]``) and a sampler over the ICD-10 meta-train classes."""
    n_way, k_shot, q_query = args.n_way, args.k_shot, args.q_query
    cfg = load_recipe(RECIPE, [f"model.name={args.model}", f"task.n_way={n_way}", f"task.k_shot={k_shot}",
                               f"task.q_query={q_query}", f"run.seed={args.seed}", "run.progress=false",
                               *LAYERS[layers]])  # fmt: skip
    setup = build_classification(cfg)
    corpus, splits = task_samplers(cfg)
    return setup, make_sampler(cfg, corpus, splits.train, "train", n_way, k_shot, q_query)


def metanlp_fomaml(setup: ClassificationSetup, episode: Episode, steps: int, lr: float) -> dict[str, torch.Tensor]:
    """metanlp's FOMAML meta-gradient."""
    return FOMAML(inner_lr=lr, inner_steps=steps).meta_gradient(setup.task, setup.meta_params, episode)[0]


def _patch_higher_for_peft() -> None:
    """Let higher 0.2.1 monkeypatch peft's LoRA layers.

    peft's tuner layers inherit ``abc.ABC`` after ``nn.Module``; higher's ``_MonkeyPatchBase(ABC, Module)`` has the
    opposite order, so ``class MonkeyPatched(LoraLinear, _MonkeyPatchBase)`` has no consistent MRO (TypeError).
    Swapping the two bases of higher's base class (same methods) fixes it; nothing else of higher changes.
    """
    import higher.patch

    base = higher.patch._MonkeyPatchBase
    if base.__mro__[1] is torch.nn.Module:
        return
    skip = ("__dict__", "__weakref__", "__abstractmethods__", "_abc_impl")
    namespace = {k: v for k, v in vars(base).items() if k not in skip}
    higher.patch._MonkeyPatchBase = abc.ABCMeta("_MonkeyPatchBase", (torch.nn.Module, abc.ABC), namespace)


def _head_and_batches(setup: ClassificationSetup, episode: Episode) -> tuple[dict, dict, dict]:
    task = setup.task
    support, query = task.batches(episode)
    return task.init_fast_weights(setup.meta_params, support), support, query


def _ce(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return F.cross_entropy(model(batch["input_ids"], batch["attention_mask"]), batch["labels"])


def higher_fomaml(setup: ClassificationSetup, episode: Episode, steps: int, lr: float) -> dict[str, torch.Tensor]:
    """The same FOMAML with ``higher.innerloop_ctx`` over the peft model (first order: no higher-order graph)."""
    import higher

    _patch_higher_for_peft()
    fast, support, query = _head_and_batches(setup, episode)
    model, task = setup.model, setup.task
    set_head(model, fast[task.head_weight], fast[task.head_bias])  # the episode's prototype head, as metanlp's
    names = [n for n, _ in model.named_parameters()]
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)
    with higher.innerloop_ctx(model, opt, copy_initial_weights=False, track_higher_grads=False) as (fmodel, diffopt):
        for _ in range(steps):
            diffopt.step(_ce(fmodel, support))
        adapted = dict(zip(names, fmodel.parameters(), strict=True))
        keys = [*setup.meta_params, task.head_weight, task.head_bias]
        grads = dict(zip(keys, torch.autograd.grad(_ce(fmodel, query), [adapted[k] for k in keys]), strict=True))
    return _with_head_term(setup, support, grads)


def _with_head_term(
    setup: ClassificationSetup, support: dict, grads: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The query gradient of the LoRA weights plus the first-order Proto-MAML head term (Triantafillou et al. 2020,
    sec. 3.2): the head's query gradient chained through its prototype initialisation (``task.init_vjp``), as
    metanlp's FOMAML does, so that every method computes the same meta-gradient."""
    task = setup.task
    head = {task.head_weight: grads[task.head_weight], task.head_bias: grads[task.head_bias]}
    extra = task.init_vjp(setup.meta_params, support, head)
    return {k: grads[k] + extra[k] for k in setup.meta_params}


def deepcopy_fomaml(setup: ClassificationSetup, episode: Episode, steps: int, lr: float) -> dict[str, torch.Tensor]:
    """The same FOMAML the plain way: deep-copy the peft model per task, ``torch.optim.SGD`` inner loop."""
    fast, support, query = _head_and_batches(setup, episode)
    model = copy.deepcopy(setup.model)
    set_head(model, fast[setup.task.head_weight], fast[setup.task.head_bias])
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        _ce(model, support).backward()
        opt.step()
    opt.zero_grad()
    _ce(model, query).backward()
    named = dict(model.named_parameters())
    task = setup.task
    return _with_head_term(
        setup, support, {k: named[k].grad for k in [*setup.meta_params, task.head_weight, task.head_bias]}
    )


FUNCTIONS = {"metanlp": metanlp_fomaml, "higher": higher_fomaml, "deepcopy": deepcopy_fomaml}


def _run(name: str, setups: dict, episode: Episode, steps: int, lr: float) -> dict[str, torch.Tensor]:
    impl, layers = METHODS[name]
    return FUNCTIONS[impl](setups[layers][0], episode, steps, lr)


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    """Episodes/s of each method on the same episodes, interleaved; max |grad difference| from metanlp's."""
    torch.set_num_threads(args.threads)
    setups = {layers: build(args, layers) for layers in LAYERS}
    sampler = setups["all"][1]
    episodes = [sampler.sample(i) for i in range(args.episodes + 1)]
    names = list(METHODS)
    for m in names:  # warm-up on an episode that is not timed
        _run(m, setups, episodes[0], args.inner_steps, args.inner_lr)
    cold: dict[str, list[float]] = {m: [] for m in names}
    warm: dict[str, list[float]] = {m: [] for m in names}
    diffs: dict[str, float] = {m: 0.0 for m in names}
    for i, ep in enumerate(episodes[1:]):
        for r in range(args.repeats):
            grads = {}
            for m in names[i % len(names) :] + names[: i % len(names)]:  # rotate who goes first
                start = time.perf_counter()
                grads[m] = _run(m, setups, ep, args.inner_steps, args.inner_lr)
                (cold if r == 0 else warm)[m].append(time.perf_counter() - start)
            for m in names:
                ref = grads[REFERENCE[m]]
                diffs[m] = max(diffs[m], max(float((grads[m][k] - ref[k]).abs().max()) for k in ref))
    scale = max(float(g.abs().max()) for g in grads["metanlp"].values())
    out = {}
    for m in names:
        every = cold[m] + warm[m]
        out[m] = {
            "episodes_per_s": len(every) / sum(every),
            "episodes_per_s_cold": len(cold[m]) / sum(cold[m]),
            "episodes_per_s_warm": len(warm[m]) / sum(warm[m]) if warm[m] else None,
            "median_s_per_episode": statistics.median(every),
            "max_abs_grad_diff_vs_metanlp_same_layers": diffs[m],
            "max_abs_grad_metanlp": scale,
        }  # fmt: skip
    return out


def memory(args: argparse.Namespace) -> dict[str, Any]:
    """(subprocess, ``MALLOC_MMAP_THRESHOLD_`` pinned) Peak RSS growth of each method, after a warm-up of each.

    metanlp is measured at every ``--memory-steps`` inner-step count, the peers at ``--inner-steps``.
    """
    torch.set_num_threads(args.threads)
    setups = {layers: build(args, layers) for layers in LAYERS}
    sampler = setups["all"][1]
    ep = sampler.sample(1)
    for m in METHODS:  # one-time allocations (thread pools, kernels, caches) out of the way
        _run(m, setups, sampler.sample(0), 1, args.inner_lr)
        _run(m, setups, ep, 1, args.inner_lr)  # and the episode's texts in metanlp's prefix cache
    out = {}
    for m in METHODS:
        steps = sorted({*args.memory_steps, args.inner_steps}) if METHODS[m][0] == "metanlp" else [args.inner_steps]
        growth = {str(s): round(peak_rss_growth(lambda m=m, s=s: _run(m, setups, ep, s, args.inner_lr))[1], 1)
                  for s in steps}  # fmt: skip
        out[m] = {"peak_rss_growth_mib": growth}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description="FOMAML meta-gradient: metanlp vs higher vs deepcopy")
    p.add_argument("--episodes", type=int, default=3, help="timed episodes per method (default 3)")
    p.add_argument("--repeats", type=int, default=2, help="timed passes over each episode (1st cold, then warm)")
    p.add_argument("--inner-steps", type=int, default=5)
    p.add_argument("--inner-lr", type=float, default=0.5)
    p.add_argument("--n-way", type=int, default=5)
    p.add_argument("--k-shot", type=int, default=5)
    p.add_argument("--q-query", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--model", default="sentence-transformers/all-MiniLM-L6-v2", help="backbone (tiny-random-bert: smoke)"
    )
    p.add_argument("--memory-steps", type=lambda s: [int(x) for x in s.split(",")], default=[1, 5, 10])
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the CPU is shared)")
    p.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)  # internal: the memory subprocess
    args = p.parse_args()
    if args.memory:
        sys.stdout.write(json.dumps(memory(args)) + "\n")
        return

    t0 = time.perf_counter()
    results = throughput(args)
    # glibc returns freed blocks >= 64 KiB to the OS only with a fixed mmap threshold; else RSS keeps the warm-up's
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    child = [sys.executable, "-m", "bench.fomaml_vs_higher.run", *sys.argv[1:], "--memory"]
    out = subprocess.run(child, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    for m, mem in json.loads(out.strip().splitlines()[-1]).items():
        results[m].update(mem)
    mem = {m: results[m]["peak_rss_growth_mib"][str(args.inner_steps)] for m in METHODS}
    eps = {m: results[m]["episodes_per_s"] for m in METHODS}
    ratios = {
        "episodes_per_s_metanlp_over_higher": eps["metanlp"] / eps["higher"],
        "episodes_per_s_metanlp_over_higher_top2": eps["metanlp"] / eps["higher_top2"],
        "episodes_per_s_metanlp_over_deepcopy": eps["metanlp"] / eps["deepcopy"],
        "episodes_per_s_metanlp_over_metanlp_fp32": eps["metanlp"] / eps["metanlp_fp32"],
        "episodes_per_s_metanlp_fp32_over_higher": eps["metanlp_fp32"] / eps["higher"],
        "episodes_per_s_metanlp_over_metanlp_all_layers": eps["metanlp"] / eps["metanlp_all_layers"],
        "episodes_per_s_metanlp_all_layers_over_higher": eps["metanlp_all_layers"] / eps["higher"],
        "cold_episodes_per_s_metanlp_over_higher": results["metanlp"]["episodes_per_s_cold"]
        / results["higher"]["episodes_per_s_cold"],
        # MiB: a ratio of two near-zero growths would mean nothing
        "peak_rss_growth_higher_minus_metanlp_mib": mem["higher"] - mem["metanlp"],
        "peak_rss_growth_deepcopy_minus_metanlp_mib": mem["deepcopy"] - mem["metanlp"],
    }
    lines = [f"{'method':<23} {'episodes/s':>10} {'cold':>6} {'warm':>6} {'s/episode':>9} {'max|Δgrad|':>11}  "
             "peak RSS growth MiB by inner steps"]  # fmt: skip
    for m in METHODS:
        r = results[m]
        mem_s = ", ".join(f"{k}: {v:.0f}" for k, v in r["peak_rss_growth_mib"].items())
        lines.append(f"{m:<23} {r['episodes_per_s']:10.2f} {r['episodes_per_s_cold']:6.2f} "
                     f"{r['episodes_per_s_warm'] or 0:6.2f} {r['median_s_per_episode']:9.2f} "
                     f"{r['max_abs_grad_diff_vs_metanlp_same_layers']:11.2e}  {mem_s}")  # fmt: skip
    lines += [f"{k}: {v:.2f}" for k, v in ratios.items()]
    sys.stdout.write("\n".join(lines) + "\n")
    config = {k: v for k, v in vars(args).items() if k != "memory"}
    config.update(
        adapter="LoRA r=8 alpha=16 on query, key, value; layers as METHODS says",
        data="data/icd10_blocks meta-train classes",
        command="PYTHONPATH=. python bench/run.py fomaml_vs_higher",
        seconds=round(time.perf_counter() - t0, 1),
    )
    path = write_results(HERE, {"config": config, "methods": results, "ratios": ratios}, packages=("higher",))
    sys.stdout.write(f"wrote {path}\n")


if __name__ == "__main__":
    main()
