"""In-context examples per query sentence: the first K support pairs, or the K most similar ones by BM25.

``translation.prompt_retrieval`` picks the rule of the retrieval rows of ``new_language_pair``'s comparison:

- ``bm25`` (default): for each query, the ``translation.prompt_shots`` support pairs whose *source* side scores
  highest under BM25 (Robertson & Zaragoza 2009, "The Probabilistic Relevance Framework: BM25 and Beyond"; the
  ``bm25s`` library, Lucene variant, k1 = 1.5, b = 0.75) against the query's source. This is the plain BM25 retrieval
  of Agrawal et al. 2023, "In-context Examples Selection for Machine Translation" (their baseline, without the
  n-gram-coverage re-ranking of R-BM25).
- ``first``: the first ``prompt_shots`` support pairs for every query (``prompting``, today's behaviour only).

Tokenisation is ``bm25s.tokenize``: lowercase, words of two or more ``\\w`` characters, no stemmer and no stopword
list (both would be English-only; BM25's IDF already weighs down words every sentence has). Scripts written without
spaces between words are one token per run of letters, so BM25 finds little there.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from metanlp.core.errors import ConfigError

__all__ = ["PROMPT_RETRIEVALS", "bm25_scores", "check_prompt_retrieval", "prompt_examples"]

#: The values of ``translation.prompt_retrieval``.
PROMPT_RETRIEVALS = ("bm25", "first")

Pair = tuple[str, str]


def check_prompt_retrieval(value: str, key: str = "translation.prompt_retrieval") -> None:
    """Raise unless ``value`` is one of :data:`PROMPT_RETRIEVALS`.

    Raises:
        ConfigError: (a ``ValueError``) the message names ``key``, the value and the choices.
    """
    if value not in PROMPT_RETRIEVALS:
        close = difflib.get_close_matches(str(value), PROMPT_RETRIEVALS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{key}={value!r} is not one of {', '.join(PROMPT_RETRIEVALS)}{hint}")


def _tokens(texts: Sequence[str]) -> list[list[str]]:
    import bm25s  # here, not at module level: the recipe schema imports this module, bm25s takes ~0.3 s

    return bm25s.tokenize(list(texts), stopwords=None, return_ids=False, show_progress=False)


def bm25_scores(documents: Sequence[str], queries: Sequence[str]) -> list[list[float]]:
    """BM25 score (Robertson & Zaragoza 2009; ``bm25s``, Lucene variant) of every document for every query.

    Args:
        documents: ``n_docs`` texts (the support pairs' source sentences).
        queries: ``n_queries`` texts.

    Returns:
        ``n_queries`` lists of ``n_docs`` scores (>= 0, unitless; 0 = no word in common). A query without any word
        (``"7"``: words have two or more characters), or documents without any, score 0 everywhere.
    """
    doc_tokens = _tokens(documents) if documents else []
    if not any(doc_tokens):  # bm25s cannot index a corpus without a single token
        return [[0.0] * len(documents) for _ in queries]
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(doc_tokens, show_progress=False)
    # get_scores fails on an empty query
    return [[float(x) for x in retriever.get_scores(q)] if q else [0.0] * len(documents)
            for q in (_tokens(queries) if queries else [])]  # fmt: skip


def prompt_examples(
    support: Sequence[Pair], queries: Sequence[Pair], shots: int, retrieval: str = "bm25"
) -> list[list[Pair]]:
    """The in-context ``(source, target)`` examples of each query's prompt.

    Args:
        support: the ``(source, target)`` support pairs to draw from.
        queries: the pairs to translate (only their source side is used).
        shots: examples per prompt (``translation.prompt_shots``); all the support pairs when there are fewer.
        retrieval: ``"first"``: ``support[:shots]`` for every query. ``"bm25"``: the ``shots`` support pairs whose
            source scores highest against the query's source (:func:`bm25_scores`; equal scores: the earlier support
            pair first), put in the prompt from the lowest score to the highest, so the most similar example is next
            to the query (equal scores in support order). A query sharing no word with any support pair therefore
            gets exactly the ``"first"`` examples.

    Returns:
        ``len(queries)`` lists of ``min(shots, len(support))`` pairs, for
        :meth:`~metanlp.families.translation.family.TranslationFamily.encode`'s ``per_query_shots``.

    Raises:
        ValueError: ``shots < 0``, or (``ConfigError``) an unknown ``retrieval`` (:func:`check_prompt_retrieval`).
    """
    check_prompt_retrieval(retrieval)
    if shots < 0:
        raise ValueError(f"translation.prompt_shots={shots} must be >= 0")
    if retrieval == "first" or shots == 0:
        return [list(support[:shots]) for _ in queries]
    examples = []
    for scores in bm25_scores([s for s, _ in support], [s for s, _ in queries]):
        best = sorted(range(len(support)), key=lambda i, sc=scores: (-sc[i], i))[:shots]
        examples.append([support[i] for i in sorted(best, key=lambda i, sc=scores: (sc[i], i))])
    return examples
