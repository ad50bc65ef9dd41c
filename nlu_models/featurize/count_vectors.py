"""Rasa's ``CountVectorsFeaturizer``: bag-of-words / character n-gram counts, in pure Python.

Rasa wraps sklearn's ``CountVectorizer``; this re-implements the parts it uses so the fitted
vocabulary is a plain list of terms. Token processing is Rasa's: digit-only words become
``__NUMBER__``, then lowercase, then out-of-vocabulary words become ``oov_token`` (word analyzer
only). Training documents are each message's processed tokens joined by single spaces; the
sequence row of a token is the vectorizer applied to that token alone, the sentence row the
vectorizer applied to the joined tokens. Analyzers, ``min_df``/``max_df``/``max_features`` and
the alphabetical column order match sklearn's exactly.
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from itertools import chain
from numbers import Integral, Real
from typing import Any, Iterable, Sequence

import numpy as np

from nlu_models.data.schema import NLUData
from nlu_models.featurize.features import SparseRow, check_same_options
from nlu_models.tokenize import Token

logger = logging.getLogger(__name__)

ANALYZERS = ("word", "char", "char_wb")
NUMBER_TOKEN = "__NUMBER__"
_NUMBER = re.compile(r"\b[0-9]+\b")       # Rasa's digit-only-word pattern
_WORD = re.compile(r"(?u)\b\w+\b")        # the token_pattern Rasa passes to sklearn
_WHITE_SPACES = re.compile(r"\s\s+")      # sklearn's whitespace normalisation for char n-grams
_CACHE_SIZE = 200_000                     # processed token → its columns, for repeated words


class CountVectorsFeaturizer:
    """Counts of words (``analyzer="word"``) or character n-grams (``"char"``, ``"char_wb"``)."""

    name = "CountVectorsFeaturizer"

    def __init__(self, analyzer: str = "word", min_ngram: int = 1, max_ngram: int = 1,
                 lowercase: bool = True, min_df: int | float = 1, max_df: int | float = 1.0,
                 max_features: int | None = None, oov_token: str | None = None,
                 oov_words: Sequence[str] = ()) -> None:
        if analyzer not in ANALYZERS:
            raise ValueError(f"analyzer must be one of {ANALYZERS}, not {analyzer!r}")
        if not 1 <= min_ngram <= max_ngram:
            raise ValueError(f"need 1 <= min_ngram <= max_ngram, got {min_ngram}, {max_ngram}")
        _check_df("min_df", min_df)
        _check_df("max_df", max_df)
        if max_features is not None and max_features < 1:
            raise ValueError(f"max_features must be a positive integer or None, not {max_features}")
        if oov_words and not oov_token:
            raise ValueError("oov_words were given without an oov_token to replace them with")
        self.analyzer = analyzer
        self.min_ngram, self.max_ngram = min_ngram, max_ngram
        self.lowercase = lowercase
        self.min_df, self.max_df, self.max_features = min_df, max_df, max_features
        fold = str.lower if lowercase else str
        self.oov_token = fold(oov_token) if oov_token else None
        self.oov_words = [fold(w) for w in oov_words]
        # term → column, in column order: alphabetical when fitted, new terms appended after
        # the old ones when extended
        self.vocabulary: dict[str, int] = {}
        self._cache: dict[str, tuple[tuple[int, ...], SparseRow]] = {}

    @property
    def seq_vocab_size(self) -> int:
        return len(self.vocabulary)

    @property
    def sent_vocab_size(self) -> int:
        return len(self.vocabulary)

    # ---- text processing ----------------------------------------------------------------------
    def process(self, tokens: Sequence[Token]) -> list[str]:
        """Rasa's processed token texts: ``__NUMBER__`` for digit-only words, lowercase, OOV."""
        words = [_NUMBER.sub(NUMBER_TOKEN, t.text) for t in tokens]
        if self.lowercase:
            words = [w.lower() for w in words]
        if self.oov_token and self.analyzer == "word":
            if self.oov_token in self.vocabulary:  # fitted: unseen words become the OOV token
                words = [w if w in self.vocabulary else self.oov_token for w in words]
            elif self.oov_words:  # fitting: the listed words stand for the OOV token
                oov = set(self.oov_words)
                words = [self.oov_token if w in oov else w for w in words]
        return words

    def analyze(self, document: str) -> list[str]:
        """The terms sklearn's ``CountVectorizer.build_analyzer()`` gives with Rasa's settings."""
        if self.lowercase:
            document = document.lower()
        if self.analyzer == "word":
            return self._word_ngrams(_WORD.findall(document))
        document = _WHITE_SPACES.sub(" ", document)
        if self.analyzer == "char_wb":
            return self._char_wb_ngrams(document)
        return self._char_ngrams(document)

    def _word_ngrams(self, words: list[str]) -> list[str]:
        terms = list(words) if self.min_ngram == 1 else []
        for n in range(max(self.min_ngram, 2), min(self.max_ngram, len(words)) + 1):
            terms.extend(" ".join(words[i:i + n]) for i in range(len(words) - n + 1))
        return terms

    def _char_ngrams(self, text: str) -> list[str]:
        return [text[i:i + n] for n in range(self.min_ngram, min(self.max_ngram, len(text)) + 1)
                for i in range(len(text) - n + 1)]

    def _char_wb_ngrams(self, text: str) -> list[str]:
        """Each word padded with one space per side; a padded word shorter than n counts once."""
        terms = []
        for word in text.split():
            padded = f" {word} "
            for n in range(self.min_ngram, self.max_ngram + 1):
                terms.extend(padded[i:i + n] for i in range(max(len(padded) - n + 1, 1)))
                if n >= len(padded):
                    break
        return terms

    @property
    def _sentence_is_token_sum(self) -> bool:
        """Whether no n-gram crosses the spaces joining the tokens (char_wb, word unigrams)."""
        return self.analyzer == "char_wb" or (self.analyzer == "word" and self.max_ngram == 1)

    # ---- fitting and features -----------------------------------------------------------------
    def fit(self, token_lists: Sequence[Sequence[Token]], texts: Sequence[str] = (),
            nlu: NLUData | None = None) -> "CountVectorsFeaturizer":
        """Build the vocabulary from the messages' tokens (``texts`` and ``nlu`` are unused)."""
        self.vocabulary, self._cache = {}, {}
        word_terms: dict[str, list[str]] = {}  # analysing each distinct word once is enough
        documents = []
        for tokens in token_lists:
            words = self.process(tokens)
            if not self._sentence_is_token_sum:
                documents.append(self.analyze(" ".join(words)))
                continue
            for w in words:
                if w not in word_terms:
                    word_terms[w] = self.analyze(w)
            documents.append([term for w in words for term in word_terms[w]])
        self.vocabulary = build_vocabulary(documents, self.min_df, self.max_df, self.max_features)
        if not self.vocabulary:
            logger.warning("%s(analyzer=%s) learned no terms; it will give no features",
                           self.name, self.analyzer)
        return self

    def featurize(self, tokens: Sequence[Token], text: str) -> tuple[list[SparseRow], SparseRow]:
        """Counts per token and for the tokens joined by spaces."""
        words = self.process(tokens)
        cached = [self._token_counts(w) for w in words]
        rows = [row for _, row in cached]
        if not words:
            return rows, {}
        if self._sentence_is_token_sum:
            return rows, _count(chain.from_iterable(columns for columns, _ in cached))
        return rows, _count(self._lookup(" ".join(words)))

    def _token_counts(self, word: str) -> tuple[tuple[int, ...], SparseRow]:
        """The columns of a processed token's terms, and their counts (cached)."""
        cached = self._cache.get(word)
        if cached is None:
            columns = self._lookup(word)
            cached = (columns, _count(columns))
            if len(self._cache) < _CACHE_SIZE:
                self._cache[word] = cached
        return cached

    def _lookup(self, text: str) -> tuple[int, ...]:
        """The vocabulary column of each term of ``text`` (repeats kept, unknown terms dropped)."""
        return tuple(i for i in map(self.vocabulary.get, self.analyze(text)) if i is not None)

    def extended(self, other: "CountVectorsFeaturizer") -> "CountVectorsFeaturizer":
        """A copy with ``other``'s terms it lacks appended (in ``other``'s column order); every
        old term keeps its column. Both must have the same options."""
        check_same_options(self, other)
        grown = type(self).from_dict(self.to_dict())
        for term in other.vocabulary:
            grown.vocabulary.setdefault(term, len(grown.vocabulary))
        return grown

    # ---- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        params = dict(analyzer=self.analyzer, min_ngram=self.min_ngram, max_ngram=self.max_ngram,
                      lowercase=self.lowercase, min_df=self.min_df, max_df=self.max_df,
                      max_features=self.max_features, oov_token=self.oov_token,
                      oov_words=list(self.oov_words))
        return {"name": self.name, "params": params, "vocabulary": list(self.vocabulary)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CountVectorsFeaturizer":
        featurizer = cls(**d["params"])
        featurizer.vocabulary = {term: i for i, term in enumerate(d["vocabulary"])}
        return featurizer


def build_vocabulary(documents: Sequence[Sequence[str]], min_df: int | float = 1,
                     max_df: int | float = 1.0, max_features: int | None = None
                     ) -> dict[str, int]:
    """sklearn's vocabulary from analysed documents: df limits, then the most frequent terms.

    Integer ``min_df``/``max_df`` are document counts, floats proportions of the documents.
    Ties in ``max_features`` are broken as sklearn breaks them (same numpy argsort call).
    """
    doc_freq: Counter[str] = Counter()
    term_freq: Counter[str] = Counter()
    for terms in documents:
        term_freq.update(terms)
        doc_freq.update(set(terms))
    high = max_df if isinstance(max_df, Integral) else max_df * len(documents)
    low = min_df if isinstance(min_df, Integral) else min_df * len(documents)
    if high < low:
        raise ValueError("max_df corresponds to fewer documents than min_df")
    kept = [t for t in sorted(doc_freq) if low <= doc_freq[t] <= high]
    if max_features is not None and len(kept) > max_features:
        freqs = np.array([term_freq[t] for t in kept], dtype=np.int64)
        chosen = sorted((-freqs).argsort()[:max_features].tolist())
        kept = [kept[i] for i in chosen]
    return {term: i for i, term in enumerate(kept)}


def _count(columns: Iterable[int]) -> SparseRow:
    counts = Counter(columns)
    return {i: float(counts[i]) for i in sorted(counts)}


def _check_df(name: str, value: int | float) -> None:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name} must be an int (documents) or a float (proportion), "
                         f"not {value!r}")
    if isinstance(value, Integral) and value < 1:
        raise ValueError(f"{name} as a document count must be at least 1, not {value}")
    if not isinstance(value, Integral) and not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} as a proportion must be in [0, 1], not {value}")
