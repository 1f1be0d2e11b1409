"""The cross-dataset meta-training mixture: size-tempered dataset weights, N per episode, never mixing datasets."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from metanlp.core.config import ConfigError
from metanlp.core.recipe_loading import load_recipe
from metanlp.families.text_classification.data import EpisodeSampler, load_corpus
from metanlp.families.text_classification.mixture import MixtureSampler, mixture_sampler


def _toy(n_small: int = 3, n_big: int = 12) -> MixtureSampler:
    pool = {f"s{i}": [f"s{i} {j}" for j in range(4)] for i in range(n_small)}
    pool |= {f"b{i}": [f"b{i} {j}" for j in range(9)] for i in range(n_big)}
    small = EpisodeSampler(pool, [f"s{i}" for i in range(n_small)], 2, 1, 1, seed=3)
    big = EpisodeSampler(pool, [f"b{i}" for i in range(n_big)], 2, 1, 1, seed=3)
    return MixtureSampler({"small": small, "big": big}, {"small": 4 * n_small, "big": 9 * n_big}, 0.5, (2, 8), seed=3)


def test_datasets_are_drawn_by_square_root_of_size_and_never_mixed() -> None:
    mix = _toy()
    assert mix.probabilities["big"] == pytest.approx(108**0.5 / (108**0.5 + 12**0.5))  # 0.75, not 108/120 = 0.9
    counts: Counter[str] = Counter()
    ways: Counter[int] = Counter()
    for step in range(1500):
        ep = mix.sample(step)
        prefixes = {name[0] for name in ep.label_names}
        assert len(prefixes) == 1, f"episode {step} mixes datasets: {ep.label_names}"
        counts["big" if prefixes == {"b"} else "small"] += 1
        ways[ep.n_way] += 1
        assert 2 <= ep.n_way <= (8 if prefixes == {"b"} else 3)  # N capped by the small dataset's 3 classes
    assert counts["big"] / 1500 == pytest.approx(0.75, abs=0.04)
    assert set(ways) == set(range(2, 9))  # N varies over the whole range
    assert mix.sample(7).support_texts == mix.sample(7).support_texts  # (seed, rank, step) fixes the episode


def test_alpha_zero_is_uniform_and_bad_values_are_refused() -> None:
    mix = _toy()
    uniform = MixtureSampler(mix.samplers, mix.sizes, alpha=0.0)
    assert uniform.probabilities == {"small": 0.5, "big": 0.5}
    with pytest.raises(ValueError, match="mixture_alpha"):
        MixtureSampler(mix.samplers, mix.sizes, alpha=-1.0)
    with pytest.raises(ConfigError, match="task.n_way_max"):
        load_recipe(None, ["task.n_way=10", "task.n_way_max=5"])
    with pytest.raises(ConfigError, match="task.mixture_alpha"):
        load_recipe(None, ["task.mixture_alpha=-0.5"])


def test_recipe_mixture_over_real_datasets(root: Path) -> None:
    data = root / "data"
    cfg = load_recipe(None, [f"task.dataset={data / 'wordnet_supersenses' / 'wordnet_supersenses.jsonl'}",
                             f"task.mixture=[{data / 'brown_genres' / 'brown_genres.jsonl'},"
                             f"{data / 'chatterbot_topics' / 'chatterbot_topics.jsonl'}]",
                             "task.n_way=3", "task.n_way_max=6", "task.k_shot=2", "task.q_query=2"])  # fmt: skip
    corpus = load_corpus(cfg.task.dataset)
    from metanlp.families.text_classification.data import split_classes

    splits = split_classes(corpus, cfg.task)
    mix = mixture_sampler(cfg, corpus, splits.train)
    assert set(mix.samplers) == {"wordnet_supersenses", "brown_genres", "chatterbot_topics"}
    assert set(mix.samplers["wordnet_supersenses"].classes) <= set(splits.train)  # its meta-val/test stay out
    assert not set(mix.samplers["wordnet_supersenses"].classes) & (set(splits.val) | set(splits.test))
    seen = {name for step in range(60) for name in [_member(mix, mix.sample(step))]}
    assert seen == set(mix.samplers)
    with pytest.raises(ConfigError, match="repeats a dataset"):
        cfg.task.mixture = [cfg.task.dataset]
        mixture_sampler(cfg, corpus, splits.train)


def _member(mix: MixtureSampler, ep) -> str:  # noqa: ANN001
    return next(k for k, s in mix.samplers.items() if set(ep.label_names) <= set(s.classes))


def test_meta_train_with_a_mixture_records_it(root: Path, tmp_path: Path, quick_meta_train) -> None:  # noqa: ANN001
    from metanlp.families.text_classification.recipes import meta_train

    data = root / "data"
    mixture = [str(data / "brown_genres" / "brown_genres.jsonl"),
               str(data / "chatterbot_topics" / "chatterbot_topics.jsonl")]
    cfg = quick_meta_train(f"task.mixture=[{','.join(mixture)}]", "task.n_way=3", "task.n_way_max=5")
    summary = meta_train.run(cfg)
    assert summary["meta_train"]["steps"] == 2
    meta = json.loads((tmp_path / "run" / "adapter" / "metanlp.json").read_text())
    assert meta["mixture"] == mixture


def test_multitask_baseline_over_a_mixture_and_smlmt_sees_every_class_and_cloze_word(
    root: Path, tmp_path: Path, quick_meta_train  # noqa: ANN001
) -> None:
    from metanlp.families.text_classification.data import split_classes
    from metanlp.families.text_classification.mixture import mixture_pool
    from metanlp.families.text_classification.recipes import meta_train

    data = root / "data"
    mixture = [str(data / "brown_genres" / "brown_genres.jsonl")]
    smlmt = str(data / "chatterbot_topics" / "chatterbot_topics.jsonl")
    cfg = quick_meta_train(f"task.mixture=[{','.join(mixture)}]", f"task.smlmt=[{smlmt}]", "task.n_way=3",
                           "task.n_way_max=5", "text_classification.multitask_baseline=true")  # fmt: skip
    corpus = load_corpus(cfg.task.dataset)
    pool = mixture_pool(cfg, corpus, split_classes(corpus, cfg.task).train, "[MASK]")
    names = {c.split("/")[0] for c in pool}
    assert names == {"icd10_blocks", "brown_genres", "smlmt"}
    assert all("[MASK]" in t for c, texts in pool.items() if c.startswith("smlmt/") for t in texts)
    summary = meta_train.run(cfg)
    assert summary["multitask"]["classes"] == len(pool)
    assert summary["multitask"]["examples"] == sum(len(v) for v in pool.values())
    assert (tmp_path / "run" / "multitask_adapter" / "adapter_model.safetensors").is_file()


def test_cactus_partitions_join_a_mixture_with_smlmt_and_the_multitask_baseline(
    root: Path, tmp_path: Path, quick_meta_train, caplog  # noqa: ANN001
) -> None:
    """``task.unlabelled`` beside ``task.mixture`` and ``task.smlmt``: the run meta-trains on all three, the
    multi-task baseline sees the first partition's pseudo-classes, and the adapter records the file."""
    import logging

    from metanlp.families.text_classification.recipes import meta_train

    data = root / "data"
    lines = (data / "icd10_unlabelled" / "icd10_unlabelled.txt").read_text(encoding="utf-8").splitlines()
    pile = tmp_path / "pile.txt"
    pile.write_text("\n".join(lines[::20]) + "\n", encoding="utf-8")  # ~330 texts
    mixture = str(data / "brown_genres" / "brown_genres.jsonl")
    smlmt = str(data / "chatterbot_topics" / "chatterbot_topics.jsonl")
    cfg = quick_meta_train(f"task.mixture=[{mixture}]", f"task.smlmt=[{smlmt}]", f"task.unlabelled={pile}",
                           "task.cactus_partitions=2", "task.cactus_clusters=[8]", "task.n_way=3", "task.n_way_max=5",
                           "text_classification.multitask_baseline=true")  # fmt: skip
    with caplog.at_level(logging.INFO):
        summary = meta_train.run(cfg)
    assert "SMLMT: 25% of the episodes" in caplog.text and "CACTUs: 25% of the episodes" in caplog.text
    assert "pseudo-classes in 2 partitions" in caplog.text
    meta = json.loads((tmp_path / "run" / "adapter" / "metanlp.json").read_text())
    assert meta["unlabelled"] == str(pile) and meta["meta_train_classes"] and meta["mixture"] == [mixture]
    assert meta["data"] == cfg.task.dataset
    assert summary["meta_train"]["steps"] == 2
    from metanlp.families.text_classification.data import split_classes
    from metanlp.families.text_classification.mixture import mixture_pool

    corpus = load_corpus(cfg.task.dataset)
    labelled = mixture_pool(cfg, corpus, split_classes(corpus, cfg.task).train, "[MASK]")
    assert 2 <= summary["multitask"]["classes"] - len(labelled) <= 8  # + partition p0's clusters of >= K + Q texts


def test_meta_val_on_a_dataset_of_its_own_drives_keep_best(root: Path, tmp_path: Path, quick_meta_train) -> None:  # noqa: ANN001
    """``text_classification.val_dataset``: with no meta-val class in ``task.dataset``, keep_best still scores the
    start and each pass, on the other dataset's classes; a val dataset that is also meta-trained on is refused."""
    from metanlp.core.checks import check_inputs
    from metanlp.families.text_classification.recipes import meta_train

    data = root / "data"
    chatterbot = str(data / "chatterbot_topics" / "chatterbot_topics.jsonl")
    common = ("task.meta_val_groups=[]", "meta.eval_every=1", "meta.val_episodes=1", "meta.keep_best=true",
              "task.n_way=3", "task.k_shot=2", "task.q_query=2")  # fmt: skip
    plain = meta_train.run(quick_meta_train(*common))
    assert plain["meta_train"]["start_val"] != plain["meta_train"]["start_val"]  # nan: nothing to validate on
    summary = meta_train.run(quick_meta_train(*common, f"text_classification.val_dataset={chatterbot}",
                                              "run.overwrite=true"))  # fmt: skip
    assert 0.0 <= summary["meta_train"]["start_val"] <= 1.0
    assert summary["meta_train"]["kept_step"] in (0, 1, 2)
    tiny = tmp_path / "tiny.jsonl"  # 3 examples a class, fewer than K + Q = 4
    tiny.write_text("".join(json.dumps({"text": f"{c} text {i}", "label": c}) + "\n" for c in "ab" for i in range(3)))
    few = quick_meta_train(*common, f"text_classification.val_dataset={tiny}", "run.overwrite=true")
    with pytest.raises(ValueError, match=r"tiny.jsonl: 0 class\(es\) with >= task.k_shot \+ task.q_query = 4 "):
        meta_train.run(few)
    bad = quick_meta_train(f"task.mixture=[{chatterbot}]", f"text_classification.val_dataset={chatterbot}")
    with pytest.raises(ConfigError, match=r"val_dataset=.*chatterbot_topics.jsonl is also task.mixture\[0\]"):
        check_inputs(bad, "meta_train")
