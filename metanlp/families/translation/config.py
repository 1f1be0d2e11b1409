"""The ``translation`` section of a recipe (registered by :mod:`metanlp.families.translation`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from metanlp.core.config import ConfigError
from metanlp.families.translation.prompt_retrieval import check_prompt_retrieval

__all__ = ["TranslationConfig"]


@dataclass
class TranslationConfig:
    """The translation family (``task.family: translation``); K and Q come from ``task.k_shot``/``task.q_query``.

    Attributes:
        pairs: JSONL pair corpora (``data/translation/prepare.py`` output) for meta-training and evaluation.
        val_languages: languages whose pairs form meta-val (tuning the inner learning rate); never meta-trained on.
        test_languages: held-out languages for evaluation; no pair with them, in either direction, is meta-trained on.
        max_chars: drop corpus pairs whose longer side has more characters than this (0 = keep all).
        pair_alpha: meta-training (and multi-task) episodes draw a directed pair with probability proportional to
            its number of sentence pairs to this power: 0 = uniform over directed pairs, 1 = proportional to data,
            0.5 = square-root sampling (default; :class:`~metanlp.families.translation.pairs.PairEpisodeSampler`).
        source_lang: code of the user's source language (``new_language_pair``).
        target_lang: code of the user's target language (``new_language_pair``).
        language_names: extra ``code: Name`` entries for the prompt (codes metanlp does not list).
        prune_vocab: prune the vocabulary to the pieces of the languages in use (causal LMs; several-fold faster).
        max_length: tokens per training example (prompt + target).
        max_new_tokens: generation budget per sentence, tokens.
        prompt_shots: support pairs shown in the prompt of in-context prompting (method 0).
        prompt_retrieval: which support pairs the retrieval reads of ``new_language_pair``'s comparison put in each
            prompt: ``bm25`` (default; per query sentence, the ``prompt_shots`` pairs whose source is most similar by
            BM25: the ``prompting_bm25`` row and a ``_bm25`` read of every adapted method) or ``first`` (no
            retrieval rows: ``prompting`` with the first ``prompt_shots`` pairs only, as before);
            :mod:`metanlp.families.translation.prompt_retrieval`.
        multitask_baseline: ``translation_meta_train`` also trains the multi-task transfer baseline (b): the same LoRA
            trained jointly on the meta-train pairs for as many forward/backward passes as meta-training used, saved
            as ``multitask_adapter/`` (doubles the run time).
    """

    pairs: list[str] = field(
        default_factory=lambda: ["data/translation/django_pairs.jsonl", "data/translation/udhr_pairs.jsonl"]
    )
    val_languages: list[str] = field(default_factory=lambda: ["sw", "cy"])
    test_languages: list[str] = field(default_factory=lambda: ["zu", "so", "mt", "xh"])
    max_chars: int = 200
    pair_alpha: float = 0.5
    source_lang: str = ""
    target_lang: str = ""
    language_names: dict[str, str] = field(default_factory=dict)
    prune_vocab: bool = True
    max_length: int = 128
    max_new_tokens: int = 96
    prompt_shots: int = 3
    prompt_retrieval: str = "bm25"
    multitask_baseline: bool = False

    def __post_init__(self) -> None:
        shared = set(self.val_languages) & set(self.test_languages)
        if shared:
            raise ConfigError(f"translation.val_languages and translation.test_languages share {sorted(shared)}")
        if self.source_lang and self.source_lang == self.target_lang:
            raise ConfigError(f"translation.source_lang and translation.target_lang are both {self.source_lang!r}")
        if self.pair_alpha < 0:
            raise ConfigError(f"translation.pair_alpha={self.pair_alpha} must be >= 0 (0 = uniform over pairs)")
        if self.max_length < 8 or self.max_new_tokens < 1 or self.prompt_shots < 0:
            raise ConfigError(
                f"translation.max_length={self.max_length} must be >= 8, max_new_tokens={self.max_new_tokens} >= 1, "
                f"prompt_shots={self.prompt_shots} >= 0"
            )
        check_prompt_retrieval(self.prompt_retrieval)  # ConfigError naming the key, the value and the choices
