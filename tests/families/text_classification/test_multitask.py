"""The text multi-task transfer baseline (d): the equal-compute rule, training, the saved LoRA."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from metanlp.core.recipe_loading import load_recipe
from metanlp.families.text_classification.multitask import (
    equal_compute_steps,
    load_multitask_init,
    multitask_examples,
    save_multitask_adapter,
    train_multitask,
)
from metanlp.families.text_classification.setup import build_classification, source_split, task_samplers

TINY = ["model.name=tiny-random-bert", "run.progress=false"]


def _recipe(root: Path, name: str, *sets: str):
    return load_recipe(root / "recipes" / "text_classification" / name, TINY + list(sets))


@pytest.fixture(scope="module")
def tiny(root: Path):
    """The tiny backbone + LoRA over ICD-10 blocks, and 6 meta-train classes' texts with global labels."""
    cfg = _recipe(root, "text_meta_train.yaml", "run.output_dir=unused")
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
