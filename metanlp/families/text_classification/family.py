"""Text classification family: episodes of labelled texts, a prototype-initialised head, cross-entropy, accuracy.

Every episode brings its own classes, so the head cannot be meta-learned as a fixed matrix. It is initialised from the
support set's class prototypes (Proto-MAML: Triantafillou et al. 2020, "Meta-Dataset", arXiv:1903.03096, sec. 3.2)
and adapted with the LoRA weights in the inner loop.
"""

from __future__ import annotations

import torch
from torch.func import functional_call
from torch.nn import functional as F
from transformers import PreTrainedTokenizerBase

from metanlp.core.metrics import PER_EXAMPLE, load_metric
from metanlp.core.micro_batches import micro_batches
from metanlp.core.precision import autocast
from metanlp.core.protocols import Batch, Params
from metanlp.families.text_classification.adapter import head_names, prototype_head
from metanlp.families.text_classification.data import Episode
from metanlp.families.text_classification.prefix_cache import PrefixCache, frozen_prefix
from metanlp.families.text_classification.probe import fit_logistic_head

__all__ = ["TextClassificationFamily"]


class TextClassificationFamily:
    """:class:`~metanlp.core.protocols.TaskFamily` for N-way text classification over a peft-wrapped
    ``TextClassifier``.

    Args:
        model: ``attach_lora(...)`` output (LoRA + ``head`` in ``modules_to_save``).
        tokenizer: the backbone's tokenizer.
        max_length: tokens per text after truncation.
        head_scale: temperature of the prototype head
            (see :func:`~metanlp.families.text_classification.adapter.prototype_head`).
        chunk_size: examples per forward pass when scoring without gradients.
        prefix_cache_mb: memory bound of the frozen-prefix cache, MiB (0 = none). When LoRA starts above layer 0,
            batches carry the cached states entering the first LoRA layer (``hidden_states``) and every pass runs the
            LoRA layers only (:mod:`metanlp.families.text_classification.prefix_cache`); with LoRA on layer 0 nothing
            changes.
        prefix_cache: a :class:`~metanlp.families.text_classification.prefix_cache.PrefixCache` to share instead of
            a new one.
        precision: ``fp32`` or ``bf16`` (backbone passes under bfloat16 autocast, outputs float32:
            :mod:`metanlp.core.precision`).
    """

    #: Batch tensors whose dim 1 is the right-padded sequence: micro-batches are length-sorted and trimmed.
    sequence_keys = ("input_ids", "attention_mask", "hidden_states")

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int = 48,
        head_scale: float = 10.0,
        chunk_size: int = 256,
        prefix_cache_mb: float = 512.0,
        prefix_cache: PrefixCache | None = None,
        precision: str = "fp32",
    ) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.max_length, self.head_scale, self.chunk_size = max_length, head_scale, chunk_size
        self.head_weight, self.head_bias = head_names(model)
        self.prefix = frozen_prefix(model, tokenizer, prefix_cache_mb, prefix_cache)
        self.precision = precision
        if self.prefix is not None:
            self.prefix.precision = precision

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return next(self.model.parameters()).device

    def tokenize(self, texts: list[str], labels: list[int] | None = None) -> Batch:
        """``input_ids`` and ``attention_mask`` of shape ``(len(texts), seq_len)``, ``labels`` of ``(len(texts),)``;
        with a frozen prefix also its cached ``hidden_states`` ``(len(texts), seq_len, hidden)``.

        No texts (an episode without a query set, e.g. ``metanlp adapt`` with no ``data.eval``) give tensors with 0
        rows."""
        if not texts:
            empty = torch.zeros((0, 1), dtype=torch.long, device=self.device)
            batch = {"input_ids": empty, "attention_mask": empty.clone()}
            if labels is not None:
                batch["labels"] = torch.zeros(0, dtype=torch.long, device=self.device)
            return batch
        if self.prefix is not None and self.prefix.usable():
            batch = self.prefix.batch(texts, self.max_length, self.device)
        else:
            enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt").to(self.device)  # fmt: skip
            batch = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        if labels is not None:
            batch["labels"] = torch.tensor(labels, dtype=torch.long, device=self.device)
        return batch

    def batches(self, episode: Episode) -> tuple[Batch, Batch]:
        """Support and query batches of an episode (labels are class indices in ``[0, N)``)."""
        return (
            self.tokenize(episode.support_texts, episode.support_labels),
            self.tokenize(episode.query_texts, episode.query_labels),
        )

    def _run(self, params: Params, batch: Batch, embeddings: bool = False) -> torch.Tensor:
        args = (batch["input_ids"], batch["attention_mask"])
        kwargs: dict = {"return_embeddings": embeddings}
        if "hidden_states" in batch:  # the cached frozen prefix: run only the LoRA layers on it
            kwargs.update(hidden_states=batch["hidden_states"], start_layer=self.prefix.start_layer)  # type: ignore
        with autocast(self.device, self.precision):
            out = functional_call(self.model, params, args, kwargs, strict=False)
        # losses, prototypes and distances in float32 (bfloat16 only inside the backbone)
        return out.float() if out.dtype == torch.bfloat16 else out

    def embed(self, params: Params, batch: Batch) -> torch.Tensor:
        """``(batch, hidden)`` embeddings under the LoRA weights in ``params``."""
        return self._run(params, batch, embeddings=True)

    def init_fast_weights(self, meta_params: Params, support: Batch) -> Params:
        """Detached meta-parameters plus a prototype head ``(N, hidden)``, ``(N,)`` from the support embeddings."""
        fast = {k: v.detach() for k, v in meta_params.items() if k not in (self.head_weight, self.head_bias)}
        with torch.no_grad():
            emb = self.embed(fast, support)
        n_way = int(support["labels"].max()) + 1
        fast[self.head_weight], fast[self.head_bias] = prototype_head(emb, support["labels"], n_way, self.head_scale)
        return fast

    def probe_head(self, params: Params, support: Batch) -> Params:
        """``params`` (detached) with the head replaced by a logistic regression on the support embeddings under
        their LoRA weights (:func:`~metanlp.families.text_classification.probe.fit_logistic_head`, ``C = 1``): the
        head of an adaptation that takes no step (``AdaptBudget.probe_head``). Head shapes ``(N, hidden)``, ``(N,)``.

        Raises:
            ValueError: fewer than two classes in ``support``.
        """
        fast = {k: v.detach() for k, v in params.items()}
        with torch.no_grad():
            emb = self.embed(fast, support)
        fast[self.head_weight], fast[self.head_bias] = fit_logistic_head(emb, support["labels"])
        return fast

    def init_vjp(self, meta_params: Params, support: Batch, head_grads: Params, micro_batch: int = 0) -> Params:
        """Vector-Jacobian product through the prototype initialisation of the head.

        The head's initial weights are a function of the meta-parameters (``W = 2s P``, ``b = -s ||P||^2`` with
        ``P_c`` the mean support embedding of class c). Given ``g_W, g_b`` (``(N, hidden)``, ``(N,)``), the gradient of
        the query loss w.r.t. the initial head (first order: w.r.t. the adapted head), this returns
        ``d<g, head(P(theta))>/d theta`` for every meta-parameter: first-order Proto-MAML keeps this path
        (Triantafillou et al. 2020, sec. 3.2); without it the query gradient pulls embeddings toward fixed
        prototypes and the feature space collapses. Embeddings are recomputed in chunks of ``micro_batch``.

        Returns:
            ``{name: gradient}`` for each key of ``meta_params`` except the head's.
        """
        labels = support["labels"]
        lora = {k: v.detach().requires_grad_(True) for k, v in meta_params.items()
                if k not in (self.head_weight, self.head_bias)}  # fmt: skip
        with torch.no_grad():
            emb = self.embed(lora, support)
        n_way = int(labels.max()) + 1
        counts = torch.bincount(labels, minlength=n_way).to(emb.dtype)
        protos = torch.zeros(n_way, emb.shape[1], dtype=emb.dtype, device=emb.device).index_add(0, labels, emb)
        protos = protos / counts[:, None]
        g_w, g_b = head_grads[self.head_weight], head_grads[self.head_bias]
        g_protos = 2 * self.head_scale * g_w - 2 * self.head_scale * g_b[:, None] * protos
        g_emb = g_protos[labels] / counts[labels, None]  # d loss / d embedding_i, (n_support, hidden)
        step = micro_batch if micro_batch > 0 else labels.shape[0]
        grads = {k: torch.zeros_like(v) for k, v in lora.items()}
        for idx, chunk in micro_batches(support, step, self.sequence_keys):
            emb_chunk = self.embed(lora, chunk)
            partial = torch.autograd.grad(emb_chunk, list(lora.values()), grad_outputs=g_emb[idx])
            for k, g in zip(lora, partial, strict=True):
                grads[k] += g
        return grads

    def logits(self, params: Params, batch: Batch) -> torch.Tensor:
        """``(batch, N)`` logits of the head in ``params``."""
        return self._run(params, batch)

    def loss(self, params: Params, batch: Batch) -> torch.Tensor:
        """Mean cross-entropy of ``params`` over ``batch`` (a scalar)."""
        return F.cross_entropy(self.logits(params, batch), batch["labels"])

    @torch.no_grad()
    def predict(self, params: Params, batch: Batch) -> torch.Tensor:
        """``(batch,)`` predicted class indices, computed in chunks of ``chunk_size``."""
        preds = []
        for i in range(0, batch["input_ids"].shape[0], self.chunk_size):
            chunk = {k: v[i : i + self.chunk_size] for k, v in batch.items() if k != "labels"}
            preds.append(self.logits(params, chunk).argmax(-1))
        return torch.cat(preds)

    def score(self, params: Params, batch: Batch) -> dict[str, float]:
        """Accuracy and macro-F1 (in [0, 1]) of ``params`` on a labelled batch, plus each example's correctness
        under :data:`~metanlp.core.metrics.PER_EXAMPLE` (what a single episode's bootstrap interval resamples)."""
        preds = self.predict(params, batch).tolist()
        refs = batch["labels"].tolist()
        return {
            "accuracy": load_metric("accuracy").compute(predictions=preds, references=refs)["accuracy"],
            "macro_f1": load_metric("f1").compute(predictions=preds, references=refs)["f1"],
            PER_EXAMPLE: {"accuracy": [float(p == r) for p, r in zip(preds, refs, strict=True)]},
        }
