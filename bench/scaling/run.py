"""Bench: how meta-training time and memory grow with inner steps, meta-batch size and number of processes.

Model and tasks: all-MiniLM-L6-v2 + LoRA r=8 (query, key, value), FOMAML, 5-way 2-shot 3-query episodes of the
ICD-10 meta-train classes; small on purpose (the point is the trend, on 2 shared cores). Memory: peak RSS growth
with glibc's mmap threshold pinned (``MALLOC_MMAP_THRESHOLD_=65536``) so that freed tensors leave RSS.

- inner steps 1, 5, 10 (meta-batch 1) and meta-batch 1, 2, 4 (5 inner steps): ``metanlp.core.meta_train.meta_train``
  in this process (1 thread), from the same init; the best of 2 single outer steps (contention only adds time) and
  the largest peak RSS growth;
- processes: ``metanlp meta-train`` (meta-batch 4, 5 inner steps, 2 outer steps) in a subprocess as 1 process x 1
  thread and 2 processes x 1 thread through ``ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2``
  (gloo; ``accelerate launch --cpu`` would start one process, huggingface/accelerate#2741); loop seconds only
  (start-up excluded), from each run's metrics.json. ``--compare-threads`` adds 1 process x 2 threads (on a busy
  machine OpenMP threads oversubscribe the cores: it took 168 s per outer step vs 9 s with 1 thread here).

Also printed: the all-reduce payload of one outer step (meta-parameters x 4 bytes), for the GPU estimate in README.
Run: ``PYTHONPATH=. python bench/run.py scaling`` (~2-3 minutes on 2 busy cores).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from bench.run import ROOT, peak_rss_growth, write_results
from metanlp.algorithms.fomaml import FOMAML
from metanlp.core.meta_train import meta_train
from metanlp.core.recipe_loading import load_recipe
from metanlp.families.text_classification.setup import build_classification, make_sampler, task_samplers

HERE = Path(__file__).resolve().parent
RECIPE = ROOT / "recipes" / "text_classification" / "text_meta_train.yaml"
#: meta-batch of the 1- vs 2-process runs (2 tasks per process per outer step with 2 processes)
LAUNCH_BATCH = 4


def overrides(args: argparse.Namespace) -> list[str]:
    """Recipe overrides shared by every setting."""
    return [f"model.name={args.model}", f"task.n_way={args.n_way}", f"task.k_shot={args.k_shot}",
            f"task.q_query={args.q_query}",
            "meta.eval_every=0",
            "meta.save_every=0", "eval.episodes=0", "run.progress=false", f"run.seed={args.seed}"]  # fmt: skip


def in_process(args: argparse.Namespace) -> tuple[list[dict[str, Any]], int]:
    """Seconds per outer step (best of ``args.repeats``) and peak RSS growth per inner-steps / meta-batch setting."""
    from accelerate import Accelerator

    torch.set_num_threads(args.threads)
    cfg = load_recipe(RECIPE, overrides(args))
    setup = build_classification(cfg)
    corpus, splits = task_samplers(cfg)
    sampler = make_sampler(cfg, corpus, splits.train, "train", args.n_way, args.k_shot, args.q_query)
    accelerator = Accelerator(cpu=True)
    init = {k: v.detach().clone() for k, v in setup.meta_params.items()}
    FOMAML(cfg.meta.inner_lr, 1).meta_gradient(setup.task, setup.meta_params, sampler.sample(10**6))  # warm-up
    settings = [("inner_steps", s, 1) for s in (1, 5, 10)] + [("meta_batch_size", 5, b) for b in (2, 4)]
    rows = []
    for varied, steps, batch in settings:
        meta = replace(cfg.meta, inner_steps=steps, meta_batch_size=batch, outer_steps=1)
        learner = FOMAML(meta.inner_lr, steps)
        seconds, growth = [], []
        for _ in range(args.repeats):  # the best of a few single outer steps: contention only ever adds time
            with torch.no_grad():
                for k, p in setup.meta_params.items():
                    p.copy_(init[k])
            with tempfile.TemporaryDirectory() as out:
                result, mib = peak_rss_growth(
                    lambda learner=learner, meta=meta, out=out: meta_train(
                        setup.task, learner, setup.meta_params, sampler.sample, meta, out, accelerator, progress=False
                    )
                )
            seconds.append(result.seconds)
            growth.append(mib)
        best = min(seconds)
        rows.append({"varied": varied, "inner_steps": steps, "meta_batch_size": batch, "processes": 1,
                     "threads": args.threads, "s_per_outer_step": best, "episodes_per_s": batch / best,
                     "peak_rss_growth_mib": round(max(growth), 1)})  # fmt: skip
    return rows, sum(p.numel() for p in setup.meta_params.values())


def launched(args: argparse.Namespace, processes: int, threads: int) -> dict[str, Any]:
    """``metanlp meta-train`` on ``processes`` CPU processes of ``threads`` threads each; its metrics.json summary."""
    with tempfile.TemporaryDirectory() as out:
        cli = ["-m", "metanlp", "meta-train", str(RECIPE)]
        for o in [*overrides(args), f"meta.meta_batch_size={LAUNCH_BATCH}", "meta.inner_steps=5",
                  f"meta.outer_steps={args.launch_outer_steps}", f"run.output_dir={out}"]:  # fmt: skip
            cli += ["--set", o]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
        if processes == 1:
            cmd = [sys.executable, *cli]
        else:
            env["ACCELERATE_USE_CPU"] = "1"
            cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                   str(processes), "--num_machines", "1", "--num_cpu_threads_per_process", str(threads),
                   "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(args.port),
                   *cli[1:]]  # fmt: skip
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        summary = json.loads((Path(out) / "metrics.json").read_text())
    r = summary["meta_train"]
    if summary["processes"] != processes:
        raise RuntimeError(f"asked for {processes} processes, the run had {summary['processes']}")
    return {"varied": "processes", "inner_steps": 5, "meta_batch_size": LAUNCH_BATCH, "processes": processes,
            "threads": threads,
            "s_per_outer_step": r["seconds"] / r["steps"], "episodes_per_s": r["episodes_per_s"],
            "peak_rss_main_process_mib": round(r["peak_rss_mib"], 1)}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description="meta-training time and memory vs inner steps, meta-batch, processes")
    p.add_argument(
        "--model", default="sentence-transformers/all-MiniLM-L6-v2", help="backbone (tiny-random-bert: smoke)"
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads of the in-process settings (default 1)")
    p.add_argument("--repeats", type=int, default=2, help="single outer steps per in-process setting (best kept)")
    p.add_argument("--launch-outer-steps", type=int, default=2, help="outer steps of the 1- vs 2-process runs")
    p.add_argument("--compare-threads", action="store_true", help="also run 1 process x 2 threads (slow when shared)")
    p.add_argument("--n-way", type=int, default=5, help="classes per episode (default 5; the recipe's: 30)")
    p.add_argument("--k-shot", type=int, default=2, help="support examples per class")
    p.add_argument("--q-query", type=int, default=3, help="query examples per class")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--port", type=int, default=29517, help="rendezvous port of the 2-process run")
    args = p.parse_args()
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:  # freed tensors must leave RSS for peak-growth numbers to mean much
        os.execve(sys.executable, [sys.executable, "-m", "bench.scaling.run", *sys.argv[1:]],
                  {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"})  # fmt: skip
    t0 = time.perf_counter()
    rows, n_params = in_process(args)
    one, two = launched(args, 1, 1), launched(args, 2, 1)
    one2 = launched(args, 1, 2) if args.compare_threads else None
    rows += [r for r in (one, one2, two) if r is not None]
    by = {(r["varied"], r["inner_steps"], r["meta_batch_size"]): r for r in rows}
    steps1, steps10 = by[("inner_steps", 1, 1)], by[("inner_steps", 10, 1)]
    per_task_s = one["s_per_outer_step"] / one["meta_batch_size"]
    ratios = {
        "speedup_2x1_processes_over_1x1": one["s_per_outer_step"] / two["s_per_outer_step"],
        "s_per_outer_step_10_over_1_inner_steps": steps10["s_per_outer_step"] / steps1["s_per_outer_step"],
        "peak_rss_growth_10_minus_1_inner_steps_mib": steps10["peak_rss_growth_mib"] - steps1["peak_rss_growth_mib"],
    }
    if one2 is not None:
        ratios["speedup_2x1_processes_over_1x2_threads"] = one2["s_per_outer_step"] / two["s_per_outer_step"]
    allreduce = {"meta_parameters": n_params, "bytes_per_outer_step": 4 * n_params + 4,
                 "measured_s_per_task_1_process": per_task_s}  # fmt: skip
    lines = [
        f"{'varied':<16} {'inner':>5} {'batch':>5} {'procs':>5} {'threads':>7} {'s/outer step':>12} "
        f"{'episodes/s':>10}  memory"
    ]
    for r in rows:
        mem = (f"peak RSS +{r['peak_rss_growth_mib']:.0f} MiB" if "peak_rss_growth_mib" in r
               else f"peak RSS {r['peak_rss_main_process_mib']:.0f} MiB (main process)")  # fmt: skip
        setting = f"{r['varied']:<16} {r['inner_steps']:5d} {r['meta_batch_size']:5d} {r['processes']:5d} "
        lines.append(f"{setting}{r['threads']:7d} {r['s_per_outer_step']:12.2f} {r['episodes_per_s']:10.2f}  {mem}")
    lines += [f"{k}: {v:.2f}" for k, v in ratios.items()]
    lines.append(f"all-reduce per outer step: {n_params} meta-parameters = {allreduce['bytes_per_outer_step']} bytes; "
                 f"measured per-task cost (1 process, 1 thread): {per_task_s:.2f} s")  # fmt: skip
    sys.stdout.write("\n".join(lines) + "\n")
    config = {
        **vars(args),
        "episodes": f"{args.n_way}-way {args.k_shot}-shot {args.q_query}-query, ICD-10 meta-train classes",
        "command": "PYTHONPATH=. python bench/run.py scaling",
        "seconds": round(time.perf_counter() - t0, 1),
    }
    path = write_results(HERE, {"config": config, "rows": rows, "ratios": ratios, "allreduce": allreduce})
    sys.stdout.write(f"wrote {path}\n")


if __name__ == "__main__":
    main()
