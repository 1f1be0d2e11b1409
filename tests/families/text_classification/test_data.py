"""metanlp.families.text_classification.data: corpora, disjoint class splits, seeded N-way K-shot sampling, clear
errors."""

import json
from pathlib import Path

import pytest

from metanlp.core.config import TaskConfig
from metanlp.families.text_classification.data import (
    EpisodeSampler,
    LabelledCorpus,
    eval_classes,
    load_corpus,
    split_classes,
)


def _pool(n_classes: int = 6, per_class: int = 8) -> dict[str, list[str]]:
    return {f"c{i}": [f"c{i} text {j}" for j in range(per_class)] for i in range(n_classes)}


def test_episode_shape_and_support_query_disjoint() -> None:
    ep = EpisodeSampler(_pool(), [f"c{i}" for i in range(6)], n_way=4, k_shot=3, q_query=2, seed=1).sample(5)
    assert ep.n_way == 4 and len(ep.support_texts) == 12 and len(ep.query_texts) == 8
    assert not set(ep.support_texts) & set(ep.query_texts)
    for text, y in zip(ep.support_texts + ep.query_texts, ep.support_labels + ep.query_labels, strict=True):
        assert text.startswith(ep.label_names[y] + " ")


def test_sampling_is_seeded_by_seed_rank_step() -> None:
    s = EpisodeSampler(_pool(), [f"c{i}" for i in range(6)], n_way=3, k_shot=2, q_query=2, seed=7)
    assert s.sample(3) == s.sample(3)
    assert s.sample(3) != s.sample(4)
    assert s.sample(3, rank=0) != s.sample(3, rank=1)
    other_seed = EpisodeSampler(_pool(), [f"c{i}" for i in range(6)], n_way=3, k_shot=2, q_query=2, seed=8)
    assert other_seed.sample(3) != s.sample(3)


def test_all_way_uses_every_class() -> None:
    ep = EpisodeSampler(_pool(), [f"c{i}" for i in range(6)], n_way=0, k_shot=1, q_query=1).sample(0)
    assert sorted(ep.label_names) == [f"c{i}" for i in range(6)]


def test_separate_query_pool() -> None:
    queries = {c: [f"{c} q{j}" for j in range(3)] for c in _pool()}
    ep = EpisodeSampler(_pool(), list(_pool()), 2, 2, 0, query_pool=queries).sample(0)
    assert len(ep.query_texts) == 6 and all(" q" in t for t in ep.query_texts)


def test_class_with_too_few_examples_is_named() -> None:
    pool = _pool()
    pool["c2"] = pool["c2"][:3]
    with pytest.raises(ValueError, match=r"class 'c2' has 3 examples, fewer than K \+ Q = 2 \+ 2 = 4"):
        EpisodeSampler(pool, list(pool), 3, 2, 2)


def test_n_way_larger_than_classes() -> None:
    with pytest.raises(ValueError, match="n_way=9 but the split has only 6 classes"):
        EpisodeSampler(_pool(), list(_pool()), 9, 1, 1)


def test_split_by_seed_is_disjoint_and_complete() -> None:
    corpus = LabelledCorpus([f"t{i}" for i in range(40)], [f"c{i % 20}" for i in range(40)])
    sp = split_classes(corpus, TaskConfig(split_by="seed", val_fraction=0.2, test_fraction=0.3, seed=3))
    assert not (set(sp.train) & set(sp.test)) and not (set(sp.val) & set(sp.test))
    assert len(sp.train) + len(sp.val) + len(sp.test) == 20 and len(sp.test) == 6


def test_split_by_group_and_unknown_group() -> None:
    corpus = LabelledCorpus(["a", "b", "c"], ["x", "y", "z"], groups=["g1", "g1", "g2"])
    sp = split_classes(corpus, TaskConfig(split_by="group", meta_test_groups=["g2"]))
    assert sp.train == ["x", "y"] and sp.test == ["z"]
    with pytest.raises(ValueError, match="unknown group.*'g9'.*g1"):
        split_classes(corpus, TaskConfig(split_by="group", meta_test_groups=["g9"]))


def test_load_corpus_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_corpus(tmp_path / "nope.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty"):
        load_corpus(empty)
    cols = tmp_path / "cols.csv"
    cols.write_text("sentence,category\nhello,a\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['text', 'label'\]"):
        load_corpus(cols)
    blank = tmp_path / "blank.jsonl"
    blank.write_text(json.dumps({"text": "ok", "label": "a"}) + "\n" + json.dumps({"text": " ", "label": "b"}) + "\n")
    with pytest.raises(ValueError, match="row 2 has an empty 'text'"):
        load_corpus(blank)


def test_shipped_families_load_with_groups(root: Path) -> None:
    files = sorted(
        f for f in root.glob("data/*/*.jsonl") if f.stem == f.parent.name and f.parent.name != "translation"
    )
    assert files, "guard: no data families found"
    for f in files:
        c = load_corpus(f)
        assert len(set(c.labels)) >= 10 and all(c.groups), f


def test_clinc150_loader(clinc_dir: Path) -> None:
    c = load_corpus(clinc_dir)
    assert len(set(c.labels)) == 150 and len(set(c.groups)) == 10
    assert {"train", "val", "test"} == set(c.splits)
    assert len(c.by_class("test")["balance"]) == 30


def test_q_query_zero_queries_every_example_but_the_support() -> None:
    pool = _pool(4, 8)
    ep = EpisodeSampler(pool, sorted(pool), n_way=4, k_shot=3, q_query=0, seed=0).sample(0)
    assert len(ep.support_texts) == 12 and len(ep.query_texts) == 4 * 5
    assert not set(ep.support_texts) & set(ep.query_texts)
    with pytest.raises(ValueError, match=r"fewer than K \+ Q = 8 \+ 1 = 9"):
        EpisodeSampler(pool, sorted(pool), n_way=4, k_shot=8, q_query=0)


def test_a_dataset_held_out_whole_needs_a_mixture() -> None:
    texts = [f"text {i}" for i in range(40)]
    corpus = LabelledCorpus(texts, [f"c{i % 5}" for i in range(40)], source="toy.jsonl")
    held_out = split_classes(corpus, TaskConfig(test_fraction=1.0, val_fraction=0.0, mixture=["other.jsonl"]))
    assert held_out.train == [] and held_out.test == [f"c{i}" for i in range(5)]
    with pytest.raises(ValueError, match="toy.jsonl: the meta-train split has no classes"):
        split_classes(corpus, TaskConfig(test_fraction=1.0, val_fraction=0.0))


def test_all_way_evaluation_leaves_out_classes_short_of_k_plus_one(caplog: pytest.LogCaptureFixture) -> None:
    labels = [f"c{i}" for i in range(4) for _ in range(12)] + ["tiny"] * 6  # 'tiny': 6 examples
    corpus = LabelledCorpus([f"text {i}" for i in range(len(labels))], labels, source="toy.jsonl")
    classes = sorted(set(labels))
    assert eval_classes(corpus, classes, n_way=0, k_shot=5, q_query=0) == classes  # 6 >= 5 + 1
    with caplog.at_level("WARNING"):
        assert eval_classes(corpus, classes, n_way=0, k_shot=10, q_query=0) == ["c0", "c1", "c2", "c3"]
    assert "toy.jsonl: 1 of 5 meta-test classes have fewer than 11 examples, left out at K = 10: tiny" in caplog.text
    message = r"toy.jsonl: 0 of 5 meta-test classes have >= 13 examples \(K = 12\), but an episode needs 2; lower"
    with pytest.raises(ValueError, match=message + r" eval.k_shots, eval.q_query or eval.n_way"):
        eval_classes(corpus, classes, n_way=0, k_shot=12, q_query=0)
    with pytest.raises(ValueError, match=r"4 of 5 meta-test classes .* needs 5"):
        eval_classes(corpus, classes, n_way=5, k_shot=10, q_query=0)
