"""BM25 in-context examples (translation.prompt_retrieval): the ranking on real UDHR sentences, per-query prompts in
one encoded batch, the key's check, and the prompting_bm25 / *_bm25 rows of new_language_pair on a tiny random
Gemma-3 (metrics.json, metanlp.json, model card)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from metanlp.core.config import AdapterConfig, ConfigError
from metanlp.core.model_card import build_model_card
from metanlp.core.recipe_loading import load_recipe
from metanlp.families.translation.backbone import attach_translation_lora, tiny_causal_lm
from metanlp.families.translation.family import TranslationFamily
from metanlp.families.translation.pairs import read_user_pairs
from metanlp.families.translation.prompt_retrieval import bm25_scores, prompt_examples
from metanlp.families.translation.recipes import new_language_pair

ROOT = Path(__file__).resolve().parents[3]
SUPPORT = read_user_pairs(ROOT / "data/examples/new_language_pair/support.en-zu.tsv")  # 16 UDHR en-zu pairs
MARRIAGE, ARREST = 9, 2  # "Marriage shall be entered into ... consent of the intending spouses." / "arbitrary arrest"
# shares 6 words with support pair 3 ("Everyone has the right freely to participate ..."), but only the 4 of pair 9
# include the rare "consent" and "spouses": BM25's IDF picks 9, a count of shared words would not
SPOUSES = ("Everyone has the right to the consent of the spouses.", "")
TORTURE = ("No one shall be subjected to torture or to cruel, inhuman or degrading treatment or punishment.", "")


def test_bm25_picks_the_support_pair_sharing_rare_words():
    words = lambda text: set(text.lower().rstrip(".").replace(",", "").split())  # noqa: E731
    shared = [len(words(SPOUSES[0]) & words(s)) for s, _ in SUPPORT]
    assert max(shared) > shared[MARRIAGE]  # another pair shares more words, all of them common ones

    scores = bm25_scores([s for s, _ in SUPPORT], [SPOUSES[0], TORTURE[0]])
    assert len(scores) == 2 and all(len(row) == len(SUPPORT) for row in scores)
    assert max(range(len(SUPPORT)), key=scores[0].__getitem__) == MARRIAGE
    assert max(range(len(SUPPORT)), key=scores[1].__getitem__) == ARREST
    assert scores[0][MARRIAGE] > 1.5 * sorted(scores[0])[-2]  # by a margin, not by a tie-break

    spouses, torture = prompt_examples(SUPPORT, [SPOUSES, TORTURE], 3)
    assert len(spouses) == len(torture) == 3
    assert spouses[-1] == SUPPORT[MARRIAGE] and torture[-1] == SUPPORT[ARREST]  # the most similar next to the query
    assert len({s for s, _ in spouses}) == 3 and spouses != torture
    assert prompt_examples(SUPPORT, [SPOUSES, TORTURE], 3, "first") == [SUPPORT[:3], SUPPORT[:3]]


def test_ties_and_fewer_pairs_than_shots_are_deterministic():
    support = [("the cat sleeps", "a"), ("a dog barks", "b"), ("the cat sleeps", "c"), ("birds sing", "d")]
    # no word in common (or none at all: "7" has no word of two letters): exactly the first-K prompt
    for query in ("zebras run fast", "7", ""):
        assert prompt_examples(support, [(query, "")], 2) == [support[:2]]
    # duplicate sources score the same: the earlier pair wins the last place, and comes first in the prompt
    assert prompt_examples(support, [("cat", "")], 1) == [[support[0]]]
    assert prompt_examples(support, [("cat", "")], 2) == [[support[0], support[2]]]
    assert prompt_examples(support[:2], [("dog", "")], 5) == [[support[0], support[1]]]  # all there are
    assert prompt_examples(support, [("dog", "")], 0) == [[]]
    assert prompt_examples([], [("dog", "")], 3) == [[]]
    assert prompt_examples([("7", "x")], [("dog", "")], 3) == [[("7", "x")]]  # bm25s cannot index a wordless corpus
    with pytest.raises(ConfigError, match=r"translation.prompt_retrieval='random' is not one of bm25, first"):
        prompt_examples(support, [("dog", "")], 2, "random")


def _family() -> TranslationFamily:
    texts = [t for p in SUPPORT for t in p] + [SPOUSES[0], TORTURE[0], "English:", "Zulu:"]
    model, tok = tiny_causal_lm(texts, seed=0)
    torch.manual_seed(0)
    lora = AdapterConfig(r=2, alpha=4, target_modules=["q_proj", "v_proj"])
    return TranslationFamily(attach_translation_lora(model, lora), tok, max_new_tokens=4)


def test_encoded_batch_holds_each_querys_own_examples():
    task = _family()
    queries = [SPOUSES, TORTURE]
    shots = prompt_examples(SUPPORT, queries, 2)
    batch = task.encode(queries, "en", "zu", per_query_shots=shots)
    prompts = [task.tokenizer.decode(ids[mask == 1], skip_special_tokens=True)
               for ids, mask in zip(batch["prompt_ids"], batch["prompt_mask"], strict=True)]  # fmt: skip
    assert prompts[0] != prompts[1]
    for prompt, query, examples in zip(prompts, queries, shots, strict=True):
        expected = "".join(f"English: {s}\nZulu: {t}\n" for s, t in examples) + f"English: {query[0]}\nZulu:"
        assert prompt == expected
    assert f"Zulu: {SUPPORT[MARRIAGE][1]}\nEnglish: {SPOUSES[0]}" in prompts[0]
    assert SUPPORT[ARREST][0] in prompts[1] and SUPPORT[ARREST][0] not in prompts[0]
    # the shared-list call is unchanged, and equals one copy of the list per query
    shared = task.encode(queries, "en", "zu", SUPPORT[:2])
    per_query = task.encode(queries, "en", "zu", per_query_shots=[SUPPORT[:2]] * 2)
    assert shared.keys() == per_query.keys() and all(torch.equal(shared[k], per_query[k]) for k in shared)
    with pytest.raises(ValueError, match="not both"):
        task.encode(queries, "en", "zu", SUPPORT[:2], per_query_shots=shots)
    with pytest.raises(ValueError, match="per_query_shots has 1 lists for 2 pairs"):
        task.encode(queries, "en", "zu", per_query_shots=shots[:1])


def test_unknown_prompt_retrieval_is_a_config_error_naming_the_key():
    assert load_recipe(None, ["task.family=translation"]).translation.prompt_retrieval == "bm25"
    with pytest.raises(ConfigError, match=r"translation\.prompt_retrieval='bm52' is not one of bm25, first "
                                          r"\(did you mean 'bm25'\?\)"):  # fmt: skip
        load_recipe(None, ["task.family=translation", "translation.prompt_retrieval=bm52"])


def _run(tmp_path: Path, *extra: str) -> dict:
    support, evals = tmp_path / "support.tsv", tmp_path / "eval.tsv"
    support.write_text("".join(f"{s}\t{t}\n" for s, t in SUPPORT[:6]), encoding="utf-8")
    evals.write_text("No one shall be subjected to arbitrary exile.\tAkekho oyodingiswa.\n"
                     "Everyone has the right to equal pay.\tWonke umuntu unelungelo.\n", encoding="utf-8")  # fmt: skip
    sets = ["model.name=tiny-random-gemma3", "adapter.r=2", "adapter.target_modules=[q_proj,v_proj]",
            "task.family=translation", "task.k_shot=4", "meta.inner_steps=1", "meta.inner_lr=0.1",
            "translation.pairs=[]", "translation.max_new_tokens=3", "translation.prompt_shots=2",
            "translation.source_lang=en", "translation.target_lang=zu", "run.progress=false",
            f"data.support={support}", f"data.eval={evals}", f"run.output_dir={tmp_path / 'out'}", *extra]  # fmt: skip
    return new_language_pair.run(load_recipe(None, sets))


def test_comparison_has_bm25_rows_in_metrics_metadata_and_model_card(tmp_path):
    metrics = _run(tmp_path)
    rows = ["prompting", "prompting_bm25", "finetune", "finetune_bm25"]
    assert list(metrics["methods"]) == rows
    assert all(set(metrics["methods"][r]) == {"chrf", "bleu"} for r in rows)
    assert metrics["prompts"] == {"prompting": "first 2 pairs", "prompting_bm25": "2 pairs by BM25",
                                  "finetune": "zero-shot", "finetune_bm25": "2 pairs by BM25"}  # fmt: skip
    table = metrics["table"].splitlines()
    assert table[0] == "| en->zu, K = 6, 2 eval pairs | prompt | chrF | BLEU |"
    bm25 = metrics["methods"]["prompting_bm25"]
    assert table[3] == f"| (0) prompting_bm25 | 2 pairs by BM25 | {bm25['chrf']:.1f} | {bm25['bleu']:.1f} |"
    assert table[5].startswith("| (b) finetune_bm25 | 2 pairs by BM25 |")
    out = tmp_path / "out"
    assert json.loads((out / "metrics.json").read_text())["methods"] == metrics["methods"]

    adapter = out / "adapter"
    meta = json.loads((adapter / "metanlp.json").read_text())
    assert meta["k_shot"] == 6
    comparison = meta["comparison"]
    assert (comparison["pair"], comparison["k_shot"], comparison["eval_pairs"]) == ("en->zu", 6, 2)
    assert (comparison["prompt_shots"], comparison["prompt_retrieval"]) == (2, "bm25")
    assert {r: s["chrf"] for r, s in comparison["methods"].items()} == {r: metrics["methods"][r]["chrf"] for r in rows}

    card = str(build_model_card(adapter, "alice/en-zu"))
    assert "en → zu, K = 6 support pairs, 2 eval pairs" in card and "- K-shot: 6" in card
    assert "| method | prompt | chrF | BLEU |" in card
    for r in rows:
        s = metrics["methods"][r]
        assert f"| `{r}` | {metrics['prompts'][r]} | {s['chrf']:.1f} | {s['bleu']:.1f} |" in card
    assert "- `*_bm25`: read with, per sentence, the support pairs most similar to it by BM25" in card
    assert '"table"' not in card  # a table, not the JSON dump


def test_prompt_retrieval_first_keeps_the_first_k_rows_only(tmp_path):
    metrics = _run(tmp_path, "translation.prompt_retrieval=first")
    assert list(metrics["methods"]) == ["prompting", "finetune"]
    meta = json.loads((tmp_path / "out" / "adapter" / "metanlp.json").read_text())
    assert list(meta["comparison"]["methods"]) == ["prompting", "finetune"]
