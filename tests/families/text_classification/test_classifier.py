"""FewShotClassifier end to end on real held-out data: the shipped ICD-10 init, 32 new blocks, 5 examples each."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from metanlp import FewShotClassifier


def _rows(path: Path) -> tuple[list[str], list[str]]:
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["label"] for r in rows]


def test_from_pretrained_fit_predict_save_reload(root: Path, tmp_path: Path) -> None:
    texts, labels = _rows(root / "data" / "examples" / "new_categories" / "support.csv")
    eval_texts, eval_labels = _rows(root / "data" / "examples" / "new_categories" / "eval.csv")
    eval_texts, eval_labels = eval_texts[:200], eval_labels[:200]
    clf = FewShotClassifier.from_pretrained(root / "data" / "examples" / "icd10_meta_init").fit(texts, labels)
    assert clf.labels == sorted(set(labels)) and len(clf.labels) == 32
    preds = clf.predict(eval_texts)
    accuracy = sum(p == y for p, y in zip(preds, eval_labels, strict=True)) / len(preds)
    assert accuracy > 0.5, f"accuracy {accuracy:.2f} on 32 held-out ICD-10 blocks (chance 0.03)"

    folder = clf.save_pretrained(tmp_path / "adapter")
    again = FewShotClassifier.from_pretrained(folder)
    assert again.labels == clf.labels
    assert again.predict(eval_texts[:50]) == preds[:50]


def test_fit_refuses_bad_input(root: Path) -> None:
    clf = FewShotClassifier.from_pretrained(backbone="tiny-random-bert")
    with pytest.raises(ValueError, match="2 texts but 1 labels"):
        clf.fit(["a", "b"], ["x"])
    with pytest.raises(ValueError, match="at least 2 classes"):
        clf.fit(["a", "b"], ["x", "x"])
    with pytest.raises(ValueError, match="empty text at position"):
        clf.fit(["a", " "], ["x", "y"])
    with pytest.raises(RuntimeError, match="call fit"):
        clf.predict(["a"])


def test_from_pretrained_takes_the_inits_lora_layers(tmp_path: Path) -> None:
    """An init with LoRA on other layers than the default (top 2) loads without naming adapter.layers."""
    from metanlp.core.recipe_loading import load_recipe
    from metanlp.core.saving import save_adapter
    from metanlp.families.text_classification.adapter import lora_parameters
    from metanlp.families.text_classification.layer_stack import lora_layer_indices
    from metanlp.families.text_classification.setup import build_classification

    cfg = load_recipe(None, ["model.name=tiny-random-bert", "adapter.layers=[-1]", "run.progress=false"])
    setup = build_classification(cfg)
    folder = save_adapter(setup.model, tmp_path / "init", {"family": "text_classification",
                                                           "backbone": "tiny-random-bert", "labels": []})  # fmt: skip
    clf = FewShotClassifier.from_pretrained(folder)
    assert lora_layer_indices(clf.model) == lora_layer_indices(setup.model) == [1]  # tiny-random-bert: 2 layers
    assert set(lora_parameters(clf.model)) == set(setup.meta_params)
