"""The export-accuracy benchmark (experiments/bench/int8.py) on a tiny trained run: every
backend is scored on the same test messages, and the ONNX graph agrees with torch."""
from __future__ import annotations

import json

from experiments.bench import int8
from tests.entry_points.conftest import tiny_diet_run


def test_int8_bench_on_a_tiny_run(tmp_path):
    run = tmp_path / "run"
    cfg = tiny_diet_run(run)

    int8.main([str(run), "--out", str(tmp_path / "out"), "--batch-size", "4"])
    report = json.loads((tmp_path / "out" / f"int8_{cfg.data.name}.json").read_text())
    measured = report["runs"][0]
    assert measured["n_test"] > 0 and set(int8.BACKENDS) <= set(measured)
    assert measured["onnx"]["intent_agreement_with_torch"] == 1.0
    assert measured["onnx"]["intent_accuracy"] == measured["torch"]["intent_accuracy"]
    assert 0.0 <= measured["onnx-int8"]["intent_agreement_with_torch"] <= 1.0
    assert measured["sizes_mb"]["model.int8.onnx"] < measured["sizes_mb"]["model.onnx"]
    change = report["aggregate"]["onnx.intent_accuracy_change"]
    assert change == {"mean": 0.0, "sd": 0.0, "n": 1}


def test_aggregate_is_mean_and_sd_over_runs():
    runs = [{backend: {"intent_accuracy": acc + shift, "entity_f1": 0.5,
                       "intent_agreement_with_torch": 1.0, "utterances_per_second": 100.0}
             for backend, shift in (("torch", 0.0), ("onnx", 0.0), ("onnx-int8", -0.02))}
            for acc in (0.90, 0.94)]
    out = int8.aggregate(runs)
    assert round(out["torch.intent_accuracy"]["mean"], 6) == 0.92
    assert round(out["onnx-int8.intent_accuracy_change"]["mean"], 6) == -0.02
    assert round(out["torch.intent_accuracy"]["sd"], 6) == round(0.04 / 2 ** 0.5, 6)
