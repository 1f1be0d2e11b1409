"""LoRA adapters over a frozen encoder, the per-task classification head, and fast-weight helpers.

The classifier is a plain ``nn.Module`` (:class:`TextClassifier`: encoder + linear ``head``) wrapped by peft with
``modules_to_save=["head"]``, so ``save_pretrained`` writes the LoRA weights *and* the head (peft drops a head that is
not in ``modules_to_save``: huggingface/peft#310, #876) and stock ``PeftModel.from_pretrained`` restores both.

Meta-learning code never deep-copies the model: it reads the adapter parameters into a dict of tensors ("fast
weights"), updates that dict, and runs the model on it with ``torch.func.functional_call``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn

from metanlp.core.config import AdapterConfig
from metanlp.core.files import METADATA_FILE, read_metadata  # noqa: F401 - re-exported (older import path)
from metanlp.families.text_classification.backbone import TextEncoder, load_encoder
from metanlp.families.text_classification.layer_stack import (
    LAYERS_PATTERN,
    encoder_layers,
    lora_layer_indices,
    resolve_layers,
)

__all__ = [
    "METADATA_FILE",
    "TextClassifier",
    "attach_lora",
    "head_names",
    "load_classifier",
    "lora_parameters",
    "predict_texts",
    "prototype_head",
    "read_metadata",
    "set_head",
]

log = logging.getLogger(__name__)

#: ``adapter.layers`` when a recipe leaves it unset: LoRA on the top two encoder layers, the layers below computed once
#: per text (``prefix_cache``); 3.3x ``higher``'s meta-training episodes/s at -0.25 / -0.46 points of 5-shot accuracy
#: against all layers on CLINC150 (README "Faster").
DEFAULT_LAYERS = [-2, -1]


class TextClassifier(nn.Module):
    """Encoder + linear head: ``logits = head(mean_pool(encoder(x)))``.

    Args:
        encoder: a :class:`~metanlp.families.text_classification.backbone.TextEncoder`.
        num_labels: rows of the head (classes of the task); meta-training uses 1 as a placeholder because every
            episode brings its own prototype-initialised head.
        name_or_path: backbone name, recorded by peft as ``base_model_name_or_path``.
    """

    def __init__(self, encoder: TextEncoder, num_labels: int = 1, name_or_path: str = "") -> None:
        super().__init__()
        self.name_or_path = name_or_path or None
        self.encoder = encoder
        self.head = nn.Linear(encoder.hidden_size, num_labels)

    def forward(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor,
        return_embeddings: bool = False,
        hidden_states: torch.Tensor | None = None,
        start_layer: int = 0,
    ) -> torch.Tensor:
        """Classify a batch.

        Args:
            input_ids: ``(batch, seq_len)`` token ids (unused when ``hidden_states`` is given).
            attention_mask: ``(batch, seq_len)``.
            return_embeddings: return the pooled ``(batch, hidden)`` embeddings instead of logits.
            hidden_states: ``(batch, seq_len, hidden)`` cached states entering layer ``start_layer`` (see
                :mod:`metanlp.prefix_cache`): only the layers from ``start_layer`` on are run.
            start_layer: the first encoder layer to run on ``hidden_states``.

        Returns:
            ``(batch, num_labels)`` logits, or ``(batch, hidden)`` embeddings.
        """
        emb = self.encoder(input_ids, attention_mask, hidden_states, start_layer)
        return emb if return_embeddings else self.head(emb)


def attach_lora(encoder: TextEncoder, cfg: AdapterConfig, num_labels: int = 1, base_name: str = "") -> PeftModel:
    """Wrap ``TextClassifier(encoder, num_labels)`` with a fresh LoRA adapter (Hu et al. 2021, arXiv:2106.09685).

    Only the LoRA matrices and the head are trainable; the backbone stays frozen.

    Args:
        encoder: the frozen encoder.
        cfg: rank, alpha, dropout, target modules and the layers that get LoRA (``adapter.layers``, passed to peft as
            ``layers_to_transform`` with ``layers_pattern="layer"``; unset = :data:`DEFAULT_LAYERS`).
        num_labels: classes of the head.
        base_name: backbone name recorded in ``adapter_config.json`` as ``base_model_name_or_path``.

    Raises:
        ValueError: none of ``cfg.target_modules`` exists in the backbone (the message lists the linear layers), or
            ``cfg.layers`` names a layer the backbone does not have.
    """
    linear_names = sorted({n.rsplit(".", 1)[-1] for n, m in encoder.named_modules() if isinstance(m, nn.Linear)})
    missing = [t for t in cfg.target_modules if t not in linear_names]
    if missing:
        raise ValueError(
            f"adapter.target_modules {missing} not found in the backbone; its linear layers: {linear_names}"
        )
    # its real depth (a backbone cut to fewer layers keeps its config's count)
    stack = encoder_layers(encoder.backbone)
    depth = len(stack) if stack is not None else int(encoder.backbone.config.num_hidden_layers)
    wanted = DEFAULT_LAYERS if cfg.layers is None else list(cfg.layers)
    layers = resolve_layers(depth, wanted) if wanted else None
    pattern = LAYERS_PATTERN if layers is not None and stack is not None else None
    lora = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.target_modules),
        modules_to_save=["head"],
        layers_to_transform=layers,
        layers_pattern=pattern,
    )
    model = get_peft_model(TextClassifier(encoder, num_labels, base_name), lora)
    if layers is not None and lora_layer_indices(model) != layers:
        raise ValueError(f"adapter.layers={wanted}: LoRA landed on layers {lora_layer_indices(model)}, "
                         f"not {layers} (is the backbone's layer stack named encoder.layer.N?)")  # fmt: skip
    return model


def lora_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The LoRA matrices of ``model`` by name (the meta-parameters of FOMAML): ``{name: (r, in) or (out, r)}``."""
    params = {n: p for n, p in model.named_parameters() if "lora_" in n}
    if not params:
        raise ValueError("model has no LoRA parameters: wrap it with "
                         "metanlp.families.text_classification.adapter.attach_lora first")
    return params


def head_names(model: nn.Module) -> tuple[str, str]:
    """Names of the trainable head's ``(weight, bias)`` inside a peft-wrapped :class:`TextClassifier`."""
    names = [n for n, _ in model.named_parameters() if ".head.modules_to_save." in n]
    weight = [n for n in names if n.endswith(".weight")]
    bias = [n for n in names if n.endswith(".bias")]
    if len(weight) != 1 or len(bias) != 1:
        raise ValueError(f"expected one trainable head (weight, bias) in modules_to_save, found {names}")
    return weight[0], bias[0]


def prototype_head(
    embeddings: torch.Tensor, labels: torch.Tensor, num_classes: int, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear head equal to a scaled squared-Euclidean prototype classifier (Proto-MAML).

    ``logits_c(x) = -scale * ||x - c_c||^2 + const = x @ (2 scale c_c) - scale ||c_c||^2``, so a linear layer with
    ``W = 2 scale C`` and ``b = -scale ||C||^2`` starts as the nearest-prototype rule and is then adapted in the inner
    loop. Triantafillou et al. 2020, "Meta-Dataset", arXiv:1903.03096, sec. 3.2.

    Args:
        embeddings: ``(n_support, hidden)`` support embeddings.
        labels: ``(n_support,)`` class indices in ``[0, num_classes)``.
        num_classes: N, the classes of the episode.
        scale: temperature (``meta.head_scale``).

    Returns:
        ``(weight, bias)`` of shapes ``(num_classes, hidden)`` and ``(num_classes,)``.

    Raises:
        ValueError: some class has no support example.
    """
    counts = torch.bincount(labels, minlength=num_classes)
    if bool((counts == 0).any()):
        empty = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"classes {empty} have no support example; every class needs at least one")
    sums = torch.zeros(num_classes, embeddings.shape[1], dtype=embeddings.dtype, device=embeddings.device)
    protos = sums.index_add(0, labels, embeddings) / counts.unsqueeze(1).to(embeddings.dtype)
    return 2 * scale * protos, -scale * (protos**2).sum(1)


def set_head(model: nn.Module, weight: torch.Tensor, bias: torch.Tensor) -> None:
    """Replace the trainable head of a peft-wrapped :class:`TextClassifier` by one of shape ``weight``.

    Args:
        model: the peft model.
        weight: ``(num_classes, hidden)``.
        bias: ``(num_classes,)``.
    """
    w_name, _ = head_names(model)
    parent = model.get_submodule(w_name.rsplit(".", 1)[0].rsplit(".", 1)[0])  # ...modules_to_save
    adapter = w_name.rsplit(".", 2)[-2]
    new = nn.Linear(weight.shape[1], weight.shape[0], device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        new.bias.copy_(bias)
    parent[adapter] = new
    base = model.get_base_model()
    base.head.original_module = nn.Linear(weight.shape[1], weight.shape[0]).to(weight.device).requires_grad_(False)


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
