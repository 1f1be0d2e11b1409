"""Language pairs: episode sampler, held-out splits, user pair files, language codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metanlp.families.translation.pairs import (
    PairCorpus,
    PairEpisodeSampler,
    language_name,
    load_pairs,
    read_user_pairs,
    split_pairs,
)

DATA = Path(__file__).resolve().parents[3] / "data" / "translation"


def _corpus() -> PairCorpus:
    return PairCorpus(
        {
            ("en", "de"): [(f"en {i}", f"de {i}") for i in range(10)],
            ("en", "fr"): [(f"en {i}", f"fr {i}") for i in range(10)],
            ("en", "zu"): [(f"en {i}", f"zu {i}") for i in range(10)],
        },
        source="mem",
    )


def test_sampler_is_seeded_disjoint_and_directed():
    corpus = _corpus()
    sampler = PairEpisodeSampler(corpus, [("de", "en"), ("en", "fr")], k_shot=4, q_query=3, seed=1)
    a, b = sampler.sample(5), sampler.sample(5)
    assert a == b
    assert any(sampler.sample(s) != a for s in range(6, 12))
    assert sampler.sample(5, rank=1) != a or sampler.sample(6, rank=1) != sampler.sample(6)
    for step in range(20):
        ep = sampler.sample(step)
        assert (ep.source_lang, ep.target_lang) in {("de", "en"), ("en", "fr")}
        assert len(ep.support) == 4 and len(ep.query) == 3
        assert not set(ep.support) & set(ep.query)
        lang = ep.source_lang
        assert all(src.startswith(lang) for src, _ in ep.support + ep.query)


def _skewed() -> PairCorpus:
    """Directed-pair sizes 400, 100 and 25: square roots 20, 10, 5."""
    sizes = {"de": 400, "fr": 100, "zu": 25}
    return PairCorpus({("en", x): [(f"en {i}", f"{x} {i}") for i in range(n)] for x, n in sizes.items()})


def test_sampler_draws_pairs_in_proportion_to_size_to_the_alpha():
    tasks = [("en", "de"), ("en", "fr"), ("en", "zu")]
    expected = {0.0: [1 / 3, 1 / 3, 1 / 3], 0.5: [20 / 35, 10 / 35, 5 / 35], 1.0: [400 / 525, 100 / 525, 25 / 525]}
    for alpha, probs in expected.items():
        sampler = PairEpisodeSampler(_skewed(), tasks, k_shot=4, q_query=4, seed=3, alpha=alpha)
        assert sampler.probabilities == pytest.approx(probs)
        drawn = [sampler.sample(step).target_lang for step in range(3000)]
        freq = [drawn.count(x) / len(drawn) for x in ("de", "fr", "zu")]
        assert freq == pytest.approx(probs, abs=0.03), alpha  # 3000 draws: sd <= 0.009
    with pytest.raises(ValueError, match="alpha=-1 must be >= 0"):
        PairEpisodeSampler(_skewed(), tasks, k_shot=4, q_query=4, alpha=-1)


def test_round_robin_covers_every_task_and_sample_takes_a_task():
    tasks = [("en", "de"), ("en", "fr"), ("en", "zu")]
    sampler = PairEpisodeSampler(_skewed(), tasks, k_shot=4, q_query=4, seed=3, alpha=1.0)
    eps = sampler.round_robin(6)
    assert [e.target_lang for e in eps] == ["de", "fr", "zu"] * 2
    assert eps == sampler.round_robin(6)
    assert sampler.sample(7, task=("en", "zu")).target_lang == "zu"
    with pytest.raises(ValueError, match="de->en is not a task"):
        sampler.sample(0, task=("de", "en"))


def test_sampler_rejects_too_few_pairs():
    with pytest.raises(ValueError, match=r"en->de has 10 pairs, fewer than K \+ Q = 8 \+ 3"):
        PairEpisodeSampler(_corpus(), [("en", "de")], k_shot=8, q_query=3)


def test_split_holds_out_both_directions():
    splits = split_pairs(_corpus(), val_languages=["fr"], test_languages=["zu"])
    assert set(splits.test) == {("en", "zu"), ("zu", "en")}
    assert set(splits.val) == {("en", "fr"), ("fr", "en")}
    assert not {lang for t in splits.train for lang in t} & {"zu", "fr"}
    with pytest.raises(ValueError, match="'xx' not in the corpus"):
        split_pairs(_corpus(), [], ["xx"])


def test_real_corpora_hold_out_udhr_languages():
    if not (DATA / "udhr_pairs.jsonl").is_file():
        pytest.skip("run python data/translation/prepare.py first")
    corpus = load_pairs([DATA / "django_pairs.jsonl", DATA / "udhr_pairs.jsonl"])
    splits = split_pairs(corpus, ["sw"], ["zu", "so", "mt", "xh"])
    assert len(splits.train) > 40 and len(splits.test) == 8
    assert len(corpus.directed("en", "zu")) >= 40


def test_language_codes():
    assert language_name("zu") == "Zulu"
    assert language_name("xx", {"xx": "Example"}) == "Example"
    with pytest.raises(ValueError, match="unknown language code 'qq'; supported: .*zu"):
        language_name("qq")


def test_user_pairs_tsv_jsonl_and_errors(tmp_path):
    tsv = tmp_path / "p.tsv"
    tsv.write_text("Hello world\tSawubona mhlaba\nGood  morning\tSawubona\n", encoding="utf-8")
    assert read_user_pairs(tsv) == [("Hello world", "Sawubona mhlaba"), ("Good morning", "Sawubona")]
    jl = tmp_path / "p.jsonl"
    jl.write_text(json.dumps({"source": "a b", "target": "c d"}) + "\n", encoding="utf-8")
    assert read_user_pairs(jl) == [("a b", "c d")]
    cases = {
        "": "the file is empty",
        "a\tb\n\nc\td\n": r"p1.tsv:2: empty line",
        "a\tb\nonly source\n": r":2: expected 2 tab-separated fields",
        "a\tb\nc\t \n": r":2: empty target",
    }
    for i, (text, msg) in enumerate(cases.items()):
        f = tmp_path / f"p{i}.tsv"
        f.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=msg):
            read_user_pairs(f)
    with pytest.raises(FileNotFoundError):
        read_user_pairs(tmp_path / "missing.tsv")
