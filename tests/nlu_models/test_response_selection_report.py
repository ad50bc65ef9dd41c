"""Response-selection evaluation (Rasa's ``response_selection_*`` outputs of ``rasa test nlu``) on
synthetic parse results whose metrics are worked out by hand below.

The case (gold intent → predicted intent, predicted response key):

1. "what is your name"  faq/ask_name     → faq 0.9,   faq/ask_name 0.93
2. "who are you"        faq/ask_name     → faq 0.8,   faq/ask_weather 0.7
3. "how is the weather" faq/ask_weather  → faq 0.85,  faq/ask_weather 0.6
4. "are you a bot"      faq/ask_bot      → greet 0.6, no response
5. "hello"              greet            → greet 0.95 (its selector output is not scored)
6. "hi there"           greet            → faq 0.55

Response keys (rows 1-4): ask_name P 1 R 1/2 F1 2/3; ask_weather P 1/2 R 1 F1 2/3; ask_bot 0;
accuracy 2/4, macro F1 4/9, weighted F1 (2 · 2/3 + 2/3) / 4 = 1/2.
Intents, collapsed: faq P 3/4 R 3/4; greet P 1/2 R 1/2; accuracy 4/6.
"""
from __future__ import annotations

import json
import logging

import pytest

from experiments.tracking import RESPONSE_ERROR_COLUMNS, error_rows
from nlu_models.data.schema import Message
from nlu_models.evaluation import (NO_RESPONSE, aggregate_summaries, evaluate_nlu, intent_errors,
                                   intent_report, out_of_scope_metrics, predicted_response,
                                   response_selection_errors, response_selection_report)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RESPONSE_FILES = ("response_selection_report.json", "response_selection_errors.json",
                  "response_selection_confusion_matrix.png", "response_selection_histogram.png")


def parse(text: str, intent: str, confidence: float, key: str | None = None,
          key_confidence: float = 0.0, selector: bool = True) -> dict:
    """A Rasa 3.6 parse result; ``selector``: with a ``response_selector`` field."""
    result = {"text": text, "intent": {"name": intent, "confidence": confidence},
              "intent_ranking": [{"name": intent, "confidence": confidence}], "entities": []}
    if selector:
        response = {"responses": [{"text": f"answer of {key}"}] if key else None,
                    "confidence": key_confidence, "intent_response_key": key,
                    "utter_action": f"utter_{key}" if key else None}
        ranking = [{"confidence": key_confidence, "intent_response_key": key}] if key else []
        result["response_selector"] = {"all_retrieval_intents": ["faq"],
                                       "default": {"response": response, "ranking": ranking}}
    return result


def case(selector: bool = True) -> tuple[list[Message], list[dict]]:
    rows = [("what is your name", "faq/ask_name", "faq", 0.9, "faq/ask_name", 0.93),
            ("who are you", "faq/ask_name", "faq", 0.8, "faq/ask_weather", 0.7),
            ("how is the weather", "faq/ask_weather", "faq", 0.85, "faq/ask_weather", 0.6),
            ("are you a bot", "faq/ask_bot", "greet", 0.6, None, 0.0),
            ("hello", "greet", "greet", 0.95, "faq/ask_name", 0.4),
            ("hi there", "greet", "faq", 0.55, "faq/ask_bot", 0.3)]
    gold = [Message(text, intent) for text, intent, *_ in rows]
    preds = [parse(text, intent, conf, key, key_conf, selector)
             for text, _, intent, conf, key, key_conf in rows]
    return gold, preds


def f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


# ---- metrics -----------------------------------------------------------------------------------
def test_response_report_matches_hand_computed_numbers():
    report = response_selection_report(*case())
    assert set(report) == {"faq/ask_bot", "faq/ask_name", "faq/ask_weather", "accuracy",
                           "macro avg", "weighted avg"}
    assert report["accuracy"] == pytest.approx(0.5)
    name = dict(report["faq/ask_name"])
    assert name.pop("f1-score") == pytest.approx(f1(1.0, 0.5))
    assert name == {"precision": 1.0, "recall": 0.5, "support": 2,
                    "confused_with": {"faq/ask_weather": 1}}
    assert report["faq/ask_weather"]["precision"] == pytest.approx(0.5)
    assert report["faq/ask_weather"]["f1-score"] == pytest.approx(2 / 3)
    assert report["faq/ask_weather"]["confused_with"] == {}
    assert report["faq/ask_bot"]["f1-score"] == 0.0
    assert report["faq/ask_bot"]["confused_with"] == {NO_RESPONSE: 1}
    assert report["macro avg"]["f1-score"] == pytest.approx(4 / 9)
    assert report["macro avg"]["precision"] == pytest.approx(0.5)
    assert report["weighted avg"]["f1-score"] == pytest.approx(0.5)
    assert report["weighted avg"]["support"] == 4


def test_response_errors_in_rasa_shape_most_confident_first():
    errors = response_selection_errors(*case())
    assert errors == [
        {"text": "who are you", "intent_response_key_target": "faq/ask_name",
         "intent_response_key_prediction": {"name": "faq/ask_weather", "confidence": 0.7}},
        {"text": "are you a bot", "intent_response_key_target": "faq/ask_bot",
         "intent_response_key_prediction": {"name": NO_RESPONSE, "confidence": 0.0}}]


def test_predicted_response_without_a_prediction_is_none():
    assert predicted_response({}) == (NO_RESPONSE, 0.0)
    assert predicted_response({"response_selector": {"all_retrieval_intents": []}}) == \
        (NO_RESPONSE, 0.0)
    assert predicted_response(parse("x", "faq", 1.0, None, 0.2)) == (NO_RESPONSE, 0.2)
    assert predicted_response(parse("x", "faq", 1.0, "faq/a", 0.9)) == ("faq/a", 0.9)


def test_intents_are_scored_on_the_collapsed_retrieval_intent():
    gold, preds = case()
    report = intent_report(gold, preds)
    assert set(report) == {"faq", "greet", "accuracy", "macro avg", "weighted avg"}
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["faq"]["precision"] == pytest.approx(0.75)
    assert report["faq"]["recall"] == pytest.approx(0.75)
    assert report["faq"]["support"] == 4
    assert report["faq"]["confused_with"] == {"greet": 1}
    assert report["greet"]["f1-score"] == pytest.approx(0.5)
    assert [(e["text"], e["intent"]) for e in intent_errors(gold, preds)] == \
        [("are you a bot", "faq"), ("hi there", "greet")]
    # a retrieval message predicted as its retrieval intent is in scope and right
    oos = out_of_scope_metrics(gold[:1] + [Message("weather on mars?", "oos")],
                               preds[:1] + [parse("", "oos", 0.9)], "oos")
    assert oos["in_scope_accuracy"] == 1.0 and oos["oos_recall"] == 1.0


# ---- run outputs -------------------------------------------------------------------------------
def test_evaluate_nlu_writes_the_response_selection_files(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        summary = evaluate_nlu(*case(), tmp_path, {"task": "nlu", "split": "test"})
    assert not caplog.records
    assert summary["intent_accuracy"] == pytest.approx(4 / 6)
    assert summary["response_accuracy"] == pytest.approx(0.5)
    assert summary["response_macro_f1"] == pytest.approx(4 / 9)
    assert summary["response_weighted_f1"] == pytest.approx(0.5)
    assert summary["num_response_examples"] == 4
    assert json.loads((tmp_path / "summary.json").read_text()) == summary

    report = json.loads((tmp_path / "response_selection_report.json").read_text())
    assert report == response_selection_report(*case())
    errors = json.loads((tmp_path / "response_selection_errors.json").read_text())
    assert errors == response_selection_errors(*case())
    for name in RESPONSE_FILES[2:]:
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC, name
    assert "faq/ask_name" not in json.loads((tmp_path / "intent_report.json").read_text())

    markdown = (tmp_path / "report.md").read_text()
    for needle in ("## Response selection", "| response_accuracy | 50.00 |",
                   "faq/ask_weather (1)", "who are you\": faq/ask_name → faq/ask_weather (0.70)",
                   "(response_selection_confusion_matrix.png)",
                   "(response_selection_histogram.png)"):
        assert needle in markdown, needle


def test_retrieval_intents_without_a_selector_warn_once_and_skip(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="nlu_models.evaluation"):
        summary = evaluate_nlu(*case(selector=False), tmp_path, {"task": "nlu"})
    warnings = [r for r in caplog.records if "response_selector" in r.getMessage()]
    assert len(warnings) == 1 and "faq" in warnings[0].getMessage()
    assert not [k for k in summary if k.startswith(("response_", "num_response"))]
    assert summary["intent_accuracy"] == pytest.approx(4 / 6)
    assert not [name for name in RESPONSE_FILES if (tmp_path / name).exists()]
    assert "Response selection" not in (tmp_path / "report.md").read_text()


def test_data_without_retrieval_intents_changes_nothing(tmp_path, caplog):
    gold = [Message("hello", "greet"), Message("bye", "goodbye")]
    preds = [parse("hello", "greet", 0.9, "faq/ask_name", 0.5), parse("bye", "greet", 0.7)]
    with caplog.at_level(logging.WARNING):
        summary = evaluate_nlu(gold, preds, tmp_path, {"task": "nlu"})
    assert not caplog.records
    assert response_selection_report(gold, preds) == {}
    assert not [k for k in summary if "response" in k]
    assert not [name for name in RESPONSE_FILES if (tmp_path / name).exists()]
    assert "Response selection" not in (tmp_path / "report.md").read_text()


def test_response_keys_aggregate_and_become_a_wandb_table(tmp_path):
    runs = [evaluate_nlu(*case(), tmp_path / "a", {"seed": 1}, plots=False),
            {"seed": 2, "response_accuracy": 1.0, "num_response_examples": 4}]
    agg = aggregate_summaries(runs)
    assert agg["response_accuracy"]["mean"] == pytest.approx(0.75)
    assert agg["response_accuracy"]["sd"] == pytest.approx((2 * 0.25 ** 2) ** 0.5)  # ddof 1
    assert agg["num_response_examples"]["values"] == [4.0, 4.0]
    assert agg["response_macro_f1"]["n"] == 1

    columns, rows = error_rows({"intent_errors": [], "entity_errors": [],
                                "response_selection_errors": response_selection_errors(*case())}
                               )["response_selection_errors"]
    assert columns == RESPONSE_ERROR_COLUMNS
    assert rows[0] == ["who are you", "faq/ask_name", "faq/ask_weather", 0.7]
