"""CACTUs task construction from unlabelled text: partitions, cluster sizes, one partition per episode, loading."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from sklearn.metrics import adjusted_rand_score

from metanlp.core.config import TaskConfig
from metanlp.families.text_classification.backbone import tiny_encoder
from metanlp.families.text_classification.data import LabelledCorpus, load_corpus
from metanlp.families.text_classification.unsupervised import (
    PartitionEpisodeSampler,
    cactus_corpus,
    cactus_sampler,
    load_texts,
)

SUPERSENSES = Path(__file__).resolve().parents[3] / "data" / "wordnet_supersenses" / "wordnet_supersenses.jsonl"


@pytest.fixture(scope="module")
def texts() -> list[str]:
    if not SUPERSENSES.is_file():
        pytest.skip(f"{SUPERSENSES} is absent")
    rows = [json.loads(line) for line in SUPERSENSES.read_text(encoding="utf-8").splitlines()]
    return [r["text"] for r in rows[::12]]  # ~290 definitions from every supersense


@pytest.fixture(scope="module")
def tiny():  # noqa: ANN201
    return tiny_encoder(seed=0)


def _partition_labels(corpus: LabelledCorpus, partition: int) -> dict[str, str]:
    return {t: y for t, y, g in zip(corpus.texts, corpus.labels, corpus.groups, strict=True) if g == f"p{partition}"}


def test_load_texts_reads_one_text_per_line(tmp_path: Path) -> None:
    f = tmp_path / "pile.txt"
    f.write_text("first text\n\n  second text  \nthird\n", encoding="utf-8")
    assert load_texts(f) == ["first text", "second text", "third"]


def test_load_texts_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load_texts(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty.txt: no text"):
        load_texts(empty)


def test_partitions_have_the_requested_number_of_clusters(texts, tiny) -> None:  # noqa: ANN001
    corpus = cactus_corpus(texts, *tiny, n_partitions=3, n_clusters=[4, 6, 8], min_cluster_size=1, seed=0)
    assert sorted(set(corpus.groups)) == ["p0", "p1", "p2"]
    for p, k in enumerate([4, 6, 8]):
        labels = _partition_labels(corpus, p)
        assert len(labels) == len(set(texts))  # every text is in every partition (min_cluster_size=1)
        assert sorted(set(labels.values())) == sorted(f"p{p}_c{c}" for c in range(k))
    assert len(corpus.texts) == 3 * len(texts)


def test_partitions_differ_and_small_clusters_are_dropped(texts, tiny) -> None:  # noqa: ANN001
    corpus = cactus_corpus(texts, *tiny, n_partitions=2, n_clusters=12, min_cluster_size=15, seed=0)
    sizes = Counter(corpus.labels)
    assert min(sizes.values()) >= 15
    full = cactus_corpus(texts, *tiny, n_partitions=2, n_clusters=12, min_cluster_size=1, seed=0)
    assert len(corpus.texts) < len(full.texts)  # some clusters of 12 on ~290 texts are smaller than 15
    a, b = _partition_labels(full, 0), _partition_labels(full, 1)
    assert adjusted_rand_score([a[t] for t in a], [b[t] for t in a]) < 0.9  # different seeds and scalings
    with pytest.raises(ValueError, match="min_cluster_size"):
        cactus_corpus(texts, *tiny, n_partitions=1, n_clusters=12, min_cluster_size=len(texts), seed=0)
    with pytest.raises(ValueError, match="n_clusters"):
        cactus_corpus(texts[:5], *tiny, n_partitions=1, n_clusters=6, min_cluster_size=1, seed=0)


def test_episodes_never_mix_partitions(texts, tiny) -> None:  # noqa: ANN001
    corpus = cactus_corpus(texts, *tiny, n_partitions=4, n_clusters=[5, 8], min_cluster_size=4, seed=1)
    sampler = PartitionEpisodeSampler(corpus, n_way=3, k_shot=2, q_query=2, seed=0)
    by_class = corpus.by_class()
    seen = set()
    for step in range(40):
        ep = sampler.sample(step)
        partitions = {name.split("_")[0] for name in ep.label_names}
        assert len(partitions) == 1, ep.label_names
        seen |= partitions
        for text, y in zip(ep.support_texts + ep.query_texts, ep.support_labels + ep.query_labels, strict=True):
            assert text in by_class[ep.label_names[y]]
    assert len(seen) > 1  # the partition changes between episodes
    assert sampler.sample(7).support_texts == sampler.sample(7).support_texts
    assert sampler.sample(7, rank=1).support_texts != sampler.sample(7).support_texts


def test_sampler_needs_a_partition_with_n_way_big_enough_clusters() -> None:
    corpus = LabelledCorpus([f"t{i}" for i in range(8)], ["p0_c0"] * 4 + ["p0_c1"] * 4, ["p0"] * 8)
    with pytest.raises(ValueError, match="n_way=3"):
        PartitionEpisodeSampler(corpus, n_way=3, k_shot=2, q_query=1)
    with pytest.raises(ValueError, match="no partition"):
        PartitionEpisodeSampler(corpus, n_way=2, k_shot=3, q_query=2)


def test_cactus_sampler_from_task_config(tmp_path: Path, texts, tiny) -> None:  # noqa: ANN001
    pile = tmp_path / "pile.txt"
    pile.write_text("\n".join(texts) + "\n", encoding="utf-8")
    cfg = TaskConfig(unlabelled=str(pile), cactus_partitions=2, cactus_clusters=[6], n_way=4, k_shot=2, q_query=3)
    sampler = cactus_sampler(cfg, *tiny, seed=0)
    assert sampler.partitions == ["p0", "p1"]
    ep = sampler.sample(0)
    assert ep.n_way == 4 and len(ep.support_texts) == 8 and len(ep.query_texts) == 12


def test_pseudo_classes_of_minilm_follow_real_intents(clinc_dir, minilm) -> None:  # noqa: ANN001
    """On real data the k-means pseudo-classes carry the real classes' signal (what CACTUs relies on)."""
    corpus = load_corpus(clinc_dir)
    pool = corpus.by_class("train")
    intents = sorted(pool)[:: len(pool) // 10][:10]
    texts = [t for c in intents for t in pool[c][:20]]
    truth = [c for c in intents for _ in range(20)]
    pseudo = cactus_corpus(texts, *minilm, n_partitions=1, n_clusters=10, min_cluster_size=1, seed=0)
    assert adjusted_rand_score(truth, pseudo.labels) > 0.5


def test_cli_meta_trains_from_a_plain_text_file(tmp_path: Path, texts, root: Path) -> None:  # noqa: ANN001
    """``metanlp meta-train`` on the shipped unsupervised recipe, with a plain text file and the tiny backbone:
    it meta-trains on pseudo-classes, then evaluates on the labelled held-out chapters of task.dataset."""
    from metanlp.cli import main

    pile = tmp_path / "pile.txt"
    pile.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    sets = ["model.name=tiny-random-bert", "run.progress=false", f"run.output_dir={out}", f"task.unlabelled={pile}",
            "task.cactus_partitions=2", "task.cactus_clusters=[8]", "task.n_way=3", "task.k_shot=2",
            "task.q_query=2", "meta.outer_steps=2", "meta.eval_every=2", "meta.val_episodes=1", "meta.save_every=2",
            "meta.inner_steps=1", "eval.episodes=1", "eval.n_way=5", "eval.q_query=3"]  # fmt: skip
    recipe = root / "recipes" / "text_classification" / "text_unsupervised_meta_train.yaml"
    assert main(["meta-train", str(recipe), *[a for s in sets for a in ("--set", s)]]) == 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2] and "val_accuracy" in log[-1]
    meta = json.loads((out / "adapter" / "metanlp.json").read_text())
    assert meta["data"] == str(pile) and meta["meta_train_classes"] == []
    metrics = json.loads((out / "metrics.json").read_text())
    assert {r["method"] for r in metrics["records"]} == {"centroid", "logreg", "finetune", "meta"}


def test_cli_reports_a_missing_text_file_in_one_line(tmp_path: Path, root: Path, capsys) -> None:  # noqa: ANN001
    from metanlp.cli import main

    recipe = root / "recipes" / "text_classification" / "text_unsupervised_meta_train.yaml"
    missing = tmp_path / "nope.txt"
    sets = ["model.name=tiny-random-bert", "run.progress=false", f"run.output_dir={tmp_path / 'run'}",
            f"task.unlabelled={missing}"]  # fmt: skip
    with pytest.raises(SystemExit) as e:
        main(["meta-train", str(recipe), *[a for s in sets for a in ("--set", s)]])
    assert e.value.code == 2
    assert f"task.unlabelled not found: {missing}" in capsys.readouterr().err
