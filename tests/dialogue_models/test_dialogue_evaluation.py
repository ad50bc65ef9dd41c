"""rasa-test-core-shaped story evaluation: numbers by hand, the marked story files, the summary."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from dialogue_models.evaluation import (ActionPrediction, StoryResult, annotated_steps,
                                        evaluate_stories, format_story_summary,
                                        is_in_training_data)
from dialogue_models.evaluation.failed_stories import listen_position
from dialogue_models.stories import read_stories, stories_from_yaml, stories_to_yaml
from dialogue_models.story_model import ActionStep, SlotWasSet, Story, StoryData, UserStep
from nlu_models.data.yaml_io import parse_yaml

STORIES = textwrap.dedent("""\
    version: "3.1"
    stories:
    - story: happy
      steps:
      - intent: greet
      - action: utter_greet
      - intent: bye
      - action: utter_goodbye
    - story: sad
      steps:
      - intent: greet
      - action: utter_greet
      - slot_was_set:
        - mood: sad
      - intent: mood_unhappy
      - action: utter_cheer_up
      - action: utter_did_that_help
      - intent: bye
      - action: utter_goodbye
    """)
LISTEN = "action_listen"


def p(gold: str, predicted: str | None = None, policy: str | None = "RulePolicy",
      step: int | None = None, confidence: float = 1.0) -> ActionPrediction:
    return ActionPrediction(gold, predicted or gold, policy, confidence, step)


def stories() -> list[Story]:
    return stories_from_yaml(parse_yaml(STORIES, "x.yml"), "x.yml").stories


def results(all_correct: bool = False) -> list[StoryResult]:
    """happy: 4 right. sad: 7 predictions, utter_cheer_up and the listen after
    utter_did_that_help both predicted as utter_goodbye (by TED)."""
    happy, sad = stories()
    wrong = None if all_correct else "utter_goodbye"
    return [
        StoryResult(happy, [p("utter_greet", step=1), p(LISTEN),
                            p("utter_goodbye", policy="MemoizationPolicy", step=3), p(LISTEN)]),
        StoryResult(sad, [p("utter_greet", step=1), p(LISTEN),
                          p("utter_cheer_up", wrong, "TEDPolicy", 4, 0.6),
                          p("utter_did_that_help", policy="TEDPolicy", step=5),
                          p(LISTEN, wrong, "TEDPolicy", confidence=0.4),
                          p("utter_goodbye", policy="MemoizationPolicy", step=7), p(LISTEN)]),
    ]


@pytest.fixture
def evaluated(tmp_path: Path) -> tuple[dict, Path]:
    summary = evaluate_stories(results(), tmp_path, dataset="moodbot",
                               extra_summary={"seed": 1, "epochs": 3})
    return summary, tmp_path / "reports"


def test_report_numbers_match_hand_computation(evaluated):
    summary, out = evaluated
    report = json.loads((out / "story_report.json").read_text())
    # 11 predictions, 9 right; action_listen: 5 gold, 4 right, never wrongly predicted
    assert report["accuracy"] == pytest.approx(9 / 11)
    assert report[LISTEN]["support"] == 5
    assert report[LISTEN]["recall"] == pytest.approx(4 / 5)
    assert report["utter_goodbye"]["precision"] == pytest.approx(2 / 4)
    assert report["utter_cheer_up"]["f1-score"] == 0.0
    assert report["utter_cheer_up"]["confused_with"] == {"utter_goodbye": 1}
    assert report["weighted avg"]["f1-score"] == pytest.approx(79 / 99)
    assert report["macro avg"]["f1-score"] == pytest.approx(32 / 45)
    assert {"micro avg", "weighted avg", "macro avg"} <= set(report)
    assert report["conversation_accuracy"] == {"accuracy": 0.5, "correct": 1,
                                               "with_warnings": 0, "total": 2}
    assert summary["action_accuracy"] == pytest.approx(9 / 11)
    assert summary["action_weighted_f1"] == pytest.approx(79 / 99)
    assert summary["action_weighted_precision"] == pytest.approx(9 / 11)
    assert summary["action_macro_f1"] == pytest.approx(32 / 45)
    # without action_listen: 6 predictions, 5 right; utter_goodbye precision 2/3, F1 0.8
    assert summary["num_actions_excluding_listen"] == 6
    assert summary["action_accuracy_excluding_listen"] == pytest.approx(5 / 6)
    assert summary["action_weighted_f1_excluding_listen"] == pytest.approx(23 / 30)
    assert summary["action_weighted_precision_excluding_listen"] == pytest.approx(13 / 18)
    assert summary["action_macro_f1_excluding_listen"] == pytest.approx(0.7)


def test_summary_keys_in_data_fraction_and_policy_counts(evaluated):
    summary, out = evaluated
    assert json.loads((out / "summary.json").read_text()) == summary
    assert list(summary)[:5] == ["task", "dataset", "split", "seed", "epochs"]
    assert (summary["task"], summary["dataset"], summary["split"]) == ("dialogue", "moodbot",
                                                                       "test")
    assert summary["conversation_accuracy"] == 0.5
    assert (summary["num_actions"], summary["num_stories"]) == (11, 2)
    assert summary["in_data_fraction"] == pytest.approx(8 / 11)  # 3 TED predictions
    assert summary["policy_counts"] == {"RulePolicy": 6, "TEDPolicy": 3, "MemoizationPolicy": 2}


def test_in_training_data_policies():
    assert is_in_training_data("RulePolicy") and is_in_training_data("AugmentedMemoizationPolicy")
    assert is_in_training_data("policy_2_MemoizationPolicy")  # Rasa 2.x naming
    assert not is_in_training_data("TEDPolicy") and not is_in_training_data(None)


def test_failed_stories_mark_the_wrong_lines_and_read_back(evaluated):
    _, out = evaluated
    text = (out / "failed_test_stories.yml").read_text()
    lines = text.splitlines()
    assert lines[0] == 'version: "3.1"'
    assert "- story: sad" in lines and "- story: happy" not in lines
    assert "  - action: utter_cheer_up  # predicted: utter_goodbye" in lines
    listen = lines.index("  - action: action_listen  # predicted: utter_goodbye")
    assert lines[listen - 1] == "  - action: utter_did_that_help"
    assert lines[listen + 1] == "  - intent: bye"
    (written,) = read_stories(out / "failed_test_stories.yml").stories
    expected = stories()[1].steps
    assert written.name == "sad"
    assert written.steps == expected[:6] + [ActionStep(LISTEN)] + expected[6:]


def test_successful_stories_are_written_as_the_stories_writer_writes_them(evaluated):
    _, out = evaluated
    text = (out / "successful_test_stories.yml").read_text()
    happy = stories()[0]
    assert text.splitlines()[1:] == stories_to_yaml(StoryData([happy])).splitlines()[1:]
    assert read_stories(out / "successful_test_stories.yml").stories == [happy]


def test_all_good_writes_rasas_comment(tmp_path):
    summary = evaluate_stories(results(all_correct=True), tmp_path, plots=False)
    assert summary["conversation_accuracy"] == 1.0 and summary["action_accuracy"] == 1.0
    failed = tmp_path / "reports" / "failed_test_stories.yml"
    assert failed.read_text().startswith("# None of the test stories failed - all good!\n")
    assert read_stories(failed).stories == []
    assert len(read_stories(tmp_path / "reports" / "successful_test_stories.yml").stories) == 2
    assert json.loads((tmp_path / "reports" / "errors.json").read_text()) == []
    assert not (tmp_path / "reports" / "story_confusion_matrix.png").exists()


def test_errors_plot_and_markdown(evaluated):
    _, out = evaluated
    errors = json.loads((out / "errors.json").read_text())
    assert errors == [
        {"story": "sad", "step": 4, "gold": "utter_cheer_up", "predicted": "utter_goodbye",
         "policy": "TEDPolicy", "confidence": 0.6},
        {"story": "sad", "step": None, "gold": LISTEN, "predicted": "utter_goodbye",
         "policy": "TEDPolicy", "confidence": 0.4}]
    assert (out / "story_confusion_matrix.png").stat().st_size > 1000
    md = (out / "report.md").read_text()
    assert "# Story evaluation: dialogue / moodbot / test" in md
    assert "| action_accuracy | 81.8 | 83.3 |" in md
    assert "| in_data_fraction | 72.7 | |" in md
    assert "| utter_cheer_up | 0.0 | 0.0 | 0.0 | 1 | utter_goodbye (1) |" in md
    assert "- sad: utter_cheer_up → utter_goodbye (TEDPolicy, 0.60)" in md
    assert "![Action confusion matrix](story_confusion_matrix.png)" in md


def test_format_story_summary_prints_like_rasa(evaluated):
    summary, _ = evaluated
    text = format_story_summary(summary)
    assert text.startswith("Evaluation Results on CONVERSATION level:\n"
                           "\tCorrect:          1 / 2\n\tAccuracy:         0.500\n")
    assert "Evaluation Results on ACTION level:\n\tCorrect:          9 / 11\n" in text
    assert f"\tF1-Score:         {79 / 99:.3f}\n\tPrecision:        {9 / 11:.3f}\n" in text
    assert "\tIn-data fraction: 0.727" in text
    assert "(excluding action_listen):\n\tCorrect:          5 / 6\n" in text


def test_no_out_dir_only_returns_the_summary(tmp_path):
    summary = evaluate_stories(results(), None, extra_summary={"action_accuracy": -1})
    assert summary["action_accuracy"] == pytest.approx(9 / 11)  # metrics win
    assert list(tmp_path.iterdir()) == []


def test_listen_goes_after_the_slot_events_of_the_preceding_action():
    steps = [UserStep("greet"), ActionStep("action_search"), SlotWasSet([("found", True)]),
             UserStep("bye")]
    assert listen_position(steps, 1) == 3
    assert listen_position(steps, -1) == 0  # before any action: before the first user turn
    story = Story("s", steps)
    marked = annotated_steps(story, [p("action_search", step=1), p(LISTEN, "utter_bye")])
    assert marked[3] == ({"action": LISTEN}, "predicted: utter_bye")
    assert marked[2] == ({"slot_was_set": [{"found": True}]}, None)


def test_a_final_wrong_listen_and_multiline_bot_text_read_back(tmp_path):
    story = Story("e2e", [UserStep(text="hi"), ActionStep(text="hello\nthere")])
    result = StoryResult(story, [p("hello\nthere", "utter_x", "TEDPolicy", 1),
                                 p(LISTEN, "utter_y", "TEDPolicy")])
    evaluate_stories([result], tmp_path, plots=False)
    failed = tmp_path / "reports" / "failed_test_stories.yml"
    lines = failed.read_text().splitlines()
    assert lines[-1] == "  - action: action_listen  # predicted: utter_y"
    assert any(line.endswith("'  # predicted: utter_x") for line in lines)
    (written,) = read_stories(failed).stories
    assert written.steps == story.steps + [ActionStep(LISTEN)]


def test_a_prediction_for_a_non_action_step_is_rejected(tmp_path):
    happy = stories()[0]
    with pytest.raises(ValueError, match="story 'happy': a prediction for step 0"):
        evaluate_stories([StoryResult(happy, [p("utter_greet", step=0)])], tmp_path, plots=False)
    assert not (tmp_path / "reports").exists()  # checked before anything is written
