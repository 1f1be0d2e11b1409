"""Bench: few-shot translation to held-out language pairs, four inits, three prompts, the same sentences.

(0) ``prompting``: the pretrained backbone, no training, read with ``translation.prompt_shots`` support pairs;
(b) ``finetune``: LoRA adapted on the K pairs from the pretrained backbone;
(d) ``multitask``: multi-task transfer (LoRA trained jointly on the meta-train pairs with the forward/backward passes
    of meta-training), then adapted on the K pairs;
(c) ``meta``: the FOMAML meta-learned init, adapted on the K pairs.
(b)-(d) adapt with the recipes' procedure (full-batch SGD steps, ``meta.micro_batch`` pairs per pass); each init's
learning rate and number of steps are chosen on meta-val pairs only (en->sw, en->cy; K = 16; lowest query loss over
``--lrs`` x ``--steps``), and the K = 64 runs reuse that budget. Every method is read with every prompt: zero-shot
(the training format; adapted methods only), the first ``prompt_shots`` support pairs (``+prompt``) and the
``prompt_shots`` support pairs nearest each sentence by BM25 (``_bm25``, Agrawal et al. 2023). "Best prompt" is taken
two ways: the read with the best chrF on the test pairs (the issue's rule, the same for every method) and the read
with the best meta-val chrF (chosen without the test pairs).

(c) and (d) come from ``metanlp meta-train recipes/translation/translation_meta_train.yaml`` (``--meta-run``, default
``runs/translation_meta``: ``adapter/`` and ``multitask_adapter/``). Held-out languages never occur in meta-training
(asserted by ``split_pairs``). Support: K pairs per held-out pair (seeded shuffle; the K = 16 support is a prefix of
the K = 64 one); test: ``--test-sentences`` further pairs, the same for every method and K. The pruned vocabulary keeps
the pieces of every corpus text except the test sentences. chrF/BLEU: sacrebleu; mean and 95% CI (Student t) over
held-out pairs. The results file is written after every (method, pair) and a rerun skips what it holds (same
``--meta-run``, pairs and sentences), so a killed run resumes.

Run: ``PYTHONPATH=. python bench/translation/run_benchmark.py [--meta-run runs/translation_meta]``;
``--table`` prints the markdown of ``results.json``; ``--smoke`` meta-trains a tiny random model for 2 steps and runs
the same code in a few minutes (``smoke_results.json``, not committed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import provenance  # noqa: E402
from bench.translation.benchmark_table import best_reads, row_name, summarise, table  # noqa: E402
from metanlp.core.inner_loop import inner_loop  # noqa: E402
from metanlp.core.recipe_loading import load_recipe, recipe_to_yaml  # noqa: E402
from metanlp.core.saving import write_json_atomic  # noqa: E402
from metanlp.families.translation.adapter import build_translation, lora_weights  # noqa: E402
from metanlp.families.translation.pairs import PairEpisode, PairEpisodeSampler, load_pairs, split_pairs  # noqa: E402
from metanlp.families.translation.prompt_retrieval import prompt_examples  # noqa: E402
from metanlp.families.translation.recipes import meta_train as translation_meta_train  # noqa: E402

RECIPE = ROOT / "recipes" / "translation" / "translation_meta_train.yaml"
PAIRS = "zu:16,so:16,mt:16,uk:16,ru:16,it:16,tr:16,vi:16,uk:64,ru:64,it:64,tr:64,vi:64"


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)  # noqa: T201 - a bench script, not library code


def portable(text: str) -> str:
    """Machine paths out of committed results: the repo root becomes relative, the home folder ``~``."""
    return text.replace(f"{ROOT}/", "").replace(str(Path.home()), "~")


def make_reads(task, shots: int) -> dict:  # noqa: ANN001
    """Query batches of an episode by read suffix: zero-shot, first ``shots`` support pairs, BM25-nearest pairs."""
    return {
        "": lambda ep: task.encode(ep.query, ep.source_lang, ep.target_lang),
        "+prompt": lambda ep: task.encode(ep.query, ep.source_lang, ep.target_lang, ep.support[:shots]),
        "_bm25": lambda ep: task.encode(ep.query, ep.source_lang, ep.target_lang,
                                        per_query_shots=prompt_examples(ep.support, ep.query, shots, "bm25")),
    }  # fmt: skip


def choose_budget(task, init: dict, episodes: list, lrs: list[float], steps: list[int], micro: int) -> dict:  # noqa: ANN001
    """Mean meta-val query loss after s SGD steps at each lr (s in ``steps``), and the lowest: ``{"chosen": [lr, s],
    "query_loss": {"lr@s": loss}}``."""
    losses: dict[str, list[float]] = {}
    batches = [task.batches(ep) for ep in episodes]
    for lr in lrs:
        for support, query in batches:
            params = init
            for s in range(1, max(steps) + 1):
                params = inner_loop(task, params, support, 1, lr, micro)
                if s in steps:
                    with torch.no_grad():
                        losses.setdefault(f"{lr}@{s}", []).append(task.loss(params, query).item())
    mean = {k: sum(v) / len(v) for k, v in losses.items()}
    lr, s = min(mean, key=mean.get).split("@")
    return {"chosen": [float(lr), int(s)], "query_loss": mean}


def main() -> None:  # noqa: C901, PLR0915 - a bench script that reads top to bottom
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meta-run", default="runs/translation_meta", help="output folder of the meta-train recipe")
    ap.add_argument("--test-sentences", type=int, default=10, help="test sentences per held-out pair")
    ap.add_argument("--pairs", default=PAIRS, help="held-out en->X evaluations as LANG:K (K support pairs)")
    ap.add_argument("--lrs", default="0.03,0.1", help="adaptation learning rates tried on meta-val")
    ap.add_argument("--steps", default="2,4,8", help="adaptation steps tried on meta-val")
    ap.add_argument("--methods", default="prompting,finetune,multitask,meta")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="recipe override")
    ap.add_argument("--out", default="results.json", help="results file in bench/translation/")
    ap.add_argument(
        "--only",
        default="",
        help="run only these of --pairs (LANG:K,...); same setting, so two processes "
        "sharing the cores can split the pairs (each with its own --out, started from a copy of the "
        "results file so the meta-val choices are reused) and --merge joins them",
    )
    ap.add_argument(
        "--merge",
        default="",
        help="results file in bench/translation/ whose per-pair rows are added "
        "to --out (same setting required), then the tables are rewritten",
    )
    ap.add_argument("--table", action="store_true", help="print the tables of the results file and stop")
    ap.add_argument("--smoke", action="store_true", help="tiny random model, minutes: checks the code path only")
    args = ap.parse_args()
    out_path = HERE / ("smoke_results.json" if args.smoke else args.out)
    if args.table:
        print(table(json.loads(out_path.read_text(encoding="utf-8"))))  # noqa: T201
        return
    if args.merge:
        merge_results(out_path, HERE / args.merge)
        return
    torch.set_num_threads(1)  # OpenMP threads spin-wait on a shared, oversubscribed machine: 1 is far faster
    overrides = ["run.progress=false", "run.threads=1", *args.overrides]
    run_dir = Path(args.meta_run) if Path(args.meta_run).is_absolute() else ROOT / args.meta_run
    if args.smoke:
        run_dir = ROOT / "runs" / "bench_translation_smoke"
        overrides += ["model.name=tiny-random-gemma3", "adapter.target_modules=[q_proj,v_proj]",
                      "translation.max_new_tokens=4", "meta.outer_steps=2", "meta.eval_every=2",
                      "meta.val_episodes=2"]  # fmt: skip
        args.pairs = args.pairs if args.pairs != PAIRS else "zu:16,uk:16,uk:64"
        args.test_sentences = min(args.test_sentences, 3)
    cfg = load_recipe(RECIPE, [f"run.output_dir={run_dir}", *overrides])
    if args.smoke:
        shutil.rmtree(run_dir, ignore_errors=True)
        translation_meta_train.run(cfg)
    for name in ("adapter", "multitask_adapter", "metrics.json"):
        if not (run_dir / name).exists():
            raise SystemExit(f"{run_dir / name} missing: run the meta-train recipe first (it resumes when rerun)")
    t, k = cfg.translation, cfg.task.k_shot
    corpus = load_pairs([ROOT / p for p in t.pairs], t.max_chars)
    splits = split_pairs(corpus, t.val_languages, t.test_languages, cfg.task.k_shot + cfg.task.q_query)
    held = [(("en", x.split(":")[0]), int(x.split(":")[1])) for x in args.pairs.split(",")]
    assert all(h in splits.test for h, _ in held), (held, splits.test)
    episodes = {}  # "en->uk:K=16" -> episode; the test sentences of a pair are the same for every K
    for (src, tgt), kk in held:
        pairs = corpus.directed(src, tgt)
        order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(cfg.run.seed)).tolist()
        test = [pairs[i] for i in order[: args.test_sentences]]
        rest = [pairs[i] for i in order[args.test_sentences :]]
        if len(rest) < kk:
            raise SystemExit(f"en->{tgt}: {len(rest)} pairs besides the test sentences, fewer than K={kk}")
        episodes[f"{src}->{tgt}:K={kk}"] = PairEpisode(src, tgt, rest[:kk], test)
    setting = {"meta_run": portable(str(run_dir)), "held_out": list(episodes), "test_sentences": args.test_sentences,
               "lrs": args.lrs, "steps": args.steps}  # fmt: skip
    results = json.loads(out_path.read_text(encoding="utf-8")) if out_path.is_file() else {}
    if results.get("setting") != setting:
        results = {"setting": setting, "per_pair": {}}
    results.update(k_shots=sorted({kk for _, kk in held}), recipe=portable(recipe_to_yaml(cfg)),
                   provenance=provenance(("bm25s", "sacrebleu")))  # fmt: skip
    tested = {p for ep in episodes.values() for p in ep.query}
    langs = sorted({x for task in splits.train + splits.val + [h for h, _ in held] for x in task})
    texts = [x for ps in corpus.pairs.values() for p in ps if p not in tested and p[::-1] not in tested for x in p]
    start = time.perf_counter()
    setup = build_translation(cfg, texts, langs)
    task = setup.task
    results["vocab_kept"] = setup.vocab.size if setup.vocab is not None else None
    log(f"loaded + pruned to {results['vocab_kept']} pieces in {time.perf_counter() - start:.0f} s")
    summary = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    results["meta_train"], results["multitask_train"] = summary["meta_train"], summary.get("multitask")
    if not args.smoke:
        shutil.copy(run_dir / "log.jsonl", HERE / "meta_train_log.jsonl")
    inits = {"finetune": setup.pretrained, "multitask": lora_weights(setup, run_dir / "multitask_adapter"),
             "meta": lora_weights(setup, run_dir / "adapter")}  # fmt: skip
    reads = make_reads(task, t.prompt_shots)
    methods = args.methods.split(",")

    # adaptation budget and prompt of each method, chosen on meta-val pairs only (en->sw, en->cy: the test direction)
    val_tasks = [v for v in splits.val if v[0] == "en"]
    val_eps = PairEpisodeSampler(corpus, val_tasks, k, cfg.task.q_query, seed=cfg.run.seed + 2).round_robin(
        len(val_tasks)
    )
    lrs, steps = [float(x) for x in args.lrs.split(",")], [int(x) for x in args.steps.split(",")]
    chosen = results.setdefault("meta_val", {})
    for method in methods:
        if method in chosen:
            continue
        t0 = time.perf_counter()
        row: dict = {}
        if method != "prompting":
            row = choose_budget(task, inits[method], val_eps, lrs, steps, cfg.meta.micro_batch)
        lr, n = row.get("chosen", (0.0, 0))
        row["val_chrf"] = {}
        for suffix, read in reads.items():
            if method == "prompting" and suffix == "":
                continue
            scores = []
            for ep in val_eps:
                support, _ = task.batches(ep)
                fast = inner_loop(task, inits[method], support, n, lr, cfg.meta.micro_batch) if n else setup.pretrained
                scores.append(task.score(fast, read(ep))["chrf"])
            row["val_chrf"][suffix] = sum(scores) / len(scores)
        row["read"] = max(row["val_chrf"], key=row["val_chrf"].get)
        row["seconds"] = time.perf_counter() - t0
        chosen[method] = row
        log(f"meta-val {method}: budget {row.get('chosen')} val chrF {row['val_chrf']} ({row['seconds']:.0f} s)")
        write_json_atomic(out_path, results)

    only = {f"en->{x.split(':')[0]}:K={x.split(':')[1]}" for x in args.only.split(",") if x}
    if only - set(episodes):
        raise SystemExit(f"--only {sorted(only - set(episodes))}: not among --pairs {sorted(episodes)}")
    for name, ep in episodes.items():
        if only and name not in only:
            continue
        for method in methods:
            if any(r["pair"] == name for r in results["per_pair"].get(row_name(method, "_bm25"), [])):
                continue  # done by an earlier (killed) run
            lr, n = chosen[method].get("chosen", (0.0, 0))
            t0 = time.perf_counter()
            with torch.enable_grad():
                support, _ = task.batches(ep)
                fast = inner_loop(task, inits[method], support, n, lr, cfg.meta.micro_batch) if n else setup.pretrained
            adapt_s = time.perf_counter() - t0
            rows = {}
            for suffix, read in reads.items():
                if method == "prompting" and suffix == "":
                    continue
                t0 = time.perf_counter()
                scores = task.score(fast, read(ep))
                rows[row_name(method, suffix)] = {"pair": name, "k": len(ep.support), "chrf": scores["chrf"],
                                                  "bleu": scores["bleu"], "adapt_s": adapt_s,
                                                  "translate_s": time.perf_counter() - t0}  # fmt: skip
                log(
                    f"{row_name(method, suffix)} {name}: chrF {scores['chrf']:.1f} BLEU {scores['bleu']:.1f} "
                    f"(adapt {adapt_s:.0f} s, translate {rows[row_name(method, suffix)]['translate_s']:.0f} s)"
                )
            for row, record in rows.items():  # all reads of (method, pair) together: a rerun redoes none or all
                results["per_pair"].setdefault(row, []).append(record)
            results["metrics"] = summarise(results)
            write_json_atomic(out_path, results)
    results["metrics"] = summarise(results)
    results["best_reads"] = best_reads(results)
    write_json_atomic(out_path, results)
    if not args.smoke and not only:
        write_json_atomic(HERE / "metrics.json", results["metrics"])
    log("\n" + table(results))


def merge_results(out_path: Path, other_path: Path) -> None:
    """Add the per-pair rows of ``other_path`` that ``out_path`` lacks (same setting), then rewrite the summaries.

    Raises:
        SystemExit: the two files were run with different settings (meta-run, held-out pairs, sentences, budgets).
    """
    results = json.loads(out_path.read_text(encoding="utf-8"))
    other = json.loads(other_path.read_text(encoding="utf-8"))
    if results.get("setting") != other.get("setting"):
        raise SystemExit(f"{other_path.name}: setting {other.get('setting')} differs from {out_path.name}'s")
    for row, records in other["per_pair"].items():
        have = {r["pair"] for r in results["per_pair"].setdefault(row, [])}
        results["per_pair"][row] += [r for r in records if r["pair"] not in have]
    results["metrics"] = summarise(results)
    results["best_reads"] = best_reads(results)
    write_json_atomic(out_path, results)
    if out_path.name == "results.json":
        write_json_atomic(HERE / "metrics.json", results["metrics"])
    log(f"merged {other_path.name} into {out_path.name}\n" + table(results))


if __name__ == "__main__":
    main()
