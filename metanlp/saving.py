"""Write and read adapter folders: plain peft format + ``metanlp.json`` + the resolved recipe (+ metrics).

An adapter folder holds ``adapter_config.json`` and ``adapter_model.safetensors`` (peft's own ``save_pretrained``,
LoRA *and* head), ``metanlp.json`` (task family, backbone, label names, N/K ...), ``recipe.yaml`` and optionally
``metrics.json``. Folders are written into a temporary sibling and renamed into place, so a crash never leaves a
half-written adapter and an existing folder is replaced only by a complete one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from peft import PeftModel

from metanlp.adapters import TextClassifier
from metanlp.backbones import load_encoder
from metanlp.files import METADATA_FILE, atomic_dir, read_metadata, write_json_atomic
from metanlp.layer_stack import lora_layer_indices

__all__ = [
    "atomic_dir",
    "load_adapter_weights",
    "load_classifier",
    "predict_texts",
    "save_adapter",
    "write_json_atomic",
]


def save_adapter(
    model: PeftModel,
    out_dir: str | Path,
    metadata: dict[str, Any],
    recipe_yaml: str = "",
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Save a peft model's adapter (LoRA + head) with metanlp's metadata, atomically.

    Args:
        model: a peft-wrapped model (``attach_lora`` or ``PeftModel.from_pretrained``).
        out_dir: the adapter folder to create or replace.
        metadata: written to ``metanlp.json``; should hold ``family``, ``backbone``, ``labels`` (classification).
            ``lora_layers`` (the layer indices that hold LoRA, read from the model) is added unless given.
        recipe_yaml: the resolved recipe, written to ``recipe.yaml``.
        metrics: written to ``metrics.json`` when given.

    Returns:
        The folder path.
    """
    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True, save_embedding_layers=False)
        write_json_atomic(
            tmp / METADATA_FILE, {**metadata, "lora_layers": metadata.get("lora_layers", lora_layer_indices(model))}
        )
        if recipe_yaml:
            (tmp / "recipe.yaml").write_text(recipe_yaml, encoding="utf-8")
        if metrics is not None:
            write_json_atomic(tmp / "metrics.json", metrics)
    return out


def load_adapter_weights(model: PeftModel, adapter_dir: str | Path, lora_only: bool = False) -> None:
    """Load a saved adapter's weights into ``model`` in place, with peft's own loader.

    Args:
        model: a peft model with the same adapter config.
        adapter_dir: folder with ``adapter_model.safetensors``.
        lora_only: load only the LoRA matrices (skip saved heads and other modules).

    Raises:
        ValueError: the weights do not fit the model's adapter config, or include weights it does not have.
    """
    from peft.utils import load_peft_weights, set_peft_model_state_dict

    weights = load_peft_weights(str(adapter_dir), device="cpu")
    if lora_only:
        weights = {k: v for k, v in weights.items() if "lora_" in k}
    try:
        result = set_peft_model_state_dict(model, weights)
    except RuntimeError as e:
        raise ValueError(f"{adapter_dir}: LoRA weights do not fit this adapter config: {e}") from e
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise ValueError(f"{adapter_dir}: unexpected weights {unexpected[:3]} (other adapter config?)")


def load_classifier(adapter_dir: str | Path, backbone: str | None = None) -> tuple[PeftModel, Any, dict[str, Any]]:
    """Rebuild a saved text classifier: backbone + ``PeftModel.from_pretrained`` (LoRA and head).

    Args:
        adapter_dir: an adapter folder written by :func:`save_adapter`.
        backbone: override the backbone recorded in ``metanlp.json`` (must have the same architecture).

    Returns:
        ``(model, tokenizer, metadata)``; the model is in eval mode.

    Raises:
        FileNotFoundError: the folder or its metadata is missing.
        ValueError: the folder is not a text-classification adapter, or was trained on a backbone of another hidden
            size than ``backbone`` (the message names both).
    """
    meta = read_metadata(adapter_dir)
    if meta.get("family") != "text_classification":
        raise ValueError(f"{adapter_dir}: family is {meta.get('family')!r}, not a text-classification adapter")
    name = backbone or meta["backbone"]
    encoder, tokenizer = load_encoder(name)
    if meta.get("hidden_size") not in (None, encoder.hidden_size):
        raise ValueError(
            f"{adapter_dir} was trained on backbone {meta['backbone']!r} (hidden size {meta['hidden_size']}), "
            f"but {name!r} has hidden size {encoder.hidden_size}"
        )
    base = TextClassifier(encoder, num_labels=len(meta["labels"]), name_or_path=name)
    try:
        model = PeftModel.from_pretrained(base, str(adapter_dir))
    except (RuntimeError, ValueError, KeyError) as e:
        raise ValueError(f"{adapter_dir}: adapter does not fit backbone {name!r}: {e}") from e
    model.eval()
    return model, tokenizer, meta


@torch.no_grad()
def predict_texts(
    model: PeftModel, tokenizer: Any, texts: list[str], max_length: int = 48, batch_size: int = 64
) -> list[tuple[int, float]]:
    """``(class index, probability)`` for each text, computed in batches of ``batch_size``."""
    out: list[tuple[int, float]] = []
    device = next(model.parameters()).device
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(
            texts[i : i + batch_size], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        ).to(device)
        probs = model(enc["input_ids"], enc["attention_mask"]).softmax(-1)
        conf, idx = probs.max(-1)
        out += list(zip(idx.tolist(), conf.tolist(), strict=True))
    return out
