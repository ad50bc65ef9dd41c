"""The featurizer pipeline: tokenizer → sparse featurizers (hstacked) → optional dense encoder.

Each sparse featurizer owns a contiguous block of ids in the sequence space and one in the
sentence space, in pipeline order, as Rasa hstacks its featurizers' matrices; ids start at 1 so
0 can pad. The whole fitted pipeline is one plain JSON document (``featurizers.json``): class
names, parameters and vocabularies; a dense encoder is stored by model name, never by weights.
"""
from __future__ import annotations

import inspect
import json
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from nlu_models.data.schema import Message, NLUData
from nlu_models.featurize.count_vectors import CountVectorsFeaturizer
from nlu_models.featurize.features import DenseFeaturizer, MessageFeatures, SparseFeaturizer
from nlu_models.featurize.lexical_syntactic import LexicalSyntacticFeaturizer
from nlu_models.featurize.regex import RegexFeaturizer
from nlu_models.tokenize import Token, WhitespaceTokenizer

if TYPE_CHECKING:
    from nlu_models.featurize.dense import HFDenseFeaturizer

FORMAT, VERSION, FILENAME = "dialab.featurizers", 1, "featurizers.json"
SPARSE_FEATURIZERS: dict[str, type] = {
    cls.name: cls for cls in (RegexFeaturizer, LexicalSyntacticFeaturizer, CountVectorsFeaturizer)
}
DENSE_FEATURIZER_NAMES = ("HFDenseFeaturizer", "LanguageModelFeaturizer")
TOKENIZERS = {"WhitespaceTokenizer": WhitespaceTokenizer}
# Rasa config keys spelled differently here, and Rasa keys that mean nothing here.
_RENAMED = {"OOV_token": "oov_token", "OOV_words": "oov_words",
            "model_weights": "model_name_or_path"}
_IGNORED = {"alias"}
_IGNORED_DENSE = {"model_name", "cache_dir"}
# Rasa components that come after featurization: skipped, so a whole Rasa config can be passed.
NOT_FEATURIZERS = ("DIETClassifier", "EntitySynonymMapper", "ResponseSelector",
                   "FallbackClassifier", "RegexEntityExtractor", "DucklingEntityExtractor",
                   "CRFEntityExtractor", "SklearnIntentClassifier", "KeywordIntentClassifier",
                   "LogisticRegressionClassifier")
DEFAULT_CONFIG: list[dict[str, Any]] = [
    {"name": "WhitespaceTokenizer"},
    {"name": "RegexFeaturizer"},
    {"name": "LexicalSyntacticFeaturizer"},
    {"name": "CountVectorsFeaturizer", "analyzer": "word"},
    {"name": "CountVectorsFeaturizer", "analyzer": "char_wb", "min_ngram": 1, "max_ngram": 4},
]


class FeaturizerPipeline:
    """Turns texts into :class:`MessageFeatures`; fit once on the training messages."""

    def __init__(self, sparse: Sequence[SparseFeaturizer] = (),
                 dense: DenseFeaturizer | None = None, tokenizer: Any = None) -> None:
        self.sparse = list(sparse)
        self.dense = dense
        self.tokenizer = tokenizer if tokenizer is not None else WhitespaceTokenizer()

    @property
    def seq_vocab_size(self) -> int:
        return sum(f.seq_vocab_size for f in self.sparse)

    @property
    def sent_vocab_size(self) -> int:
        return sum(f.sent_vocab_size for f in self.sparse)

    @property
    def dense_dim(self) -> int:
        return self.dense.dim if self.dense is not None else 0

    def fit(self, messages: Sequence[Message | str], nlu: NLUData | None = None
            ) -> "FeaturizerPipeline":
        """Fit every sparse featurizer; ``nlu`` supplies regexes and lookup tables."""
        texts = [_text(m) for m in messages]
        token_lists = [self.tokenizer.tokenize(text) for text in texts]
        for featurizer in self.sparse:
            featurizer.fit(token_lists, texts, nlu)
        return self

    def transform(self, text_or_message: str | Message) -> MessageFeatures:
        return self.transform_many([text_or_message])[0]

    def transform_many(self, items: Iterable[str | Message], batch_size: int = 64,
                       show_progress: bool = False, dense_vectors: bool = True
                       ) -> list[MessageFeatures]:
        """Features of each item, the dense encoder run ``batch_size`` messages at a time.

        ``dense_vectors=False`` skips the dense encoder (``seq_dense``/``sent_dense`` stay
        None), for a model that fine-tunes the encoder and computes them itself."""
        from tqdm.auto import tqdm

        texts = [_text(item) for item in items]
        starts = self._block_starts()
        out: list[MessageFeatures] = []
        with tqdm(total=len(texts), desc="featurizing", disable=not show_progress) as bar:
            for first in range(0, len(texts), batch_size):
                chunk = self._sparse_features(texts[first:first + batch_size], starts)
                if self.dense is not None and dense_vectors:
                    vectors = self.dense.encode([[t.text for t in f.tokens] for f in chunk],
                                                batch_size)
                    for features, (words, sentence) in zip(chunk, vectors):
                        features.seq_dense, features.sent_dense = words, sentence
                out.extend(chunk)
                bar.update(len(chunk))
        return out

    def _block_starts(self) -> list[tuple[int, int]]:
        """The first (1-based) sequence and sentence id of each sparse featurizer's block."""
        starts, seq, sent = [], 1, 1
        for featurizer in self.sparse:
            starts.append((seq, sent))
            seq += featurizer.seq_vocab_size
            sent += featurizer.sent_vocab_size
        return starts

    def _sparse_features(self, texts: Sequence[str], starts: list[tuple[int, int]]
                         ) -> list[MessageFeatures]:
        """The sparse features of each text. Each featurizer's ids, values and per-row counts
        for the whole chunk are gathered by C-level list extends, then interleaved with numpy
        into one array per kind, so that each token's ids come block by block in pipeline
        order (sorted, since a featurizer's row is); each message gets views of the arrays."""
        tokens_of = [self.tokenizer.tokenize(text) for text in texts]
        blocks = [_Block() for _ in self.sparse]  # per featurizer: token rows, sentence rows
        for tokens, text in zip(tokens_of, texts):
            for featurizer, block in zip(self.sparse, blocks):
                rows, sentence = featurizer.featurize(tokens, text)
                block.add(rows, sentence)
        seq_ids, seq_values, seq_ends = _interleave(
            [b.seq for b in blocks], [start for start, _ in starts], sum(map(len, tokens_of)))
        sent_ids, sent_values, sent_ends = _interleave(
            [b.sent for b in blocks], [start for _, start in starts], len(texts))
        out, token_first = [], 0
        for row, tokens in enumerate(tokens_of):
            token_last = token_first + len(tokens)
            ends = seq_ends[token_first:token_last + 1]
            lo, hi = int(ends[0]), int(ends[-1])
            s_lo, s_hi = int(sent_ends[row]), int(sent_ends[row + 1])
            out.append(MessageFeatures(
                tokens=tokens, seq_indptr=ends - lo,
                seq_ids=seq_ids[lo:hi], seq_values=seq_values[lo:hi],
                sent_ids=sent_ids[s_lo:s_hi], sent_values=sent_values[s_lo:s_hi]))
            token_first = token_last
        return out

    # ---- growing ------------------------------------------------------------------------------
    def extended(self, other: "FeaturizerPipeline") -> "FeaturizerPipeline":
        """This fitted pipeline with each featurizer's vocabulary extended by the matching one of
        ``other`` (the same pipeline fitted on new data): old columns keep their place in their
        block, new ones are appended to it. The featurizers and their options must agree."""
        names, others = [f.name for f in self.sparse], [f.name for f in other.sparse]
        if names != others:
            raise ValueError(f"cannot extend featurizers {names} by {others}: the pipelines "
                             "differ; use the featurizers the model was trained with")
        mine = self.dense.to_dict() if self.dense is not None else None
        theirs = other.dense.to_dict() if other.dense is not None else None
        if mine != theirs:
            raise ValueError(f"cannot extend a pipeline with dense featurizer {mine} by one "
                             f"with {theirs}")
        return FeaturizerPipeline([f.extended(g) for f, g in zip(self.sparse, other.sparse)],
                                  self.dense, self.tokenizer)

    def column_maps(self, old: "FeaturizerPipeline") -> tuple[np.ndarray, np.ndarray]:
        """Where each (0-based) sequence and sentence column of ``old`` sits in this pipeline,
        which must extend it (:meth:`extended`): ``(old seq_vocab_size,)`` and
        ``(old sent_vocab_size,)`` int64 arrays."""
        if [f.name for f in old.sparse] != [f.name for f in self.sparse]:
            raise ValueError("these featurizers do not extend the old ones: the pipelines differ")
        seq, sent = [], []
        for (seq_start, sent_start), f, before in zip(self._block_starts(), self.sparse,
                                                      old.sparse):
            vocabulary, old_vocabulary = f.to_dict()["vocabulary"], before.to_dict()["vocabulary"]
            if vocabulary[:len(old_vocabulary)] != old_vocabulary:
                raise ValueError(f"{f.name} does not extend the old one: its vocabulary does "
                                 "not start with the old vocabulary")
            seq.append(np.arange(before.seq_vocab_size) + seq_start - 1)
            sent.append(np.arange(before.sent_vocab_size) + sent_start - 1)
        return (np.concatenate([np.zeros(0, np.int64), *seq]),
                np.concatenate([np.zeros(0, np.int64), *sent]))

    # ---- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        tokenizer = type(self.tokenizer).__name__
        if TOKENIZERS.get(tokenizer) is not type(self.tokenizer):
            raise ValueError(f"cannot save a pipeline with tokenizer {tokenizer}; savable "
                             f"tokenizers: {sorted(TOKENIZERS)}")
        return {"format": FORMAT, "version": VERSION, "tokenizer": tokenizer,
                "sparse": [f.to_dict() for f in self.sparse],
                "dense": self.dense.to_dict() if self.dense is not None else None,
                "seq_vocab_size": self.seq_vocab_size, "sent_vocab_size": self.sent_vocab_size}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FeaturizerPipeline":
        if d.get("format") != FORMAT or d.get("version") != VERSION:
            raise ValueError(f"not a {FORMAT} v{VERSION} document (format={d.get('format')!r}, "
                             f"version={d.get('version')!r})")
        if d["tokenizer"] not in TOKENIZERS:
            raise ValueError(f"unknown tokenizer {d['tokenizer']!r}; known: {sorted(TOKENIZERS)}")
        sparse = []
        for entry in d["sparse"]:
            if entry["name"] not in SPARSE_FEATURIZERS:
                raise ValueError(f"unknown sparse featurizer {entry['name']!r}; known: "
                                 f"{sorted(SPARSE_FEATURIZERS)}")
            sparse.append(SPARSE_FEATURIZERS[entry["name"]].from_dict(entry))
        dense = _dense_class().from_dict(d["dense"]) if d.get("dense") else None
        pipeline = cls(sparse, dense, TOKENIZERS[d["tokenizer"]]())
        sizes = (pipeline.seq_vocab_size, pipeline.sent_vocab_size)
        if sizes != (d["seq_vocab_size"], d["sent_vocab_size"]):
            raise ValueError(f"vocabulary sizes {sizes} differ from the stored "
                             f"{(d['seq_vocab_size'], d['sent_vocab_size'])}")
        return pipeline

    def save(self, path: str | Path) -> Path:
        """Write the JSON to ``path`` (a ``.json`` file, else ``path/featurizers.json``)."""
        file = _json_file(path)
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n",
                        encoding="utf-8")
        return file

    @classmethod
    def load(cls, path: str | Path) -> "FeaturizerPipeline":
        return cls.from_dict(json.loads(_json_file(path).read_text(encoding="utf-8")))

    # ---- configuration ------------------------------------------------------------------------
    @classmethod
    def from_config(cls, spec: Mapping[str, Any] | Sequence[Mapping[str, Any]]
                    ) -> "FeaturizerPipeline":
        """An unfitted pipeline from Rasa-style entries (``{"name": ..., **options}``).

        ``spec`` is a list of entries, one entry, or a Rasa config with a ``pipeline`` key.
        Tokenizer entries are accepted and ignored (the tokenizer is Rasa's whitespace one), as
        are the classifiers and extractors in :data:`NOT_FEATURIZERS`.
        """
        if isinstance(spec, Mapping):
            spec = spec["pipeline"] if "pipeline" in spec else [spec]
        sparse: list[SparseFeaturizer] = []
        dense = None
        for entry in spec:
            if not isinstance(entry, Mapping) or "name" not in entry:
                raise ValueError(f"each pipeline entry needs a 'name', got {entry!r}")
            options = dict(entry)
            name = options.pop("name")
            if name in TOKENIZERS or name in NOT_FEATURIZERS:
                continue
            if name in SPARSE_FEATURIZERS:
                sparse.append(_build(SPARSE_FEATURIZERS[name], name, options, _IGNORED))
            elif name in DENSE_FEATURIZER_NAMES:
                if dense is not None:
                    raise ValueError(f"only one dense featurizer is supported; {name} is a second")
                dense = _build(_dense_class(), name, options, _IGNORED | _IGNORED_DENSE)
            else:
                known = sorted([*TOKENIZERS, *SPARSE_FEATURIZERS, *DENSE_FEATURIZER_NAMES])
                raise ValueError(f"unknown pipeline component {name!r}; known: {known}")
        return cls(sparse, dense)


def default_pipeline() -> FeaturizerPipeline:
    """Rasa 3.x's default sparse featurization (unfitted)."""
    return FeaturizerPipeline.from_config(DEFAULT_CONFIG)


def _build(factory: type, name: str, options: dict[str, Any], ignored: set[str]) -> Any:
    kwargs = {_RENAMED.get(k, k): v for k, v in options.items() if k not in ignored}
    params = inspect.signature(factory).parameters
    unknown = sorted(set(kwargs) - set(params))
    missing = [p for p, spec in params.items() if spec.default is spec.empty and p not in kwargs]
    if unknown or missing:
        problem = f"unknown option(s) {unknown}" if unknown else f"missing option(s) {missing}"
        raise ValueError(f"{name}: {problem}; options: {list(params)}")
    return factory(**kwargs)


def _dense_class() -> type[HFDenseFeaturizer]:
    from nlu_models.featurize.dense import HFDenseFeaturizer  # imports torch: only when needed

    return HFDenseFeaturizer


class _Rows:
    """One featurizer's rows of a chunk (a row: ``{column: value}`` with sorted columns):
    their columns and values back to back, and each row's entry count."""

    __slots__ = ("columns", "values", "counts")

    def __init__(self) -> None:
        self.columns: list[int] = []
        self.values: list[float] = []
        self.counts: list[int] = []

    def extend(self, rows: Sequence[Mapping[int, float]]) -> None:
        self.columns.extend(chain.from_iterable(rows))
        self.values.extend(chain.from_iterable(map(dict.values, rows)))
        self.counts.extend(map(len, rows))


class _Block:
    """A featurizer's token rows (sequence features) and sentence rows for a chunk."""

    __slots__ = ("seq", "sent")

    def __init__(self) -> None:
        self.seq, self.sent = _Rows(), _Rows()

    def add(self, rows: Sequence[Mapping[int, float]], sentence: Mapping[int, float]) -> None:
        self.seq.extend(rows)
        self.sent.extend((sentence,))


def _interleave(blocks: Sequence[_Rows], starts: Sequence[int], num_rows: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The featurizers' rows merged row by row: row ``r`` holds block 0's entries of row ``r``
    (their columns shifted by ``starts[0]``), then block 1's, ... Returns the ids (int64), the
    values (float32) and the row ends, ``(num_rows + 1,)`` with a leading 0."""
    counts = np.array([b.counts for b in blocks], dtype=np.int64).reshape(len(blocks), num_rows)
    ends = np.zeros(num_rows + 1, dtype=np.int64)
    np.cumsum(counts.sum(axis=0), out=ends[1:])
    ids = np.empty(ends[-1], dtype=np.int64)
    values = np.empty(ends[-1], dtype=np.float32)
    before = ends[:-1].copy()  # where each row's next block starts
    for block, start, count in zip(blocks, starts, counts):
        row_of = np.repeat(np.arange(num_rows), count)                   # (n,) each entry's row
        first = np.cumsum(count) - count                                  # (rows,) in the block
        where = before[row_of] + np.arange(len(row_of)) - first[row_of]   # (n,)
        ids[where] = np.asarray(block.columns, dtype=np.int64) + start
        values[where] = block.values
        before += count
    return ids, values, ends


def _text(item: str | Message) -> str:
    return item if isinstance(item, str) else item.text


def _json_file(path: str | Path) -> Path:
    path = Path(path)
    return path if path.suffix == ".json" else path / FILENAME
