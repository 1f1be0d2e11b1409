"""Which transformer layers hold LoRA: ``adapter.layers`` resolved against a backbone's depth, and read back from
a model's LoRA parameter names. Shared by every task family (peft ``layers_to_transform``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

__all__ = ["check_lora_layers", "lora_layer_indices", "resolve_layers"]


_LAYER_INDEX = re.compile(r"(?:^|\.)layers?\.(\d+)\.")


def lora_layer_indices(model: torch.nn.Module) -> list[int]:
    """Sorted indices of the transformer layers that hold LoRA weights (``...layer.N...`` or ``...layers.N...``)."""
    found = {int(m.group(1)) for n, _ in model.named_parameters() if "lora_" in n and (m := _LAYER_INDEX.search(n))}
    return sorted(found)


def resolve_layers(num_layers: int, layers: list[int]) -> list[int]:
    """Sorted absolute indices of ``adapter.layers`` (negative indices count from the top: -1 = the last layer).

    Args:
        num_layers: layers of the backbone.
        layers: ``adapter.layers``; empty = every layer.

    Raises:
        ValueError: an index is out of range or two name the same layer.
    """
    if not layers:
        return list(range(num_layers))
    bad = [i for i in layers if not -num_layers <= i < num_layers]
    if bad:
        raise ValueError(f"adapter.layers={list(layers)}: {bad} out of range for a backbone with {num_layers} layers "
                         f"(0..{num_layers - 1}, or -{num_layers}..-1 from the top)")  # fmt: skip
    absolute = [i % num_layers for i in layers]
    if len(set(absolute)) != len(absolute):
        raise ValueError(f"adapter.layers={list(layers)} names a layer twice ({absolute} from the bottom)")
    return sorted(absolute)


def check_lora_layers(model: torch.nn.Module, folder: str | Path, meta: dict[str, Any], key: str) -> None:
    """Refuse to load the adapter ``folder`` (named by recipe key ``key``) into ``model`` when its ``metanlp.json``
    (``meta``) records LoRA on other layers than ``model`` has.

    Raises:
        ValueError: ``meta["lora_layers"]`` differs from :func:`lora_layer_indices` of ``model`` (the message names the
            folder, both layer lists and the fix).
    """
    have = lora_layer_indices(model)
    if "lora_layers" in meta and meta["lora_layers"] != have:
        raise ValueError(f"{key}={folder} has LoRA on layers {meta['lora_layers']}, but adapter.layers gives {have}: "
                         "set adapter.layers as in its recipe.yaml")  # fmt: skip
