"""The layer stack of a BERT-style encoder, run in two parts: embeddings + layers ``[0, k)``, then layers ``[k, L)``.

With LoRA only on the top layers (``adapter.layers``), the embeddings and the layers below the lowest LoRA layer are
frozen: their output for a text never changes, so :mod:`metanlp.families.text_classification.prefix_cache` computes it
once (:func:`prefix_states`) and every later pass runs only the LoRA layers (:func:`run_layers`). Both use the
backbone's own modules and its own attention-mask builder, so the two parts compose to the backbone's ``forward``.

Supported backbones: encoders with ``embeddings`` and ``encoder.layer`` (a ``ModuleList``) that are not decoders:
BERT, MiniLM, RoBERTa, XLM-R, ELECTRA, MPNet (its relative position bias goes to every layer) ...
:func:`encoder_layers` returns None for any other model, and callers then run the whole backbone as before.
"""

from __future__ import annotations

import torch
from torch import nn

from metanlp.core.lora_layers import lora_layer_indices, resolve_layers  # noqa: F401 - re-exported

__all__ = ["LAYERS_PATTERN", "encoder_layers", "lora_layer_indices", "prefix_states", "resolve_layers", "run_layers"]

#: peft ``layers_pattern`` of these encoders: LoRA modules live under ``encoder.layer.N``.
LAYERS_PATTERN = "layer"



def encoder_layers(backbone: nn.Module) -> nn.ModuleList | None:
    """The ``encoder.layer`` list of a BERT-style (bidirectional) backbone, or None when it has none."""
    if getattr(getattr(backbone, "config", None), "is_decoder", False) or not hasattr(backbone, "embeddings"):
        return None
    layers = getattr(getattr(backbone, "encoder", None), "layer", None)
    return layers if isinstance(layers, nn.ModuleList) else None


def _layer_mask(backbone: nn.Module, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor | None:
    """The attention mask the backbone's layers expect, built as its own ``forward`` builds it."""
    from transformers.masking_utils import create_bidirectional_mask

    return create_bidirectional_mask(config=backbone.config, inputs_embeds=hidden, attention_mask=attention_mask)


def run_layers(
    backbone: nn.Module, hidden: torch.Tensor, attention_mask: torch.Tensor, start: int, stop: int | None = None
) -> torch.Tensor:
    """Run layers ``[start, stop)`` of a BERT-style backbone.

    Args:
        backbone: a model :func:`encoder_layers` supports.
        hidden: ``(batch, seq_len, hidden)`` states entering layer ``start`` (the embeddings when ``start == 0``).
        attention_mask: ``(batch, seq_len)``, 1 for real tokens.
        start: first layer to run.
        stop: one past the last layer to run (None = the top).

    Returns:
        ``(batch, seq_len, hidden)`` states after layer ``stop - 1``.

    Raises:
        ValueError: the backbone has no ``encoder.layer`` stack.
    """
    layers = encoder_layers(backbone)
    if layers is None:
        raise ValueError(f"{type(backbone).__name__} has no BERT-style encoder.layer stack to run from layer {start}")
    mask = _layer_mask(backbone, hidden, attention_mask)
    bias = getattr(backbone.encoder, "compute_position_bias", None)  # MPNet: relative position bias for every layer
    extra = {"position_bias": bias(hidden)} if bias is not None else {}
    for layer in layers[start:stop]:
        out = layer(hidden, mask, **extra)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


def prefix_states(
    backbone: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, stop: int
) -> torch.Tensor:
    """``(batch, seq_len, hidden)`` states after the embeddings and layers ``[0, stop)``, as the backbone has them.

    Args:
        backbone: a model :func:`encoder_layers` supports.
        input_ids: ``(batch, seq_len)`` token ids.
        attention_mask: ``(batch, seq_len)``.
        stop: layers to run after the embeddings (0 = the embeddings only).
    """
    hidden = backbone.embeddings(input_ids=input_ids)
    return run_layers(backbone, hidden, attention_mask, 0, stop)
