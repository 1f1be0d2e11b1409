"""The text multi-task transfer baseline (d): training, the saved LoRA, the meta-train flag, adapt/evaluate rows."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from metanlp.core.checks import check_inputs
from metanlp.core.config import ConfigError
from metanlp.core.recipe_loading import load_recipe
from metanlp.families.text_classification.multitask import (
    equal_compute_steps,
    load_multitask_init,
    multitask_examples,
    save_multitask_adapter,
    train_multitask,
)
from metanlp.families.text_classification.recipes import adapt, evaluate, meta_train
from metanlp.families.text_classification.setup import build_classification, source_split, task_samplers

TINY = ["model.name=tiny-random-bert", "run.progress=false"]


def _recipe(root: Path, name: str, *sets: str):
    return load_recipe(root / "recipes" / "text_classification" / name, TINY + list(sets))


@pytest.fixture(scope="module")
def tiny(root: Path):
    """The tiny backbone + LoRA (float32: micro-batch sums compared at 1e-5) over ICD-10 blocks, and 6 meta-train
    classes' texts with global labels."""
    cfg = _recipe(root, "text_meta_train.yaml", "run.output_dir=unused", "model.precision=fp32")  # exactness checks
    setup = build_classification(cfg)
    corpus, splits = task_samplers(cfg)
    texts, labels = multitask_examples(source_split(corpus, "train")[0], splits.train[:6])
    return setup, texts, labels


def test_equal_compute_steps_follows_the_documented_rule(root: Path) -> None:
    meta = _recipe(root, "text_meta_train.yaml", "meta.outer_steps=3", "meta.meta_batch_size=2",
                   "meta.inner_steps=5").meta  # fmt: skip
    # 3 * 2 = 6 episodes, each 5 support passes of 5*5 texts + one query pass of 5*5 texts: 900 example-passes
    assert equal_compute_steps(meta, 5, 5, 5, 32) == 29  # ceil(900 / 32)
    assert equal_compute_steps(meta, 5, 5, 5, 900) == 1
    assert equal_compute_steps(meta, 5, 5, 5, 32, outer_steps=6) == 57  # ceil(1800 / 32): the steps really run
    # inner steps on mini-batches of 16 (the adaptation budget's): 6 * (5 * 16 + 25) = 630 example-passes
    assert equal_compute_steps(meta, 5, 5, 5, 32, inner_batch=16) == 20  # ceil(630 / 32)


def test_multitask_training_lowers_loss_and_moves_only_its_own_lora(tiny) -> None:
    setup, texts, labels = tiny
    assert sorted(set(labels)) == list(range(6)) and len(texts) == len(labels) > 32
    before = {k: v.detach().clone() for k, v in setup.meta_params.items()}
    lora, result = train_multitask(setup.task, setup.pretrained, texts, labels, steps=30, batch_size=16, lr=1e-2,
                                   seed=0, micro_batch=5)  # fmt: skip
    assert result.steps == 30 and result.batch_size == 16 and result.classes == 6 and result.examples == len(texts)
    assert result.final_loss < result.first_loss - 0.2, result  # starts at log(6) = 1.79 (zero head)
    assert set(lora) == set(setup.pretrained)
    assert all(not v.requires_grad for v in lora.values())
    moved = [k for k in lora if not torch.equal(lora[k], setup.pretrained[k])]
    assert moved and any("lora_B" in k for k in moved), "the LoRA matrices must be trained, not only the head"
    assert all(torch.equal(v, before[k]) for k, v in setup.meta_params.items()), "the model's own LoRA is untouched"
    again, _ = train_multitask(setup.task, setup.pretrained, texts, labels, steps=30, batch_size=16, lr=1e-2,
                               seed=0, micro_batch=0)  # fmt: skip
    assert all(torch.allclose(again[k], lora[k], atol=1e-5) for k in lora), "seeded; micro-batches sum to the batch"


def test_saved_multitask_adapter_loads_back_exactly(tiny, tmp_path: Path) -> None:
    setup, texts, labels = tiny
    lora, _ = train_multitask(setup.task, setup.pretrained, texts, labels, steps=3, batch_size=8, lr=1e-2, seed=1)
    own = {k: v.detach().clone() for k, v in setup.model.named_parameters() if v.requires_grad}
    meta = {"family": "text_classification", "backbone": "tiny-random-bert", "labels": []}
    folder = save_multitask_adapter(setup.model, lora, tmp_path / "multitask_adapter", meta)
    assert json.loads((folder / "metanlp.json").read_text())["algorithm"] == "multitask"
    assert all(torch.equal(v, own[k]) for k, v in setup.model.named_parameters() if v.requires_grad)
    loaded = load_multitask_init(setup.model, folder, "tiny-random-bert")
    assert loaded.keys() == lora.keys() and all(torch.equal(loaded[k], lora[k]) for k in lora)
    assert all(torch.equal(v, own[k]) for k, v in setup.model.named_parameters() if v.requires_grad)
    stored = load_file(folder / "adapter_model.safetensors")  # stock peft names: LoRA + the 1-row placeholder head
    assert sum("lora_" in k for k in stored) == len(lora) and any("head" in k for k in stored)
    with pytest.raises(ValueError, match="adapter.multitask_init=.*meta-trained on backbone 'tiny-random-bert'"):
        load_multitask_init(setup.model, folder, "another-backbone")


@pytest.fixture(scope="module")
def mt_run(tmp_path_factory: pytest.TempPathFactory, root: Path) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("mt") / "run"
    cfg = _recipe(root, "text_meta_train.yaml", f"run.output_dir={out}", "meta.outer_steps=2", "meta.eval_every=0",
                  "meta.save_every=0", "task.n_way=5", "eval.episodes=1", "eval.q_query=3",
                  "text_classification.multitask_baseline=true",
                  "text_classification.multitask_batch_size=16")  # fmt: skip
    return out, meta_train.run(cfg)


def test_meta_train_with_the_flag_writes_multitask_adapter(mt_run: tuple[Path, dict]) -> None:
    out, summary = mt_run
    assert summary["multitask"]["steps"] == 38  # ceil(2 * 2 * 5 * (5*5 + 5) / 16)
    assert summary["multitask"]["example_passes"] == 38 * 16
    meta_dir, mt_dir = out / "adapter", out / "multitask_adapter"
    assert json.loads((mt_dir / "metanlp.json").read_text())["algorithm"] == "multitask"
    meta_w, mt_w = load_file(meta_dir / "adapter_model.safetensors"), load_file(mt_dir / "adapter_model.safetensors")
    assert meta_w.keys() == mt_w.keys()
    assert any(not torch.equal(meta_w[k], mt_w[k]) for k in meta_w if "lora_" in k)
    metrics = json.loads((out / "metrics.json").read_text())
    assert {r["method"] for r in metrics["records"]} == {"centroid", "logreg", "finetune", "meta", "multitask"}


def _support(tmp_path: Path, root: Path) -> list[str]:
    rows = list(csv.reader((root / "data/examples/new_categories/support.csv").open(encoding="utf-8")))[1:]
    keep = [r for r in rows if r[1] in sorted({r[1] for r in rows})[:3]]
    with (tmp_path / "support.csv").open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["text", "label"], *keep])
    return [f"data.support={tmp_path / 'support.csv'}", f"data.eval={tmp_path / 'support.csv'}", "data.predict="]


def test_adapt_with_multitask_init_prints_a_multitask_row(mt_run, tmp_path: Path, root: Path, capsys) -> None:
    from metanlp.cli import main

    out, _ = mt_run
    sets = _support(tmp_path, root) + [f"adapter.init={out / 'adapter'}",
                                       f"adapter.multitask_init={out / 'multitask_adapter'}",
                                       f"run.output_dir={tmp_path / 'adapted'}"]  # fmt: skip
    recipe = str(root / "recipes" / "text_classification" / "text_new_categories.yaml")
    assert main(["adapt", recipe, *[a for s in TINY + sets for a in ("--set", s)]]) == 0
    table = capsys.readouterr().out
    assert any(line.split()[2:3] == ["multitask"] for line in table.splitlines()), table
    records = json.loads((tmp_path / "adapted" / "metrics.json").read_text())["records"]
    assert {r["method"] for r in records} == {"centroid", "logreg", "finetune", "meta", "multitask"}
    kept = json.loads((tmp_path / "adapted" / "adapter" / "metanlp.json").read_text())
    assert kept["method"] == "meta", "the kept adapter is still the meta-learned one"


def test_evaluate_scores_multitask_with_multitask_init(mt_run, tmp_path: Path, root: Path) -> None:
    out, _ = mt_run
    cfg = _recipe(root, "text_meta_train.yaml", f"adapter.init={out / 'adapter'}", "eval.episodes=1",
                  f"adapter.multitask_init={out / 'multitask_adapter'}", "eval.q_query=2", "eval.n_way=3",
                  f"run.output_dir={tmp_path / 'eval'}")  # fmt: skip
    summary = evaluate.run(cfg)
    assert {r["method"] for r in summary["records"]} == {"centroid", "logreg", "finetune", "meta", "multitask"}


def test_checks_name_the_multitask_keys(tmp_path: Path, root: Path) -> None:
    missing = tmp_path / "no_such_run" / "multitask_adapter"
    cfg = _recipe(root, "text_new_categories.yaml", f"adapter.multitask_init={missing}", "adapter.init=",
                  f"run.output_dir={tmp_path / 'o'}")  # fmt: skip
    with pytest.raises(FileNotFoundError, match=r"adapter\.multitask_init=.*no_such_run.*folder not found"):
        check_inputs(cfg, "adapt")
    with pytest.raises(FileNotFoundError, match=r"adapter\.multitask_init=.*folder not found"):
        adapt.run(cfg)
    assert not (tmp_path / "o").exists()
    cfg = _recipe(root, "text_meta_train.yaml", "eval.methods=[centroid, multitask]", f"run.output_dir={tmp_path}/e")
    with pytest.raises(ConfigError, match="'multitask' but adapter.multitask_init is empty"):
        check_inputs(cfg, "evaluate")
    cfg = _recipe(root, "text_meta_train.yaml", "text_classification.multitask_baseline=true",
                  f"task.unlabelled={root / 'data/examples/new_categories/unlabelled.txt'}",
                  f"run.output_dir={tmp_path}/m")  # fmt: skip
    with pytest.raises(ConfigError, match="multitask_baseline needs labelled meta-train classes"):
        check_inputs(cfg, "meta_train")
    with pytest.raises(ConfigError, match="multitask_batch_size=0 must be >= 1"):
        _recipe(root, "text_meta_train.yaml", "text_classification.multitask_batch_size=0")
