"""Rasa's ``LexicalSyntacticFeaturizer``: one-hot word-shape features of a sliding token window.

``features`` lists, per window position, the feature names to read from the token at that
position; with three positions they are the previous, current and next token (an even count
looks one more token back, as in Rasa). Every value is a string (``"True"``/``"False"`` for the
boolean features, the affix itself for ``prefix*``/``suffix*``), and each
(window position, feature name, value) seen in training owns one column. Columns are ordered by
(position, name), then value, as Rasa orders them (an extended featurizer appends its new
columns after the old ones). Positions outside the message give nothing.
Sequence features only: the sentence block is empty.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from nlu_models.data.schema import NLUData
from nlu_models.featurize.features import SparseRow, check_same_options
from nlu_models.tokenize import Token

BEGIN_OF_SENTENCE, END_OF_SENTENCE = "BOS", "EOS"
DEFAULT_FEATURES: list[list[str]] = [
    ["low", "title", "upper"],
    [BEGIN_OF_SENTENCE, END_OF_SENTENCE, "low", "upper", "title", "digit"],
    ["low", "title", "upper"],
]
# Features of a token's text alone; BOS/EOS depend on its position instead.
TEXT_FEATURES: dict[str, Callable[[str], bool | str]] = {
    "low": str.islower,
    "title": str.istitle,
    "upper": str.isupper,
    "digit": str.isdigit,
    "prefix5": lambda text: text[:5],
    "prefix2": lambda text: text[:2],
    "suffix5": lambda text: text[-5:],
    "suffix3": lambda text: text[-3:],
    "suffix2": lambda text: text[-2:],
    "suffix1": lambda text: text[-1:],
}
SUPPORTED_FEATURES = sorted([*TEXT_FEATURES, BEGIN_OF_SENTENCE, END_OF_SENTENCE])
POS_FEATURES = ("pos", "pos2")

Column = tuple[int, str, str]      # (window position, feature name, value)
_TokenKey = tuple[str, bool, bool]  # (text, is first token, is last token)
_CACHE_SIZE = 200_000


class LexicalSyntacticFeaturizer:
    """Sparse sequence features from the shape of each token and its neighbours."""

    name = "LexicalSyntacticFeaturizer"

    def __init__(self, features: Sequence[Sequence[str]] | None = None) -> None:
        features = DEFAULT_FEATURES if features is None else features
        _check_features(features)
        self.features = [list(names) for names in features]
        self.columns: list[Column] = []
        self._index: dict[Column, int] = {}
        self._value_cache: dict[_TokenKey, dict[str, str]] = {}
        self._column_cache: dict[_TokenKey, list[tuple[int, ...]]] = {}

    @property
    def seq_vocab_size(self) -> int:
        return len(self.columns)

    @property
    def sent_vocab_size(self) -> int:
        return 0

    def fit(self, token_lists: Sequence[Sequence[Token]], texts: Sequence[str] = (),
            nlu: NLUData | None = None) -> "LexicalSyntacticFeaturizer":
        """One column per (window position, feature name, value) seen in ``token_lists``."""
        seen_at: set[tuple[_TokenKey, int]] = set()  # (token, window position it was read from)
        for tokens in token_lists:
            keys = _keys(tokens)
            for anchor in range(len(tokens)):
                seen_at.update((keys[j], p) for p, j in self._window(anchor, len(tokens)))
        seen: dict[tuple[int, str], set[str]] = {}
        for key, position in seen_at:
            values = self._values(key)
            for name in self.features[position]:
                seen.setdefault((position, name), set()).add(values[name])
        self._set_columns([(position, name, value) for (position, name), values
                           in sorted(seen.items()) for value in sorted(values)])
        return self

    def extended(self, other: "LexicalSyntacticFeaturizer") -> "LexicalSyntacticFeaturizer":
        """A copy with ``other``'s columns it lacks appended (the boolean features give a fixed
        set; affixes can add values); every old column keeps its index. Same features needed."""
        check_same_options(self, other)
        grown = type(self).from_dict(self.to_dict())
        grown._set_columns(self.columns + [c for c in other.columns if c not in self._index])
        return grown

    def featurize(self, tokens: Sequence[Token], text: str) -> tuple[list[SparseRow], SparseRow]:
        """One multi-hot row per token; no sentence features."""
        at_position = [self._columns(key) for key in _keys(tokens)]
        rows = []
        for anchor in range(len(tokens)):
            columns: set[int] = set()
            for position, j in self._window(anchor, len(tokens)):
                columns.update(at_position[j][position])
            rows.append(dict.fromkeys(sorted(columns), 1.0))
        return rows, {}

    def _window(self, anchor: int, n: int) -> list[tuple[int, int]]:
        """(window position, token index) pairs of the window around ``anchor`` inside the text."""
        size = len(self.features)
        first = anchor - size // 2
        return [(p, first + p) for p in range(size) if 0 <= first + p < n]

    def _values(self, key: _TokenKey) -> dict[str, str]:
        """Every feature value of a token (its text and whether it is first / last)."""
        values = self._value_cache.get(key)
        if values is None:
            text, first, last = key
            values = {name: str(fn(text)) for name, fn in TEXT_FEATURES.items()}
            values[BEGIN_OF_SENTENCE], values[END_OF_SENTENCE] = str(first), str(last)
            if len(self._value_cache) < _CACHE_SIZE:
                self._value_cache[key] = values
        return values

    def _columns(self, key: _TokenKey) -> list[tuple[int, ...]]:
        """Per window position, the columns a token with this key sets from there."""
        columns = self._column_cache.get(key)
        if columns is None:
            values = self._values(key)
            columns = [tuple(self._index[c] for c in ((p, name, values[name]) for name in names)
                             if c in self._index) for p, names in enumerate(self.features)]
            if len(self._column_cache) < _CACHE_SIZE:
                self._column_cache[key] = columns
        return columns

    def _set_columns(self, columns: list[Column]) -> None:
        self.columns = columns
        self._index = {column: i for i, column in enumerate(columns)}
        self._column_cache = {}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": {"features": self.features},
                "vocabulary": [list(column) for column in self.columns]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LexicalSyntacticFeaturizer":
        featurizer = cls(**d["params"])
        featurizer._set_columns([(int(p), str(n), str(v)) for p, n, v in d["vocabulary"]])
        return featurizer


def _keys(tokens: Sequence[Token]) -> list[_TokenKey]:
    last = len(tokens) - 1
    return [(t.text, j == 0, j == last) for j, t in enumerate(tokens)]


def _check_features(features: Sequence[Sequence[str]]) -> None:
    if isinstance(features, str) or not features:
        raise ValueError("features must be a non-empty list of lists of feature names, one list "
                         f"per window position, not {features!r}")
    for names in features:
        if isinstance(names, str):
            raise ValueError(f"each window position needs a list of feature names, not {names!r}")
        for name in names:
            if name in POS_FEATURES:
                raise ValueError(f"lexical-syntactic feature {name!r} needs part-of-speech tags "
                                 "from spaCy's tokenizer, which dialab does not provide; use "
                                 f"{SUPPORTED_FEATURES}")
            if name not in SUPPORTED_FEATURES:
                raise ValueError(f"unknown lexical-syntactic feature {name!r}; supported: "
                                 f"{SUPPORTED_FEATURES}")
