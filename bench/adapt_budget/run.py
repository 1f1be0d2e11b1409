"""Bench: choose the adaptation budget (metanlp.core.adaptation.AdaptBudget) on CLINC150 meta-VAL tasks only.

Fold-0 protocol: the meta-test domains auto_and_commute, banking, credit_cards are never loaded into a task here
(the script refuses them). Three of the seven training domains are held as meta-val (default kitchen_and_dining,
travel, work: 45 intents). Each setting is an N-way K-shot task over those intents, supports from CLINC150's train
split, queries from their test split (``--q-query`` per intent); every budget sees the same episodes. Every method
starts from the pretrained backbone (LoRA ``B = 0``) + the prototype head: the "finetune" baseline, no meta-training.

Methods: ``centroid`` (prototype head, no step), ``logreg`` (scikit-learn logistic regression on the frozen
embeddings, metanlp.families.text_classification.baselines; no LoRA step), ``legacy`` (today's inner loop: 5 full-batch
SGD steps at lr 0.5), and the candidate budgets in ``BUDGETS``. One row per (budget, setting, episode) with accuracy,
macro-F1, the support loss after adaptation, the steps taken and the adaptation seconds (prototype head + steps;
tokenisation excluded). Rows are written to ``results.json`` after each one; a rerun skips rows already there (same
budget fields), so a killed run resumes. The chosen budget is the one with the highest mean accuracy over the settings
(``--table``).

Run: ``PYTHONPATH=. python bench/adapt_budget/run.py [--budgets ...] [--settings ...] [--episodes 2]``;
``--table`` prints the markdown table of the results so far and exits.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
META_TEST = ("auto_and_commute", "banking", "credit_cards")
VAL_DOMAINS = ("kitchen_and_dining", "travel", "work")
#: setting -> (n_way (0 = every meta-val intent), k_shot)
SETTINGS = {"45w1s": (0, 1), "45w5s": (0, 5), "45w10s": (0, 10), "10w5s": (10, 5), "5w1s": (5, 1), "105w5s": (105, 5),
            "10w1s": (10, 1), "20w1s": (20, 1)}
#: settings of the budget choice (``105w5s`` needs ``--val-domains`` of 7 domains: a scale check, not a choice)
DEFAULT_SETTINGS = ["45w1s", "45w5s", "45w10s", "10w5s", "5w1s"]
A = {"optimizer": "adamw", "batch_size": 32, "epochs": 10.0, "min_steps": 10, "max_steps": 150, "warmup": 0.1,
     "schedule": "cosine", "weight_decay": 0.01}  # fmt: skip
#: budget name -> AdaptBudget fields ("centroid": no step; "legacy": today's 5 full-batch SGD steps at lr 0.5)
BUDGETS: dict[str, dict[str, Any] | None] = {
    "centroid": None,
    "logreg": None,
    "legacy": {
        "optimizer": "sgd",
        "lr": 0.5,
        "batch_size": 0,
        "steps": 5,
        "min_steps": 0,
        "max_steps": 0,
        "warmup": 0.0,
        "schedule": "constant",
        "weight_decay": 0.0,
        "momentum": 0.0,
    },  # fmt: skip
    "adamw_lr1e-3": {**A, "lr": 1e-3},
    "adamw_lr3e-3": {**A, "lr": 3e-3},
    "adamw_lr1e-2": {**A, "lr": 1e-2},
    "sgdm_lr0.1": {**A, "optimizer": "sgd", "momentum": 0.9, "lr": 0.1, "weight_decay": 0.0},
    "sgdm_lr0.3": {**A, "optimizer": "sgd", "momentum": 0.9, "lr": 0.3, "weight_decay": 0.0},
    "adamw_lr3e-3_ep5": {**A, "lr": 3e-3, "epochs": 5.0},
    "adamw_lr3e-3_ep20": {**A, "lr": 3e-3, "epochs": 20.0, "max_steps": 300},
    "adamw_lr3e-3_bs16": {**A, "lr": 3e-3, "batch_size": 16},
    "adamw_lr3e-3_nowarm_const": {**A, "lr": 3e-3, "warmup": 0.0, "schedule": "constant"},
    "adamw_lr3e-3_temp": {**A, "lr": 3e-3, "learn_temperature": True},
    # added after the first pass: AdamW drifts on 1-shot supports the prototype head already fits (loss ~1e-6)
    "adamw_lr1e-3_stop": {**A, "lr": 1e-3, "stop_loss": 1e-3},
    "adamw_lr3e-3_stop": {**A, "lr": 3e-3, "stop_loss": 1e-3},
    "sgdm_lr0.3_stop": {**A, "optimizer": "sgd", "momentum": 0.9, "lr": 0.3, "weight_decay": 0.0, "stop_loss": 1e-3},
    # 2026-12-06, with bfloat16 + top-2 LoRA an adaptation step is ~4x cheaper: more passes within the 60 s target
    "adamw_lr3e-3_stop_ep20_max400": {**A, "lr": 3e-3, "stop_loss": 1e-3, "epochs": 20.0, "max_steps": 400},
    "adamw_lr3e-3_stop_ep30_max600": {**A, "lr": 3e-3, "stop_loss": 1e-3, "epochs": 30.0, "max_steps": 600},
    "adamw_lr2e-3_stop_ep20_max400": {**A, "lr": 2e-3, "stop_loss": 1e-3, "epochs": 20.0, "max_steps": 400},
    # 2026-12-06: a support set that takes no step (1-shot) gets the logistic-regression head (AdaptBudget.probe_head)
    "adamw_lr3e-3_stop_probe": {**A, "lr": 3e-3, "stop_loss": 1e-3, "probe_head": True},
}


def load_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of an earlier run (``[]`` without one)."""
    return json.loads(path.read_text(encoding="utf-8")).get("rows", []) if path.is_file() else []


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """``{budget: {setting: {accuracy, seconds, steps, support_loss, episodes}}}``, means over episodes."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for r in rows:
        out.setdefault(r["budget"], {}).setdefault(r["setting"], {"_rows": []})["_rows"].append(r)  # type: ignore
    for settings in out.values():
        for name, cell in settings.items():
            rs = cell.pop("_rows")  # type: ignore[arg-type]
            for key in ("accuracy", "macro_f1", "seconds", "steps", "support_loss"):
                values = [r[key] for r in rs if r[key] is not None]
                cell[key] = sum(values) / len(values) if values else None  # type: ignore[assignment]
            cell["episodes"] = len(rs)
            settings[name] = cell
    return out


def markdown(rows: list[dict[str, Any]], settings: list[str]) -> tuple[str, str]:
    """``(table, chosen)``: accuracy (adaptation seconds) per budget x setting, ranked by the mean over settings."""
    summary = summarise(rows)
    complete = {b: s for b, s in summary.items() if all(k in s for k in settings)}
    rank = sorted(complete, key=lambda b: -sum(complete[b][k]["accuracy"] for k in settings) / len(settings))
    head = "| budget | " + " | ".join(f"{k} acc (s)" for k in settings) + " | mean acc |"
    lines = [head, "|---" * (len(settings) + 2) + "|"]
    for b in rank + [b for b in summary if b not in complete]:
        cells = [f"{100 * summary[b][k]['accuracy']:.1f} ({summary[b][k]['seconds']:.1f})" if k in summary[b] else ""
                 for k in settings]  # fmt: skip
        acc = sum(complete[b][k]["accuracy"] for k in settings) / len(settings) if b in complete else None
        mean = "" if acc is None else f"{100 * acc:.2f}"
        lines.append(f"| {b} | " + " | ".join(cells) + f" | {mean} |")
    chosen = next((b for b in rank if BUDGETS.get(b) is not None and b != "legacy"), "")
    return "\n".join(lines), chosen


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "clinc150"),
                   help="CLINC150 folder (meta-val domains: --val-domains), or a .jsonl dataset that no benchmark "
                        "uses (every class, queries drawn from the examples not in the support)")
    p.add_argument("--val-domains", nargs="+", default=list(VAL_DOMAINS), help="meta-val domains (not meta-test)")
    p.add_argument("--settings", nargs="+", default=DEFAULT_SETTINGS, choices=list(SETTINGS))
    p.add_argument("--budgets", nargs="+", default=list(BUDGETS), choices=list(BUDGETS))
    p.add_argument("--episodes", type=int, default=2, help="episodes per setting (default 2)")
    p.add_argument("--q-query", type=int, default=15, help="test utterances per intent as queries (default 15)")
    p.add_argument("--seed", type=int, default=0, help="episode and mini-batch seed")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the CPU is shared)")
    p.add_argument("--max-length", type=int, default=32, help="tokens per utterance (the CLINC150 recipe's)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="backbone passes in float32 (the rows before 2026-12-06) or under bfloat16 autocast")
    p.add_argument("--out", default=str(HERE / "results.json"))
    p.add_argument("--table", action="store_true", help="print the table of --out and exit")
    args = p.parse_args()
    out = Path(args.out)
    if args.table:
        table, chosen = markdown(load_rows(out), args.settings)
        sys.stdout.write(f"{table}\n\nchosen: {chosen}\n")
        return
    leaked = sorted(set(args.val_domains) & set(META_TEST))
    if leaked and not args.data.endswith(".jsonl"):
        p.error(f"--val-domains {leaked} are fold-0 meta-test domains: choose the budget on meta-val only")
    logging.basicConfig(level=logging.WARNING)
    sys.path.insert(0, str(ROOT))
    import torch

    from bench.run import provenance
    from metanlp.core.adaptation import AdaptBudget, inner_loop
    from metanlp.core.config import AdapterConfig
    from metanlp.core.metrics import load_metric
    from metanlp.core.saving import write_json_atomic
    from metanlp.families.text_classification.adapter import attach_lora, lora_parameters
    from metanlp.families.text_classification.backbone import DEFAULT_ENCODER, load_encoder
    from metanlp.families.text_classification.baselines import logistic_regression_predict
    from metanlp.families.text_classification.data import EpisodeSampler, load_corpus
    from metanlp.families.text_classification.family import TextClassificationFamily

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    from metanlp.core.precision import attention_kernel

    encoder, tokenizer = load_encoder(DEFAULT_ENCODER, attn_implementation=attention_kernel(args.precision, ""))
    model = attach_lora(encoder, AdapterConfig(), base_name=DEFAULT_ENCODER)  # r=8 on query/key/value, B = 0
    pretrained = {k: v.detach().clone() for k, v in lora_parameters(model).items()}
    task = TextClassificationFamily(model, tokenizer, args.max_length, precision=args.precision)
    corpus = load_corpus(args.data)
    if args.data.endswith(".jsonl"):  # a meta-val dataset no benchmark uses (FOLDOC): every class, queries the rest
        classes, pool, query_pool = sorted(set(corpus.labels)), corpus.by_class(), None
    else:
        classes = corpus.classes_of_groups(args.val_domains)
        pool, query_pool = corpus.by_class("train"), corpus.by_class("test")

    rows = load_rows(out)
    done = {(r["budget"], r["setting"], r["episode"], json.dumps(r["budget_fields"], sort_keys=True)) for r in rows}
    context = {"val_domains": args.val_domains, "q_query": args.q_query, "seed": args.seed,
               "max_length": args.max_length, "backbone": DEFAULT_ENCODER, "adapter": "LoRA r=8 q,k,v from B=0",
               "data": Path(args.data).name, "precision": args.precision}  # fmt: skip
    episodes = {}
    for s in args.settings:
        n_way, k_shot = SETTINGS[s]
        sampler = EpisodeSampler(pool, classes, n_way, k_shot, args.q_query, seed=args.seed, query_pool=query_pool)
        episodes[s] = [sampler.sample(i, rank=7_000_001) for i in range(args.episodes)]
    for b in args.budgets:
        fields = BUDGETS[b]
        # the grid's fields predate the stop_loss and probe_head fields: a budget without them does not stop and
        # keeps the prototype head (as when it ran)
        budget = AdaptBudget(**{"stop_loss": 0.0, "probe_head": False, **fields}) if fields is not None else None
        for s in args.settings:
            for i, ep in enumerate(episodes[s]):
                key = (b, s, i, json.dumps(fields, sort_keys=True))
                if key in done:
                    continue
                support, query = task.batches(ep)
                t0 = time.perf_counter()
                steps, support_loss = 0, None
                if b == "logreg":  # fit + predict on frozen embeddings: its seconds include embedding the queries
                    preds = logistic_regression_predict(task, pretrained, support, query, seed=args.seed).tolist()
                    seconds = time.perf_counter() - t0
                    refs = query["labels"].tolist()
                    scores = {name: load_metric(metric).compute(predictions=preds, references=refs)[metric]
                              for name, metric in (("accuracy", "accuracy"), ("macro_f1", "f1"))}  # fmt: skip
                else:
                    fast = task.init_fast_weights(pretrained, support)
                    if budget is not None:
                        info: dict[str, float] = {}
                        fast = inner_loop(task, fast, support, budget, seed=args.seed + i, stats=info)
                        steps = int(info["steps"])  # taken (fewer than budget.total_steps after a stop_loss stop)
                    seconds = time.perf_counter() - t0
                    with torch.no_grad():
                        support_loss = task.loss(fast, support).item()
                    scores = task.score(fast, query)
                row = {"budget": b, "setting": s, "episode": i, "n_way": ep.n_way, "k_shot": SETTINGS[s][1],
                       "n_support": len(ep.support_texts), "n_query": len(ep.query_texts), "steps": steps,
                       "seconds": seconds, "support_loss": support_loss, **scores,
                       "budget_fields": fields}  # fmt: skip
                rows.append(row)
                table, chosen = markdown(rows, args.settings)
                write_json_atomic(out, {**provenance(), "benchmark": "adapt_budget", **context, "chosen": chosen,
                                        "table": table, "rows": rows})  # fmt: skip
                sys.stdout.write(f"{b} {s} ep{i}: acc {row['accuracy']:.4f} loss {support_loss} "
                                 f"steps {steps} {seconds:.1f}s\n")  # fmt: skip
                sys.stdout.flush()
    table, chosen = markdown(rows, args.settings)
    sys.stdout.write(f"{table}\n\nchosen: {chosen}\n")


if __name__ == "__main__":
    main()
