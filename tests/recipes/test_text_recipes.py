"""The text-classification recipes end to end on the tiny backbone (real code path, tiny sizes)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from peft import PeftModel

from metanlp.core.recipe_loading import load_recipe
from metanlp.families.text_classification.adapter import TextClassifier, load_classifier, predict_texts
from metanlp.families.text_classification.backbone import tiny_encoder
from metanlp.families.text_classification.recipes import adapt, meta_train

TINY = ["model.name=tiny-random-bert", "run.progress=false", "adapter.multitask_init="]  # the shipped (d) is MiniLM


@pytest.fixture(scope="module")
def meta_run(tmp_path_factory: pytest.TempPathFactory, root: Path) -> Path:
    out = tmp_path_factory.mktemp("meta")
    cfg = load_recipe(root / "recipes" / "text_classification" / "text_meta_train.yaml", TINY + [
        f"run.output_dir={out}", "meta.outer_steps=3", "meta.eval_every=3", "meta.save_every=2", "task.n_way=5",
        "eval.episodes=1", "eval.q_query=3"])  # fmt: skip
    summary = meta_train.run(cfg)
    assert summary["meta_train"]["steps"] == 3
    return out


def test_meta_train_writes_adapter_log_and_metrics(meta_run: Path) -> None:
    assert (meta_run / "adapter" / "adapter_model.safetensors").is_file()
    log = [json.loads(line) for line in (meta_run / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2, 3] and "val_accuracy" in log[-1]
    metrics = json.loads((meta_run / "metrics.json").read_text())
    methods = {r["method"] for r in metrics["records"] if r["metric"] == "accuracy"}
    assert methods == {"centroid", "logreg", "finetune", "meta"}
    assert all({"mean", "ci95", "n_way", "k_shot", "episodes"} <= set(r) for r in metrics["records"])
    assert (meta_run / "recipe.yaml").is_file() and (meta_run / "run_info.json").is_file()


def _write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return path


def _small_task(tmp_path: Path, root: Path) -> list[str]:
    rows = list(csv.reader((root / "data/examples/new_categories/support.csv").open(encoding="utf-8")))[1:]
    labels = sorted({r[1] for r in rows})[:4]
    support = [(t, y) for t, y in rows if y in labels]
    _write_csv(tmp_path / "support.csv", support)
    _write_csv(tmp_path / "eval.csv", support[::2])
    (tmp_path / "unlabelled.txt").write_text("Pilar cyst\nCollagenous colitis\n")
    return [
        f"data.support={tmp_path / 'support.csv'}",
        f"data.eval={tmp_path / 'eval.csv'}",
        f"data.predict={tmp_path / 'unlabelled.txt'}",
    ]


def test_adapt_saves_stock_peft_adapter_and_predictions(meta_run: Path, tmp_path: Path, root: Path) -> None:
    out = tmp_path / "out"
    cfg = load_recipe(root / "recipes" / "text_classification" / "text_new_categories.yaml",
                      TINY + _small_task(tmp_path, root) + [
        f"adapter.init={meta_run / 'adapter'}", f"run.output_dir={out}"])  # fmt: skip
    summary = adapt.run(cfg)
    assert {r["method"] for r in summary["records"]} == {"centroid", "logreg", "finetune", "meta"}
    meta = json.loads((out / "adapter" / "metanlp.json").read_text())
    assert len(meta["labels"]) == 4 and meta["method"] == "meta"
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [p["text"] for p in preds] == ["Pilar cyst", "Collagenous colitis"]
    assert all(p["label"] in meta["labels"] for p in preds)
    # stock peft reload (head + LoRA) gives the same logits as metanlp's loader
    model, tok, _ = load_classifier(out / "adapter")
    enc, _ = tiny_encoder()
    stock = PeftModel.from_pretrained(TextClassifier(enc, 4), str(out / "adapter"))
    batch = tok(["Pilar cyst", "Acute bronchitis"], padding=True, return_tensors="pt")
    assert torch.equal(
        model(batch["input_ids"], batch["attention_mask"]), stock(batch["input_ids"], batch["attention_mask"])
    )
    again = predict_texts(model, tok, ["Pilar cyst", "Collagenous colitis"])
    assert [meta["labels"][i] for i, _ in again] == [p["label"] for p in preds]


def test_adapt_rejects_class_with_fewer_than_k(tmp_path: Path, root: Path) -> None:
    support = _write_csv(tmp_path / "few.csv", [("a b c", "x")] * 5 + [("d e f", "y")] * 2)
    cfg = load_recipe(root / "recipes" / "text_classification" / "text_new_categories.yaml", TINY + [
        f"data.support={support}", "data.eval=", "data.predict=", "adapter.init=",
        f"run.output_dir={tmp_path / 'o'}"])  # fmt: skip
    with pytest.raises(ValueError, match=r"few\.csv.*fewer than task\.k_shot=5.*'y': 2"):
        adapt.run(cfg)
    assert not (tmp_path / "o").exists(), "nothing may be written when the input is rejected"


def test_adapt_rejects_init_from_another_backbone(meta_run: Path, tmp_path: Path, root: Path) -> None:
    cfg = load_recipe(root / "recipes" / "text_classification" / "text_new_categories.yaml",
                      _small_task(tmp_path, root) + [
        f"adapter.init={meta_run / 'adapter'}", f"run.output_dir={tmp_path / 'o'}", "run.progress=false"])  # fmt: skip
    with pytest.raises(ValueError, match="meta-trained on backbone 'tiny-random-bert'.*all-MiniLM-L6-v2"):
        adapt.run(cfg)


def test_cli_reports_bad_key_in_one_line(root: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "metanlp", "adapt",
                           str(root / "recipes/text_classification/text_new_categories.yaml"),
                           "--set", "adapter.rnak=2"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("metanlp: error: --set: Key 'rnak'")
    assert "Traceback" not in proc.stderr
