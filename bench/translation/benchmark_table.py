"""Summaries and markdown tables of ``run_benchmark.py``'s results: means over held-out pairs, best prompt per method.

A *row* is a method read with one prompt: ``finetune`` (zero-shot prompt), ``finetune+prompt`` (the first
``prompt_shots`` support pairs), ``finetune_bm25`` (the BM25-nearest support pairs); prompting has only
``prompting`` (first pairs) and ``prompting_bm25``. Means are over held-out pairs: every pair evaluated at that K
(``all``), and the pairs evaluated at every K (``common``), so that K = 16 and K = 64 compare the same pairs.
"""

from __future__ import annotations

from metanlp.core.metrics import mean_ci95

#: Read suffix -> what the prompt holds.
READS = {"": "zero-shot", "+prompt": "first 3 support pairs", "_bm25": "3 support pairs by BM25"}
#: Method -> README letter and words.
LABELS = {
    "prompting": "(0) prompting, no training",
    "finetune": "(b) LoRA from the pretrained backbone",
    "multitask": "(d) multi-task init",
    "meta": "(c) meta-learned init",
}


def row_name(method: str, suffix: str) -> str:
    """``prompting`` + ``+prompt`` -> ``prompting`` (its only first-pairs read); otherwise ``method + suffix``."""
    return "prompting" if (method, suffix) == ("prompting", "+prompt") else method + suffix


def split_row(row: str) -> tuple[str, str]:
    """Inverse of :func:`row_name`: ``(method, suffix)``."""
    for suffix in ("+prompt", "_bm25"):
        if row.endswith(suffix):
            return row.removesuffix(suffix), suffix
    return row, "+prompt" if row == "prompting" else ""


def common_pairs(results: dict) -> set[str]:
    """Language pairs (``en->uk``) evaluated at every K of the results."""
    by_k = [{h.split(":")[0] for h in results["setting"]["held_out"] if h.endswith(f"K={kk}")}
            for kk in results["k_shots"]]  # fmt: skip
    return set.intersection(*by_k) if by_k else set()


def summarise(results: dict) -> dict:
    """``{"{row}/{chrf|bleu}/K={k}[/common]": {mean, ci95, n, k, pairs}}`` over the rows of ``results["per_pair"]``."""
    common = common_pairs(results)
    out = {}
    for row, records in results["per_pair"].items():
        for kk in sorted({r["k"] for r in records}):
            at_k = [r for r in records if r["k"] == kk]
            for scope, rs in (("", at_k), ("/common", [r for r in at_k if r["pair"].split(":")[0] in common])):
                if not rs:
                    continue
                for metric in ("chrf", "bleu"):
                    s = mean_ci95([r[metric] for r in rs])
                    out[f"{row}/{metric}/K={kk}{scope}"] = {**s, "k": kk, "pairs": [r["pair"] for r in rs]}
    return out


def best_reads(results: dict) -> dict:
    """Per K and scope: each method's best row, by test chrF (the issue's rule) and by meta-val chrF (the read chosen
    on meta-val), and ``meta_minus_best_other``: (c)'s chrF minus the best other method's, under each rule."""
    m, out = results["metrics"], {}
    methods = [x for x in LABELS if any(split_row(r)[0] == x for r in results["per_pair"])]
    for kk in results["k_shots"]:
        for scope in ("", "/common"):
            key = f"K={kk}{scope or '/all'}"
            rows = {x: [r for r in results["per_pair"] if split_row(r)[0] == x and f"{r}/chrf/K={kk}{scope}" in m]
                    for x in methods}  # fmt: skip
            test = {x: max(rs, key=lambda r: m[f"{r}/chrf/K={kk}{scope}"]["mean"]) for x, rs in rows.items() if rs}
            val = {x: row_name(x, results["meta_val"][x]["read"]) for x in test if x in results.get("meta_val", {})}
            entry = {}
            for rule, chosen in (("test", test), ("meta_val", val)):
                chrf = {x: m[f"{r}/chrf/K={kk}{scope}"]["mean"] for x, r in chosen.items() if
                        f"{r}/chrf/K={kk}{scope}" in m}  # fmt: skip
                others = [v for x, v in chrf.items() if x != "meta"]
                gap = chrf["meta"] - max(others) if "meta" in chrf and others else None
                entry[rule] = {"rows": chosen, "chrf": chrf, "meta_minus_best_other": gap}
            out[key] = entry
    return out


def table(results: dict) -> str:
    """Markdown: per K, every row's chrF (mean ± 95% CI over all pairs, and over the common pairs), BLEU, chrF per
    pair; then each method's best prompt under both rules and (c)'s margin."""
    m, lines = results["metrics"], []
    common = sorted(common_pairs(results))
    for kk in results["k_shots"]:
        pairs = [h.split(":")[0] for h in results["setting"]["held_out"] if h.endswith(f"K={kk}")]
        lines += [f"\nK = {kk} ({len(pairs)} held-out pairs; 'common' = the {len(common)} pairs of every K)\n",
                  f"| method | prompt | chrF, {len(pairs)} pairs | chrF, common | BLEU | {' / '.join(pairs)} chrF |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for method, label in LABELS.items():
            for suffix, prompt in READS.items():
                row = row_name(method, suffix)
                if (method, suffix) == ("prompting", "") or f"{row}/chrf/K={kk}" not in m:
                    continue
                c, b = m[f"{row}/chrf/K={kk}"], m[f"{row}/bleu/K={kk}"]
                cc = m.get(f"{row}/chrf/K={kk}/common")
                per = {r["pair"].split(":")[0]: r["chrf"] for r in results["per_pair"][row] if r["k"] == kk}
                common_cell = f"{cc['mean']:.1f}" if cc else "-"
                per_cells = " / ".join(f"{per[p]:.1f}" if p in per else "-" for p in pairs)
                lines.append(f"| {label} | {prompt} | {c['mean']:.1f} ± {c['ci95']:.1f} | {common_cell} | "
                             f"{b['mean']:.1f} | {per_cells} |")  # fmt: skip
    for key, entry in results.get("best_reads", {}).items():
        for rule, e in entry.items():
            best = ", ".join(f"{x} {v:.1f} ({e['rows'][x]})" for x, v in e["chrf"].items())
            gap = e["meta_minus_best_other"]
            lines.append(f"- {key}, best prompt by {rule}: {best}; (c) minus best other: "
                         f"{'n/a' if gap is None else f'{gap:+.1f}'}")  # fmt: skip
    return "\n".join(lines)
