"""Translation backbones: load a causal LM (default Gemma-3-270m base) or a seq2seq model, or a tiny random one.

The default ``google/gemma-3-270m`` resolves to the folder converted once from the PyPI GGUF package
(:mod:`metanlp.families.translation.gguf`); any ``AutoModelForCausalLM`` / ``AutoModelForSeq2SeqLM`` name or folder
works the same way.
"""

from __future__ import annotations

import logging

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PreTrainedTokenizerFast,
)

from metanlp.core.lora_layers import lora_layer_indices, resolve_layers
from metanlp.families.translation.gguf import PACKAGED_GGUF, resolve_causal_lm
from metanlp.families.translation.prefix_cache import decoder_stack

__all__ = [
    "DEFAULT_TRANSLATOR",
    "TINY_TRANSLATOR",
    "attach_translation_lora",
    "backbone_licence",
    "load_translator",
    "tiny_causal_lm",
]

log = logging.getLogger(__name__)

DEFAULT_TRANSLATOR = "google/gemma-3-270m"
#: ``model.name`` that builds a tiny random causal LM (tests and smoke runs only; never a reported number).
TINY_TRANSLATOR = "tiny-random-gemma3"


def backbone_licence(name: str) -> str:
    """Licence of a known backbone's weights (recorded as ``base_model_licence``); ``"unknown: check <name>"``
    otherwise."""
    if name in PACKAGED_GGUF:
        return PACKAGED_GGUF[name][2]
    if name == TINY_TRANSLATOR:
        return "none (random weights)"
    return f"unknown: check the licence of {name}"


def load_translator(
    name: str = DEFAULT_TRANSLATOR, trust_remote_code: bool = False, attn_implementation: str = ""
) -> tuple[torch.nn.Module, object]:
    """Load a causal or seq2seq LM and its tokenizer with ``from_pretrained``; all weights frozen, eval mode.

    Args:
        name: hub id, local folder, or a packaged GGUF model (converted into the cache on first use).
        trust_remote_code: passed to ``from_pretrained``; keep False unless you trust the model's code.
        attn_implementation: ``eager``, ``sdpa`` ...; passed to ``from_pretrained`` (empty = transformers' default).

    Returns:
        ``(model, tokenizer)``; ``model.config.is_encoder_decoder`` tells the two kinds apart.

    Raises:
        FileNotFoundError: the name is neither a folder, a packaged model, nor reachable on the hub.
    """
    path = resolve_causal_lm(name)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        cls = AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM
        extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
        model = cls.from_pretrained(path, trust_remote_code=trust_remote_code, dtype=torch.float32, **extra)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except OSError as e:
        raise FileNotFoundError(f"cannot load translation backbone {name!r} (resolved to {path!r}): {e}") from e
    model.config._name_or_path = model.name_or_path = name  # adapter_config.json names the hub id, not the cache
    model.requires_grad_(False)
    model.eval()
    log.info("loaded translation backbone %s from %s", name, path)
    return model, tokenizer


def tiny_causal_lm(
    texts: list[str],
    seed: int = 0,
    vocab_size: int = 400,
    layer_types: list[str] | None = None,
    sliding_window: int = 64,
) -> tuple[torch.nn.Module, object]:
    """A randomly initialised Gemma-3 (hidden 32; 2 layers by default) with a byte-level BPE tokenizer trained on
    ``texts``.

    For fast tests of the code path only; never use it for a reported number.

    Args:
        texts: texts to train the tiny tokenizer on (any text still encodes: byte-level).
        seed: torch seed of the random weights.
        vocab_size: target vocabulary size of the tokenizer.
        layer_types: one ``"sliding_attention"`` / ``"full_attention"`` per layer (their number is the depth);
            default ``["sliding_attention", "full_attention"]``.
        sliding_window: tokens a sliding-attention layer sees.

    Returns:
        ``(model, tokenizer)``, frozen and in eval mode.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(list(texts) + ["\n"], trainer=trainer)
    from tokenizers.processors import TemplateProcessing

    tok.post_processor = TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", tok.token_to_id("<bos>"))])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>"
    )
    layer_types = layer_types or ["sliding_attention", "full_attention"]
    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=len(layer_types),
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=512,
        sliding_window=sliding_window,
        layer_types=list(layer_types),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        tie_word_embeddings=True,
    )
    model = Gemma3ForCausalLM(config)
    model.requires_grad_(False)
    model.eval()
    return model, tokenizer


def attach_translation_lora(model: torch.nn.Module, cfg, base_name: str = "") -> torch.nn.Module:  # noqa: ANN001
    """Wrap a causal or seq2seq LM with a fresh LoRA adapter (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large
    Language Models", arXiv:2106.09685); only the LoRA matrices are trainable.

    Args:
        model: the frozen backbone.
        cfg: :class:`~metanlp.core.config.AdapterConfig` (rank, alpha, dropout, target modules such as
            ``[q_proj, k_proj, v_proj, o_proj]``, and ``layers``: the decoder layers that get LoRA, passed to peft as
            ``layers_to_transform`` with ``layers_pattern="layers"``; negative indices count from the top, so
            ``[-2, -1]`` is the top two layers; empty or unset = every layer).
        base_name: backbone name recorded in ``adapter_config.json`` (``base_model_name_or_path``).

    Raises:
        ValueError: none of ``cfg.target_modules`` exists in the backbone (the message lists its linear layers);
            ``cfg.layers`` names a layer the decoder does not have, or is set for a seq2seq model or a model whose
            layer stack is not ``model.layers.N``.
    """
    from peft import LoraConfig, TaskType, get_peft_model

    linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
    missing = [t for t in cfg.target_modules if t not in linear]
    if missing:
        raise ValueError(f"adapter.target_modules {missing} not found in the backbone; its linear layers: {linear}")
    seq2seq = bool(getattr(model.config, "is_encoder_decoder", False))
    layers = None
    if cfg.layers:  # unset (None) or [] = every layer: top-L LoRA lost chrF on meta-val pairs (bench/translation)
        stack = decoder_stack(model)
        if stack is None:
            raise ValueError(f"adapter.layers={list(cfg.layers)} needs a decoder-only LM with a model.layers stack; "
                             f"{type(model).__name__} has none: leave adapter.layers empty")  # fmt: skip
        layers = resolve_layers(len(stack[1]), list(cfg.layers))
    lora = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.target_modules),
        layers_to_transform=layers,
        layers_pattern="layers" if layers is not None else None,
        task_type=TaskType.SEQ_2_SEQ_LM if seq2seq else TaskType.CAUSAL_LM,
        base_model_name_or_path=base_name or None,
    )
    peft_model = get_peft_model(model, lora)
    if layers is not None and lora_layer_indices(peft_model) != layers:
        raise ValueError(f"adapter.layers={list(cfg.layers)}: LoRA landed on layers {lora_layer_indices(peft_model)}, "
                         f"not {layers}")  # fmt: skip
    return peft_model
