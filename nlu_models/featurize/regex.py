"""Rasa's ``RegexFeaturizer``: one binary column per regex or lookup-table pattern.

Patterns come from the training data at fit time: the ``regex:`` entries, then one pattern per
lookup table (its escaped elements as alternatives, each wrapped in ``\\b`` when
``use_word_boundaries``, as Rasa's ``pattern_utils`` builds them). A token's row is 1 where the
token overlaps a match; the sentence row is 1 where any token's row is (Rasa sets both in the
same loop, so a match covering no token sets neither). The fitted vocabulary is the pattern list.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

from nlu_models.data.schema import NLUData
from nlu_models.featurize.features import SparseRow, check_same_options
from nlu_models.tokenize import Token


def lookup_pattern(elements: Sequence[str], use_word_boundaries: bool = True) -> str:
    """One regex matching any of ``elements`` literally."""
    escaped = [re.escape(e) for e in elements]
    if use_word_boundaries:
        return "(\\b" + "\\b|\\b".join(escaped) + "\\b)"
    return "(" + "|".join(escaped) + ")"


class RegexFeaturizer:
    """Binary features saying which tokens (and whether the message) match each pattern."""

    name = "RegexFeaturizer"

    def __init__(self, case_sensitive: bool = True, use_regexes: bool = True,
                 use_lookup_tables: bool = True, use_word_boundaries: bool = True) -> None:
        self.case_sensitive = case_sensitive
        self.use_regexes = use_regexes
        self.use_lookup_tables = use_lookup_tables
        self.use_word_boundaries = use_word_boundaries
        self.patterns: list[tuple[str, str]] = []  # (name, pattern), one column each
        self._compiled: list[re.Pattern[str]] = []

    @property
    def seq_vocab_size(self) -> int:
        return len(self.patterns)

    @property
    def sent_vocab_size(self) -> int:
        return len(self.patterns)

    def fit(self, token_lists: Sequence[Sequence[Token]] = (), texts: Sequence[str] = (),
            nlu: NLUData | None = None) -> "RegexFeaturizer":
        """Take the patterns from ``nlu`` (no patterns without it); the examples are unused."""
        patterns: list[tuple[str, str]] = []
        if nlu is not None and self.use_regexes:
            patterns.extend((r.name, r.pattern) for r in nlu.regexes)
        if nlu is not None and self.use_lookup_tables:
            patterns.extend((t.name, lookup_pattern(t.elements, self.use_word_boundaries))
                            for t in nlu.lookups)
        self._set_patterns(patterns)
        return self

    def _set_patterns(self, patterns: list[tuple[str, str]]) -> None:
        flags = 0 if self.case_sensitive else re.IGNORECASE
        compiled = []
        for name, pattern in patterns:
            try:
                compiled.append(re.compile(pattern, flags))
            except re.error as error:
                raise ValueError(f"regex '{name}' is not a valid regular expression "
                                 f"({error}): {pattern!r}") from error
        self.patterns, self._compiled = patterns, compiled

    def extended(self, other: "RegexFeaturizer") -> "RegexFeaturizer":
        """A copy with ``other``'s patterns it lacks appended; every old pattern keeps its
        column (a regex whose pattern changed gets a new column). Same options needed."""
        check_same_options(self, other)
        grown = type(self).from_dict(self.to_dict())
        grown._set_patterns(self.patterns + [p for p in other.patterns if p not in self.patterns])
        return grown

    def featurize(self, tokens: Sequence[Token], text: str) -> tuple[list[SparseRow], SparseRow]:
        """Token rows: patterns matching over the token; sentence row: patterns set on any token."""
        rows: list[SparseRow] = [{} for _ in tokens]
        sentence: SparseRow = {}
        for column, regex in enumerate(self._compiled):
            spans = [match.span() for match in regex.finditer(text)]
            if not spans:
                continue
            for row, token in zip(rows, tokens):
                if any(token.start < end and token.end > start for start, end in spans):
                    row[column] = 1.0
                    sentence[column] = 1.0
        return rows, sentence

    def to_dict(self) -> dict[str, Any]:
        params = dict(case_sensitive=self.case_sensitive, use_regexes=self.use_regexes,
                      use_lookup_tables=self.use_lookup_tables,
                      use_word_boundaries=self.use_word_boundaries)
        return {"name": self.name, "params": params,
                "vocabulary": [{"name": n, "pattern": p} for n, p in self.patterns]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RegexFeaturizer":
        featurizer = cls(**d["params"])
        featurizer._set_patterns([(p["name"], p["pattern"]) for p in d["vocabulary"]])
        return featurizer
