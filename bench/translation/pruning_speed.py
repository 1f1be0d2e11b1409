"""Bench: step time of a LoRA training step on Gemma-3-270m, pruned vs full vocabulary, in one process.

Run: ``PYTHONPATH=. python bench/translation/pruning_speed.py`` (needs the converted backbone; ~3 minutes on 2 cores).
Writes ``bench/translation/pruning_speed.json``. Timings on a shared 2-core machine are noisy.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import torch

from metanlp.core.config import AdapterConfig
from metanlp.families.translation.adapter import always_kept_ids
from metanlp.families.translation.backbone import DEFAULT_TRANSLATOR, attach_translation_lora, load_translator
from metanlp.families.translation.family import TranslationFamily
from metanlp.families.translation.pairs import load_pairs
from metanlp.families.translation.vocab_pruning import build_vocab_map, prune_causal_lm

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "data" / "translation"
LORA = AdapterConfig(r=8, alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])


def step_times(task: TranslationFamily, batch: dict, n: int = 3) -> list[float]:
    params = {k: v for k, v in task.model.named_parameters() if "lora_" in k}
    times = []
    for _ in range(n + 1):
        start = time.perf_counter()
        loss = task.loss(params, batch)
        torch.autograd.grad(loss, list(params.values()))
        times.append(time.perf_counter() - start)
    return times[1:]  # first is warm-up


def main() -> None:
    torch.set_num_threads(1)  # OpenMP threads spin-wait on a shared, oversubscribed machine: 1 is far faster
    corpus = load_pairs([DATA / "django_pairs.jsonl", DATA / "udhr_pairs.jsonl"], max_chars=200)
    texts = [t for pairs in corpus.pairs.values() for p in pairs for t in p]
    pairs = corpus.directed("en", "de")[:11]
    results = {}
    for pruned in (False, True):
        model, tok = load_translator(DEFAULT_TRANSLATOR)
        vocab = None
        if pruned:
            size = model.get_input_embeddings().weight.shape[0]
            vocab = build_vocab_map(tok, texts + ["English: German:"], size, always_kept_ids(tok))
            prune_causal_lm(model, vocab)
        torch.manual_seed(0)
        peft_model = attach_translation_lora(model, LORA, DEFAULT_TRANSLATOR)
        task = TranslationFamily(peft_model, tok, vocab, max_new_tokens=48)
        batch = task.encode(pairs[:8], "en", "de")
        t = step_times(task, batch)
        params = {k: v.detach() for k, v in peft_model.named_parameters() if "lora_" in k}
        start = time.perf_counter()
        preds = task.translate_batch(params, task.encode(pairs[:4], "en", "de", shots=pairs[8:11]))
        gen_s = time.perf_counter() - start
        results["pruned" if pruned else "full"] = {
            "vocab": int(model.get_input_embeddings().weight.shape[0]),
            "step_s_median": statistics.median(t),
            "step_s_all": t,
            "sentences_per_s": 4 / gen_s,
            "batch_tokens": list(batch["input_ids"].shape),
            "example_translation": preds[0],
        }
        del model, peft_model, task
    results["step_time_ratio_pruned_over_full"] = results["pruned"]["step_s_median"] / results["full"]["step_s_median"]
    results["generation_speedup_pruned_over_full"] = (
        results["pruned"]["sentences_per_s"] / results["full"]["sentences_per_s"]
    )
    results["device"] = f"{platform.machine()} CPU, torch threads {torch.get_num_threads()} (shared machine: noisy)"
    (HERE / "pruning_speed.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({k: v for k, v in results.items() if not isinstance(v, dict)}, indent=2))  # noqa: T201
    for k in ("full", "pruned"):
        print(  # noqa: T201
            k,
            results[k]["vocab"],
            f"{results[k]['step_s_median']:.2f} s/step",
            f"{results[k]['sentences_per_s']:.2f} sent/s",
            results[k]["example_translation"],
        )


if __name__ == "__main__":
    main()
