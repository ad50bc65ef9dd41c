"""Sparse featurizers: sklearn parity, Rasa's feature definitions, id spaces, JSON round trip."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer

from nlu_models.data.loading import load_nlu
from nlu_models.data.schema import LookupTable, Message, NLUData, RegexPattern
from nlu_models.data.yaml_io import read_yaml
from nlu_models.featurize import (
    CountVectorsFeaturizer,
    FeaturizerPipeline,
    LexicalSyntacticFeaturizer,
    MessageFeatures,
    RegexFeaturizer,
    default_pipeline,
)
from nlu_models.featurize.regex import lookup_pattern
from nlu_models.tokenize import WhitespaceTokenizer, tokenize
from tests.conftest import DEMO_BOT

UNSEEN = ["Order 3 Pizzas to BERLIN, now!", "zzqx unseen wordz", "", "?!", "AB1234 pepperoni"]


@pytest.fixture(scope="module")
def demo() -> NLUData:
    return load_nlu(DEMO_BOT / "data" / "nlu.yml")


@pytest.fixture(scope="module")
def fitted(demo: NLUData) -> FeaturizerPipeline:
    return default_pipeline().fit(demo.examples, demo)


def same_features(a: MessageFeatures, b: MessageFeatures) -> bool:
    arrays = ("seq_indptr", "seq_ids", "seq_values", "sent_ids", "sent_values")
    return a.tokens == b.tokens and all(
        getattr(a, k).dtype == getattr(b, k).dtype and np.array_equal(getattr(a, k), getattr(b, k))
        for k in arrays)


# ---- CountVectorsFeaturizer ------------------------------------------------------------------
@pytest.mark.parametrize("params", [
    dict(analyzer="word"),
    dict(analyzer="word", min_ngram=1, max_ngram=2, min_df=2),
    dict(analyzer="char_wb", min_ngram=1, max_ngram=4),
    dict(analyzer="char_wb", min_ngram=2, max_ngram=5, max_df=0.3, lowercase=False),
    dict(analyzer="char", min_ngram=2, max_ngram=3, max_features=300),
], ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()))
def test_count_vectors_match_sklearn(demo: NLUData, params: dict) -> None:
    token_lists = [tokenize(m.text) for m in demo.examples]
    ours = CountVectorsFeaturizer(**params).fit(token_lists)
    words = [ours.process(tokens) for tokens in token_lists]  # __NUMBER__, lowercase
    sklearn = CountVectorizer(
        token_pattern=r"(?u)\b\w+\b" if params["analyzer"] == "word" else None,
        analyzer=params["analyzer"], ngram_range=(params.get("min_ngram", 1),
                                                  params.get("max_ngram", 1)),
        lowercase=params.get("lowercase", True), min_df=params.get("min_df", 1),
        max_df=params.get("max_df", 1.0), max_features=params.get("max_features"),
    ).fit([" ".join(w) for w in words])
    assert ours.vocabulary == {t: int(i) for t, i in sklearn.vocabulary_.items()}
    for tokens, message_words in list(zip(token_lists, words))[::7]:
        rows, sentence = ours.featurize(tokens, "")
        expected = sklearn.transform([" ".join(message_words)]).tocoo()
        assert sentence == dict(zip(expected.col.tolist(), expected.data.astype(float).tolist()))
        for row, word in zip(rows, message_words):
            expected = sklearn.transform([word]).tocoo()
            assert row == dict(zip(expected.col.tolist(), expected.data.astype(float).tolist()))


def test_count_vectors_number_and_oov_tokens() -> None:
    train = [tokenize(t) for t in ["book 2 tables at 10", "oov please", "book a table"]]
    plain = CountVectorsFeaturizer().fit(train)
    assert "__number__" in plain.vocabulary and "2" not in plain.vocabulary
    assert plain.featurize(tokenize("xyzzy"), "xyzzy") == ([{}], {})

    oov = CountVectorsFeaturizer(oov_token="OOV").fit(train)  # lowercased like the words
    rows, sentence = oov.featurize(tokenize("book xyzzy 42"), "")
    ids = oov.vocabulary
    assert rows == [{ids["book"]: 1.0}, {ids["oov"]: 1.0}, {ids["__number__"]: 1.0}]
    assert sentence == {i: 1.0 for i in sorted(ids[w] for w in ("book", "oov", "__number__"))}

    listed = CountVectorsFeaturizer(oov_token="oov", oov_words=["Please"]).fit(train)
    assert "please" not in listed.vocabulary and "oov" in listed.vocabulary
    with pytest.raises(ValueError, match="analyzer"):
        CountVectorsFeaturizer(analyzer="chars")
    with pytest.raises(ValueError, match="min_df"):
        CountVectorsFeaturizer(min_df=1.5)


# ---- LexicalSyntacticFeaturizer --------------------------------------------------------------
def test_lexical_syntactic_worked_example() -> None:
    tokens = tokenize("Book a Flight to NYC at 5")
    featurizer = LexicalSyntacticFeaturizer().fit([tokens])
    assert featurizer.sent_vocab_size == 0
    assert featurizer.columns[:3] == [(0, "low", "False"), (0, "low", "True"),
                                      (0, "title", "False")]
    rows, sentence = featurizer.featurize(tokens, "")
    decoded = [{featurizer.columns[i] for i in row} for row in rows]
    assert sentence == {}
    book, nyc, five = decoded[0], decoded[4], decoded[6]
    assert book == {(1, "BOS", "True"), (1, "EOS", "False"), (1, "low", "False"),
                    (1, "upper", "False"), (1, "title", "True"), (1, "digit", "False"),
                    (2, "low", "True"), (2, "title", "False"), (2, "upper", "False")}
    assert {c for c in nyc if c[0] == 1} == {
        (1, "BOS", "False"), (1, "EOS", "False"), (1, "low", "False"), (1, "upper", "True"),
        (1, "title", "False"), (1, "digit", "False")}
    assert (0, "low", "True") in nyc and (2, "low", "True") in nyc  # "to", "at"
    assert {c for c in five if c[0] == 1} >= {(1, "EOS", "True"), (1, "digit", "True"),
                                             (1, "low", "False")}
    assert not any(c[0] == 2 for c in five)  # nothing after the last token
    assert all(list(row) == sorted(row) for row in rows)


def test_lexical_syntactic_affixes_even_window_and_unseen_values() -> None:
    affixes = LexicalSyntacticFeaturizer([["prefix2", "suffix3"]]).fit([tokenize("hello world")])
    assert affixes.columns == [(0, "prefix2", "he"), (0, "prefix2", "wo"),
                               (0, "suffix3", "llo"), (0, "suffix3", "rld")]
    # two positions: previous and current token, as in Rasa
    pair = LexicalSyntacticFeaturizer([["upper"], ["low"]]).fit([tokenize("ABC def")])
    rows, _ = pair.featurize(tokenize("ABC def"), "")
    assert [{pair.columns[i] for i in row} for row in rows] == [
        {(1, "low", "False")}, {(0, "upper", "True"), (1, "low", "True")}]
    lower_only = LexicalSyntacticFeaturizer([["upper"]]).fit([tokenize("abc")])
    assert lower_only.featurize(tokenize("ABC"), "") == ([{}], {})  # "True" never seen
    with pytest.raises(ValueError, match="spaCy"):
        LexicalSyntacticFeaturizer([["low"], ["pos"], ["low"]])
    with pytest.raises(ValueError, match="unknown lexical-syntactic feature 'shape'"):
        LexicalSyntacticFeaturizer([["shape"]])


# ---- RegexFeaturizer -------------------------------------------------------------------------
NLU = NLUData(regexes=[RegexPattern("zipcode", r"\d{5}")],
              lookups=[LookupTable("city", ["New York", "Berlin"])])


def test_regex_and_lookup_features_on_tokens_and_sentence() -> None:
    assert lookup_pattern(["New York", "Berlin"]) == r"(\bNew\ York\b|\bBerlin\b)"
    featurizer = RegexFeaturizer().fit(nlu=NLU)
    assert (featurizer.seq_vocab_size, featurizer.sent_vocab_size) == (2, 2)
    text = "I moved from New York to 10001 now"
    rows, sentence = featurizer.featurize(tokenize(text), text)
    assert rows == [{}, {}, {}, {1: 1.0}, {1: 1.0}, {}, {0: 1.0}, {}]
    assert sentence == {0: 1.0, 1: 1.0}
    for text in ("new york 1234", "Berliner"):
        assert featurizer.featurize(tokenize(text), text)[1] == {}
    loose = RegexFeaturizer(case_sensitive=False, use_word_boundaries=False).fit(nlu=NLU)
    for text in ("new york 1234", "Berliner"):
        assert loose.featurize(tokenize(text), text)[1] == {1: 1.0}
    assert RegexFeaturizer(use_regexes=False).fit(nlu=NLU).patterns[0][0] == "city"


def test_regex_match_outside_tokens_invalid_and_no_patterns() -> None:
    question = RegexFeaturizer().fit(nlu=NLUData(regexes=[RegexPattern("q", r"\?")]))
    assert question.featurize(tokenize("hi?"), "hi?") == ([{}], {})  # "?" is not a token
    with pytest.raises(ValueError, match="regex 'broken'.*'a\\('"):
        RegexFeaturizer().fit(nlu=NLUData(regexes=[RegexPattern("broken", "a(")]))
    empty = RegexFeaturizer().fit([tokenize("hi")], ["hi"], NLUData())
    assert (empty.seq_vocab_size, empty.sent_vocab_size) == (0, 0)


# ---- pipeline ------------------------------------------------------------------------------------
def test_ids_are_one_based_and_blocks_are_hstacked(demo: NLUData,
                                                   fitted: FeaturizerPipeline) -> None:
    regex, lexical, words, chars = fitted.sparse
    assert regex.seq_vocab_size == 3 and lexical.seq_vocab_size > 0
    assert fitted.seq_vocab_size == sum(f.seq_vocab_size for f in fitted.sparse)
    assert fitted.sent_vocab_size == fitted.seq_vocab_size - lexical.seq_vocab_size
    seq_starts = np.cumsum([1] + [f.seq_vocab_size for f in fitted.sparse])[:-1]
    sent_starts = np.cumsum([1] + [f.sent_vocab_size for f in fitted.sparse])[:-1]
    for text in [m.text for m in demo.examples[::25]] + UNSEEN:
        features = fitted.transform(text)
        assert features.seq_indptr.shape == (len(features.tokens) + 1,)
        assert features.seq_ids.dtype == np.int64 and features.seq_values.dtype == np.float32
        if features.seq_ids.size:
            assert 1 <= features.seq_ids.min() and features.seq_ids.max() <= fitted.seq_vocab_size
        if features.sent_ids.size:
            assert 1 <= features.sent_ids.min()
            assert features.sent_ids.max() <= fitted.sent_vocab_size
        outputs = [f.featurize(features.tokens, text) for f in fitted.sparse]
        for t in range(len(features.tokens)):
            expected = {int(start) + i: v for (rows, _), start in zip(outputs, seq_starts)
                        for i, v in rows[t].items()}
            assert features.token_features(t) == expected
            assert list(features.token_features(t)) == sorted(expected)
        expected = {int(start) + i: v for (_, sentence), start in zip(outputs, sent_starts)
                    for i, v in sentence.items()}
        assert features.sentence_features() == expected


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_a_chunk_gives_each_message_the_features_it_gets_alone(
        demo: NLUData, fitted: FeaturizerPipeline, batch_size: int) -> None:
    """transform_many builds a chunk's arrays at once and hands out views: the views must be
    each message's own features, empty messages included, whatever the chunking."""
    texts = [m.text for m in demo.examples[:7]] + ["", "order AB1234", ""] + UNSEEN
    for text, features in zip(texts, fitted.transform_many(texts, batch_size=batch_size)):
        assert same_features(features, fitted.transform(text))
        assert features.seq_indptr[0] == 0
        assert features.seq_indptr[-1] == features.seq_ids.size == features.seq_values.size


def test_regex_ids_in_pipeline_and_empty_text(fitted: FeaturizerPipeline) -> None:
    features = fitted.transform(Message("track order AB1234 please"))
    assert [t.text for t in features.tokens] == ["track", "order", "AB1234", "please"]
    assert 1 in features.token_features(2) and 1 in features.sentence_features()  # order_id
    empty = fitted.transform("")
    assert empty.tokens == [] and empty.seq_indptr.tolist() == [0]
    assert empty.seq_ids.size == empty.sent_ids.size == 0 and fitted.dense_dim == 0


def test_json_round_trip_gives_identical_features(fitted: FeaturizerPipeline, tmp_path) -> None:
    document = json.dumps(fitted.to_dict())
    restored = FeaturizerPipeline.from_dict(json.loads(document))
    assert (restored.seq_vocab_size, restored.sent_vocab_size) == (
        fitted.seq_vocab_size, fitted.sent_vocab_size)
    texts = ["I want a large pepperoni pizza in Berlin", "order AB1234", *UNSEEN]
    for a, b in zip(fitted.transform_many(texts, batch_size=2), restored.transform_many(texts)):
        assert same_features(a, b)
    file = fitted.save(tmp_path / "export")
    assert file.name == "featurizers.json"
    loaded = FeaturizerPipeline.load(tmp_path / "export")
    assert loaded.to_dict() == fitted.to_dict()
    with pytest.raises(ValueError, match="not a dialab.featurizers"):
        FeaturizerPipeline.from_dict({"format": "rasa"})


def test_from_config_reads_rasa_pipelines() -> None:
    shipped = FeaturizerPipeline.from_config(read_yaml(DEMO_BOT / "config.yml"))
    assert [f.to_dict() for f in shipped.sparse] == [f.to_dict() for f in default_pipeline().sparse]
    pipeline = FeaturizerPipeline.from_config([
        {"name": "WhitespaceTokenizer", "intent_tokenization_flag": False},
        {"name": "CountVectorsFeaturizer", "OOV_token": "oov", "alias": "cv"},
        {"name": "LexicalSyntacticFeaturizer", "features": [["low"], ["suffix2"], ["upper"]]},
    ])
    words, lexical = pipeline.sparse
    assert words.oov_token == "oov" and lexical.features[1] == ["suffix2"]
    assert pipeline.dense is None and isinstance(pipeline.tokenizer, WhitespaceTokenizer)
    with pytest.raises(ValueError, match="unknown pipeline component 'SpacyFeaturizer'.*RegexF"):
        FeaturizerPipeline.from_config([{"name": "SpacyFeaturizer"}])
    with pytest.raises(ValueError, match=r"CountVectorsFeaturizer: unknown option\(s\) \['stop"):
        FeaturizerPipeline.from_config({"name": "CountVectorsFeaturizer", "stop_words": "english"})
    with pytest.raises(ValueError, match="missing option.*model_name_or_path"):
        FeaturizerPipeline.from_config([{"name": "LanguageModelFeaturizer"}])
