"""Build, save and load translation adapters: backbone (+ pruned vocabulary) + LoRA + :class:`TranslationFamily`.

An adapter folder is plain peft (``adapter_config.json`` + ``adapter_model.safetensors``: LoRA weights only, which do
not depend on the vocabulary), so ``PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), dir)``
loads it with stock peft. ``metanlp.json`` records the languages, the backbone and its licence, and the pruning map
(the kept original piece ids) so that ``metanlp translate`` rebuilds exactly the model that was trained, and
``lora_layers``: the decoder layers that hold LoRA (``adapter.layers``; loading it as ``adapter.init`` under other
layers is a ValueError naming both).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel

from metanlp.core.config import RecipeConfig
from metanlp.core.files import METADATA_FILE, read_metadata
from metanlp.core.lora_layers import check_lora_layers
from metanlp.core.precision import attention_kernel
from metanlp.core.saving import load_adapter_weights, save_adapter
from metanlp.families.translation.backbone import (
    TINY_TRANSLATOR,
    attach_translation_lora,
    load_translator,
    tiny_causal_lm,
)
from metanlp.families.translation.family import TranslationFamily, newline_ids
from metanlp.families.translation.pairs import language_name
from metanlp.families.translation.vocab_pruning import VocabMap, build_vocab_map, prune_causal_lm

__all__ = [
    "TranslationSetup",
    "always_kept_ids",
    "build_translation",
    "lora_weights",
    "load_translation_adapter",
    "save_translation_adapter",
]

log = logging.getLogger(__name__)


@dataclass
class TranslationSetup:
    """A ready translation run.

    Attributes:
        model: the peft-wrapped LM (LoRA attached).
        tokenizer: the backbone's (unpruned) tokenizer.
        task: the :class:`TranslationFamily` over ``model``.
        meta_params: the LoRA parameters (meta-learned init when ``adapter.init`` was given).
        pretrained: detached copy of the fresh LoRA init (``B = 0``): "no meta-training".
        vocab: the pruning map, or None.
        tokenizer_texts: what the tiny test tokenizer was trained on (``model.name: tiny-random-gemma3`` only).
    """

    model: torch.nn.Module
    tokenizer: Any
    task: TranslationFamily
    meta_params: dict[str, torch.nn.Parameter]
    pretrained: dict[str, torch.Tensor]
    vocab: VocabMap | None
    tokenizer_texts: list[str] | None = None


def always_kept_ids(tokenizer: Any) -> list[int]:
    """Byte-fallback pieces (``<0x41>``) and newline pieces: any text stays writable and lines can end."""
    return [i for t, i in tokenizer.get_vocab().items() if re.fullmatch(r"<0x[0-9A-F]{2}>", t)] + newline_ids(
        tokenizer
    )


def build_translation(
    cfg: RecipeConfig,
    vocab_texts: list[str],
    languages: list[str],
    load_init: bool = True,
    keep_ids: list[int] | None = None,
) -> TranslationSetup:
    """Backbone (frozen, vocabulary pruned to ``vocab_texts`` when ``translation.prune_vocab``) + fresh LoRA seeded by
    ``run.seed`` (+ the meta-learned init from ``adapter.init``).

    Args:
        cfg: the recipe.
        vocab_texts: every text of the languages in use (both sides of the pairs); also trains the tiny test tokenizer.
        languages: language codes in use (their names join the vocabulary: they are in every prompt).
        load_init: load ``adapter.init`` when set.
        keep_ids: further original piece ids to keep (e.g. an init adapter's or a saved adapter's kept pieces).

    Raises:
        ValueError: a language code is unknown; ``adapter.init`` is not a translation adapter or does not fit.
        FileNotFoundError: the backbone or ``adapter.init`` is missing.
    """
    names = [language_name(code, cfg.translation.language_names) for code in languages]
    tokenizer_texts = None
    if cfg.model.name == TINY_TRANSLATOR:
        tokenizer_texts = vocab_texts + [f"{n}:" for n in names]
        model, tokenizer = tiny_causal_lm(tokenizer_texts, seed=cfg.run.seed)
    else:
        attention = attention_kernel(cfg.model.precision, cfg.model.attn_implementation)  # eager under bf16 on CPU
        model, tokenizer = load_translator(cfg.model.name, cfg.model.trust_remote_code, attention)
    init_meta = read_metadata(cfg.adapter.init) if load_init and cfg.adapter.init else None
    if init_meta is not None and init_meta.get("family") != "translation":
        raise ValueError(f"adapter.init={cfg.adapter.init}: family {init_meta.get('family')!r} is not translation")
    vocab = None
    if cfg.translation.prune_vocab and not getattr(model.config, "is_encoder_decoder", False):
        extra = always_kept_ids(tokenizer) + list(keep_ids or [])
        if init_meta and init_meta.get("vocab_pruning"):
            extra += init_meta["vocab_pruning"]["kept"]
        size = model.get_input_embeddings().weight.shape[0]
        vocab = build_vocab_map(tokenizer, vocab_texts + [f"{n}: " for n in names], size, extra)
        prune_causal_lm(model, vocab)
    torch.manual_seed(cfg.run.seed)
    peft_model = attach_translation_lora(model, cfg.adapter, cfg.model.name)
    params = {n: p for n, p in peft_model.named_parameters() if "lora_" in n}
    pretrained = {k: v.detach().clone() for k, v in params.items()}
    if init_meta is not None:
        _load_lora(peft_model, cfg.adapter.init, "adapter.init")
    t = cfg.translation
    task = TranslationFamily(peft_model, tokenizer, vocab, t.max_length, t.max_new_tokens, t.language_names,
                             prefix_cache=cfg.adapter.prefix_cache_mb > 0, precision=cfg.model.precision)  # fmt: skip
    return TranslationSetup(peft_model, tokenizer, task, params, pretrained, vocab, tokenizer_texts)


def lora_weights(
    setup: TranslationSetup, adapter_dir: str | Path, key: str = "adapter.multitask_init"
) -> dict[str, torch.Tensor]:
    """LoRA weights of another saved translation adapter, keyed like ``setup.meta_params``; the model keeps its own.

    Raises:
        ValueError: the adapter's LoRA does not fit ``setup``'s adapter config (other layers, ranks, modules).
    """
    own = {k: v.detach().clone() for k, v in setup.meta_params.items()}
    _load_lora(setup.model, adapter_dir, key)
    other = {k: v.detach().clone() for k, v in setup.meta_params.items()}
    with torch.no_grad():
        for k, v in setup.meta_params.items():
            v.copy_(own[k])
    return other


def _load_lora(model: PeftModel, adapter_dir: str | Path, key: str) -> None:
    has_meta = (Path(adapter_dir) / METADATA_FILE).is_file()  # a plain peft folder has no metanlp.json to check
    check_lora_layers(model, adapter_dir, read_metadata(adapter_dir) if has_meta else {}, key)
    load_adapter_weights(model, adapter_dir, lora_only=True)
    log.info("loaded LoRA weights from %s", adapter_dir)


def save_translation_adapter(
    setup: TranslationSetup,
    out_dir: str | Path,
    metadata: dict[str, Any],
    recipe_yaml: str = "",
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write a plain-peft adapter folder (LoRA only, no embedding rows) + ``metanlp.json``, atomically.

    ``save_embedding_layers=False`` keeps peft from saving (and from looking up on the hub) the pruned embedding: the
    LoRA weights fit the unpruned backbone, and the pruning map in ``metanlp.json`` rebuilds the pruned one.
    """
    meta = dict(metadata)
    if setup.vocab is not None:
        meta["vocab_pruning"] = setup.vocab.to_dict()
    return save_adapter(setup.model, out_dir, meta, recipe_yaml, metrics)


def load_translation_adapter(adapter_dir: str | Path, backbone: str | None = None) -> tuple[TranslationFamily, dict]:
    """Rebuild a saved translation adapter: backbone, the recorded vocabulary pruning, stock ``PeftModel``.

    Args:
        adapter_dir: folder written by :func:`save_translation_adapter`.
        backbone: override the backbone recorded in ``metanlp.json``.

    Returns:
        ``(task, metadata)``; ``task.model`` is the peft model in eval mode.

    Raises:
        FileNotFoundError: the folder or its files are missing.
        ValueError: not a translation adapter, or its LoRA does not fit the backbone.
    """
    meta = read_metadata(adapter_dir)
    if meta.get("family") != "translation":
        raise ValueError(f"{adapter_dir}: family is {meta.get('family')!r}, not a translation adapter")
    name = backbone or meta["backbone"]
    if name == TINY_TRANSLATOR:
        model, tokenizer = tiny_causal_lm(meta["tiny_tokenizer_texts"], seed=meta.get("seed", 0))
    else:
        model, tokenizer = load_translator(name)
    vocab = None
    if meta.get("vocab_pruning"):
        vocab = VocabMap.from_dict(meta["vocab_pruning"])
        prune_causal_lm(model, vocab)
    try:
        peft_model = PeftModel.from_pretrained(model, str(adapter_dir))
    except (RuntimeError, ValueError, KeyError) as e:
        raise ValueError(f"{adapter_dir}: adapter does not fit backbone {name!r}: {e}") from e
    check_lora_layers(peft_model, adapter_dir, meta, "adapter")  # adapter_config.json vs metanlp.json
    peft_model.eval()
    task = TranslationFamily(peft_model, tokenizer, vocab, meta.get("max_length", 128),
                             meta.get("max_new_tokens", 96), meta.get("language_names", {}))  # fmt: skip
    return task, meta
