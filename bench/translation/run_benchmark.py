"""Bench: few-shot translation to held-out language pairs, four methods on the same sentences, one process.

(0) in-context prompting with ``translation.prompt_shots`` of the K support pairs, no training;
(b) LoRA adapted on the K pairs from the pretrained backbone;
(d) multi-task transfer: LoRA trained jointly on all meta-train pairs with the same number of forward/backward
    passes as meta-training, then adapted on the K pairs;
(c) the FOMAML meta-learned init, adapted on the K pairs.
(b)-(d) use the same adaptation (``meta.inner_steps`` SGD steps at the inner learning rate chosen on meta-val pairs
only) and greedy decoding, read twice: with a zero-shot prompt and with the same ``translation.prompt_shots``-shot
prompt as (0) (rows ``... + prompt``). Scores: corpus chrF and BLEU per held-out pair; mean and 95% CI over pairs,
per K. Held-out languages never occur in meta-training (asserted by ``split_pairs``); K = 64 needs DDTP pairs
(``python data/ddtp/prepare.py``): UDHR has at most ~60 paragraphs per language.

The pruned vocabulary keeps the pieces of every corpus text except the test sentences (held-out languages included:
their other sentences stand for the monolingual text a user has; the test sentences never choose pieces).

(b) and (c) are trained by ``recipes/translation/translation_meta_train.yaml`` itself (``metanlp.families.translation.recipes.meta_train``
with ``translation.multitask_baseline``), into ``runs/bench_translation_meta/{adapter,multitask_adapter}``: the same
folders ``recipes/translation/new_language_pair.yaml`` takes as ``adapter.init`` / ``adapter.multitask_init``.

Run: ``PYTHONPATH=. python bench/translation/run_benchmark.py [--budget-s 1200] [--test-sentences 10]``
Writes ``bench/translation/results.json``, ``metrics.json`` and ``meta_train_log.jsonl``; timings on a shared 2-core
machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from dataclasses import replace
from pathlib import Path

import torch

from metanlp.algorithms.fomaml import FOMAML
from metanlp.core.comparison import Method, adaptation_budget, compare, standard_methods
from metanlp.core.metrics import mean_ci95
from metanlp.core.recipe_loading import load_recipe, recipe_to_yaml
from metanlp.core.saving import write_json_atomic
from metanlp.families.translation.adapter import build_translation, lora_weights
from metanlp.families.translation.pairs import PairEpisode, PairEpisodeSampler, load_pairs, split_pairs
from metanlp.families.translation.recipes import meta_train as translation_meta_train

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)  # noqa: T201 - a bench script, not library code


def portable(text: str) -> str:
    """Machine paths out of committed results: the repo root becomes relative, the home folder ``~``."""
    return text.replace(f"{ROOT}/", "").replace(str(Path.home()), "~")


LABELS = {
    "prompting": "(0) 3-shot prompting, no training",
    "finetune": "(b) LoRA adapted from the pretrained backbone",
    "finetune+prompt": "(b) + 3-shot prompt",
    "multitask": "(d) multi-task LoRA + adapted",
    "multitask+prompt": "(d) + 3-shot prompt",
    "meta": "(c) meta-learned init + adapted",
    "meta+prompt": "(c) + 3-shot prompt",
}


def table(results: dict) -> str:
    """Markdown: chrF (mean ± 95% CI over held-out pairs, and per pair) and BLEU per method and K."""
    lines = []
    for kk in results["k_shots"]:
        pairs = [h.split(":")[0] for h in results["held_out"] if h.endswith(f"K={kk}")]
        lines += [f"\nK = {kk} ({len(pairs)} held-out pairs)\n",
                  f"| method | chrF | BLEU | {' / '.join(pairs)} chrF |", "|---|---|---|---|"]  # fmt: skip
        for method, label in LABELS.items():
            rows = [r for r in results["per_pair"].get(method, []) if r["k"] == kk]
            if not rows:
                continue
            c, b = results["metrics"][f"{method}/chrf/K={kk}"], results["metrics"][f"{method}/bleu/K={kk}"]
            per = " / ".join(f"{r['chrf']:.1f}" for r in rows)
            lines.append(
                f"| {label} | {c['mean']:.1f} ± {c['ci95']:.1f} | {b['mean']:.1f} ± {b['ci95']:.1f} | {per} |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget-s", type=float, default=480, help="meta-training wall-clock budget (seconds)")
    ap.add_argument("--test-sentences", type=int, default=10, help="test sentences per held-out pair")
    ap.add_argument("--pairs", default="zu:16,so:16,mt:16,uk:16,ru:16,uk:64,ru:64",
                    help="held-out en->X evaluations as LANG:K (K support pairs)")  # fmt: skip
    ap.add_argument("--lrs", default="0.03,0.1", help="inner learning rates tried on meta-val")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="recipe override")
    ap.add_argument(
        "--reuse-meta-train",
        action="store_true",
        help="evaluate the adapters of an earlier run's meta-training instead of training them again",
    )
    ap.add_argument(
        "--methods",
        default="prompting,finetune,multitask,meta",
        help="methods to evaluate, in this order; others keep their rows from an existing results file",
    )
    ap.add_argument("--table", action="store_true", help="print the table of the existing results.json and stop")
    ap.add_argument("--smoke", action="store_true", help="tiny random model, seconds: checks the code path only")
    args = ap.parse_args()
    if args.table:
        print(table(json.loads((HERE / "results.json").read_text(encoding="utf-8"))))  # noqa: T201
        return
    torch.set_num_threads(1)  # OpenMP threads spin-wait on a shared, oversubscribed machine: 1 is far faster
    overrides = [f"run.output_dir={ROOT / 'runs' / 'bench_translation_meta'}", "run.progress=false", *args.overrides]
    if args.smoke:
        overrides += [
            "model.name=tiny-random-gemma3",
            "adapter.target_modules=[q_proj,v_proj]",
            "translation.max_new_tokens=4",
            f"run.output_dir={ROOT / 'runs' / 'bench_translation_smoke'}",
        ]
    out_name = "smoke_results.json" if args.smoke else "results.json"
    cfg = load_recipe(ROOT / "recipes" / "translation" / "translation_meta_train.yaml", overrides)
    t, k = cfg.translation, cfg.task.k_shot
    corpus = load_pairs([ROOT / p for p in t.pairs], t.max_chars)
    splits = split_pairs(corpus, t.val_languages, t.test_languages, cfg.task.k_shot + cfg.task.q_query)
    held = [(("en", x.split(":")[0]), int(x.split(":")[1])) for x in args.pairs.split(",")]
    assert all(h in splits.test for h, _ in held), (held, splits.test)
    episodes = {}  # (src, tgt, K) -> (support, test); the test sentences of a pair are the same for every K
    for (src, tgt), kk in held:
        pairs = corpus.directed(src, tgt)
        order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(cfg.run.seed)).tolist()
        test = [pairs[i] for i in order[: args.test_sentences]]
        rest = [pairs[i] for i in order[args.test_sentences :]]
        if len(rest) < kk:
            raise SystemExit(f"en->{tgt}: {len(rest)} pairs besides the test sentences, fewer than K={kk}")
        episodes[(src, tgt, kk)] = (rest[:kk], test)
    tested = {p for _, test in episodes.values() for p in test}
    langs = sorted({x for task in splits.train + splits.val + [h for h, _ in held] for x in task})
    texts = [x for ps in corpus.pairs.values() for p in ps if p not in tested and p[::-1] not in tested for x in p]
    start = time.perf_counter()
    setup = build_translation(cfg, texts, langs)
    task = setup.task
    results: dict = {"k_shots": sorted({kk for _, kk in held}), "vocab_kept": setup.vocab.size,
                     "held_out": [f"{a}->{b}:K={kk}" for (a, b), kk in held],
                     "test_sentences_per_pair": args.test_sentences, "meta_train_pairs": len(splits.train),
                     "device": f"{platform.machine()} CPU, {torch.get_num_threads()} threads, shared (noisy)",
                     "recipe": portable(recipe_to_yaml(cfg))}  # fmt: skip
    log(f"loaded + pruned to {setup.vocab.size} pieces in {time.perf_counter() - start:.0f} s")

    # inner learning rate on meta-val pairs only (query loss after adaptation from the pretrained init)
    val_tasks = [task_ for task_ in splits.val if task_[0] == "en"]  # the evaluated direction
    val_sampler = PairEpisodeSampler(corpus, val_tasks, k, cfg.task.q_query, seed=cfg.run.seed + 1)
    val_eps = [val_sampler.sample(i) for i in range(len(val_tasks))]
    tuning = {}
    for lr in [float(x) for x in args.lrs.split(",")]:
        learner = FOMAML(inner_lr=lr, inner_steps=cfg.meta.inner_steps)
        losses = []
        for ep in val_eps:
            sup, qry = task.batches(ep)
            losses.append(task.loss(learner.adapt(task, setup.pretrained, sup), qry).item())
        tuning[lr] = sum(losses) / len(losses)
        log(f"meta-val inner_lr={lr}: query loss {tuning[lr]:.3f}")
    with torch.no_grad():
        base_val = sum(task.loss(setup.pretrained, task.batches(ep)[1]).item() for ep in val_eps) / len(val_eps)
    inner_lr = min(tuning, key=tuning.get)
    results["inner_lr_tuning"] = {"query_loss_by_lr": tuning, "no_adaptation": base_val, "chosen": inner_lr}
    learner = FOMAML(inner_lr=inner_lr, inner_steps=cfg.meta.inner_steps)
    cfg.meta.inner_lr = inner_lr

    def record(method: str, key: tuple, scores: dict) -> None:
        src, tgt, kk = key
        row = {"pair": f"{src}->{tgt}", "k": kk, "chrf": scores["chrf"][0], "bleu": scores["bleu"][0],
               "adapt_s": scores["seconds"][0]}  # fmt: skip
        results.setdefault("per_pair", {}).setdefault(method, []).append(row)
        log(f"{method} {src}->{tgt} K={kk}: chrF {row['chrf']:.1f} BLEU {row['bleu']:.1f} (adapt {row['adapt_s']:.0f} s)")

    def summarise() -> None:
        results["metrics"] = {}
        for method, rows in results["per_pair"].items():
            for kk in sorted({r["k"] for r in rows}):
                for metric in ("chrf", "bleu"):
                    vals = [r[metric] for r in rows if r["k"] == kk]
                    results["metrics"][f"{method}/{metric}/K={kk}"] = {**mean_ci95(vals), "k": kk, "pairs": len(vals)}
        write_json_atomic(HERE / out_name, results)

    def evaluate(method: str, init: dict | None) -> None:
        """One row of the comparison engine per held-out pair: (0) read with the prompt; the others adapted once
        (the same inner loop, budget and learner for every method) and read zero-shot and with the prompt."""
        for key, (sup, test) in episodes.items():
            src, tgt, _ = key
            episode = PairEpisode(src, tgt, sup, test)
            zero_shot = lambda ep: task.encode(ep.query, ep.source_lang, ep.target_lang)  # noqa: E731
            prompted = lambda ep: task.encode(ep.query, ep.source_lang, ep.target_lang,  # noqa: E731
                                              ep.support[: t.prompt_shots])  # fmt: skip
            if init is None:
                rows = [Method("prompting", setup.pretrained, reads={"": prompted})]
            else:
                rows = standard_methods([method], setup.pretrained, adaptation_budget(cfg), init, learner, init)
                rows[0].reads = {"": zero_shot, "+prompt": prompted}
            with torch.enable_grad():
                for name, scores in compare(task, [episode], rows, progress=False).items():
                    record(name, key, scores)
        summarise()

    # (c) and (b) by the translation_meta_train recipe itself (adapter/ and multitask_adapter/ under its output
    # folder, reusable with recipes/translation/new_language_pair.yaml); the outer steps come from the budget and a timed episode
    out = Path(cfg.run.output_dir)
    if args.reuse_meta_train:  # e.g. after an evaluation was killed: the adapters and their metrics.json are there
        summary = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
        previous = json.loads((HERE / out_name).read_text(encoding="utf-8"))
        results["per_pair"] = {m: r for m, r in previous.get("per_pair", {}).items()
                               if m.split("+")[0] not in args.methods.split(",")}  # fmt: skip
    else:
        sampler = PairEpisodeSampler(corpus, splits.train, k, cfg.task.q_query, seed=cfg.run.seed)
        t0 = time.perf_counter()
        learner.meta_gradient(task, setup.meta_params, sampler.sample(10**6))
        per_episode = time.perf_counter() - t0
        cfg.meta.outer_steps = max(5, int(args.budget_s / (per_episode * cfg.meta.meta_batch_size)))
        log(f"one episode {per_episode:.1f} s -> {cfg.meta.outer_steps} outer steps")
        shutil.rmtree(out, ignore_errors=True)  # a leftover checkpoint would be resumed
        summary = translation_meta_train.run(replace(cfg, translation=replace(t, multitask_baseline=True)))
    logged = [json.loads(x)["query_loss"] for x in (out / "log.jsonl").read_text().splitlines()]
    results["meta_train"] = {**summary["meta_train"], "query_losses": logged}
    results["multitask"] = summary["multitask"]
    shutil.copy(out / "log.jsonl", HERE / ("smoke_log.jsonl" if args.smoke else "meta_train_log.jsonl"))
    meta_init, multitask_init = lora_weights(setup, out / "adapter"), lora_weights(setup, out / "multitask_adapter")
    log(f"meta-trained {summary['meta_train']['steps']} steps in {summary['meta_train']['seconds']:.0f} s; "
        f"multi-task {summary['multitask']['passes']} passes in {summary['multitask']['seconds']:.0f} s")  # fmt: skip

    inits = {"prompting": None, "finetune": setup.pretrained, "multitask": multitask_init, "meta": meta_init}
    for method in args.methods.split(","):
        evaluate(method, inits[method])
    m, gaps = results["metrics"], {}
    for kk in results["k_shots"]:
        others = [m[f"{x}/chrf/K={kk}"]["mean"] for x in ("prompting", "finetune", "multitask", "finetune+prompt",
                                                           "multitask+prompt")]  # fmt: skip
        best_meta = max(m[f"meta/chrf/K={kk}"]["mean"], m[f"meta+prompt/chrf/K={kk}"]["mean"])
        gaps[f"K={kk}"] = best_meta - max(others)
    results["meta_minus_best_other_chrf"] = gaps
    write_json_atomic(HERE / out_name, results)
    if not args.smoke:
        write_json_atomic(HERE / "metrics.json", results["metrics"])
    log(table(results))


if __name__ == "__main__":
    main()
