"""NLU evaluation on hand-built cases whose metrics are worked out by hand below.

The shared case (tokens by WhitespaceTokenizer):

1. "fly from new york to berlin"  book_flight
   gold  [new york](city, role origin)  [berlin](city, role destination)
   pred  [york](city, role origin)      [berlin](city, role destination)   book_flight 0.9
2. "play jazz by miles davis"     play_music
   gold  [jazz](genre)  [miles davis](artist)
   pred  [jazz](artist)                                                    book_flight 0.8
3. "hello there"  greet  → greet 0.95
4. "hi"           greet  → play_music 0.6
"""
from __future__ import annotations

import json
import math

import pytest

from nlu_models.data.schema import EntitySpan, Message
from nlu_models.evaluation import (
    NO_ENTITY,
    aggregate_summaries,
    confused_with,
    entity_errors,
    entity_span_report,
    entity_token_report,
    evaluate_nlu,
    format_mean_sd,
    intent_errors,
    intent_report,
    lenient_entity_scores,
    plot_confidence_histogram,
    plot_confusion_matrix,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def span(text: str, surface: str, entity: str, role=None, group=None) -> EntitySpan:
    start = text.index(surface)
    return EntitySpan(start, start + len(surface), surface, entity, role, group)


def pred(text: str, intent: str, confidence: float, spans=()) -> dict:
    entities = []
    for s in spans:
        entity = {"entity": s.entity, "start": s.start, "end": s.end, "value": s.value,
                  "confidence_entity": 0.9, "extractor": "DIETClassifier"}
        if s.role is not None:
            entity.update(role=s.role, confidence_role=0.8)
        if s.group is not None:
            entity.update(group=s.group, confidence_group=0.7)
        entities.append(entity)
    return {"text": text, "intent": {"name": intent, "confidence": confidence},
            "intent_ranking": [{"name": intent, "confidence": confidence}], "entities": entities}


def f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


@pytest.fixture
def case() -> tuple[list[Message], list[dict]]:
    t1, t2 = "fly from new york to berlin", "play jazz by miles davis"
    gold = [
        Message(t1, "book_flight", [span(t1, "new york", "city", role="origin"),
                                    span(t1, "berlin", "city", role="destination")]),
        Message(t2, "play_music", [span(t2, "jazz", "genre"), span(t2, "miles davis", "artist")]),
        Message("hello there", "greet"),
        Message("hi", "greet"),
    ]
    preds = [
        pred(t1, "book_flight", 0.9, [span(t1, "york", "city", role="origin"),
                                      span(t1, "berlin", "city", role="destination")]),
        pred(t2, "book_flight", 0.8, [span(t2, "jazz", "artist")]),
        pred("hello there", "greet", 0.95),
        pred("hi", "play_music", 0.6),
    ]
    return gold, preds


# ---- intents -----------------------------------------------------------------------------------
def test_intent_report_matches_hand_computed_numbers(case):
    report = intent_report(*case)
    # book_flight: 1 gold, 2 predicted, 1 right; play_music: 0 right; greet: 2 gold, 1 right.
    assert report["book_flight"]["precision"] == pytest.approx(0.5)
    assert report["book_flight"]["recall"] == pytest.approx(1.0)
    assert report["play_music"]["f1-score"] == 0.0
    assert report["greet"]["f1-score"] == pytest.approx(f1(1.0, 0.5))
    assert report["greet"]["support"] == 2
    assert report["accuracy"] == pytest.approx(2 / 4)
    assert report["macro avg"]["f1-score"] == pytest.approx((2 / 3 + 0 + 2 / 3) / 3)
    assert report["weighted avg"]["f1-score"] == pytest.approx((1 * 2 / 3 + 2 * 2 / 3) / 4)
    assert report["play_music"]["confused_with"] == {"book_flight": 1}
    assert report["greet"]["confused_with"] == {"play_music": 1}
    assert report["book_flight"]["confused_with"] == {}


def test_confused_with_keeps_three_most_frequent_wrong_labels():
    gold = ["a"] * 6 + ["b"]
    pred = ["a", "b", "b", "e", "d", "c", "b"]
    assert confused_with(gold, pred) == {"a": {"b": 2, "c": 1, "d": 1}, "b": {}}


def test_intent_errors_sorted_by_confidence_and_none_gold_skipped(case):
    gold, preds = case
    gold = gold + [Message("no label", None)]
    preds = preds + [pred("no label", "greet", 0.99)]
    errors = intent_errors(gold, preds)
    assert [e["text"] for e in errors] == ["play jazz by miles davis", "hi"]
    assert errors[0] == {"text": "play jazz by miles davis", "intent": "play_music",
                         "intent_prediction": {"name": "book_flight", "confidence": 0.8}}
    assert intent_report(gold, preds)["greet"]["support"] == 2


def test_mismatched_lengths_raise(case):
    gold, preds = case
    with pytest.raises(ValueError, match="4 gold messages but 3 predictions"):
        intent_report(gold, preds[:3])


# ---- entities ----------------------------------------------------------------------------------
def test_exact_span_counts_only_exact_boundaries_and_type(case):
    report = entity_span_report(*case)
    # gold: city×2, genre, artist; predicted: city(york: partial), city(berlin: right),
    # artist(jazz: wrong type). Only berlin is right.
    p, r = 1 / 3, 1 / 4
    assert report["micro avg"]["precision"] == pytest.approx(p)
    assert report["micro avg"]["recall"] == pytest.approx(r)
    assert report["micro avg"]["f1-score"] == pytest.approx(f1(p, r))
    assert report["city"] == {"precision": 0.5, "recall": 0.5, "f1-score": 0.5, "support": 2}
    assert report["genre"]["recall"] == 0.0 and report["genre"]["support"] == 1
    assert report["artist"]["precision"] == 0.0 and report["artist"]["support"] == 1
    json.dumps(report)  # plain Python numbers


def test_exact_span_on_roles_and_combined_label(case):
    roles = entity_span_report(*case, attribute="role")
    assert set(roles) >= {"origin", "destination"}
    assert roles["micro avg"]["f1-score"] == pytest.approx(0.5)  # berlin right, york partial
    combined = entity_span_report(*case, attribute="label")
    assert combined["city.destination"]["f1-score"] == 1.0
    assert combined["city.origin"]["f1-score"] == 0.0
    assert combined["micro avg"]["f1-score"] == pytest.approx(f1(1 / 3, 1 / 4))


def test_gold_span_off_token_boundaries_is_left_out_of_exact_span():
    text = "to berlin?"
    gold = [Message(text, None, [EntitySpan(3, 10, "berlin?", "city")])]  # ends after "?"
    report = entity_span_report(gold, [pred(text, "x", 1.0)])
    assert report["micro avg"]["support"] == 0


def test_token_level_gives_partial_credit_with_rasa_labels(case):
    report = entity_token_report(*case)
    assert set(report) - {"micro avg", "macro avg", "weighted avg", "accuracy"} == {
        "artist", "city.destination", "city.origin", "genre"}
    # city.origin: gold new+york, predicted york → P 1, R 1/2
    assert report["city.origin"]["precision"] == pytest.approx(1.0)
    assert report["city.origin"]["recall"] == pytest.approx(0.5)
    # micro over entity tokens: 2 right (york, berlin) of 3 predicted and 6 gold
    assert report["micro avg"]["precision"] == pytest.approx(2 / 3)
    assert report["micro avg"]["recall"] == pytest.approx(2 / 6)
    assert report["micro avg"]["f1-score"] == pytest.approx(f1(2 / 3, 1 / 3))
    assert report["accuracy"] == pytest.approx(10 / 14)  # no_entity tokens included
    assert report["genre"]["confused_with"] == {"artist": 1}
    assert report["artist"]["confused_with"] == {}  # misses to no_entity are not listed
    assert NO_ENTITY not in report


def test_token_label_joins_entity_group_role():
    text = "from paris"
    gold = [Message(text, None, [span(text, "paris", "city", role="origin", group="1")])]
    report = entity_token_report(gold, [pred(text, "x", 1.0, gold[0].entities)])
    assert report["city.1.origin"]["f1-score"] == 1.0


def test_lenient_counts_any_shared_token_of_the_same_type(case):
    scores = lenient_entity_scores(*case)
    # gold found: new york (york), berlin → 2 of 4; predictions right: york, berlin → 2 of 3
    assert scores["recall"] == pytest.approx(2 / 4)
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["f1-score"] == pytest.approx(f1(2 / 3, 1 / 2))
    assert scores["support"] == 4


def test_entity_errors_lists_messages_whose_spans_differ(case):
    errors = entity_errors(*case)
    assert [e["text"] for e in errors] == ["fly from new york to berlin",
                                           "play jazz by miles davis"]
    assert errors[0]["entities"][0] == {"start": 9, "end": 17, "value": "new york",
                                        "entity": "city", "role": "origin"}
    assert errors[1]["predicted_entities"][0]["entity"] == "artist"


def test_no_entities_anywhere_gives_an_empty_report():
    gold = [Message("hello", "greet")]
    preds = [pred("hello", "greet", 1.0)]
    report = entity_span_report(gold, preds)
    assert report["micro avg"] == {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0}
    assert entity_token_report(gold, preds)["micro avg"]["support"] == 0
    assert lenient_entity_scores(gold, preds)["f1-score"] == 0.0


# ---- run outputs -------------------------------------------------------------------------------
def assert_png(path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5_000, path


def test_evaluate_nlu_writes_every_file(case, tmp_path):
    meta = {"task": "nlu", "dataset": "toy", "split": "test", "seed": 3, "epochs": 2}
    summary = evaluate_nlu(*case, tmp_path, meta, lenient=True)

    for name in ("summary.json", "intent_report.json", "entity_report.json", "errors.json",
                 "report.md"):
        assert (tmp_path / name).is_file(), name
    for name in ("intent_confusion_matrix.png", "intent_histogram.png"):
        assert_png(tmp_path / name)
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert list(summary)[:5] == list(meta)
    assert summary["n_examples"] == 4
    assert summary["intent_accuracy"] == pytest.approx(0.5)
    assert summary["intent_macro_f1"] == pytest.approx(4 / 9)
    assert summary["intent_weighted_f1"] == pytest.approx(0.5)
    assert summary["entity_f1"] == pytest.approx(f1(1 / 3, 1 / 4))
    assert summary["entity_precision"] == pytest.approx(1 / 3)
    assert summary["entity_recall"] == pytest.approx(1 / 4)
    assert summary["entity_token_f1"] == pytest.approx(f1(2 / 3, 1 / 3))
    assert summary["entity_lenient_f1"] == pytest.approx(f1(2 / 3, 1 / 2))
    assert summary["role_f1"] == pytest.approx(0.5)
    assert "group_f1" not in summary

    entity_report = json.loads((tmp_path / "entity_report.json").read_text())
    assert set(entity_report) == {"exact_span", "token_level", "roles", "lenient"}
    errors = json.loads((tmp_path / "errors.json").read_text())
    assert len(errors["intent_errors"]) == 2 and len(errors["entity_errors"]) == 2

    markdown = (tmp_path / "report.md").read_text()
    for needle in ("intent_accuracy", "entity_f1", "entity_token_f1", "play_music",
                   "book_flight (1)", "genre", "(intent_confusion_matrix.png)",
                   "(intent_histogram.png)", "play jazz by miles davis"):
        assert needle in markdown, needle


def test_evaluate_nlu_omits_keys_that_do_not_apply(tmp_path):
    gold = [Message("hello", "greet"), Message("bye", "goodbye")]
    preds = [pred("hello", "greet", 0.9), pred("bye", "greet", 0.7)]
    summary = evaluate_nlu(gold, preds, tmp_path / "a", {"task": "nlu"}, plots=False)
    assert summary["intent_accuracy"] == 0.5
    assert not [k for k in summary if k.startswith(("entity_", "role_", "group_"))]
    assert json.loads((tmp_path / "a" / "entity_report.json").read_text()) == {}
    assert not list((tmp_path / "a").glob("*.png"))

    text = "to rome"
    gold = [Message(text, None, [span(text, "rome", "city", group="2")])]
    summary = evaluate_nlu(gold, [pred(text, "x", 1.0, gold[0].entities)], tmp_path / "b",
                           {"task": "entities"}, plots=False)
    assert not [k for k in summary if k.startswith("intent_")]
    assert summary["entity_f1"] == 1.0 and summary["group_f1"] == 1.0
    assert "role_f1" not in summary and "entity_lenient_f1" not in summary


# ---- plots and aggregation ---------------------------------------------------------------------
def test_plots_handle_many_labels_and_empty_misses(tmp_path):
    labels = [f"intent_{i:03d}" for i in range(120)]
    gold = labels * 2
    pred = labels + labels[1:] + labels[:1]
    path = plot_confusion_matrix(gold, pred, tmp_path / "cm.png", normalize=True)
    assert_png(path)
    assert_png(plot_confusion_matrix(["a", "b", "b"], ["a", "b", "a"], tmp_path / "small.png"))
    assert_png(plot_confidence_histogram([0.9, 0.95, 0.4], [], tmp_path / "hist.png"))


def test_aggregate_summaries_mean_and_sample_sd():
    runs = [{"task": "nlu", "seed": 1, "intent_accuracy": 0.9, "dataset": "a"},
            {"task": "nlu", "seed": 2, "intent_accuracy": 0.8, "dataset": "b"},
            {"task": "nlu", "seed": 3, "intent_accuracy": 1.0, "dataset": "a"}]
    agg = aggregate_summaries(runs)
    assert agg["task"] == "nlu" and "dataset" not in agg
    acc = agg["intent_accuracy"]
    assert acc["mean"] == pytest.approx(0.9)
    assert acc["sd"] == pytest.approx(math.sqrt((0.0 ** 2 + 0.1 ** 2 + 0.1 ** 2) / 2))
    assert acc["n"] == 3 and acc["values"] == [0.9, 0.8, 1.0]
    assert format_mean_sd(agg, "intent_accuracy") == "90.00 ± 10.00"
    single = aggregate_summaries(runs[:1])
    assert single["intent_accuracy"]["sd"] == 0.0
    assert format_mean_sd(single, "intent_accuracy", digits=1) == "90.0 ± 0.0"
    with pytest.raises(KeyError, match="entity_f1"):
        format_mean_sd(agg, "entity_f1")
