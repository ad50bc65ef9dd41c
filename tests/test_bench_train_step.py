"""The training-step benchmark runs on the tiny twin and writes its JSON."""
from __future__ import annotations

import json

from experiments.bench import train_step


def test_train_step_bench_times_steps_and_writes_json(tmp_path, capsys):
    assert train_step.main(["--experiment", "diet_tiny", "--steps", "3", "--warmup", "1",
                            "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "train_step_diet_tiny.json").read_text())
    assert result["steps"] == 3 and result["step_ms_mean"] > 0 and result["step_ms_sd"] >= 0
    assert len(result["batch_shape"]) == 2 and "machine" in result
    assert "ms per training step" in capsys.readouterr().out
