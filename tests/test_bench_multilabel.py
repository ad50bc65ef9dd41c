"""The multi-label benchmark (experiments/bench/multilabel.py) on a tiny budget: both arms train
(tiny model twins, the first 80 examples of each ATIS split, 1 epoch) and are scored on the
combined labels and on the atomic intent sets."""
from __future__ import annotations

import json

from experiments.bench import multilabel
from tests.conftest import shared_data


def test_multilabel_bench_on_a_tiny_budget(tmp_path, capsys):
    shared_data("atis/jointbert")
    multilabel.main(["--seeds", "1", "--epochs", "1", "--tiny", "--out", str(tmp_path), "--",
                     "data.max_examples=80", "data.batch_size=[16,16]", "evaluate=true"])
    report = json.loads((tmp_path / "multilabel_atis.json").read_text())
    assert set(report["arms"]) == {"combined", "multilabel"} and report["tiny"]
    for arm, result in report["arms"].items():
        run = result["runs"][0]
        assert run["n_examples"] == 80 and run["epochs"] == 1
        # the test slice holds one multi-intent message (line 13 of test/label)
        for key in ("intent_accuracy", "intent_exact_match", "intent_micro_f1",
                    "intent_samples_f1", "intent_hamming_loss",
                    "intent_exact_match_multi_intent"):
            assert 0.0 <= run[key] <= 1.0, (arm, key)
            assert result["aggregate"][key]["n"] == 1
    multi_run = tmp_path / "runs" / "multilabel_multilabel_seed1"
    assert (multi_run / "reports" / "multi_label_report.json").is_file()
    labels = json.loads((multi_run / "reports" / "summary.json").read_text())
    assert labels["model"] == "diet_multilabel_tiny"
    table = capsys.readouterr().out
    assert "| combined |" in table and "| multilabel |" in table
