"""What a featurized message looks like, and the two featurizer roles the pipeline combines.

A sparse featurizer owns a block of columns in the sequence space (one row per token) and a
block in the sentence space (one row per message); the pipeline shifts each block by the sizes
of the blocks before it, as Rasa's ``Message.get_sparse_features`` hstacks its matrices.
A dense featurizer gives one vector per token and one per message.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np

from nlu_models.data.schema import NLUData
from nlu_models.tokenize import Token

# One token's (or the message's) features: 0-based column inside the featurizer's block → value,
# in increasing column order. Featurizers may hand out cached rows: treat them as read-only.
SparseRow = dict[int, float]


@dataclass
class MessageFeatures:
    """Features of one message. Sparse ids are 1-based (0 is the padding id, never used)."""

    tokens: list[Token]
    seq_indptr: np.ndarray   # (T+1,) int64: token t owns seq_ids[seq_indptr[t]:seq_indptr[t+1]]
    seq_ids: np.ndarray      # (nnz,) int64, sorted within each token
    seq_values: np.ndarray   # (nnz,) float32
    sent_ids: np.ndarray     # (nnz2,) int64, sorted
    sent_values: np.ndarray  # (nnz2,) float32
    seq_dense: np.ndarray | None = None   # (T, E) float32
    sent_dense: np.ndarray | None = None  # (E,) float32

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)

    def token_features(self, t: int) -> dict[int, float]:
        """Sequence features of token ``t`` as ``{id: value}``."""
        lo, hi = int(self.seq_indptr[t]), int(self.seq_indptr[t + 1])
        return dict(zip(self.seq_ids[lo:hi].tolist(), self.seq_values[lo:hi].tolist()))

    def sentence_features(self) -> dict[int, float]:
        return dict(zip(self.sent_ids.tolist(), self.sent_values.tolist()))


class SparseFeaturizer(Protocol):
    """A fitted vocabulary that maps tokens (and the whole message) to sparse columns."""

    name: str  # Rasa's component name, the key in configs and in ``to_dict``

    @property
    def seq_vocab_size(self) -> int: ...

    @property
    def sent_vocab_size(self) -> int: ...

    def fit(self, token_lists: Sequence[Sequence[Token]], texts: Sequence[str],
            nlu: NLUData | None = None) -> "SparseFeaturizer": ...

    def featurize(self, tokens: Sequence[Token], text: str
                 ) -> tuple[list[SparseRow], SparseRow]:
        """One row per token (sequence block) and one row for the message (sentence block)."""
        ...

    def to_dict(self) -> dict[str, Any]: ...

    def extended(self, other: "SparseFeaturizer") -> "SparseFeaturizer":
        """A copy whose vocabulary also holds ``other``'s entries it lacks, appended: every old
        column keeps its index (fine-tuning on data with new words or patterns)."""
        ...


def check_same_options(featurizer: Any, other: Any) -> None:
    """Raise unless two featurizers are the same class with the same options (what
    ``extended`` needs: only their vocabularies may differ)."""
    if type(featurizer) is not type(other):
        raise ValueError(f"cannot extend a {featurizer.name} by a {other.name}")
    mine, theirs = featurizer.to_dict()["params"], other.to_dict()["params"]
    differing = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
    if differing:
        details = ", ".join(f"{k}: {mine.get(k)!r} → {theirs.get(k)!r}" for k in differing)
        raise ValueError(f"cannot extend {featurizer.name}: its options differ ({details})")


class DenseFeaturizer(Protocol):
    """A frozen encoder giving word vectors and a sentence vector; nothing to fit."""

    name: str

    @property
    def dim(self) -> int: ...

    def encode(self, word_lists: Sequence[Sequence[str]], batch_size: int | None = None
               ) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(words (T, E), sentence (E,))`` per word list."""
        ...

    def to_dict(self) -> dict[str, Any]: ...
