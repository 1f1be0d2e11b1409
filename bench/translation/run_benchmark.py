"""Bench: few-shot translation to held-out language pairs, four methods on the same sentences, one process.

(0) in-context prompting with ``translation.prompt_shots`` of the K support pairs, no training;
(a) LoRA adapted on the K pairs from the pretrained backbone;
(b) multi-task transfer: LoRA trained jointly on all meta-train pairs with the same number of forward/backward
    passes as meta-training, then adapted on the K pairs;
(c) the FOMAML meta-learned init, adapted on the K pairs.
(a)-(c) use the same adaptation (``meta.inner_steps`` SGD steps at the inner learning rate chosen on meta-val pairs
only) and greedy decoding of a zero-shot prompt. Scores: corpus chrF and BLEU per held-out pair; mean and 95% CI over
pairs. Held-out languages never occur in meta-training (asserted by ``split_pairs``).

Run: ``PYTHONPATH=. python bench/translation/run_benchmark.py [--budget-s 480] [--test-sentences 10]``
Writes ``bench/translation/results.json`` and ``metrics.json``; timings on a shared 2-core machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from metanlp.algorithms.fomaml import FOMAML
from metanlp.language_pairs import PairEpisodeSampler, load_pairs, split_pairs
from metanlp.meta_train import meta_train
from metanlp.metrics import mean_ci95
from metanlp.recipe_loading import load_recipe, recipe_to_yaml
from metanlp.saving import write_json_atomic
from metanlp.translation_adapters import build_translation

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)  # noqa: T201 - a bench script, not library code


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget-s", type=float, default=480, help="meta-training wall-clock budget (seconds)")
    ap.add_argument("--test-sentences", type=int, default=10, help="test sentences per held-out pair")
    ap.add_argument("--pairs", default="zu,so,mt", help="held-out target languages evaluated (en->X)")
    ap.add_argument("--lrs", default="0.03,0.1", help="inner learning rates tried on meta-val")
    ap.add_argument("--smoke", action="store_true", help="tiny random model, seconds: checks the code path only")
    args = ap.parse_args()
    torch.set_num_threads(1)  # OpenMP threads spin-wait on a shared, oversubscribed machine: 1 is far faster
    overrides = [f"run.output_dir={HERE / 'run'}", "run.progress=false", "meta.save_every=0"]
    if args.smoke:
        overrides += [
            "model.name=tiny-random-gemma3",
            "adapter.target_modules=[q_proj,v_proj]",
            "translation.max_new_tokens=4",
            f"run.output_dir={HERE / 'smoke_run'}",
        ]
    out_name = "smoke_results.json" if args.smoke else "results.json"
    cfg = load_recipe(ROOT / "recipes" / "translation_meta_train.yaml", overrides)
    t, k = cfg.translation, cfg.task.k_shot
    corpus = load_pairs([ROOT / p for p in t.pairs], t.max_chars)
    splits = split_pairs(corpus, t.val_languages, t.test_languages, cfg.task.k_shot + cfg.task.q_query)
    held = [("en", x) for x in args.pairs.split(",")]
    assert all(h in splits.test for h in held)
    episodes = {}
    for src, tgt in held:  # fixed support (first K after a seeded shuffle) and test sentences, same for all methods
        pairs = corpus.directed(src, tgt)
        order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(cfg.run.seed)).tolist()
        episodes[(src, tgt)] = ([pairs[i] for i in order[:k]], [pairs[i] for i in order[k : k + args.test_sentences]])
    langs = sorted({x for task in splits.train + splits.val + held for x in task})
    texts = [x for key, ps in corpus.pairs.items() if not set(key) & set(t.test_languages) for p in ps for x in p]
    texts += [x for sup, _ in episodes.values() for p in sup for x in p]  # supports only, never test sentences
    start = time.perf_counter()
    setup = build_translation(cfg, texts, langs)
    task = setup.task
    results: dict = {"k_shot": k, "held_out": [f"{a}->{b}" for a, b in held], "vocab_kept": setup.vocab.size,
                     "test_sentences_per_pair": args.test_sentences, "meta_train_pairs": len(splits.train),
                     "device": f"{platform.machine()} CPU, {torch.get_num_threads()} threads, shared (noisy)",
                     "recipe": recipe_to_yaml(cfg)}  # fmt: skip
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

    def evaluate(method: str, init: dict | None) -> None:
        rows = []
        for (src, tgt), (sup, test) in episodes.items():
            t0 = time.perf_counter()
            if init is None:
                params, batch = setup.pretrained, task.encode(test, src, tgt, sup[: t.prompt_shots])
            else:
                with torch.enable_grad():
                    params = learner.adapt(task, init, task.encode(sup, src, tgt))
                batch = task.encode(test, src, tgt)
            adapt_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            preds = task.translate_batch(params, batch)
            gen_s = time.perf_counter() - t1
            refs = [[r] for r in task.references(batch)]
            from metanlp.metrics import load_metric

            chrf = load_metric("chrf").compute(predictions=preds, references=refs)["score"]
            bleu = load_metric("bleu").compute(predictions=preds, references=refs)["score"]
            rows.append({"pair": f"{src}->{tgt}", "chrf": chrf, "bleu": bleu, "adapt_s": adapt_s,
                         "sentences_per_s": len(test) / gen_s,
                         "example": [test[0][0], preds[0], test[0][1]]})  # fmt: skip
            log(
                f"{method} {src}->{tgt}: chrF {chrf:.1f} BLEU {bleu:.1f} adapt {adapt_s:.0f} s, "
                f"{len(test) / gen_s:.2f} sent/s"
            )
        results.setdefault("per_pair", {})[method] = rows
        for metric in ("chrf", "bleu"):
            results.setdefault("metrics", {})[f"{method}/{metric}"] = {
                **mean_ci95([r[metric] for r in rows]),
                "k": k,
                "episodes": len(rows),
            }
        write_json_atomic(HERE / out_name, results)

    evaluate("prompting", None)
    evaluate("finetune", setup.pretrained)

    # (c) meta-training: outer steps from the budget and a timed outer step
    sampler = PairEpisodeSampler(corpus, splits.train, k, cfg.task.q_query, seed=cfg.run.seed)
    t0 = time.perf_counter()
    probe = {kk: v.detach().clone() for kk, v in setup.meta_params.items()}
    learner.meta_gradient(task, setup.meta_params, sampler.sample(10**6))
    per_episode = time.perf_counter() - t0
    cfg.meta.outer_steps = max(5, int(args.budget_s / (per_episode * cfg.meta.meta_batch_size)))
    log(f"one episode {per_episode:.1f} s -> {cfg.meta.outer_steps} outer steps")
    res = meta_train(task, learner, setup.meta_params, lambda i: sampler.sample(i), cfg.meta, cfg.run.output_dir, None,
                     None, False)  # fmt: skip
    meta_init = {kk: v.detach().clone() for kk, v in setup.meta_params.items()}
    logged = [json.loads(x)["query_loss"] for x in (Path(cfg.run.output_dir) / "log.jsonl").read_text().splitlines()]
    results["meta_train"] = {"outer_steps": res.steps, "seconds": res.seconds,
                             "final_query_loss": res.final_query_loss, "query_losses": logged}  # fmt: skip
    log(f"meta-trained {res.steps} steps in {res.seconds:.0f} s, final query loss {res.final_query_loss:.3f}")

    # (b) multi-task: same forward/backward passes (outer_steps * meta_batch * (inner_steps + 1)), Adam at outer_lr
    with torch.no_grad():
        for kk, p in setup.meta_params.items():
            p.copy_(probe[kk])
    params = list(setup.meta_params.values())
    opt = torch.optim.Adam(params, lr=cfg.meta.outer_lr)
    passes = res.steps * cfg.meta.meta_batch_size * (cfg.meta.inner_steps + 1)
    t0 = time.perf_counter()
    losses = []
    for i in range(passes):
        ep = sampler.sample(10**7 + i)
        loss = task.loss(setup.meta_params, task.encode(ep.support, ep.source_lang, ep.target_lang))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    multitask_init = {kk: v.detach().clone() for kk, v in setup.meta_params.items()}
    results["multitask"] = {"passes": passes, "seconds": time.perf_counter() - t0,
                            "final_loss": sum(losses[-10:]) / len(losses[-10:])}  # fmt: skip
    log(f"multi-task {passes} passes in {results['multitask']['seconds']:.0f} s")

    evaluate("multitask", multitask_init)
    evaluate("meta", meta_init)
    m = results["metrics"]
    results["meta_minus_best_other_chrf"] = m["meta/chrf"]["mean"] - max(
        m[f"{x}/chrf"]["mean"] for x in ("prompting", "finetune", "multitask")
    )
    write_json_atomic(HERE / out_name, results)
    if not args.smoke:
        write_json_atomic(HERE / "metrics.json", results["metrics"])
    log(json.dumps(results["metrics"], indent=1))


if __name__ == "__main__":
    main()
