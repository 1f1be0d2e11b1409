"""An exact frozen-prefix cache for a decoder LM: the states entering the lowest LoRA layer, computed once per batch.

With LoRA only on decoder layers ``k`` and up (``adapter.layers``, e.g. ``[-2, -1]``), the token embedding and layers
``[0, k)`` are frozen: their output for a training batch never changes across the inner steps and the query pass of
an episode. :class:`DecoderPrefix` computes it once per batch under ``torch.no_grad`` (:meth:`DecoderPrefix.states`:
the decoder runs layers ``[0, k)`` only, layer ``k - 1``'s output is captured with a forward hook, the LM head is never
computed), the batch carries it as ``hidden_states`` ``(n, seq_len, hidden)``, and :meth:`DecoderPrefix.loss` runs
only layers ``k ..`` + the final norm on it under the fast weights (``functional_call`` of the decoder with
``inputs_embeds=hidden_states``), then the LM head at the target positions only (prompt and padding positions do not
enter the loss, and with a vocabulary of 10^4+ pieces their logits would cost as much as two decoder layers).

How the layers are skipped: :func:`layer_window` temporarily replaces the decoder's ``layers`` list by one of the same
length whose layers outside ``[start, stop)`` are a pass-through. Every layer keeps its index, so the decoder's own
``forward`` runs unchanged: the causal and sliding-window masks and the rotary embeddings are built as always, layer
``i`` gets ``config.layer_types[i]``'s mask (Gemma-3 indexes masks by position in the list, transformers 5.x), and the
parameter names (``...layers.16.self_attn.q_proj.lora_A...``) still resolve for ``functional_call``. Gemma-3's
embedding scale lives in its embedding module, which ``inputs_embeds`` bypasses, so the cached states are not scaled
twice. The list is restored when the call ends (or raises); ``generate`` never sees the window.

Exactness: each row of a causal LM depends only on its own tokens, so states computed for a whole batch equal those of
any chunk of it (``micro_batches`` contiguous chunks, seeded mini-batches), up to float summation order.
The cache is only used while the prefix modules are in eval mode (no dropout) and the batch is right-padded; otherwise
:meth:`DecoderPrefix.attach` returns the batch unchanged and the family runs the whole decoder.

Memory: no cache outlives a batch. The states live only in the batch dicts that carry them (per episode: the support
and query batches of :meth:`~metanlp.families.translation.family.TranslationFamily.batches`), about
``n * seq_len * hidden * 4`` bytes each (16 x 128 x 640 fp32: 5 MiB), and are freed with the episode.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from metanlp.core.protocols import Batch, Params
from metanlp.core.saving import lora_layer_indices

__all__ = ["DecoderPrefix", "decoder_prefix", "decoder_stack", "layer_window"]

#: Batch keys the cached loss reads.
STATE_KEY = "hidden_states"


class _PassThrough(nn.Module):
    """Stands in for a decoder layer outside the window: returns its input states unchanged."""

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return hidden_states


def decoder_stack(model: nn.Module) -> tuple[nn.Module, nn.ModuleList] | None:
    """``(decoder, decoder.layers)`` of a decoder-only LM (``*ForCausalLM`` whose ``.model`` has ``embed_tokens`` and a
    ``layers`` ``ModuleList``: Gemma-3, Llama, Qwen ...), peft-wrapped or not; None for any other model."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if getattr(getattr(base, "config", None), "is_encoder_decoder", False):
        return None
    decoder = getattr(base, "model", None)
    layers = getattr(decoder, "layers", None)
    if not isinstance(layers, nn.ModuleList) or not hasattr(decoder, "embed_tokens"):
        return None
    return decoder, layers


@contextlib.contextmanager
def layer_window(decoder: nn.Module, start: int, stop: int | None = None) -> Iterator[None]:
    """Within the block, ``decoder.layers`` runs only layers ``[start, stop)``; the others pass their input through.

    The list keeps its length and every layer its index (masks by ``config.layer_types[i]``, parameter names); the
    original list is put back on exit, also after an exception.

    Args:
        decoder: the decoder model (:func:`decoder_stack`'s first item).
        start: first layer that runs.
        stop: one past the last layer that runs (None = the top).
    """
    layers = decoder.layers
    n = len(layers)
    stop = n if stop is None else stop
    skip = _PassThrough()
    decoder.layers = nn.ModuleList([layer if start <= i < stop else skip for i, layer in enumerate(layers)])
    try:
        yield
    finally:
        decoder.layers = layers


def _right_padded(mask: torch.Tensor) -> bool:
    """Whether every row of a ``(n, seq_len)`` 0/1 mask is ones then zeros."""
    lengths = mask.sum(1, keepdim=True)
    return bool((mask.bool() == (torch.arange(mask.shape[1], device=mask.device)[None, :] < lengths)).all())


class DecoderPrefix:
    """The frozen prefix (embedding + layers ``[0, start_layer)``) of a peft-wrapped decoder-only LM.

    Args:
        model: the peft model (LoRA on layers ``start_layer`` and up only; :func:`decoder_prefix` checks this).
        start_layer: the lowest LoRA layer, ``0 <= start_layer < depth``; 0 (LoRA on every layer) caches only the
            token embedding, and the gain is the LM head at target positions only.

    Raises:
        ValueError: the model is not a decoder-only LM :func:`decoder_stack` supports, or ``start_layer`` is out of
            range.
    """

    def __init__(self, model: nn.Module, start_layer: int) -> None:
        stack = decoder_stack(model)
        if stack is None or not 0 <= start_layer < len(stack[1]):
            raise ValueError(f"no frozen decoder prefix of {start_layer} layers in {type(model).__name__}")
        self.model, self.start_layer = model, start_layer
        self.decoder, layers = stack
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.lm_head: nn.Module = base.get_output_embeddings()
        self.config = base.config
        #: name of the decoder inside ``model`` plus a dot: what fast-weight names start with
        self._prefix = next(n for n, m in model.named_modules() if m is self.decoder) + "."
        self.modules: list[nn.Module] = [self.decoder.embed_tokens, *layers[:start_layer]]

    def usable(self) -> bool:
        """Whether cached states equal the full forward's: every prefix module in eval mode (no dropout)."""
        return not any(m.training for mod in self.modules for m in mod.modules())

    @torch.no_grad()
    def states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``(n, seq_len, hidden)`` output of layer ``start_layer - 1`` for ``input_ids``/``attention_mask``
        ``(n, seq_len)``: the decoder's own forward over layers ``[0, start_layer)``; no LM head, no autograd graph."""
        if self.start_layer == 0:  # LoRA from layer 0: the frozen prefix is the (scaled) token embedding alone
            return self.decoder.embed_tokens(input_ids)
        captured: list[torch.Tensor] = []

        def keep(module: nn.Module, args: Any, output: Any) -> None:
            captured.append(output[0] if isinstance(output, tuple) else output)

        last = self.decoder.layers[self.start_layer - 1]
        handle = last.register_forward_hook(keep)
        try:
            with layer_window(self.decoder, 0, self.start_layer):
                self.decoder(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        finally:
            handle.remove()
        return captured[-1]

    def attach(self, batch: Batch) -> Batch:
        """``batch`` plus ``hidden_states`` ``(n, seq_len, hidden)`` (a new dict; the tensors are shared), computed
        from its ``input_ids`` and ``attention_mask``; ``batch`` itself when the cache is not usable (training mode,
        a left-padded or label-free batch) or already holds states."""
        if STATE_KEY in batch or "labels" not in batch or not self.usable():
            return batch
        if batch["labels"].shape != batch["input_ids"].shape or not _right_padded(batch["attention_mask"]):
            return batch
        return {**batch, STATE_KEY: self.states(batch["input_ids"], batch["attention_mask"])}

    def loss(self, params: Params, batch: Batch) -> torch.Tensor:
        """Mean target-token cross-entropy (a scalar) of ``batch`` under the fast weights ``params``, from its
        ``hidden_states``: only layers ``start_layer ..`` and the final norm run (and get gradients), and the LM head
        only at the positions that predict a target token (``labels`` shifted by one, not -100), since the others
        do not enter the loss. Equals ``model(input_ids, attention_mask, labels).loss`` (transformers'
        ``ForCausalLMLoss``: float32 logits, mean over the target tokens; final logit soft-capping as configured).

        Args:
            params: fast weights keyed like ``model.named_parameters()``, all inside the decoder (LoRA).
            batch: ``hidden_states`` ``(n, seq_len, hidden)``, ``attention_mask`` and ``labels`` ``(n, seq_len)``.

        Raises:
            KeyError: ``batch`` has no ``hidden_states`` (see :meth:`attach`).
            ValueError: a key of ``params`` lies outside the decoder.
        """
        outside = [k for k in params if not k.startswith(self._prefix)]
        if outside:
            raise ValueError(f"fast weights outside the decoder ({outside[:3]}): the cached loss cannot use them")
        local = {k[len(self._prefix) :]: v for k, v in params.items()}
        kwargs = {"inputs_embeds": batch[STATE_KEY], "attention_mask": batch["attention_mask"], "use_cache": False}
        with layer_window(self.decoder, self.start_layer):
            hidden = functional_call(self.decoder, local, (), kwargs, strict=False).last_hidden_state
        targets = nn.functional.pad(batch["labels"], (0, 1), value=-100)[:, 1:]  # position t predicts token t + 1
        keep = targets != -100
        logits = self.lm_head(hidden[keep])  # (n_targets, vocab)
        cap = getattr(self.config, "final_logit_softcapping", None)
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        return nn.functional.cross_entropy(logits.float(), targets[keep])


def decoder_prefix(model: nn.Module) -> DecoderPrefix | None:
    """A :class:`DecoderPrefix` for a peft-wrapped decoder-only LM whose LoRA starts above layer 0, else None.

    The lowest LoRA layer is read from the model's LoRA parameter names, so the prefix is frozen by construction.

    Returns:
        None when a LoRA weight lies outside the decoder's layer stack (e.g. on the LM head) or the model is not a
        decoder-only LM :func:`decoder_stack` supports. With LoRA on layer 0 (``adapter.layers: []``, the
        translation default) the prefix is the token embedding alone: every layer runs at every step, and the loss
        still computes the LM head only at the target positions (about a fifth of an all-layer episode).
    """
    stack = decoder_stack(model)
    if stack is None:
        return None
    indices = lora_layer_indices(model)
    inside = all(".layers." in n for n, _ in model.named_parameters() if "lora_" in n)
    if not indices or not inside or indices[0] >= len(stack[1]):
        return None
    return DecoderPrefix(model, indices[0])
