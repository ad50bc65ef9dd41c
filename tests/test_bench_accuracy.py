"""The accuracy benchmark's --resume: a finished run (its summary and a GNU time log that ended
with status 0) is read back instead of trained again; an unfinished or failed one is trained."""
from __future__ import annotations

import json

import pytest

from experiments.bench import accuracy
from experiments.bench.common import measured_from_log

GNU_TIME_TAIL = """\
\tElapsed (wall clock) time (h:mm:ss or m:ss): {elapsed}
\tMaximum resident set size (kbytes): 2048000
\tExit status: {status}
"""


def finished_run(out, name, elapsed="1:02:03.5", status=0, summary=True):
    run_dir = out / "runs" / name
    (run_dir / "reports").mkdir(parents=True)
    (run_dir / "train.log").write_text("training ...\n" +
                                       GNU_TIME_TAIL.format(elapsed=elapsed, status=status))
    if summary:
        (run_dir / "reports" / "summary.json").write_text(
            json.dumps({"intent_accuracy": 0.9, "entity_f1": 0.8, "seed": 2}))
    return run_dir


def test_gnu_time_lines_are_read_back(tmp_path):
    run_dir = finished_run(tmp_path, "a", elapsed="1:02:03.5")
    assert measured_from_log(run_dir / "train.log") == {"wall_seconds": 3723.5,
                                                        "peak_rss_mb": 2000.0}
    assert measured_from_log(finished_run(tmp_path, "b", elapsed="0:58.58") / "train.log") == \
        {"wall_seconds": 58.6, "peak_rss_mb": 2000.0}
    assert measured_from_log(finished_run(tmp_path, "c", status=1) / "train.log") is None
    assert measured_from_log(tmp_path / "missing.log") is None


def test_resume_reuses_finished_runs_and_trains_the_rest(tmp_path, monkeypatch):
    finished_run(tmp_path, "diet_x_seed2")
    finished_run(tmp_path, "diet_x_seed3", summary=False)  # killed before its reports

    trained = []

    def train(command, log_file, cwd, env=None):
        trained.append(next(o for o in command if o.startswith("seed=")))
        reports = log_file.parent / "reports"
        reports.mkdir(exist_ok=True)
        (reports / "summary.json").write_text(json.dumps({"intent_accuracy": 0.5,
                                                          "entity_f1": 0.4}))
        return {"wall_seconds": 10.0, "peak_rss_mb": 100.0}

    monkeypatch.setattr(accuracy, "timed_command", train)
    runs = [accuracy.run_one("diet_x", seed, None, None, [], tmp_path, resume=True)
            for seed in (2, 3)]
    assert trained == ["seed=3"]
    assert runs[0]["reused"] and runs[0]["intent_accuracy"] == pytest.approx(0.9)
    assert runs[0]["peak_rss_mb"] == 2000.0 and runs[0]["process_seconds"] == 3723.5
    assert runs[1]["intent_accuracy"] == pytest.approx(0.5) and "reused" not in runs[1]

    accuracy.run_one("diet_x", 2, None, None, [], tmp_path)  # without --resume: trained again
    assert trained == ["seed=3", "seed=2"]
