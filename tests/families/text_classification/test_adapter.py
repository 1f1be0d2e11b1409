"""metanlp.families.text_classification.adapter and metanlp.core.saving: prototype head, peft round trip with head,
clear errors."""

from pathlib import Path

import pytest
import torch
from peft import PeftModel

from metanlp.core.config import AdapterConfig
from metanlp.core.saving import atomic_dir, save_adapter
from metanlp.families.text_classification.adapter import (
    TextClassifier,
    attach_lora,
    head_names,
    lora_parameters,
    prototype_head,
    set_head,
)
from metanlp.families.text_classification.backbone import tiny_encoder


def test_prototype_head_is_nearest_centroid() -> None:
    torch.manual_seed(0)
    emb = torch.randn(12, 5)
    labels = torch.tensor([0, 1, 2] * 4)
    w, b = prototype_head(emb, labels, 3, scale=2.0)
    queries = torch.randn(20, 5)
    protos = torch.stack([emb[labels == c].mean(0) for c in range(3)])
    nearest = torch.cdist(queries, protos).argmin(1)
    assert torch.equal((queries @ w.T + b).argmax(1), nearest)


def test_prototype_head_rejects_empty_class() -> None:
    with pytest.raises(ValueError, match=r"classes \[2\] have no support"):
        prototype_head(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]), 3, 1.0)


def test_attach_lora_trains_only_adapter_and_head() -> None:
    enc, _ = tiny_encoder()
    model = attach_lora(enc, AdapterConfig(r=2))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(lora_parameters(model)) | set(head_names(model))


def test_unknown_target_module_lists_layers() -> None:
    enc, _ = tiny_encoder()
    with pytest.raises(ValueError, match="qkv.*query"):
        attach_lora(enc, AdapterConfig(target_modules=["qkv"]))


def test_saved_adapter_reloads_with_stock_peft_identical_logits(tmp_path: Path) -> None:
    enc, tok = tiny_encoder()
    model = attach_lora(enc, AdapterConfig(r=2), base_name="tiny")
    with torch.no_grad():
        for p in lora_parameters(model).values():
            p.normal_()
    set_head(model, torch.randn(4, enc.hidden_size), torch.randn(4))
    batch = tok(["a cat sat", "the dog ran far"], padding=True, return_tensors="pt")
    before = model(batch["input_ids"], batch["attention_mask"])
    folder = save_adapter(model, tmp_path / "adapter", {"family": "text_classification", "labels": list("abcd")})
    assert {"adapter_config.json", "adapter_model.safetensors", "metanlp.json"} <= {p.name for p in folder.iterdir()}
    enc2, _ = tiny_encoder()
    reloaded = PeftModel.from_pretrained(TextClassifier(enc2, 4), str(folder))
    after = reloaded(batch["input_ids"], batch["attention_mask"])
    assert torch.equal(before, after)


def test_atomic_dir_keeps_old_folder_on_error(tmp_path: Path) -> None:
    target = tmp_path / "adapter"
    target.mkdir()
    (target / "old.txt").write_text("keep me")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("half")
        raise RuntimeError("crash while writing")
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["adapter"]
