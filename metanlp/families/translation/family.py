"""Translation family: K sentence pairs of one language direction -> LoRA on a causal (or seq2seq) LM.

A causal LM reads the prompt ``<Source language>: <source>\\n<Target language>:`` and is trained to continue it with
`` <target>\\n``; the loss is the cross-entropy of the target tokens only (prompt tokens are masked with -100).
Generation is greedy and stops at the first newline piece or the end-of-sequence token, so a base LM that keeps
writing further ``English: ...`` lines is cut at the line end, the same for every method. A seq2seq model reads the
prompt in its encoder and generates the target.

With a :class:`~metanlp.families.translation.vocab_pruning.VocabMap`, the model's vocabulary is pruned; token ids are
mapped old -> new on the way in and new -> old on the way out, so the original tokenizer is used unchanged.

Training batches carry the frozen prefix's output as ``hidden_states``
(:mod:`metanlp.families.translation.prefix_cache`), computed once per batch: with LoRA on the top decoder layers
(``adapter.layers``) :meth:`TranslationFamily.loss` runs only those layers on it, with LoRA on every layer the prefix
is the token embedding; either way the LM head runs at target positions only. Generation runs the whole model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch.func import functional_call
from transformers import PreTrainedTokenizerBase

from metanlp.core.metrics import load_metric
from metanlp.core.precision import autocast
from metanlp.core.protocols import Batch, Params
from metanlp.families.translation.pairs import PairEpisode, language_name
from metanlp.families.translation.prefix_cache import STATE_KEY, DecoderPrefix, decoder_prefix
from metanlp.families.translation.vocab_pruning import VocabMap

__all__ = ["TranslationFamily", "newline_ids"]


def newline_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Ids of every piece whose text contains a newline (``\\n``, ``\\n\\n`` ...; byte-level ``Ċ`` too), sorted."""
    vocab = tokenizer.get_vocab()
    return sorted(i for t, i in vocab.items() if "\n" in tokenizer.convert_tokens_to_string([t]))


class TranslationFamily:
    """:class:`~metanlp.core.protocols.TaskFamily` for few-shot translation over a peft-wrapped causal or seq2seq LM.

    Args:
        model: a peft model (LoRA attached) over ``AutoModelForCausalLM`` or ``AutoModelForSeq2SeqLM``.
        tokenizer: the backbone's (unpruned) tokenizer.
        vocab: the pruning map when the model's vocabulary was pruned
            (:func:`~metanlp.families.translation.vocab_pruning.prune_causal_lm`).
        max_length: tokens per training example (prompt + target); longer targets are truncated.
        max_new_tokens: generation budget per sentence (tokens).
        language_names: extra ``code -> name`` entries for the prompt.
        prompt_shots: support pairs put into every query prompt (in-context examples); 0 = zero-shot prompt.
        chunk_size: sentences per generation batch.
        prefix_cache: compute the frozen layers below the lowest LoRA layer (with LoRA on layer 0: the embedding)
            once per training batch (:mod:`metanlp.families.translation.prefix_cache`); False runs the whole model,
            with the LM head at every position, at every step.
        precision: ``fp32`` or ``bf16`` (losses, prefix states and generation under bfloat16 autocast, losses
            returned in float32: :mod:`metanlp.core.precision`).

    Attributes:
        prefix: the frozen decoder prefix when the cache is in use, else None.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        vocab: VocabMap | None = None,
        max_length: int = 128,
        max_new_tokens: int = 96,
        language_names: dict[str, str] | None = None,
        prompt_shots: int = 0,
        chunk_size: int = 8,
        prefix_cache: bool = True,
        precision: str = "fp32",
    ) -> None:
        self.model, self.tokenizer, self.vocab = model, tokenizer, vocab
        self.max_length, self.max_new_tokens, self.chunk_size = max_length, max_new_tokens, chunk_size
        self.language_names, self.prompt_shots = dict(language_names or {}), prompt_shots
        self.seq2seq = bool(getattr(model.config, "is_encoder_decoder", False))
        if self.seq2seq and vocab is not None:
            raise ValueError(
                "vocabulary pruning is implemented for causal LMs only; set translation.prune_vocab=false"
            )
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.stop_ids = sorted({tokenizer.eos_token_id, *newline_ids(tokenizer)} - {None})
        line_end = tokenizer("\n", add_special_tokens=False)["input_ids"]
        if vocab is not None and not bool(vocab.contains(torch.tensor(line_end)).all()):
            raise ValueError("the pruned vocabulary lacks the newline piece that ends every prompt line: keep it")
        self.prefix: DecoderPrefix | None = decoder_prefix(model) if prefix_cache and not self.seq2seq else None
        self.precision = precision

    @property
    def sequence_keys(self) -> tuple[str, ...]:
        """The right-padded training tensors (dim 1 = sequence): micro-batches of a support or query batch are
        length-sorted and cut to their own longest pair (:func:`metanlp.core.micro_batches.micro_batches`); a
        seq2seq model's ``labels`` have their own width and are left whole."""
        return ("input_ids", "attention_mask", STATE_KEY) + (() if self.seq2seq else ("labels",))

    def loss_weight(self, batch: Batch) -> int:
        """Target tokens :meth:`loss` is a mean over in ``batch`` (a causal LM predicts token t + 1 at position t),
        so micro-batch losses weighted by it sum to the full batch's
        (:func:`metanlp.core.inner_loop.loss_and_grads`)."""
        labels = batch["labels"] if self.seq2seq else batch["labels"][:, 1:]
        return int((labels != -100).sum())

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return next(self.model.parameters()).device

    # ---- text -> tensors -------------------------------------------------------------------------------------------
    def prompt(self, source_lang: str, target_lang: str, text: str, shots: Sequence[tuple[str, str]] = ()) -> str:
        """The prompt for one source sentence, with optional in-context ``(source, target)`` examples first.

        Raises:
            ValueError: a language code is unknown (the message lists the supported ones).
        """
        s, t = language_name(source_lang, self.language_names), language_name(target_lang, self.language_names)
        lines = [f"{s}: {a}\n{t}: {b}\n" for a, b in shots]
        return "".join(lines) + f"{s}: {text}\n{t}:"

    def _ids(self, text: str, special: bool) -> list[int]:
        return self.tokenizer(text, add_special_tokens=special)["input_ids"]

    def _map(self, ids: torch.Tensor) -> torch.Tensor:
        return self.vocab.to_new(ids) if self.vocab is not None else ids

    def encode(
        self,
        pairs: list[tuple[str, str]],
        source_lang: str,
        target_lang: str,
        shots: Sequence[tuple[str, str]] = (),
        per_query_shots: Sequence[Sequence[tuple[str, str]]] | None = None,
    ) -> Batch:
        """Tokenise sentence pairs for training and for generation.

        Args:
            pairs: ``(source, target)`` pairs (target ``""`` to translate only).
            source_lang: source language code.
            target_lang: target language code.
            shots: in-context ``(source, target)`` examples put before every pair's prompt.
            per_query_shots: instead of ``shots``, one list of examples per pair (``per_query_shots[i]`` before
                ``pairs[i]``), e.g. retrieved for each sentence
                (:func:`~metanlp.families.translation.prompt_retrieval.prompt_examples`).

        Raises:
            ValueError: a language code is unknown, both ``shots`` and ``per_query_shots`` are given, or
                ``per_query_shots`` does not have one list per pair.

        Returns:
            ``input_ids``, ``attention_mask``, ``labels``: ``(n_pairs, seq_len)`` right-padded training inputs
            (causal: prompt + target, labels -100 on the prompt and padding; seq2seq: the prompt, labels = target);
            ``prompt_ids``, ``prompt_mask``: ``(n_pairs, prompt_len)`` left-padded prompts for generation;
            ``reference_ids``: ``(n_pairs, ref_len)`` original-vocabulary ids of the targets (pad-filled).
            Token ids are in the pruned vocabulary when the model is pruned.
        """
        if per_query_shots is not None and shots:
            raise ValueError("encode: give shots (one list for every pair) or per_query_shots, not both")
        if per_query_shots is not None and len(per_query_shots) != len(pairs):
            raise ValueError(f"encode: per_query_shots has {len(per_query_shots)} lists for {len(pairs)} pairs")
        examples = per_query_shots if per_query_shots is not None else [shots] * len(pairs)
        rows, prompts, refs = [], [], []
        for (src, tgt), ex in zip(pairs, examples, strict=True):
            p = self._ids(self.prompt(source_lang, target_lang, src, list(ex)), special=True)
            tail = self._ids(f" {tgt}\n", special=False) if not self.seq2seq else self._ids(tgt, special=True)
            if self.seq2seq:
                rows.append((p, tail[: self.max_length]))
            else:
                tail = tail[: max(1, self.max_length - len(p))]
                rows.append((p + tail, [-100] * len(p) + tail))
            prompts.append(p)
            refs.append(self._ids(tgt, special=False))
        width = max(len(r[0]) for r in rows)
        lab_width = max(len(r[1]) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width if not self.seq2seq else lab_width), -100, dtype=torch.long)
        for i, (ids, lab) in enumerate(rows):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            mask[i, : len(ids)] = 1
            labels[i, : len(lab)] = torch.tensor(lab)
        p_width = max(len(p) for p in prompts)
        prompt_ids = torch.full((len(rows), p_width), self.pad_id, dtype=torch.long)
        prompt_mask = torch.zeros((len(rows), p_width), dtype=torch.long)
        for i, p in enumerate(prompts):
            prompt_ids[i, p_width - len(p) :] = torch.tensor(p)
            prompt_mask[i, p_width - len(p) :] = 1
        ref_ids = torch.full((len(rows), max(len(r) for r in refs) or 1), self.pad_id, dtype=torch.long)
        for i, r in enumerate(refs):
            ref_ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        keep = labels != -100
        labels[keep] = self._map(labels[keep])
        batch = {"input_ids": self._map(input_ids), "attention_mask": mask, "labels": labels,
                 "prompt_ids": self._map(prompt_ids), "prompt_mask": prompt_mask,
                 "reference_ids": ref_ids}  # fmt: skip
        return {k: v.to(self.device) for k, v in batch.items()}

    def with_states(self, batch: Batch) -> Batch:
        """``batch`` plus the frozen prefix's ``hidden_states`` ``(n, seq_len, hidden)`` when the prefix cache is in
        use and usable (eval mode, right-padded causal batch); else ``batch`` unchanged. For training batches: every
        later :meth:`loss` on it (or on rows of it) runs only the LoRA layers."""
        if self.prefix is None:
            return batch
        with autocast(self.device, self.precision):
            return self.prefix.attach(batch)

    def batches(self, episode: PairEpisode) -> tuple[Batch, Batch]:
        """Support batch (zero-shot prompts) and query batch (prompts with ``prompt_shots`` support examples), each
        with the frozen prefix's states when the prefix cache is in use (:meth:`with_states`)."""
        shots = episode.support[: self.prompt_shots]
        return (
            self.with_states(self.encode(episode.support, episode.source_lang, episode.target_lang)),
            self.with_states(self.encode(episode.query, episode.source_lang, episode.target_lang, shots)),
        )

    # ---- the TaskFamily protocol -----------------------------------------------------------------------------------
    def init_fast_weights(self, meta_params: Params, support: Batch) -> Params:
        """The meta-parameters, detached (translation has no task-specific head)."""
        return {k: v.detach() for k, v in meta_params.items()}

    def init_vjp(self, meta_params: Params, support: Batch, task_grads: Params, micro_batch: int = 0) -> None:
        """None: translation has no task-specific fast weights, so nothing depends on the meta-parameters."""
        return None

    def loss(self, params: Params, batch: Batch) -> torch.Tensor:
        """Mean cross-entropy over the target tokens of ``batch`` under the LoRA weights ``params`` (a scalar).

        A batch with ``hidden_states`` (:meth:`with_states`) runs only the layers from the lowest LoRA layer up, while
        the prefix is usable (eval mode); otherwise, and for a batch without them, the whole model runs.
        """
        with autocast(self.device, self.precision):
            if STATE_KEY in batch and self.prefix is not None and self.prefix.usable():
                loss = self.prefix.loss(params, batch)
            else:
                kwargs = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
                loss = functional_call(self.model, params, (), {**kwargs, "use_cache": False}, strict=False).loss
        return loss.float() if loss.dtype == torch.bfloat16 else loss

    @contextlib.contextmanager
    def using(self, params: Params) -> Iterator[None]:
        """Temporarily copy ``params`` into the model's parameters (for ``generate``), restoring them after."""
        own = dict(self.model.named_parameters())
        saved = {k: own[k].detach().clone() for k in params}
        with torch.no_grad():
            for k, v in params.items():
                own[k].copy_(v)
        try:
            yield
        finally:
            with torch.no_grad():
                for k, v in saved.items():
                    own[k].copy_(v)

    @torch.no_grad()
    def translate_batch(self, params: Params, batch: Batch) -> list[str]:
        """Greedy translations of the prompts in ``batch``, in chunks of ``chunk_size`` sentences."""
        out: list[str] = []
        stop = self._map(torch.tensor(self.stop_ids)).unique().tolist() if self.vocab else self.stop_ids
        pad = int(self._map(torch.tensor(self.pad_id))) if self.vocab else self.pad_id
        was_training = self.model.training
        self.model.eval()
        with self.using(params), autocast(self.device, self.precision):
            for i in range(0, batch["prompt_ids"].shape[0], self.chunk_size):
                ids, mask = batch["prompt_ids"][i : i + self.chunk_size], batch["prompt_mask"][i : i + self.chunk_size]
                gen = self.model.generate(
                    input_ids=ids, attention_mask=mask, max_new_tokens=self.max_new_tokens, do_sample=False,
                    eos_token_id=stop, pad_token_id=pad,
                )  # fmt: skip
                new = gen if self.seq2seq else gen[:, ids.shape[1] :]
                if self.vocab is not None:
                    new = self.vocab.to_old(new)
                for row in new.tolist():
                    text = self.tokenizer.decode(row, skip_special_tokens=True)
                    out.append(text.split("\n")[0].strip())
        self.model.train(was_training)
        return out

    def references(self, batch: Batch) -> list[str]:
        """The reference translations of ``batch`` as text."""
        return [self.tokenizer.decode(r, skip_special_tokens=True).strip() for r in batch["reference_ids"].tolist()]

    def score(self, params: Params, batch: Batch) -> dict[str, float]:
        """Corpus chrF and BLEU (sacrebleu, 0-100) of greedy translations of ``batch`` under ``params``."""
        preds, refs = self.translate_batch(params, batch), [[r] for r in self.references(batch)]
        return {
            "chrf": load_metric("chrf").compute(predictions=preds, references=refs)["score"],
            "bleu": load_metric("bleu").compute(predictions=preds, references=refs)["score"],
        }
