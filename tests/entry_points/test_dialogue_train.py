"""train → evaluate → story reports for the dialogue policies on the demo bot, with the tiny twin
configs, through the real Hydra configs and entry points."""
from __future__ import annotations

import json

import pytest

from dialogue_models.inference import DialoguePolicy
from dialogue_models.project import load_bot
from dialogue_models.stories import read_stories
from experiments.evaluate import evaluate
from experiments.train import train
from tests.entry_points.conftest import compose_config

REPORT_FILES = ["summary.json", "story_report.json", "failed_test_stories.yml",
                "successful_test_stories.yml", "story_confusion_matrix.png", "errors.json",
                "report.md"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("ted")
    cfg = compose_config("train", ["experiment=ted_tiny"], out)
    return cfg, train(cfg), out


def test_dialogue_training_writes_story_reports(trained):
    cfg, summary, out = trained
    for name in REPORT_FILES:
        assert (out / "reports" / name).is_file(), name
    written = json.loads((out / "reports" / "summary.json").read_text())
    for key in ("task", "dataset", "split", "seed", "epochs", "train_seconds", "action_accuracy",
                "action_weighted_f1", "conversation_accuracy", "in_data_fraction",
                "action_accuracy_excluding_listen"):
        assert key in written, key
    assert written["task"] == "dialogue" and written["dataset"] == "demo_bot"
    assert written["epochs"] == cfg.trainer.max_epochs
    # the demo bot's test stories are mostly covered by its rules and stories
    assert written["in_data_fraction"] > 0.5
    assert written["action_accuracy"] > 0.5
    report = json.loads((out / "reports" / "story_report.json").read_text())
    assert report["conversation_accuracy"]["total"] == written["num_stories"]
    read_stories(out / "reports" / "failed_test_stories.yml")  # loads back with our reader
    assert (out / "checkpoints" / "last.ckpt").is_file()


def test_checkpoint_reloads_and_evaluates_the_same(trained, tmp_path):
    cfg, summary, out = trained
    policy = DialoguePolicy.load(out / "checkpoints" / "last.ckpt")
    names = [p.name for p in policy.ensemble.policies]
    assert names[-1] == "TEDPolicy" and "RulePolicy" in names
    eval_cfg = compose_config("eval", [f"ckpt_path={out / 'checkpoints' / 'last.ckpt'}",
                                       "task=dialogue", "data=demo_bot_stories"], tmp_path)
    again = evaluate(eval_cfg)
    for key in ("action_accuracy", "conversation_accuracy", "in_data_fraction"):
        assert again[key] == pytest.approx(summary[key]), key


def test_evaluation_scores_acts_through_data_action_map(trained, tmp_path):
    cfg, summary, out = trained
    from dialogue_models.story_model import ActionStep

    gold = {s.name for story in load_bot("data/demo_bot").test_stories.stories
            for s in story.steps if isinstance(s, ActionStep) and s.name != "action_listen"}
    action_map = tmp_path / "action_map.json"  # every bot action is the same act: "bot_turn"
    action_map.write_text(json.dumps({a: ["bot_turn"] for a in gold}))
    eval_cfg = compose_config("eval", [f"ckpt_path={out / 'checkpoints' / 'last.ckpt'}",
                                       "task=dialogue", "data=demo_bot_stories",
                                       f"data.action_map={action_map}"], tmp_path)
    acts = evaluate(eval_cfg)
    assert json.loads((tmp_path / "reports" / "summary.json").read_text()) == acts
    assert acts["action_map"] == str(action_map)
    for key in ("action_accuracy", "action_accuracy_excluding_listen"):
        assert acts["utterance_" + key] == pytest.approx(summary[key]), key
    report = json.loads((tmp_path / "reports" / "story_report.json").read_text())
    assert {k for k in report if k.startswith("utter_")} == set()
    assert report["bot_turn"]["support"] == acts["num_actions_excluding_listen"]
    # a bot turn is right whenever a bot action (any) was predicted for it
    assert acts["action_accuracy_excluding_listen"] >= summary["action_accuracy_excluding_listen"]


def test_the_policy_answers_a_live_tracker(trained):
    from dialogue_models.events import ACTION_LISTEN, ActionExecuted, UserUttered
    from dialogue_models.tracker import Tracker

    cfg, summary, out = trained
    bot = load_bot("data/demo_bot")
    policy = DialoguePolicy.load(out / "checkpoints" / "last.ckpt")
    tracker = Tracker("t", bot.domain.slots, [ActionExecuted(ACTION_LISTEN),
                                               UserUttered("hi", "greet")])
    ranking = policy.predict(tracker)
    assert ranking.action == "utter_greet" and ranking.policy == "RulePolicy"
    assert ranking.ranking[0][0] == "utter_greet"


def test_dialogue_inference_imports_neither_lightning_nor_hydra():
    import subprocess
    import sys

    code = ("import sys, dialogue_models.inference, dialogue_models.processor; "
            "print(sorted(m for m in ('lightning', 'hydra', 'omegaconf') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


@pytest.fixture(scope="module")
def trained_e2e(tmp_path_factory):
    """The tiny end-to-end twin on Rasa's e2ebot (stories with intent-less user texts)."""
    from tests.conftest import shared_data

    shared_data("rasa_bots/rasa-examples/e2ebot")
    out = tmp_path_factory.mktemp("ted_e2e")
    cfg = compose_config("train", ["experiment=ted_tiny_e2e"], out)
    return cfg, train(cfg), out


def test_end_to_end_training_reports_and_round_trips_through_a_bundle(trained_e2e):
    from dialogue_models.evaluation.predict import story_events
    from dialogue_models.events import ActionExecuted
    from dialogue_models.export import export_policy_bundle
    from dialogue_models.tracker import Tracker

    cfg, summary, out = trained_e2e
    written = json.loads((out / "reports" / "summary.json").read_text())
    assert written["dataset"] == "e2ebot" and written["action_accuracy"] > 0.5
    ckpt = out / "checkpoints" / "last.ckpt"
    bundle = export_policy_bundle(ckpt, out / "bundle")
    assert json.loads((bundle / "featurizers.json").read_text())["text"]["sparse"]
    expected, got = DialoguePolicy.load(ckpt), DialoguePolicy.load(bundle)
    bot = load_bot(cfg.data.train)
    checked = 0
    for story in bot.test_stories.stories:  # every user turn has a text and an intent
        tracker = Tracker(story.name, bot.domain.slots, name=story.name)
        for position, (event, _) in enumerate(story_events(story, bot.domain)):
            if isinstance(event, ActionExecuted) and position > 0:
                want, have = (p.ensemble.policies[-1].predict(tracker) for p in (expected, got))
                assert have.probabilities == pytest.approx(want.probabilities, abs=1e-6)
                assert have.is_end_to_end == want.is_end_to_end
                checked += 1
            tracker.update(event)
    assert checked == written["num_actions"]
