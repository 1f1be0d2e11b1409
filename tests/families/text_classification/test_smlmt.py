"""SMLMT cloze tasks from unlabelled text: masking, the frequency band, unambiguous episodes, seeding, the mixture."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from metanlp.core.config import ConfigError
from metanlp.core.recipe_loading import load_recipe
from metanlp.families.text_classification.checks import check_inputs, check_smlmt
from metanlp.families.text_classification.data import EpisodeSampler
from metanlp.families.text_classification.mixture import MixtureSampler, mixture_sampler
from metanlp.families.text_classification.smlmt import (
    STOP_WORDS,
    ClozeEpisodeSampler,
    mask_word,
    smlmt_corpus,
    smlmt_sampler,
    words_of,
)

DATA = Path(__file__).resolve().parents[3] / "data"
ICD10_TEXT = DATA / "icd10_unlabelled" / "icd10_unlabelled.txt"
BROWN = DATA / "brown_genres" / "brown_genres.jsonl"


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    """Real unlabelled text of the repository: ICD-10-CM descriptions and Brown corpus passages."""
    for f in (ICD10_TEXT, BROWN):
        if not f.is_file():
            pytest.skip(f"{f} is absent")
    texts = ICD10_TEXT.read_text(encoding="utf-8").splitlines()
    return texts + [json.loads(line)["text"] for line in BROWN.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def corpus(sentences):  # noqa: ANN001, ANN201
    return smlmt_corpus(sentences, min_examples=10, max_classes=300, max_per_class=60, seed=0)


def _unmasked(text: str) -> set[str]:
    return words_of(text.replace("[MASK]", " "))


def test_mask_word_masks_whole_words_in_any_case() -> None:
    assert mask_word("Femur femur FEMUR, femurs; the femur's", "femur") == "[MASK] [MASK] [MASK], femurs; the [MASK]'s"
    assert mask_word("no such word", "femur", "<mask>") == "no such word"


def test_every_class_example_holds_the_mask_and_not_the_word(corpus, sentences) -> None:  # noqa: ANN001
    by_class = corpus.by_class()
    assert 100 <= len(by_class) <= 300
    originals = {t.strip().lower() for t in sentences}
    for word, texts in by_class.items():
        assert len(word) >= 3 and word not in STOP_WORDS
        assert 10 <= len(texts) <= 60
        assert len(set(texts)) == len(texts)  # duplicate source lines are counted once
        for t in texts:
            assert "[MASK]" in t, (word, t)
            assert word not in _unmasked(t), (word, t)
            assert mask_word(t.replace("[MASK]", word), word) == t  # only the word was touched
            assert t.replace("[MASK]", word).lower() in originals  # a source text, up to the word's case
    df = Counter(w for t in dict.fromkeys(s.strip() for s in sentences) for w in words_of(t))
    top = sorted(df, key=lambda w: (-df[w], w))[: len(df) // 100]  # the default band drops the top 1%
    assert not set(top) & set(by_class)
    assert {"unspecified", "encounter"} <= set(top)  # ICD-10's most frequent content words are left out


def test_no_episode_text_shows_another_episode_word(corpus) -> None:  # noqa: ANN001
    sampler = ClozeEpisodeSampler(corpus, n_way=20, k_shot=3, q_query=3, seed=0)
    clashes = 0  # texts a filter-free sampler could have drawn that show another word of the episode
    for step in range(40):
        ep = sampler.sample(step, n_way=20 + step % 11)
        words = set(ep.label_names)
        assert ep.n_way == 20 + step % 11 and len(words) == ep.n_way
        assert Counter(ep.support_labels) == dict.fromkeys(range(ep.n_way), 3)
        assert Counter(ep.query_labels) == dict.fromkeys(range(ep.n_way), 3)
        for text, label in zip(ep.support_texts + ep.query_texts, ep.support_labels + ep.query_labels, strict=True):
            assert "[MASK]" in text and not _unmasked(text) & words, (ep.label_names[label], text)
        clashes += sum(bool(_unmasked(t) & (words - {w})) for w in words for t in sampler.texts[w])
    assert clashes > 0  # the corpus does hold such texts, so the filter is exercised
    toy = smlmt_corpus(["red fox", "red hen", "red owl", "blue fox", "blue hen", "blue owl"], 2, drop_frequent=0)
    for step in range(30):  # red and fox share texts: with 2 texts each needed they never meet in one episode
        names = set(ClozeEpisodeSampler(toy, 2, 1, 1, seed=step).sample(step).label_names)
        assert names in ({"blue", "red"}, {"fox", "hen"}, {"fox", "owl"}, {"hen", "owl"})


def test_the_same_seed_gives_the_same_episode(sentences) -> None:  # noqa: ANN001
    a, b, c = (smlmt_corpus(sentences, 10, max_classes=100, seed=s) for s in (0, 0, 1))
    assert a.texts == b.texts and a.labels == b.labels
    assert set(a.labels) != set(c.labels)
    s0, s0_again, s1 = (ClozeEpisodeSampler(a, 5, 2, 2, seed=s) for s in (0, 0, 1))
    ep = s0.sample(3)
    assert ep == s0_again.sample(3) and ep == s0.sample(3)
    assert ep != s1.sample(3) and ep != s0.sample(4) and ep != s0.sample(3, rank=1)


def _supervised() -> tuple[dict[str, EpisodeSampler], dict[str, int]]:
    pool = {f"s{i}": [f"s{i} {j}" for j in range(4)] for i in range(3)}
    pool |= {f"b{i}": [f"b{i} {j}" for j in range(9)] for i in range(12)}
    small = EpisodeSampler(pool, [f"s{i}" for i in range(3)], 2, 1, 1, seed=3)
    big = EpisodeSampler(pool, [f"b{i}" for i in range(12)], 2, 1, 1, seed=3)
    return {"small": small, "big": big}, {"small": 12, "big": 108}


@pytest.mark.parametrize("fraction", [0.5, 0.2])
def test_the_smlmt_fraction_holds_apart_from_the_dataset_weights(corpus, fraction: float) -> None:  # noqa: ANN001
    samplers, sizes = _supervised()
    cloze = ClozeEpisodeSampler(corpus, 2, 1, 1, seed=3)
    plain = MixtureSampler(samplers, sizes, 0.5, (2, 6), seed=3)
    mix = MixtureSampler(samplers, sizes, 0.5, (2, 6), seed=3, smlmt=cloze, smlmt_fraction=fraction)
    kinds: Counter[str] = Counter()
    for step in range(200):
        ep = mix.sample(step)
        is_cloze = set(ep.label_names) <= set(cloze.classes)
        assert is_cloze == mix.is_smlmt(step) == all("[MASK]" in t for t in ep.support_texts)
        if is_cloze:
            kinds["smlmt"] += 1
            assert 2 <= ep.n_way <= 6
        else:  # a supervised episode is the one the mixture without SMLMT draws at that step
            assert ep == plain.sample(step)
            kinds["big" if ep.label_names[0][0] == "b" else "small"] += 1
    assert kinds["smlmt"] / 200 == pytest.approx(fraction, abs=0.1)
    supervised = kinds["big"] + kinds["small"]
    assert kinds["big"] / supervised == pytest.approx(plain.probabilities["big"], abs=0.1)  # 0.75 either way
    with pytest.raises(ValueError, match="smlmt_fraction"):
        MixtureSampler(samplers, sizes, smlmt=cloze, smlmt_fraction=1.5)


def test_cactus_episodes_share_the_self_supervised_fraction_with_cloze_ones(corpus) -> None:  # noqa: ANN001
    """``task.unlabelled`` in a mixture: a self-supervised episode is cloze or CACTUs, half each; a CACTUs episode
    stays inside one partition, with the mixture's N capped by that partition; supervised episodes do not move."""
    from metanlp.families.text_classification.data import LabelledCorpus
    from metanlp.families.text_classification.unsupervised import PartitionEpisodeSampler

    texts = [f"text {i}" for i in range(40)]  # partition p0: 4 clusters of 10; p1: 8 clusters of 5
    pseudo = LabelledCorpus(texts * 2, [f"p0_c{i % 4}" for i in range(40)] + [f"p1_c{i % 8}" for i in range(40)],
                            ["p0"] * 40 + ["p1"] * 40)  # fmt: skip
    cactus = PartitionEpisodeSampler(pseudo, n_way=2, k_shot=1, q_query=1, seed=3)
    samplers, sizes = _supervised()
    cloze = ClozeEpisodeSampler(corpus, 2, 1, 1, seed=3)
    plain = MixtureSampler(samplers, sizes, 0.5, (2, 6), seed=3)
    both = MixtureSampler(samplers, sizes, 0.5, (2, 6), seed=3, smlmt=cloze, smlmt_fraction=0.6, cactus=cactus)
    kinds: Counter[str | None] = Counter()
    for step in range(300):
        ep, kind = both.sample(step), both.self_supervised(step)
        kinds[kind] += 1
        if kind == "cactus":
            parts = {name.split("_")[0] for name in ep.label_names}
            assert len(parts) == 1 and set(ep.label_names) <= set(cactus.classes)
            assert 2 <= ep.n_way <= (4 if parts == {"p0"} else 6)
        elif kind == "smlmt":
            assert set(ep.label_names) <= set(cloze.classes)
        else:
            assert ep == plain.sample(step)
    assert (kinds["smlmt"] + kinds["cactus"]) / 300 == pytest.approx(0.6, abs=0.08)
    assert kinds["cactus"] / (kinds["smlmt"] + kinds["cactus"]) == pytest.approx(0.5, abs=0.1)
    alone = MixtureSampler(samplers, sizes, 0.5, (2, 6), seed=3, smlmt_fraction=0.3, cactus=cactus)
    assert {alone.self_supervised(i) for i in range(100)} == {None, "cactus"}
    assert not any(alone.is_smlmt(i) for i in range(100))


def test_recipe_keys_build_the_mixture_member(root: Path) -> None:
    cfg = load_recipe(None, [f"task.dataset={DATA / 'wordnet_supersenses' / 'wordnet_supersenses.jsonl'}",
                             f"task.smlmt=[{ICD10_TEXT},{BROWN}]", "task.n_way=5", "task.k_shot=2",
                             "task.q_query=2"])  # fmt: skip
    assert cfg.task.smlmt_fraction == 0.5  # Hybrid-SMLMT's half of the episodes
    from metanlp.families.text_classification.data import load_corpus, split_classes

    corpus = load_corpus(cfg.task.dataset)
    mix = mixture_sampler(cfg, corpus, split_classes(corpus, cfg.task).train, mask="<mask>")
    assert mix.smlmt is not None and mix.smlmt_fraction == 0.5 and len(mix.smlmt.classes) == 500
    ep = next(mix.sample(i) for i in range(20) if mix.is_smlmt(i))
    assert all("<mask>" in t for t in ep.support_texts + ep.query_texts)


def test_bad_values_raise_errors_naming_the_key(root: Path, tmp_path: Path) -> None:
    def cfg(*sets: str):  # noqa: ANN202
        return load_recipe(None, [f"task.smlmt=[{ICD10_TEXT}]", *sets])

    for value in ("1.5", "-0.1"):
        with pytest.raises(ConfigError, match=rf"task.smlmt_fraction={value}"):
            check_smlmt(cfg(f"task.smlmt_fraction={value}").task)
    with pytest.raises(ConfigError, match="task.smlmt_fraction"):
        load_recipe(None, ["task.smlmt_fraction=half"])
    with pytest.raises(ConfigError, match=r"task.smlmt_fraction=0 with task.smlmt"):
        check_smlmt(cfg("task.smlmt_fraction=0").task)
    check_smlmt(cfg(f"task.unlabelled={ICD10_TEXT}").task)  # CACTUs shares the self-supervised episodes
    cactus_alone = load_recipe(None, [f"task.mixture=[{BROWN}]", f"task.unlabelled={ICD10_TEXT}",
                                      "task.smlmt_fraction=0"]).task  # fmt: skip
    with pytest.raises(ConfigError, match=r"task.smlmt_fraction=0 with task.unlabelled=.* no episode would be a "
                                          "CACTUs one"):  # fmt: skip
        check_smlmt(cactus_alone)
    with pytest.raises(ConfigError, match="task.n_way=0"):
        check_smlmt(cfg("task.n_way=0").task)
    with pytest.raises(ConfigError, match="repeated file"):
        check_smlmt(load_recipe(None, [f"task.smlmt=[{ICD10_TEXT},{ICD10_TEXT}]"]).task)
    check_smlmt(load_recipe(None, ["task.smlmt_fraction=0"]).task)  # off: no SMLMT, nothing to refuse
    with pytest.raises(FileNotFoundError, match=r"task.smlmt\[0\]"):
        check_inputs(load_recipe(None, [f"task.smlmt=[{tmp_path / 'missing.txt'}]"]), "meta_train")
    few = tmp_path / "few.txt"
    few.write_text("one short line\nanother short line\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"task.smlmt=.*few.txt.*words"):
        smlmt_sampler(load_recipe(None, [f"task.smlmt=[{few}]"]).task)


def test_meta_train_with_smlmt_runs_and_records_it(quick_meta_train, tmp_path: Path) -> None:  # noqa: ANN001
    from metanlp.families.text_classification.recipes import meta_train

    cfg = quick_meta_train(f"task.smlmt=[{ICD10_TEXT}]", "task.smlmt_fraction=1.0", "task.n_way=4")
    summary = meta_train.run(cfg)
    assert summary["meta_train"]["steps"] == 2
    meta = json.loads((tmp_path / "run" / "adapter" / "metanlp.json").read_text())
    assert meta["smlmt"] == [str(ICD10_TEXT)] and meta["smlmt_fraction"] == 1.0
    assert meta["mixture"] == []
