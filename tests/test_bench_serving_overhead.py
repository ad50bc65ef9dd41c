"""The serving-overhead benchmark (experiments/bench/serving_overhead.py) on a tiny trained run:
in-process and HTTP throughput of the same requests, and the server's CPU per request."""
from __future__ import annotations

import json
import os

from experiments.bench import serving_overhead
from tests.entry_points.conftest import tiny_diet_run


def test_requests_cycle_the_texts_as_the_serving_bench_sends_them():
    from experiments.bench.http_load import request_batches

    assert request_batches(["a", "b", "c"], 2, 5) == [["a", "b"], ["c", "a"], ["b", "c"]]


def test_process_cpu_seconds_counts_this_process_work():
    before = serving_overhead.process_cpu_seconds(os.getpid())
    deadline = before + 0.05
    while serving_overhead.process_cpu_seconds(os.getpid()) < deadline:
        sum(range(10_000))  # burn CPU until the kernel's tick count moves
    assert serving_overhead.process_cpu_seconds(os.getpid()) >= deadline


def test_serving_overhead_on_a_tiny_run(tmp_path):
    run = tmp_path / "run"
    tiny_diet_run(run)

    serving_overhead.main(["--nlu-run", str(run), "--out", str(tmp_path / "out"),
                           "--batch-size", "8", "--utterances", "64"])
    report = json.loads((tmp_path / "out" / "serving_overhead.json").read_text())
    one, two = report["in_process"]
    assert (one["threads"], two["threads"]) == (1, 2)
    assert one["utterances_per_s"] > 0 and two["cpu_ms_per_request"] > 0
    http = report["http"]
    assert http["utterances"] == 64 and http["clients"] == 2 and http["utterances_per_s"] > 0
    assert report["server_cpu_ms"]["health"] >= 0 and report["server_cpu_ms"]["parse_batch"] > 0
    assert report["http_overhead_cpu_ms_per_request"] == round(
        report["server_cpu_ms"]["parse_batch"] - one["cpu_ms_per_request"], 3)
    assert report["http_share_of_in_process_throughput"] == round(
        http["utterances_per_s"] / two["utterances_per_s"], 3)
