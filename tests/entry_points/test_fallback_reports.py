"""Rasa's FallbackClassifier listed in the training pipeline, end to end: the tiny DIET's
reports score it (calibration, fallback rate, out-of-scope metrics on the demo bot's
``out_of_scope`` intent), its checkpoint and export bundle carry it, and the interpreters and
the serving agent apply it unless told otherwise."""
from __future__ import annotations

import json

import pytest
from omegaconf import open_dict

from experiments.train import train
from nlu_models.export import export_nlu_bundle
from nlu_models.fallback import FallbackConfig, is_fallback, undo_fallback
from nlu_models.inference import NLUInterpreter
from serving.agent import Agent
from tests.entry_points.conftest import compose_config

FALLBACK = FallbackConfig(threshold=0.35, ambiguity_threshold=0.15)
TEXTS = ["hi", "hello there", "bye", "two large pepperoni pizzas to Berlin please",
         "what is the weather in Paris", "is my order on its way?", "tell me a joke",
         "thanks a lot", "no", "yes please", "what's on the menu", "cancel my order"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("fallback")
    cfg = compose_config("train", ["experiment=diet_tiny", "trainer.max_epochs=30"], out)
    with open_dict(cfg):
        cfg.model.featurizers.append({"name": "FallbackClassifier", **FALLBACK.to_dict()})
    summary = train(cfg)
    return summary, out


def test_reports_score_the_fallback_and_out_of_scope(trained):
    summary, out = trained
    written = json.loads((out / "reports" / "summary.json").read_text())
    assert written["out_of_scope_intent"] == "out_of_scope"  # demo_bot's data config
    assert (written["fallback_threshold"], written["fallback_ambiguity_threshold"]) == (0.35, 0.15)
    for key in ("intent_ece", "intent_mce", "fallback_rate", "oos_recall",
                "oos_recall_no_fallback", "in_scope_accuracy", "in_scope_fallback_rate",
                "oos_auroc"):
        assert 0.0 <= written[key] <= 1.0, key
    assert written["intent_mce"] >= written["intent_ece"]
    assert written["oos_recall"] >= written["oos_recall_no_fallback"]
    assert (out / "reports" / "intent_reliability_diagram.png").is_file()
    assert "Intent calibration" in (out / "reports" / "report.md").read_text()


def test_checkpoint_bundle_and_agent_apply_the_stored_fallback(trained):
    _, out = trained
    ckpt = out / "checkpoints" / "last.ckpt"
    on = NLUInterpreter.load(ckpt)
    off = NLUInterpreter.load(ckpt, fallback=False)
    assert on.fallback == FALLBACK and off.fallback is None
    with_fallback, without = on.parse(TEXTS), off.parse(TEXTS)
    assert [undo_fallback(r) for r in with_fallback] == without
    fell = [is_fallback(r) for r in with_fallback]
    assert fell == [FALLBACK.should_fallback(r) for r in without]
    assert any(fell) and not all(fell), fell

    bundle = export_nlu_bundle(ckpt, out / "bundle")
    assert json.loads((bundle / "fallback.json").read_text()) == FALLBACK.to_dict()
    listed = {e["name"] for e in json.loads((bundle / "manifest.json").read_text())["files"]}
    assert "fallback.json" in listed
    assert NLUInterpreter.load(bundle).parse(TEXTS) == with_fallback
    assert Agent.load(bundle).parse_many(TEXTS) == with_fallback
    assert Agent.load(bundle, fallback=False).parse_many(TEXTS) == without
    everything = Agent.load(bundle, fallback={"threshold": 1.0})
    assert all(is_fallback(r) for r in everything.parse_many(TEXTS))
    assert everything.parse("/greet")["intent"] == {"name": "greet", "confidence": 1.0}
