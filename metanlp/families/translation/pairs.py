"""Sentence-pair corpora, language codes, disjoint language-pair splits and K-shot pair episodes.

A translation *task* is one directed language pair (``en->zu`` and ``zu->en`` are two tasks). Its episodes hold a
support set of K sentence pairs and a query set of further pairs of the same direction. Meta-train, meta-val and
meta-test tasks are split by *language*: a held-out language appears in no meta-training task, in either direction.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "LANGUAGES",
    "PairCorpus",
    "PairEpisode",
    "PairEpisodeSampler",
    "language_name",
    "load_pairs",
    "read_user_pairs",
    "split_pairs",
]

log = logging.getLogger(__name__)

#: Language code -> English name used in the prompt (``<source language>: ...``). Names of the Django locales follow
#: ``django.conf.locale.LANG_INFO``; the held-out UDHR languages follow ISO 639.
LANGUAGES = {
    "af": "Afrikaans", "ast": "Asturian", "az": "Azerbaijani", "br": "Breton", "bs": "Bosnian", "ca": "Catalan",
    "cs": "Czech", "cy": "Welsh", "da": "Danish", "de": "German", "dsb": "Lower Sorbian", "en": "English",
    "eo": "Esperanto", "es": "Spanish", "et": "Estonian", "eu": "Basque", "fi": "Finnish", "fr": "French",
    "fy": "Frisian", "ga": "Irish", "gd": "Scottish Gaelic", "gl": "Galician", "ha": "Hausa", "hr": "Croatian",
    "hsb": "Upper Sorbian", "hu": "Hungarian", "ia": "Interlingua", "id": "Indonesian", "ig": "Igbo", "io": "Ido",
    "is": "Icelandic", "it": "Italian", "ja": "Japanese", "kab": "Kabyle", "ko": "Korean", "lb": "Luxembourgish",
    "lt": "Lithuanian", "lv": "Latvian", "ms": "Malay", "mt": "Maltese", "nb": "Norwegian Bokmal", "nl": "Dutch",
    "nn": "Norwegian Nynorsk", "pl": "Polish", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sk": "Slovak",
    "sl": "Slovenian", "so": "Somali", "sq": "Albanian", "sv": "Swedish", "sw": "Swahili", "tk": "Turkmen",
    "tl": "Tagalog", "tr": "Turkish", "uk": "Ukrainian", "uz": "Uzbek", "vi": "Vietnamese", "wo": "Wolof",
    "xh": "Xhosa", "yo": "Yoruba", "zh": "Chinese", "zu": "Zulu",
}  # fmt: skip


def language_name(code: str, extra: dict[str, str] | None = None) -> str:
    """English name of a language code (``zu`` -> ``Zulu``), for the prompt.

    Args:
        code: ISO 639 code as used in the data (``pt``, ``nb`` ...).
        extra: additional ``code -> name`` entries (e.g. ``translation.language_names`` of a recipe).

    Raises:
        ValueError: the code is unknown; the message lists the supported codes.
    """
    table = {**LANGUAGES, **(extra or {})}
    if code not in table:
        raise ValueError(
            f"unknown language code {code!r}; supported: {', '.join(sorted(table))} "
            "(add others with translation.language_names, e.g. --set 'translation.language_names={xx: Name}')"
        )
    return table[code]


@dataclass
class PairCorpus:
    """Aligned sentence pairs grouped by language pair, each usable in both directions.

    Attributes:
        pairs: ``(lang_a, lang_b) -> [(text_a, text_b), ...]`` with ``lang_a < lang_b`` not required (as in the file).
        source: where the rows came from (for error messages).
    """

    pairs: dict[tuple[str, str], list[tuple[str, str]]]
    source: str = "<memory>"

    def directed(self, src: str, tgt: str) -> list[tuple[str, str]]:
        """``(source, target)`` sentence pairs of the direction ``src -> tgt``.

        Raises:
            ValueError: the corpus has no pairs of these two languages.
        """
        if (src, tgt) in self.pairs:
            return list(self.pairs[(src, tgt)])
        if (tgt, src) in self.pairs:
            return [(b, a) for a, b in self.pairs[(tgt, src)]]
        raise ValueError(f"{self.source}: no sentence pairs for {src}-{tgt}; pairs available: {sorted(self.pairs)}")

    def languages(self) -> list[str]:
        """Every language code in the corpus, sorted."""
        return sorted({lang for pair in self.pairs for lang in pair})

    def tasks(self) -> list[tuple[str, str]]:
        """Every directed pair (both directions of each language pair), sorted."""
        return sorted({d for a, b in self.pairs for d in ((a, b), (b, a))})


def load_pairs(paths: list[str | Path], max_chars: int = 0) -> PairCorpus:
    """Load ``prepare.py`` output (JSONL rows with ``source_lang``, ``target_lang``, ``source``, ``target``).

    Args:
        paths: one or more JSONL files.
        max_chars: drop pairs whose longer side exceeds this many characters (0 = keep all).

    Raises:
        FileNotFoundError: a file is missing (run ``python data/prepare_all.py --only translation ddtp``).
        ValueError: a row lacks a field (the message names the file and line).
    """
    pairs: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for path in paths:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(
                f"pair corpus not found: {p} (build it with python data/prepare_all.py --only translation ddtp)"
            )
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            try:
                key, pair = (row["source_lang"], row["target_lang"]), (row["source"], row["target"])
            except KeyError as e:
                raise ValueError(f"{p}:{n}: missing field {e}") from e
            if max_chars and max(len(pair[0]), len(pair[1])) > max_chars:
                continue
            pairs[key].append(pair)
    return PairCorpus(dict(pairs), source=", ".join(str(p) for p in paths))


@dataclass
class PairSplits:
    """Disjoint directed tasks for meta-train / meta-val / meta-test (no language shared across the held-out line).

    Attributes:
        train: directed pairs of meta-training.
        val: directed pairs of meta-validation (for tuning the inner learning rate).
        test: directed pairs held out for adaptation and evaluation.
    """

    train: list[tuple[str, str]]
    val: list[tuple[str, str]] = field(default_factory=list)
    test: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        pivot = {"en"}  # the shared pivot language is allowed on both sides of the line
        train_langs = {lang for t in self.train for lang in t} - pivot
        for name in ("val", "test"):
            held = {lang for t in getattr(self, name) for lang in t} - pivot
            shared = train_langs & held
            if shared:
                raise ValueError(f"meta-{name} languages {sorted(shared)} also occur in meta-training tasks")


def split_pairs(
    corpus: PairCorpus, val_languages: list[str], test_languages: list[str], min_pairs: int = 0
) -> PairSplits:
    """Every direction of every language pair goes to meta-val / meta-test when it involves a held-out language,
    else to meta-train.

    Args:
        corpus: the pairs.
        val_languages: languages of meta-val tasks.
        test_languages: held-out languages of meta-test tasks.
        min_pairs: tasks with fewer sentence pairs (e.g. ``K + Q``) are left out, with a log line naming them.

    Raises:
        ValueError: a named language is not in the corpus, or the two held-out lists overlap.
    """
    known = corpus.languages()
    for lang in val_languages + test_languages:
        if lang not in known:
            raise ValueError(f"{corpus.source}: held-out language {lang!r} not in the corpus; languages: {known}")
    if set(val_languages) & set(test_languages):
        raise ValueError(
            f"meta-val and meta-test languages overlap: {sorted(set(val_languages) & set(test_languages))}"
        )
    train, val, test, small = [], [], [], []
    for task in corpus.tasks():
        if len(corpus.directed(*task)) < min_pairs:
            small.append(f"{task[0]}->{task[1]}")
        elif set(task) & set(test_languages):
            test.append(task)
        elif set(task) & set(val_languages):
            val.append(task)
        else:
            train.append(task)
    if small:
        log.info("left out %d directed pairs with fewer than %d sentence pairs: %s", len(small), min_pairs, small)
    return PairSplits(train, val, test)


@dataclass
class PairEpisode:
    """One few-shot translation task: K support pairs and a query set of the same direction.

    Attributes:
        source_lang: code of the language translated from.
        target_lang: code of the language translated into.
        support: K ``(source, target)`` pairs.
        query: ``(source, target)`` pairs disjoint from the support.
    """

    source_lang: str
    target_lang: str
    support: list[tuple[str, str]]
    query: list[tuple[str, str]]


class PairEpisodeSampler:
    """K-shot episodes over directed language pairs, seeded by ``(seed, rank, step)``.

    A task (directed pair) is drawn with probability proportional to ``n ** alpha``, ``n`` being its number of
    sentence pairs: ``alpha = 0`` draws tasks uniformly, ``alpha = 1`` in proportion to their data, and the default
    ``0.5`` (square-root, "temperature" sampling with T = 2) sits between, as multilingual NMT does to keep large pairs
    from drowning small ones (Arivazhagan et al. 2019, "Massively Multilingual Neural Machine Translation in the
    Wild", arXiv:1907.05019, sec. 4.2; Conneau & Lample 2019, arXiv:1901.07291, sec. 3.1).

    Args:
        corpus: the pairs.
        tasks: the directed pairs of this split.
        k_shot: support pairs per episode.
        q_query: query pairs per episode.
        seed: run seed.
        alpha: exponent of the task probabilities, ``>= 0`` (``translation.pair_alpha``).

    Attributes:
        probabilities: ``(n_tasks,)`` float64, the draw probability of each task of ``tasks`` (sorted), summing to 1.

    Raises:
        ValueError: ``tasks`` is empty, a task has fewer than ``k_shot + q_query`` pairs (the message names it), or
            ``alpha < 0``.

    Example:
        >>> corpus = PairCorpus({("en", "de"): [(f"e{i}", f"d{i}") for i in range(5)]})
        >>> ep = PairEpisodeSampler(corpus, [("de", "en")], k_shot=2, q_query=3).sample(0)
        >>> ep.source_lang, len(ep.support), len(ep.query), ep.support[0][0].startswith("d")
        ('de', 2, 3, True)
    """

    def __init__(
        self,
        corpus: PairCorpus,
        tasks: list[tuple[str, str]],
        k_shot: int,
        q_query: int,
        seed: int = 0,
        alpha: float = 0.5,
    ):
        if not tasks:
            raise ValueError(f"{corpus.source}: no language pairs in this split")
        if alpha < 0:
            raise ValueError(f"pair sampling exponent alpha={alpha} must be >= 0 (translation.pair_alpha)")
        self.tasks = sorted(tasks)
        self.k_shot, self.q_query, self.seed, self.alpha = k_shot, q_query, seed, alpha
        self.pool = {t: corpus.directed(*t) for t in self.tasks}
        for t, pairs in self.pool.items():
            if len(pairs) < k_shot + q_query:
                raise ValueError(
                    f"{corpus.source}: {t[0]}->{t[1]} has {len(pairs)} pairs, fewer than K + Q = {k_shot} + {q_query}"
                )
        weights = np.array([len(self.pool[t]) for t in self.tasks], dtype=np.float64) ** alpha
        self.probabilities = weights / weights.sum()

    def sample(self, step: int, rank: int = 0, task: tuple[str, str] | None = None) -> PairEpisode:
        """The episode of ``(seed, rank, step)``: one task drawn with :attr:`probabilities` (or ``task``, given),
        then K + Q of its pairs.

        Raises:
            ValueError: ``task`` is not one of this sampler's tasks.
        """
        rng = np.random.default_rng([self.seed, rank, step])
        if self.alpha == 0:  # uniform: the draw of metanlp <= 0.x, so alpha 0 repeats earlier runs' episodes
            drawn = self.tasks[int(rng.integers(len(self.tasks)))]
        else:
            drawn = self.tasks[int(rng.choice(len(self.tasks), p=self.probabilities))]
        if task is not None and task not in self.pool:
            raise ValueError(f"{task[0]}->{task[1]} is not a task of this sampler: {self.tasks}")
        task = task or drawn  # drawn either way, so a given task leaves the pairs' random stream where it was
        pairs = self.pool[task]
        order = rng.permutation(len(pairs))
        support = [pairs[i] for i in order[: self.k_shot]]
        query = [pairs[i] for i in order[self.k_shot : self.k_shot + self.q_query]]
        return PairEpisode(task[0], task[1], support, query)

    def round_robin(self, n: int) -> list[PairEpisode]:
        """``n`` episodes cycling through the tasks in order (episode ``i`` is of task ``i % n_tasks``, drawn at step
        ``i``): fixed meta-val episodes that cover every direction equally, whatever ``alpha``."""
        return [self.sample(i, task=self.tasks[i % len(self.tasks)]) for i in range(n)]


def read_user_pairs(path: str | Path) -> list[tuple[str, str]]:
    """Read a user's sentence pairs: a TSV (``source<TAB>target`` per line, no header) or JSONL
    (``{"source": ..., "target": ...}`` per line).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is empty, or a line is blank, has not exactly two fields, or an empty side (the message
            names the file and the line number).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"pairs file not found: {p}")
    lines = p.read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ValueError(f"{p}: the file is empty")
    pairs = []
    jsonl = p.suffix.lower() in (".jsonl", ".json")
    for n, line in enumerate(lines, 1):
        if not line.strip():
            raise ValueError(f"{p}:{n}: empty line (every line must hold one source/target pair)")
        if jsonl:
            try:
                row = json.loads(line)
                src, tgt = row["source"], row["target"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(f'{p}:{n}: expected {{"source": ..., "target": ...}}: {e}') from e
        else:
            fields = next(csv.reader([line], delimiter="\t"))
            if len(fields) != 2:
                raise ValueError(f"{p}:{n}: expected 2 tab-separated fields (source, target), found {len(fields)}")
            src, tgt = fields
        if not str(src).strip() or not str(tgt).strip():
            side = "source" if not str(src).strip() else "target"
            raise ValueError(f"{p}:{n}: empty {side} (misaligned or missing translation)")
        pairs.append((" ".join(str(src).split()), " ".join(str(tgt).split())))
    return pairs
