"""train → evaluate → reports on the demo bot with the tiny twin configs, through the real
Hydra configs and entry points."""
from __future__ import annotations

import json

import pytest

from experiments.evaluate import evaluate
from experiments.train import train
from nlu_models.inference import NLUInterpreter
from tests.entry_points.conftest import compose_config

REPORT_FILES = ["summary.json", "intent_report.json", "entity_report.json", "errors.json",
                "intent_confusion_matrix.png", "intent_histogram.png",
                "intent_reliability_diagram.png", "report.md"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    cfg = compose_config("train", ["experiment=diet_tiny"], out)
    return cfg, train(cfg), out


def test_train_writes_reports_and_checkpoints(trained):
    cfg, summary, out = trained
    for name in REPORT_FILES:
        assert (out / "reports" / name).is_file(), name
    written = json.loads((out / "reports" / "summary.json").read_text())
    for key in ("task", "dataset", "split", "seed", "epochs", "train_seconds", "intent_accuracy",
                "intent_macro_f1", "intent_weighted_f1", "intent_ece", "intent_mce",
                "oos_recall", "in_scope_accuracy", "oos_auroc", "entity_f1", "entity_token_f1"):
        assert key in written, key
    assert written["dataset"] == "demo_bot" and written["split"] == "test"
    assert written["epochs"] == cfg.trainer.max_epochs
    assert 0.0 <= written["intent_accuracy"] <= 1.0
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert list((out / "csv").rglob("metrics.csv")), "CSV logger output expected"
    intent_report = json.loads((out / "reports" / "intent_report.json").read_text())
    assert "weighted avg" in intent_report
    assert all("confused_with" in v for k, v in intent_report.items()
               if isinstance(v, dict) and "avg" not in k)


def test_checkpoint_loads_into_an_interpreter_that_parses_like_training(trained, tmp_path):
    cfg, summary, out = trained
    interpreter = NLUInterpreter.load(out / "checkpoints" / "last.ckpt")
    result = interpreter.parse("two large pepperoni pizzas to Berlin please")
    assert set(result) >= {"text", "intent", "intent_ranking", "entities"}
    assert result["intent"]["name"] in interpreter.labels.intents
    assert len(result["intent_ranking"]) <= 10
    batch = interpreter.parse(["hi", "what is the weather in Paris"])
    assert [r["text"] for r in batch] == ["hi", "what is the weather in Paris"]

    eval_cfg = compose_config("eval", [f"ckpt_path={out / 'checkpoints' / 'last.ckpt'}",
                                       "data=demo_bot"], tmp_path)
    eval_summary = evaluate(eval_cfg)
    assert (tmp_path / "reports" / "report.md").is_file()
    assert eval_summary["split"] == "test" and eval_summary["n_examples"] > 0


def test_fast_dev_run_debug_config(tmp_path):
    cfg = compose_config("train", ["experiment=diet_tiny", "debug=fdr"], tmp_path)
    metrics = train(cfg)
    assert not (tmp_path / "reports").exists()
    assert "train/loss" in metrics
