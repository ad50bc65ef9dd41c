"""Benchmark readers (JointBERT SNIPS/ATIS, CLINC150, HWU64) against the SOURCE.md counts."""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from nlu_models.data.benchmarks import (
    detect_benchmark_format,
    parse_hwu64_annotation,
    read_clinc150,
    read_hwu64,
    read_hwu64_annotated_json,
    read_jointbert,
)
from nlu_models.data.errors import DataError
from nlu_models.data.schema import EntitySpan
from nlu_models.tokenize import bilou_tags, bio_tags, spans_from_tags, split_whitespace
from tests.conftest import shared_data as data_path


def write_jointbert(folder: Path, seq_in: str, seq_out: str, label: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "seq.in").write_text(seq_in, encoding="utf-8")
    (folder / "seq.out").write_text(seq_out, encoding="utf-8")
    (folder / "label").write_text(label, encoding="utf-8")
    return folder


# ---- JointBERT: SNIPS and ATIS -----------------------------------------------------------------
@pytest.mark.parametrize("dataset, split, size, intents", [
    ("snips", "train", 13084, 7), ("snips", "dev", 700, 7), ("snips", "test", 700, 7),
    ("atis", "train", 4478, 21), ("atis", "dev", 500, 16), ("atis", "test", 893, 20),
])
def test_jointbert_counts(dataset, split, size, intents):
    nlu = read_jointbert(data_path(f"{dataset}/jointbert/{split}"))
    assert len(nlu.examples) == size
    assert len(nlu.intents) == intents
    assert all(m.source is not None and m.source.line == i
               for i, m in enumerate(nlu.examples, start=1))


def test_snips_intents_and_slot_types():
    nlu = read_jointbert(data_path("snips/jointbert/train"))
    assert sorted(nlu.intents) == ["AddToPlaylist", "BookRestaurant", "GetWeather", "PlayMusic",
                                   "RateBook", "SearchCreativeWork", "SearchScreeningEvent"]
    assert len(nlu.entity_types) == 39


def test_atis_keeps_multi_intent_labels():
    nlu = read_jointbert(data_path("atis/jointbert/train"))
    assert "atis_flight#atis_airfare" in nlu.intents
    assert len(nlu.entity_types) == 79


@pytest.mark.parametrize("dataset", ["snips", "atis"])
@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_bio_spans_bio_round_trip(dataset, split):
    """Every example: BIO tags → character spans → BIO tags gives back seq.out exactly."""
    folder = data_path(f"{dataset}/jointbert/{split}")
    nlu = read_jointbert(folder)
    original = (folder / "seq.out").read_text(encoding="utf-8").split("\n")
    for message, line in zip(nlu.examples, original):
        tokens = split_whitespace(message.text)
        assert bio_tags(tokens, message.entities) == line.split(), message.source
        for entity in message.entities:
            assert message.text[entity.start:entity.end] == entity.value


@pytest.mark.parametrize("dataset", ["snips", "atis"])
def test_bilou_round_trip_on_training_data(dataset):
    nlu = read_jointbert(data_path(f"{dataset}/jointbert/train"))
    for message in nlu.examples:
        tokens = split_whitespace(message.text)
        decoded = spans_from_tags(tokens, bilou_tags(tokens, message.entities), message.text)
        assert decoded == message.entities, message.source


def test_jointbert_text_and_spans(tmp_path):
    folder = write_jointbert(tmp_path / "train",
                             "fly  to new york \nbook it\n",
                             "O O B-city I-city\nO I-thing\n",
                             "flight\nbook#other\n")
    first, second = read_jointbert(folder).examples
    assert first.text == "fly to new york"
    assert first.entities == [EntitySpan(7, 15, "new york", "city")]
    assert second.intent == "book#other"
    assert second.entities == [EntitySpan(5, 7, "it", "thing")]  # I- after O starts an entity
    assert str(second.source) == f"{folder / 'seq.in'}:2"


def test_jointbert_tag_count_mismatch_names_file_and_line(tmp_path):
    folder = write_jointbert(tmp_path / "x", "a b\nc d e\n", "O O\nO O\n", "i\nj\n")
    with pytest.raises(DataError) as err:
        read_jointbert(folder)
    assert err.value.file == str(folder / "seq.out") and err.value.line == 2
    assert "3 tokens in seq.in but 2 tags in seq.out" in str(err.value)


@pytest.mark.parametrize("seq_out, label, message", [
    ("O X-city\n", "i\n", "'X-city' is not a BIO tag"),
    ("O O\nO\n", "i\n", "line counts differ"),
])
def test_jointbert_malformed(tmp_path, seq_out, label, message):
    folder = write_jointbert(tmp_path / "x", "a b\n", seq_out, label)
    with pytest.raises(DataError, match=message) as err:
        read_jointbert(folder)
    assert err.value.file is not None and err.value.line is not None


# ---- CLINC150 ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clinc_file() -> Path:
    return data_path("clinc150/data_full.json")


@pytest.mark.parametrize("split, in_scope, oos", [
    ("train", 15000, 100), ("val", 3000, 100), ("test", 4500, 1000)])
def test_clinc150_counts(clinc_file, split, in_scope, oos):
    with_oos = read_clinc150(clinc_file, split)
    without = read_clinc150(clinc_file, split, include_oos=False)
    assert len(without.examples) == in_scope
    assert len(with_oos.examples) == in_scope + oos
    assert with_oos.count_by_intent()["oos"] == oos
    assert len(without.intents) == 150 and "oos" not in without.intents


def test_clinc150_source_lines_point_at_the_example(clinc_file):
    nlu = read_clinc150(clinc_file, "val")
    lines = clinc_file.read_text(encoding="utf-8").split("\n")
    for message in nlu.examples[::97]:
        window = "\n".join(lines[message.source.line - 1:message.source.line + 2])
        assert message.text.replace('"', '\\"') in window


def test_clinc150_unknown_split_lists_keys(clinc_file):
    with pytest.raises(DataError, match="available: oos_test, oos_train, oos_val, test, train"):
        read_clinc150(clinc_file, "dev")


def test_clinc150_malformed_pair(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"train": [\n  ["ok", "greet"],\n  ["no intent"]\n]}', encoding="utf-8")
    with pytest.raises(DataError, match="not a \\[text, intent\\] pair") as err:
        read_clinc150(path)
    assert err.value.line == 3


# ---- HWU64 -------------------------------------------------------------------------------------
HWU_FOLDS = "hwu64/liu2019_10fold"


@pytest.mark.parametrize("fold", range(1, 11))
def test_hwu64_fold_sizes(fold):
    fold_dir = data_path(f"{HWU_FOLDS}/KFold_{fold}")
    train, test = read_hwu64(fold_dir, "train"), read_hwu64(fold_dir, "test")
    assert (len(train.examples), len(test.examples)) == (
        (9960, 1076) if fold < 10 else (9684, 1352))
    assert len(train.intents) == len(test.intents) == 64


def test_hwu64_test_folds_cover_all_utterances_and_54_entity_types():
    tests = [read_hwu64(data_path(f"{HWU_FOLDS}/KFold_{k}"), "test") for k in range(1, 11)]
    assert sum(len(t.examples) for t in tests) == 11036
    assert len({e for t in tests for e in t.entity_types}) == 54
    assert "alarm_set" in tests[0].intents


def test_hwu64_plain_text_matches_answer_from_anno():
    """The text we derive from the inline annotation is the upstream plain-text column."""
    fold_dir = data_path(f"{HWU_FOLDS}/KFold_1")
    nlu = read_hwu64(fold_dir, "train")
    by_file: dict[str, list[str]] = {}
    for path in sorted((fold_dir / "trainset").glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            by_file[str(path)] = [row["answer_from_anno"]
                                  for row in csv.DictReader(handle, delimiter=";")]
    expected = [text for texts in by_file.values() for text in texts]
    assert [m.text for m in nlu.examples] == expected
    for message in nlu.examples:
        assert all(message.text[e.start:e.end] == e.value for e in message.entities)


@pytest.mark.parametrize("fold", [1, 3, 10])
def test_hwu64_csv_and_annotated_json_agree_up_to_known_upstream_quirks(fold):
    """Same (intent, text) multiset. The upstream JSON export trims a possessive "'s" from
    entity values ("[person : emma's]" → "emma") and places a repeated value at its first
    occurrence; every other entity is identical."""
    fold_dir = data_path(f"{HWU_FOLDS}/KFold_{fold}")
    from_csv, from_json = read_hwu64(fold_dir, "test"), read_hwu64_annotated_json(fold_dir)
    assert Counter((m.intent, m.text) for m in from_csv.examples) == Counter(
        (m.intent, m.text) for m in from_json.examples)
    assert all(m.source is not None and m.source.line for m in from_json.examples)
    json_by_text = {(m.intent, m.text): m for m in from_json.examples}
    trimmed = 0
    for message in from_csv.examples:
        other = json_by_text[(message.intent, message.text)]
        assert len(other.entities) == len(message.entities)
        for ours, theirs in zip(message.entities, other.entities):
            assert ours.entity == theirs.entity
            if ours.value == theirs.value:
                assert ours.start == theirs.start or message.text.find(ours.value) == theirs.start
            else:
                assert ours.value == theirs.value + "'s" and ours.start == theirs.start
                trimmed += 1
    assert trimmed > 0


@pytest.mark.parametrize("annotated, text, entities", [
    ("wake me at [time : six am] please", "wake me at six am please", [(11, 17, "time", "six am")]),
    ("[date:today]", "today", [(0, 5, "date", "today")]),
    ("[ date :tomorrow ] and [place_name   :  paris]", "tomorrow and paris",
     [(0, 8, "date", "tomorrow"), (13, 18, "place_name", "paris")]),
    ("what time is it : now", "what time is it : now", []),
    ("time: [time : 10:30]", "time: 10:30", [(6, 11, "time", "10:30")]),
])
def test_parse_hwu64_annotation(annotated, text, entities):
    plain, spans = parse_hwu64_annotation(annotated)
    assert plain == text
    assert [(s.start, s.end, s.entity, s.value) for s in spans] == entities


@pytest.mark.parametrize("annotated, reason", [
    ("set [time six]", "malformed entity"),
    ("set [time : six", "unclosed '\\['"),
    ("set [time : [six]]", "unclosed '\\['"),
    ("set time : six]", "']' without '\\['"),
    ("set [ : six]", "malformed entity"),
    ("set [time : ]", "malformed entity"),
])
def test_malformed_hwu64_annotation_names_file_and_line(tmp_path, annotated, reason):
    fold = tmp_path / "KFold_1"
    (fold / "trainset").mkdir(parents=True)
    (fold / "trainset" / "alarm_set.csv").write_text(
        "answerid;scenario;intent;answer_annotation;answer_from_anno;answer_from_user\n"
        '1;alarm;set;"set an alarm";"set an alarm";"set an alarm"\n'
        f'2;alarm;set;"{annotated}";"x";"x"\n', encoding="utf-8")
    with pytest.raises(DataError, match=reason) as err:
        read_hwu64(fold)
    assert err.value.file.endswith("alarm_set.csv") and err.value.line == 3


def test_hwu64_reader_builds_intent_and_source(tmp_path):
    fold = tmp_path / "KFold_1"
    (fold / "testset" / "csv").mkdir(parents=True)
    (fold / "testset" / "csv" / "alarm_set.csv").write_text(
        "answerid;scenario;intent;answer_annotation;answer_from_anno;answer_from_user\n"
        '7;alarm;set;"wake me at [time : six]";"wake me at six";"x"\n', encoding="utf-8")
    [message] = read_hwu64(fold, "test").examples
    assert message.intent == "alarm_set" and message.text == "wake me at six"
    assert message.entities == [EntitySpan(11, 14, "six", "time")]
    assert message.source.line == 2
    with pytest.raises(DataError, match="available: train, test"):
        read_hwu64(fold, "dev")


# ---- format detection --------------------------------------------------------------------------
def test_detect_benchmark_format_on_shared_data():
    assert detect_benchmark_format(data_path("snips/jointbert/train")) == "jointbert"
    assert detect_benchmark_format(data_path("clinc150/data_full.json")) == "clinc150"
    assert detect_benchmark_format(data_path("clinc150/domains.json")) is None
    assert detect_benchmark_format(data_path(f"{HWU_FOLDS}/KFold_3")) == "hwu64"
    assert detect_benchmark_format(data_path(HWU_FOLDS)) == "hwu64"


def test_detect_benchmark_format_on_small_files(tmp_path):
    write_jointbert(tmp_path / "jb", "a\n", "O\n", "i\n")
    (tmp_path / "clinc.json").write_text('{"train": [["hi", "greet"]], "val": [], "test": []}')
    (tmp_path / "other.json").write_text('{"train": {"x": 1}, "val": [], "test": []}')
    (tmp_path / "KFold_2" / "trainset").mkdir(parents=True)
    (tmp_path / "nlu.yml").write_text("version: '3.1'\n")
    assert detect_benchmark_format(tmp_path / "jb") == "jointbert"
    assert detect_benchmark_format(tmp_path / "clinc.json") == "clinc150"
    assert detect_benchmark_format(tmp_path / "other.json") is None
    assert detect_benchmark_format(tmp_path / "KFold_2") == "hwu64"
    assert detect_benchmark_format(tmp_path / "nlu.yml") is None
    assert detect_benchmark_format(tmp_path / "missing") is None
