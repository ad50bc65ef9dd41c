"""Story evaluation on dialogue acts (action_map.json): a tiny hand-made map and stories whose
numbers are worked out by hand, the map reader's checks, and the real MultiWOZ e2e map."""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from dialogue_models.domain import read_domain
from dialogue_models.evaluation import (ActionPrediction, StoryResult, act_label,
                                        evaluate_stories, format_story_summary, map_results,
                                        read_action_map)
from dialogue_models.stories import read_stories
from dialogue_models.story_model import ActionStep, Story, UserStep
from nlu_models.data.errors import DataError
from tests.conftest import shared_data

LISTEN = "action_listen"
ACTS = {
    "Where to?": ["request_taxi"],
    "Where are you going?": ["request_taxi"],
    "Booked.\tAnything else?": ["reqmore_general", "inform_taxi"],  # a TAB, as in the TED files
    "Your taxi is booked.": ["inform_taxi"],
    "Bye!": ["bye_general"],
    "Goodbye.": ["bye_general", "bye_general"],
}
BOOKED = "Booked. Anything else?"  # how the story readers write the tabbed utterance


def write_map(tmp_path: Path, content) -> Path:
    path = tmp_path / "action_map.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    return path


def e2e_story(name: str, *turns: str) -> Story:
    """user text, bot utterance, user text, bot utterance, ..."""
    return Story(name, [UserStep(text=t) if i % 2 == 0 else ActionStep(text=t)
                        for i, t in enumerate(turns)])


def p(gold: str, predicted: str | None = None, step: int | None = None) -> ActionPrediction:
    return ActionPrediction(gold, predicted or gold, "TEDPolicy", 0.9, step)


def results() -> list[StoryResult]:
    """taxi: 6 predictions; right utterance only for the 3 listens; right acts except
    'Your taxi is booked.' (inform_taxi) for 'Booked. Anything else?' (inform_taxi +
    reqmore_general). short: 4 predictions; the first a different utterance with the same act."""
    taxi = e2e_story("taxi", "I need a taxi", "Where to?", "the station", BOOKED, "no", "Bye!")
    short = e2e_story("short", "taxi please", "Where are you going?", "bye", "Goodbye.")
    return [
        StoryResult(taxi, [p("Where to?", "Where are you going?", 1), p(LISTEN),
                           p(BOOKED, "Your taxi is booked.", 3), p(LISTEN),
                           p("Bye!", "Goodbye.", 5), p(LISTEN)]),
        StoryResult(short, [p("Where are you going?", "Where to?", 1), p(LISTEN),
                            p("Goodbye.", step=3), p(LISTEN)]),
    ]


@pytest.fixture
def scored(tmp_path, monkeypatch):
    """(summary, reports folder, the labels the confusion matrix was drawn from)."""
    import dialogue_models.evaluation.report as report

    plotted = {}
    monkeypatch.setattr(report, "plot_confusion_matrix",
                        lambda gold, predicted, path, title: plotted.update(gold=gold,
                                                                            predicted=predicted))
    summary = evaluate_stories(results(), tmp_path, dataset="tiny_woz",
                               action_map=read_action_map(write_map(tmp_path, ACTS)))
    return summary, tmp_path / "reports", plotted


def test_act_label_is_the_sorted_set_of_acts():
    assert act_label(["request_train", "inform_train"]) == "inform_train+request_train"
    assert act_label(["bye_general", "bye_general"]) == "bye_general"


def test_read_action_map_joins_acts_and_normalises_tabs(tmp_path):
    labels = read_action_map(write_map(tmp_path, ACTS))
    assert labels == {"Where to?": "request_taxi", "Where are you going?": "request_taxi",
                      BOOKED: "inform_taxi+reqmore_general", "Your taxi is booked.": "inform_taxi",
                      "Bye!": "bye_general", "Goodbye.": "bye_general"}


@pytest.mark.parametrize("content, message", [
    (["request_taxi"], "must be a JSON object"),
    ({"Where to?": "request_taxi"}, "'Where to?': expected a non-empty list of act names"),
    ({"Where to?": []}, "expected a non-empty list"),
    ({"a\tb": ["inform_taxi"], "a b": ["request_taxi"]},
     "'a b' is mapped twice, to 'inform_taxi' and 'request_taxi'"),
])
def test_bad_action_maps_are_refused_naming_the_file(tmp_path, content, message):
    with pytest.raises(DataError, match=re.escape(message)) as err:
        read_action_map(write_map(tmp_path, content))
    assert str(err.value).startswith(str(tmp_path / "action_map.json"))


def test_actions_missing_from_the_map_are_their_own_label(tmp_path, caplog):
    story = e2e_story("s", "hi", "Hello there", "taxi", "Where to?")
    result = StoryResult(story, [p("Hello there", "utter_greet", 1), p(LISTEN, "Where to?"),
                                 p("Where to?", "Where are you going?", 3)])
    with caplog.at_level(logging.WARNING):
        (mapped,) = map_results([result], read_action_map(write_map(tmp_path, ACTS)))
    assert [(m.gold, m.predicted) for m in mapped.predictions] == [
        ("Hello there", "utter_greet"), (LISTEN, "request_taxi"),
        ("request_taxi", "request_taxi")]
    assert [(m.gold_action, m.predicted_action) for m in mapped.predictions] == [
        ("Hello there", "utter_greet"), (LISTEN, "Where to?"),
        ("Where to?", "Where are you going?")]
    assert "1 of 2 gold bot actions are not in the action map" in caplog.text
    assert result.predictions[0].gold_action is None  # the input is left as it was


def test_scores_are_on_act_labels_with_the_literal_accuracy_beside(scored):
    summary, out, _ = scored
    # 10 predictions (5 listens, all right). Acts: 9 right (the partial inform_taxi is wrong);
    # literal utterances: 6 right (the listens and 'Goodbye.').
    assert summary["action_accuracy"] == pytest.approx(9 / 10)
    assert summary["action_accuracy_excluding_listen"] == pytest.approx(4 / 5)
    assert summary["utterance_action_accuracy"] == pytest.approx(6 / 10)
    assert summary["utterance_action_accuracy_excluding_listen"] == pytest.approx(1 / 5)
    # rows: request_taxi 2/2, bye_general 2/2, inform_taxi+reqmore_general 0 of 1, listen 5/5
    assert summary["action_weighted_f1"] == pytest.approx(9 / 10)
    assert summary["action_weighted_f1_excluding_listen"] == pytest.approx(4 / 5)
    assert summary["action_macro_f1_excluding_listen"] == pytest.approx(2 / 3)
    assert summary["conversation_accuracy"] == 0.5  # 'short' is right on acts, not on words
    assert json.loads((out / "summary.json").read_text()) == summary
    report = json.loads((out / "story_report.json").read_text())
    rows = {k for k, v in report.items() if isinstance(v, dict) and "support" in v
            and not k.endswith(" avg")}
    assert rows == {"request_taxi", "bye_general", "inform_taxi+reqmore_general", LISTEN}
    assert report["request_taxi"]["support"] == 2
    assert report["inform_taxi+reqmore_general"]["confused_with"] == {"inform_taxi": 1}
    assert report["conversation_accuracy"]["correct"] == 1


def test_without_the_map_the_same_predictions_score_on_utterances(tmp_path):
    summary = evaluate_stories(results(), None)
    assert summary["action_accuracy"] == pytest.approx(6 / 10)
    assert summary["conversation_accuracy"] == 0.0
    assert not any(key.startswith("utterance_") for key in summary)


def test_errors_stories_plot_and_printouts_use_the_act_labels(scored):
    summary, out, plotted = scored
    errors = json.loads((out / "errors.json").read_text())
    assert errors == [{"story": "taxi", "step": 3, "gold": "inform_taxi+reqmore_general",
                       "predicted": "inform_taxi", "gold_action": BOOKED,
                       "predicted_action": "Your taxi is booked.", "policy": "TEDPolicy",
                       "confidence": 0.9}]
    assert plotted["gold"][:3] == ["request_taxi", LISTEN, "inform_taxi+reqmore_general"]
    assert plotted["predicted"][:3] == ["request_taxi", LISTEN, "inform_taxi"]
    failed = (out / "failed_test_stories.yml").read_text()
    assert "  - bot: Booked. Anything else?  # predicted: inform_taxi (Your taxi is booked.)" \
        in failed.splitlines()
    assert [s.name for s in read_stories(out / "failed_test_stories.yml").stories] == ["taxi"]
    passed = read_stories(out / "successful_test_stories.yml").stories
    assert passed == [results()[1].story]
    text = format_story_summary(summary)
    assert "\tAccuracy:         0.900\n\tUtterance accuracy: 0.600\n" in text
    assert "\tAccuracy:         0.800\n\tUtterance accuracy: 0.200" in text
    md = (out / "report.md").read_text()
    assert "| utterance_action_accuracy | 60.0 | 20.0 |" in md
    assert "- taxi: inform_taxi+reqmore_general → inform_taxi (TEDPolicy, 0.90)" in md


def test_a_wrong_listen_is_written_as_the_literal_action(tmp_path):
    story = e2e_story("s", "taxi", "Where to?")
    result = StoryResult(story, [p("Where to?", step=1), p(LISTEN, "Bye!")])
    evaluate_stories([result], tmp_path, plots=False,
                     action_map=read_action_map(write_map(tmp_path, ACTS)))
    lines = (tmp_path / "reports" / "failed_test_stories.yml").read_text().splitlines()
    assert lines[-1] == "  - action: action_listen  # predicted: bye_general (Bye!)"


def test_the_multiwoz_e2e_map_covers_every_utterance_action():
    root = shared_data("multiwoz21_ted/e2e-status")
    labels = read_action_map(root / "action_map.json")
    actions = set(read_domain(root / "domain.yml").actions)  # TABs replaced, as in the stories
    assert len(labels) == len(actions) == 6529 and set(labels) == actions
    assert labels["Located at _number_ trinity street ."] == "inform_attraction"
    assert labels["I don t seem to be finding anything called _hotel_name_ . What type of food "
                  "does the restaurant serve?"] == "nooffer_restaurant+request_restaurant"
