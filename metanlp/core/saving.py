"""Write and read adapter folders: plain peft format + ``metanlp.json`` + the resolved recipe (+ metrics).

An adapter folder holds ``adapter_config.json`` and ``adapter_model.safetensors`` (peft's own ``save_pretrained``,
LoRA *and* head), ``metanlp.json`` (task family, backbone, label names, N/K ...), ``recipe.yaml`` and optionally
``metrics.json``. Folders are written into a temporary sibling and renamed into place, so a crash never leaves a
half-written adapter and an existing folder is replaced only by a complete one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from peft import PeftModel

from metanlp.core.files import METADATA_FILE, atomic_dir, write_json_atomic
from metanlp.core.lora_layers import lora_layer_indices

__all__ = [
    "atomic_dir",
    "load_adapter_weights",
    "lora_layer_indices",
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
