"""Vocabulary pruning of a causal LM to the pieces of the languages in use.

Gemma-3-270m has 262,144 pieces and ~168M of its 268M parameters are the (tied) embedding matrix, so the output layer
dominates the cost of a training step. Keeping only the pieces that occur in the texts of the languages in use (plus
the special tokens) shrinks the embedding to gathered rows of the original matrix; the output layer stays tied to it,
so the logits of every kept piece are exactly the original ones. Token ids go through an old -> new map on the way in
and new -> old on the way out, so the original tokenizer is used unchanged.

This is the standard trick for multilingual models used on a few languages, e.g. Abdaoui et al. 2020, "Load What You
Need: Smaller Versions of Multilingual BERT", arXiv:2010.05609.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["VocabMap", "build_vocab_map", "prune_causal_lm"]

log = logging.getLogger(__name__)


@dataclass
class VocabMap:
    """Which pieces of the original vocabulary a pruned model keeps.

    Attributes:
        kept: ``(new_vocab,)`` original ids in increasing order; new id ``i`` is original id ``kept[i]``.
        original_size: size of the original vocabulary.
        unk_new: new id that out-of-vocabulary original ids map to (the tokenizer's ``unk``).
    """

    kept: torch.Tensor
    original_size: int
    unk_new: int

    def __post_init__(self) -> None:
        self.kept = torch.as_tensor(self.kept, dtype=torch.long)
        if self.kept.ndim != 1 or self.kept.numel() == 0:
            raise ValueError(f"VocabMap.kept must be a non-empty 1-D list of ids, got shape {tuple(self.kept.shape)}")
        if bool((self.kept[1:] <= self.kept[:-1]).any()):
            raise ValueError("VocabMap.kept must be strictly increasing")
        if int(self.kept[-1]) >= self.original_size or int(self.kept[0]) < 0:
            raise ValueError(f"VocabMap.kept has ids outside [0, {self.original_size})")
        self._old_to_new = torch.full((self.original_size,), self.unk_new, dtype=torch.long)
        self._old_to_new[self.kept] = torch.arange(self.kept.numel())

    @property
    def size(self) -> int:
        """Pieces kept (the pruned vocabulary size)."""
        return int(self.kept.numel())

    def contains(self, old_ids: torch.Tensor) -> torch.Tensor:
        """Boolean mask of the same shape as ``old_ids``: which original ids are kept."""
        return self.kept[self.to_new(old_ids).clamp(max=self.size - 1)] == old_ids

    def to_new(self, old_ids: torch.Tensor) -> torch.Tensor:
        """Map original ids (any shape) to pruned ids; ids that were pruned away become ``unk_new``."""
        return self._old_to_new.to(old_ids.device)[old_ids]

    def to_old(self, new_ids: torch.Tensor) -> torch.Tensor:
        """Map pruned ids (any shape) back to original ids."""
        return self.kept.to(new_ids.device)[new_ids]

    def to_dict(self) -> dict:
        """JSON-able form (``kept`` as a list), for an adapter's ``vocab_map.json``."""
        return {"original_size": self.original_size, "unk_new": self.unk_new, "kept": self.kept.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> VocabMap:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: a key is missing or the ids are invalid.
        """
        try:
            return cls(torch.tensor(data["kept"]), int(data["original_size"]), int(data["unk_new"]))
        except KeyError as e:
            raise ValueError(f"vocabulary map lacks key {e}") from e


def build_vocab_map(tokenizer, texts: Iterable[str], original_size: int, extra_ids: Iterable[int] = ()) -> VocabMap:  # noqa: ANN001
    """The pieces used by ``texts`` plus every special token of ``tokenizer`` and ``extra_ids``.

    Args:
        tokenizer: the backbone's tokenizer (its special tokens are always kept).
        texts: every text the model will read or write (both languages of the pairs, prompt words).
        original_size: rows of the model's embedding matrix (may exceed ``len(tokenizer)``).
        extra_ids: further original ids to keep (e.g. newline pieces).

    Returns:
        The :class:`VocabMap`.
    """
    keep = set(int(i) for i in extra_ids)
    keep.update(int(i) for i in tokenizer.all_special_ids if i is not None and 0 <= i < original_size)
    for enc in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        keep.update(enc)
    kept = sorted(i for i in keep if 0 <= i < original_size)
    unk = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else tokenizer.eos_token_id
    unk_new = kept.index(unk) if unk in kept else 0
    return VocabMap(torch.tensor(kept), original_size, unk_new)


def prune_causal_lm(model: nn.Module, vocab: VocabMap) -> nn.Module:
    """Shrink a causal LM's input embedding and (tied) output layer to the rows in ``vocab.kept``, in place.

    The embedding module keeps its class (Gemma's scaled embedding keeps its scale); its weight becomes
    ``weight[kept]``, shape ``(new_vocab, hidden)``, and the output layer is tied to it again (or, for an untied model,
    gets the gathered rows of its own weight and bias). ``config.vocab_size`` and the special-token ids of
    ``config`` and ``generation_config`` are mapped to the new ids.

    Args:
        model: a transformers ``*ForCausalLM`` with ``get_input_embeddings``/``get_output_embeddings``.
        vocab: the pieces to keep; ``vocab.original_size`` must equal the embedding's rows.

    Returns:
        The same model.

    Raises:
        ValueError: the model's vocabulary size does not match ``vocab.original_size``.
    """
    emb = model.get_input_embeddings()
    out = model.get_output_embeddings()
    if emb.weight.shape[0] != vocab.original_size:
        raise ValueError(
            f"vocabulary map is for {vocab.original_size} pieces, but the model has {emb.weight.shape[0]} "
            "embedding rows"
        )
    tied = out is not None and out.weight is emb.weight
    kept = vocab.kept.to(emb.weight.device)
    with torch.no_grad():
        emb.weight = nn.Parameter(emb.weight[kept].clone(), requires_grad=emb.weight.requires_grad)
    emb.num_embeddings = vocab.size
    if getattr(emb, "padding_idx", None) is not None:
        emb.padding_idx = int(vocab.to_new(torch.tensor(emb.padding_idx)))
    if out is not None:
        if tied:
            out.weight = emb.weight
        else:
            with torch.no_grad():
                out.weight = nn.Parameter(out.weight[kept].clone(), requires_grad=out.weight.requires_grad)
        if getattr(out, "bias", None) is not None:
            with torch.no_grad():
                out.bias = nn.Parameter(out.bias[kept].clone(), requires_grad=out.bias.requires_grad)
        out.out_features = vocab.size
    model.config.vocab_size = vocab.size
    if hasattr(model, "vocab_size"):  # some heads cache it for their loss function
        model.vocab_size = vocab.size
    for cfg in (model.config, getattr(model, "generation_config", None)):
        for attr in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id"):
            value = getattr(cfg, attr, None) if cfg is not None else None
            if value is None:
                continue
            mapped = vocab.to_new(torch.as_tensor(value)).tolist()
            setattr(cfg, attr, mapped)
    log.info("pruned vocabulary %d -> %d pieces", vocab.original_size, vocab.size)
    return model
