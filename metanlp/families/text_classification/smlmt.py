"""Meta-training tasks from unlabelled text: SMLMT cloze classes (Subset Masked Language Modeling Tasks).

A cloze class is a vocabulary word: its examples are texts that contain the word, with every occurrence of the word
replaced by the tokenizer's mask token, and the label says which word was masked. An N-way episode draws N words
and K + Q masked texts of each (:class:`ClozeEpisodeSampler`); no text of an episode contains another word of the
same episode unmasked, so each episode has one right answer per text.

Words are lower-cased runs of letters (:data:`WORD_RE`); the cloze vocabulary skips stop-words, words shorter than
``min_chars`` and the most frequent fraction of the vocabulary (a frequency band, :func:`smlmt_corpus`).

Recipe keys: ``task.smlmt`` (unlabelled files, one text a line, or ``.jsonl``/``.csv`` with a ``text`` column) and
``task.smlmt_fraction`` (the probability that a meta-training episode is a cloze one, drawn apart from the
dataset weights of :class:`~metanlp.families.text_classification.mixture.MixtureSampler`, which mixes them in).

**References**

1. Bansal, Jha, Munkhdalai, McCallum 2020, "Self-Supervised Meta-Learning for Few-Shot Natural Language
   Classification Tasks", EMNLP, arXiv:2009.08445: sec. 3.1 (SMLMT) and sec. 3.2 (Hybrid-SMLMT: half the
   episodes supervised, half SMLMT).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from metanlp.core.config import TaskConfig
from metanlp.families.text_classification.data import Episode, LabelledCorpus

__all__ = ["STOP_WORDS", "WORD_RE", "ClozeEpisodeSampler", "mask_word", "smlmt_corpus", "smlmt_sampler", "words_of"]

log = logging.getLogger(__name__)

#: A word: a run of letters (no digits, no underscore); matched on the lower-cased text.
WORD_RE = re.compile(r"[^\W\d_]+")

#: English function words never used as cloze classes (besides the frequency band).
STOP_WORDS = frozenset(
    "about above after again against all also and any are because been before being below between both but can "
    "could did does doing down during each few for from further had has have having her here hers herself him "
    "himself his how into its itself just more most nor not now off once only other our ours ourselves out over "
    "own same she should some such than that the their theirs them themselves then there these they this those "
    "through too under until very was were what when where which while who whom why will with would you your "
    "yours yourself yourselves".split()
)


def words_of(text: str) -> set[str]:
    """The distinct lower-cased words (:data:`WORD_RE`) of ``text``."""
    return set(WORD_RE.findall(text.lower()))


def mask_word(text: str, word: str, mask: str = "[MASK]") -> str:
    """``text`` with every occurrence of the lower-cased ``word`` (as a whole :data:`WORD_RE` word, any case)
    replaced by ``mask``.

    Example:
        >>> mask_word("Fracture of femur; femur (left) FEMUR", "femur")
        'Fracture of [MASK]; [MASK] (left) [MASK]'
    """
    return WORD_RE.sub(lambda m: mask if m.group(0).lower() == word else m.group(0), text)


def smlmt_corpus(
    texts: Sequence[str],
    min_examples: int,
    max_classes: int = 500,
    max_per_class: int = 100,
    drop_frequent: float = 0.01,
    min_chars: int = 3,
    seed: int = 0,
    mask: str = "[MASK]",
) -> LabelledCorpus:
    """Cloze classes of unlabelled texts (Bansal et al. 2020, sec. 3.1): label = the masked word.

    Vocabulary: the words of the texts (duplicate texts counted once), each with its document frequency (texts
    containing it). A word is a candidate class when it has at least ``min_chars`` letters, is not in
    :data:`STOP_WORDS`, is not among the ``drop_frequent`` most frequent fraction of the vocabulary, and occurs in at
    least ``min_examples`` texts. ``max_classes`` candidates are drawn uniformly with
    ``numpy.random.default_rng(seed)``, and each keeps at most ``max_per_class`` of its texts (seeded sample, file
    order kept). Each example is its text with the word masked (:func:`mask_word`).

    Args:
        texts: unlabelled texts (one sentence or short passage each).
        min_examples: fewest texts a word needs (at least the episodes' K + Q).
        max_classes: most cloze classes (words) kept.
        max_per_class: most texts kept per word.
        drop_frequent: fraction in ``[0, 1)`` of the vocabulary, ranked by document frequency, left out at the top.
        min_chars: shortest word used as a class, in letters.
        seed: seed of the word and text draws; the same arguments always give the same corpus.
        mask: what replaces the word (the tokenizer's ``mask_token``).

    Returns:
        A :class:`~metanlp.families.text_classification.data.LabelledCorpus` with labels = words, texts masked,
        group ``smlmt``.

    Raises:
        ValueError: ``min_examples``, ``max_classes`` or ``max_per_class`` < 1, ``max_per_class < min_examples``,
            ``drop_frequent`` outside ``[0, 1)``, or fewer than 2 words qualify (the message gives the counts).
    """
    if min(min_examples, max_classes, max_per_class) < 1 or max_per_class < min_examples:
        raise ValueError(f"smlmt_corpus: min_examples={min_examples}, max_classes={max_classes} and "
                         f"max_per_class={max_per_class} must be >= 1, max_per_class >= min_examples")  # fmt: skip
    if not 0 <= drop_frequent < 1:
        raise ValueError(f"smlmt_corpus: drop_frequent={drop_frequent} must be in [0, 1)")
    unique = list(dict.fromkeys(t.strip() for t in texts if t.strip()))
    vocab = [words_of(t) for t in unique]
    df = Counter(w for ws in vocab for w in ws)
    ranked = sorted(df, key=lambda w: (-df[w], w))
    too_frequent = set(ranked[: int(drop_frequent * len(ranked))])
    candidates = sorted(w for w in ranked if df[w] >= min_examples and len(w) >= min_chars
                        and w not in STOP_WORDS and w not in too_frequent)  # fmt: skip
    if len(candidates) < 2:
        raise ValueError(f"SMLMT: {len(candidates)} words of {len(df)} occur in >= {min_examples} of the "
                         f"{len(unique)} texts outside the stop-words and the top {drop_frequent:.0%}; give more "
                         "text or smaller episodes")  # fmt: skip
    rng = np.random.default_rng(seed)
    chosen = sorted(candidates[i] for i in rng.choice(len(candidates), min(max_classes, len(candidates)), False))
    out_texts, labels = [], []
    for w in chosen:
        rows = [i for i, ws in enumerate(vocab) if w in ws]
        if len(rows) > max_per_class:
            rows = sorted(rows[i] for i in rng.choice(len(rows), max_per_class, replace=False))
        out_texts += [mask_word(unique[i], w, mask) for i in rows]
        labels += [w] * len(rows)
    log.info("SMLMT: %d cloze words (of %d candidates, vocabulary %d) over %d texts", len(chosen), len(candidates),
             len(df), len(unique))  # fmt: skip
    return LabelledCorpus(out_texts, labels, ["smlmt"] * len(labels), source=f"SMLMT({len(unique)} texts)")


class ClozeEpisodeSampler:
    """N-way K-shot episodes of cloze classes in which no text shows another episode word unmasked.

    Words are tried in the order of a seeded permutation; a word joins the episode only if every chosen word keeps
    at least ``K + Q`` texts free of the other chosen words. Texts are then drawn among those free ones.

    Args:
        corpus: :func:`smlmt_corpus` output (labels = words).
        n_way: words per episode, >= 2 (a mixture may pass another N per episode).
        k_shot: support texts per word.
        q_query: query texts per word.
        seed: run seed; an episode is drawn from ``numpy.random.default_rng([seed, rank, step])``.
        mask: the mask string of the corpus (left out when looking for episode words in a text).

    Raises:
        ValueError: ``n_way < 2``, or fewer than ``n_way`` words have ``K + Q`` texts (the message names the source).

    Example:
        >>> texts = ["red fox", "red hen", "red owl", "blue fox", "blue hen", "blue owl"]
        >>> corpus = smlmt_corpus(texts, min_examples=2, drop_frequent=0)
        >>> sorted(set(corpus.labels)), corpus.texts[:2]
        (['blue', 'fox', 'hen', 'owl', 'red'], ['[MASK] fox', '[MASK] hen'])
        >>> ep = ClozeEpisodeSampler(corpus, n_way=2, k_shot=1, q_query=1).sample(step=0)
        >>> ep.label_names in (["blue", "red"], ["fox", "hen"], ["fox", "owl"], ["hen", "owl"])  # never red + fox
        True
    """

    def __init__(
        self, corpus: LabelledCorpus, n_way: int, k_shot: int, q_query: int, seed: int = 0, mask: str = "[MASK]"
    ) -> None:
        self.k_shot, self.q_query, self.seed, self.source = k_shot, q_query, seed, corpus.source
        by_class = corpus.by_class()
        self.classes = sorted(c for c, v in by_class.items() if len(v) >= k_shot + q_query)
        if n_way < 2 or len(self.classes) < n_way:
            raise ValueError(f"{corpus.source}: n_way={n_way} must be >= 2 and at most the {len(self.classes)} cloze "
                             f"words with K + Q = {k_shot + q_query} texts")  # fmt: skip
        self.n_way = n_way
        known = set(self.classes)
        self.texts = {c: by_class[c] for c in self.classes}
        # words of other classes in each text (the mask itself removed): an episode with both words skips the text
        self.others = {c: [frozenset((words_of(t.replace(mask, " ")) & known) - {c}) for t in self.texts[c]]
                       for c in self.classes}  # fmt: skip

    def sample(self, step: int, rank: int = 0, n_way: int | None = None) -> Episode:
        """Draw the episode of ``(seed, rank, step)`` (``n_way`` overrides N for this episode).

        The episode has fewer than N words only when no further word is compatible with those already chosen.

        Raises:
            ValueError: fewer than 2 words are compatible (only with a tiny corpus; the message names the step).
        """
        rng = np.random.default_rng([self.seed, rank, step])
        n = min(n_way or self.n_way, len(self.classes))
        need = self.k_shot + self.q_query
        free: dict[str, list[int]] = {}  # chosen word -> its texts free of the other chosen words
        for i in rng.permutation(len(self.classes)):
            w = self.classes[i]
            mine = [j for j, o in enumerate(self.others[w]) if o.isdisjoint(free)]
            kept = {c: [j for j in rows if w not in self.others[c][j]] for c, rows in free.items()}
            if len(mine) >= need and all(len(rows) >= need for rows in kept.values()):
                free = kept | {w: mine}
                if len(free) == n:
                    break
        if len(free) < 2:
            raise ValueError(f"{self.source}: step {step} found {len(free)} compatible cloze words; give more text")
        chosen = sorted(free)
        s_txt, s_lab, q_txt, q_lab = [], [], [], []
        for idx, c in enumerate(chosen):
            rows = [free[c][j] for j in rng.permutation(len(free[c]))[:need]]
            s_txt += [self.texts[c][j] for j in rows[: self.k_shot]]
            q_txt += [self.texts[c][j] for j in rows[self.k_shot :]]
            s_lab += [idx] * self.k_shot
            q_lab += [idx] * self.q_query
        return Episode(s_txt, s_lab, q_txt, q_lab, chosen)


def smlmt_sampler(cfg: TaskConfig, seed: int = 0, mask: str = "[MASK]") -> ClozeEpisodeSampler:
    """The cloze sampler of ``task.smlmt``: read every file, build :func:`smlmt_corpus`, sample by word.

    Args:
        cfg: the ``task`` section (``smlmt``, ``n_way``, ``k_shot``, ``q_query``).
        seed: run seed (word and text draws of the corpus, and the episodes).
        mask: the tokenizer's mask token.

    Raises:
        FileNotFoundError: a ``task.smlmt`` file does not exist.
        ValueError: a file is empty or unreadable, or too few words qualify (the message names the key).
    """
    from metanlp.core.readers import read_texts

    texts = [t for i, path in enumerate(cfg.smlmt) for t in read_texts(path, f"task.smlmt[{i}]", blank_lines="skip")]
    need = cfg.k_shot + cfg.q_query
    try:
        corpus = smlmt_corpus(texts, min_examples=need, max_per_class=max(100, need), seed=seed, mask=mask)
    except ValueError as e:
        raise ValueError(f"task.smlmt={list(cfg.smlmt)}: {e}") from None
    corpus.source = f"task.smlmt={list(cfg.smlmt)}"
    return ClozeEpisodeSampler(corpus, cfg.n_way, cfg.k_shot, cfg.q_query, seed, mask)
