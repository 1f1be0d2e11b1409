"""An exact cache of the frozen encoder prefix: what the adapter cannot change, computed once per text.

With LoRA only on layers ``k`` and up (``adapter.layers``), the embeddings and layers ``[0, k)`` are frozen, so the
states entering layer ``k`` are a function of the text alone. :class:`FrozenPrefix` computes them once, keeps them per
text *unpadded* in a :class:`PrefixCache` (an LRU bounded in MiB), and builds batches that carry them re-padded:
``input_ids``, ``attention_mask`` ``(batch, seq_len)`` and ``hidden_states`` ``(batch, seq_len, hidden)``. The text
family then runs only the LoRA layers (``TextClassifier.forward(..., hidden_states=, start_layer=k)``), in the inner
loop, the query pass and adaptation alike.

Exactness: padding positions are masked out of attention and pooling, so re-padding with zeros gives the states of the
uncached forward (up to float summation order). Entries are keyed by ``(text, max_length)``; the cache belongs to one
*identity* ``(backbone name, commit, weights fingerprint, k, dtype, precision, device, tokenizer)`` at a time and is
cleared when it changes (another backbone, weights modified in place, another first LoRA layer, ``model.precision``).
The prefix is only used while its
modules are in eval mode (no dropout) and the tokenizer pads on the right; otherwise the family runs the whole encoder.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from metanlp.core.precision import autocast
from metanlp.families.text_classification.layer_stack import encoder_layers, lora_layer_indices, prefix_states

__all__ = ["FrozenPrefix", "PrefixCache", "frozen_prefix", "weights_fingerprint"]

log = logging.getLogger(__name__)

#: One cached text: ``(input_ids (len,), states (len, hidden))``.
Entry = tuple[torch.Tensor, torch.Tensor]


class PrefixCache:
    """Least-recently-used map ``(text, max_length) -> (input_ids, states)``, bounded in bytes.

    Args:
        max_mb: memory bound in MiB (the tensors' bytes); 0 stores nothing.

    Attributes:
        identity: what the entries were computed with (see :meth:`bind`).
        hits: lookups answered from the cache.
        misses: lookups that had to be computed.
    """

    def __init__(self, max_mb: float = 512.0) -> None:
        self.max_bytes = int(max_mb * 2**20)
        self._entries: OrderedDict[tuple[str, int], Entry] = OrderedDict()
        self.nbytes = 0
        self.identity: tuple[Any, ...] | None = None
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def bind(self, identity: tuple[Any, ...]) -> None:
        """Serve entries computed with ``identity``; drop everything when it differs from the current one."""
        if identity != self.identity:
            if self._entries:
                log.info("prefix cache: backbone, weights or first LoRA layer changed; dropping %d texts", len(self))
            self.clear()
            self.identity = identity

    def clear(self) -> None:
        """Drop every entry."""
        self._entries.clear()
        self.nbytes = 0

    def get(self, key: tuple[str, int]) -> Entry | None:
        """The entry of ``key`` (marked most recently used), or None."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, key: tuple[str, int], entry: Entry) -> None:
        """Store ``entry``, evicting least recently used ones to stay within ``max_bytes``."""
        size = sum(t.numel() * t.element_size() for t in entry)
        if size > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.nbytes -= sum(t.numel() * t.element_size() for t in old)
        while self._entries and self.nbytes + size > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self.nbytes -= sum(t.numel() * t.element_size() for t in dropped)
        self._entries[key] = entry
        self.nbytes += size


def weights_fingerprint(modules: list[nn.Module]) -> str:
    """SHA-1 of the names, shapes, dtypes and bytes of every parameter and buffer of ``modules``."""
    h = hashlib.sha1()
    for i, module in enumerate(modules):
        for name, t in [*module.named_parameters(), *module.named_buffers()]:
            t = t.detach().cpu().contiguous()
            h.update(f"{i}.{name}:{tuple(t.shape)}:{t.dtype}".encode())
            h.update(t.flatten().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class FrozenPrefix:
    """Batches of a text encoder's frozen prefix (embeddings + layers ``[0, start_layer)``), cached per text.

    Args:
        encoder: a :class:`~metanlp.families.text_classification.backbone.TextEncoder` whose backbone
            :func:`~metanlp.families.text_classification.layer_stack.encoder_layers` supports.
        tokenizer: the backbone's tokenizer (right padding).
        start_layer: the lowest layer with LoRA, > 0: the cached states are those entering it.
        cache: where states are kept (may be shared by several families; it serves one identity at a time).
        name: backbone name, part of the identity.
        chunk_size: texts per forward pass when computing missing states.
    """

    def __init__(
        self,
        encoder: nn.Module,
        tokenizer: Any,
        start_layer: int,
        cache: PrefixCache,
        name: str = "",
        chunk_size: int = 256,
    ) -> None:
        layers = encoder_layers(encoder.backbone)
        if layers is None or not 0 < start_layer < len(layers):
            raise ValueError(f"no frozen prefix of {start_layer} layers in this backbone")
        self.encoder, self.tokenizer, self.start_layer, self.cache = encoder, tokenizer, start_layer, cache
        self.name, self.chunk_size = name, chunk_size
        self.modules: list[nn.Module] = [encoder.backbone.embeddings, *layers[:start_layer]]
        self._token: tuple[Any, ...] | None = None
        self._fingerprint = ""
        self._tokenizer_id = (getattr(tokenizer, "name_or_path", ""), len(tokenizer))
        self.precision = "fp32"  #: the task's ``model.precision``: states computed under its autocast

    def usable(self) -> bool:
        """Whether cached states equal the forward's: prefix modules in eval mode, tokenizer padding on the right."""
        right = getattr(self.tokenizer, "padding_side", "right") == "right"
        return right and not any(m.training for m in self.modules)

    def identity(self) -> tuple[Any, ...]:
        """``(name, commit, weights fingerprint, start_layer, dtype, precision, device, tokenizer)``; the weights are
        re-hashed when one of them changed (in place or replaced)."""
        tensors = [t for m in self.modules for t in [*m.parameters(), *m.buffers()]]
        token = tuple((id(t), t.data_ptr(), t._version) for t in tensors)
        if token != self._token:
            self._fingerprint, self._token = weights_fingerprint(self.modules), token
        config = self.encoder.backbone.config
        commit = getattr(config, "_commit_hash", None) or ""
        ref = tensors[0]
        return (self.name or getattr(config, "_name_or_path", ""), commit, self._fingerprint, self.start_layer,
                str(ref.dtype), self.precision, str(ref.device), self._tokenizer_id)  # fmt: skip

    @torch.no_grad()
    def _compute(self, texts: list[str], max_length: int, device: torch.device) -> list[Entry]:
        out: list[Entry] = []
        for i in range(0, len(texts), self.chunk_size):
            enc = self.tokenizer(texts[i : i + self.chunk_size], padding=True, truncation=True, max_length=max_length,
                                 return_tensors="pt").to(device)  # fmt: skip
            with autocast(device, self.precision):
                states = prefix_states(self.encoder.backbone, enc["input_ids"], enc["attention_mask"],
                                       self.start_layer)  # fmt: skip
            for ids, mask, s in zip(enc["input_ids"], enc["attention_mask"], states, strict=True):
                n = int(mask.sum())
                out.append((ids[:n].clone(), s[:n].clone()))  # clones: an entry must not pin the padded batch
        return out

    def batch(self, texts: list[str], max_length: int, device: torch.device) -> dict[str, torch.Tensor]:
        """``input_ids``, ``attention_mask`` ``(n, seq_len)`` and ``hidden_states`` ``(n, seq_len, hidden)`` of
        ``texts``, padded to the longest of them; states not in the cache are computed (in one pass) and stored.
        No texts give tensors with 0 rows (and one column).
        """
        if not texts:
            ids = torch.zeros((0, 1), dtype=torch.long, device=device)
            width = self.encoder.hidden_size
            states = torch.zeros((0, 1, width), dtype=self.encoder.backbone.embeddings.word_embeddings.weight.dtype,
                                 device=device)  # fmt: skip
            return {"input_ids": ids, "attention_mask": ids.clone(), "hidden_states": states}
        self.cache.bind(self.identity())
        entries: list[Entry | None] = [self.cache.get((t, max_length)) for t in texts]
        missing = list(dict.fromkeys(t for t, e in zip(texts, entries, strict=True) if e is None))
        if missing:
            fresh = dict(zip(missing, self._compute(missing, max_length, device), strict=True))
            for t, e in fresh.items():
                self.cache.put((t, max_length), e)
            entries = [e if e is not None else fresh[t] for t, e in zip(texts, entries, strict=True)]
        ids = [e[0] for e in entries]  # type: ignore[index]
        states = [e[1] for e in entries]  # type: ignore[index]
        lengths = torch.tensor([len(i) for i in ids], device=device)
        pad_id = self.tokenizer.pad_token_id or 0
        mask = (torch.arange(int(lengths.max()), device=device)[None, :] < lengths[:, None]).long()
        return {
            "input_ids": pad_sequence(ids, batch_first=True, padding_value=pad_id).to(device),
            "attention_mask": mask,
            "hidden_states": pad_sequence(states, batch_first=True).to(device),
        }


def frozen_prefix(
    model: nn.Module, tokenizer: Any, cache_mb: float = 512.0, cache: PrefixCache | None = None, name: str = ""
) -> FrozenPrefix | None:
    """A :class:`FrozenPrefix` for a peft-wrapped ``TextClassifier`` whose LoRA starts above layer 0, else None.

    The first LoRA layer is read from the model's LoRA parameter names, so the prefix is frozen by construction.

    Args:
        model: ``attach_lora(...)`` output (or ``PeftModel.from_pretrained`` of one).
        tokenizer: the backbone's tokenizer.
        cache_mb: memory bound of a new cache, MiB; 0 = no cache (returns None).
        cache: a cache to share instead of a new one.
        name: backbone name (part of the cache identity); default: the ``TextClassifier``'s ``name_or_path``.

    Returns:
        None when LoRA covers layer 0, some LoRA weight lies outside the layer stack, the backbone is not BERT-style,
        or ``cache_mb`` is 0 and no ``cache`` was given.
    """
    if cache is None and cache_mb <= 0:
        return None
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    encoder = getattr(base, "encoder", None)
    backbone = getattr(encoder, "backbone", None)
    if backbone is None or encoder_layers(backbone) is None:
        return None
    indices = lora_layer_indices(model)
    inside = all("encoder.layer." in n for n, _ in model.named_parameters() if "lora_" in n)
    if not indices or not inside or indices[0] == 0:
        return None
    cache = cache if cache is not None else PrefixCache(cache_mb)
    log.info("LoRA starts at layer %d: caching the frozen layers below it (%.0f MiB bound)", indices[0],
             cache.max_bytes / 2**20)  # fmt: skip
    return FrozenPrefix(encoder, tokenizer, indices[0], cache, name or getattr(base, "name_or_path", "") or "")
