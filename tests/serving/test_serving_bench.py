"""The serving benchmark's parts that can be checked without timing anything: latency
percentiles, the lost-events check of the fault runs, the process-tree memory reading, the
target/ratio table, and one tiny run of the parse measurements against a real server process
on the tiny NLU bundle (no assertion on any number a clock gives)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dialogue_models.events import ActionExecuted, BotUttered, UserUttered
from experiments.bench import serving as bench
from experiments.bench.http_load import latency_summary
from experiments.bench.serving_faults import SentMessages, event_loss


# ---- percentiles ---------------------------------------------------------------------------------
def test_latency_summary_interpolates_between_ranks_like_numpy():
    summary = latency_summary([float(v) for v in range(100, 0, -1)])  # 1..100, unsorted
    assert summary["n"] == 100
    assert summary["p50_ms"] == pytest.approx(50.5)
    assert summary["p95_ms"] == pytest.approx(95.05)
    assert summary["p99_ms"] == pytest.approx(99.01)
    assert summary["mean_ms"] == pytest.approx(50.5) and summary["max_ms"] == 100.0


def test_latency_summary_of_one_sample_and_of_none():
    assert latency_summary([4.0])["p99_ms"] == 4.0
    with pytest.raises(ValueError, match="no latencies"):
        latency_summary([])


# ---- the lost-events check -----------------------------------------------------------------------
def turn(text: str, *answers: str) -> list[dict]:
    """The events one webhook call stores: the user message, the bot's answers, a listen."""
    events = [UserUttered(text, "greet").to_dict()]
    for answer in answers:
        events += [ActionExecuted("utter_x").to_dict(), BotUttered(answer).to_dict()]
    return events + [ActionExecuted("action_listen").to_dict()]


def sent(*turns: tuple[str, list[str]]) -> SentMessages:
    messages = SentMessages("alice")
    for text, answers in turns:
        messages.delivered.append(text)
        messages.answers += [{"recipient_id": "alice", "text": a} for a in answers]
    return messages


def test_nothing_lost_when_every_turn_is_stored():
    stored = turn("hi", "Hello!") + turn("a pizza", "Which size?", "Any toppings?")
    check = event_loss(sent(("hi", ["Hello!"]), ("a pizza", ["Which size?", "Any toppings?"])),
                       stored)
    assert (check["lost"], check["extra"], check["order_kept"]) == (0, 0, True)
    assert check["user_messages"] == 2 and check["bot_messages"] == 3


def test_a_missing_user_or_bot_event_is_lost_and_a_repeated_one_extra():
    messages = sent(("hi", ["Hello!"]), ("a pizza", ["Which size?"]))
    assert event_loss(messages, turn("hi", "Hello!"))["lost"] == 2  # the whole 2nd turn
    without_bot = turn("hi", "Hello!") + turn("a pizza")
    assert event_loss(messages, without_bot)["lost"] == 1
    twice = turn("hi", "Hello!") + turn("a pizza", "Which size?") + turn("a pizza", "Which size?")
    check = event_loss(messages, twice)
    assert (check["lost"], check["extra"]) == (0, 2)


def test_order_is_checked_except_for_texts_sent_at_once():
    messages = sent(("hi", []), ("a pizza", []), ("thanks", []), ("menu?", []))
    swapped = turn("hi") + turn("a pizza") + turn("menu?") + turn("thanks")
    assert event_loss(messages, swapped)["order_kept"] is False
    messages.unordered.update({"thanks", "menu?"})
    assert event_loss(messages, swapped)["order_kept"] is True
    out_of_order = turn("a pizza") + turn("hi") + turn("menu?") + turn("thanks")
    assert event_loss(messages, out_of_order)["order_kept"] is False


# ---- memory, targets, ratios ---------------------------------------------------------------------
def vmrss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS line")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_process_tree_rss_counts_the_process_and_its_children():
    own = bench.process_tree_rss_mb(os.getpid())
    assert own == pytest.approx(vmrss_mb(os.getpid()), rel=0.1)
    child = subprocess.Popen([sys.executable, "-c", "import sys, time; b = bytearray(80 << 20); "
                              "print('ready', flush=True); time.sleep(30)"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        assert bench.process_tree_rss_mb(os.getpid()) >= own + 70
    finally:
        child.kill()
        child.wait()


def test_comparison_gives_ratios_only_where_both_were_measured_and_checks_targets():
    dialab = {"cold_start_s": 0.5, "sequential": {"p50_ms": 4.0, "p95_ms": 5.0},
              "throughput": {"utterances_per_s": 6000.0}, "rss_mb": 300.0,
              "load": {"errors": 0}}
    rasa = {"cold_start_s": 20.0, "sequential": {"p50_ms": 12.0}, "load": {"errors": 3}}
    rows = bench.comparison(dialab, rasa)
    assert rows["cold_start_s"]["ratio_rasa_over_dialab"] == 40.0
    assert rows["sequential.p50_ms"]["ratio_rasa_over_dialab"] == 3.0
    assert rows["sequential.p95_ms"]["ratio_rasa_over_dialab"] is None  # Rasa: not measured
    assert rows["load.errors"]["ratio_rasa_over_dialab"] is None  # dialab 0: no ratio
    met = {key: row["met"] for key, row in rows.items()}
    assert met["cold_start_s"] and met["sequential.p95_ms"] and met["load.errors"]
    assert met["throughput.utterances_per_s"]
    assert met["sequential.p50_ms"] is False and met["rss_mb"] is False
    assert met["sequential.p99_ms"] is None  # no target
    assert bench.comparison(dialab, None)["cold_start_s"]["rasa"] is None


def test_safe_url_hides_the_password():
    assert bench._safe_url("postgresql://bot:s3cret@db:5432/x") == "postgresql://bot:***@db:5432/x"
    assert bench._safe_url("redis://:s3cret@localhost:6379/0") == "redis://:***@localhost:6379/0"
    assert bench._safe_url("sqlite:////tmp/a.db") == "sqlite:////tmp/a.db"


# ---- the parse measurements against a real server ------------------------------------------------
def test_parse_measurements_against_the_tiny_bundle(bundles, tmp_path):
    """Cold start, sequential, batch, load (its own process) and memory of a real ``python -m
    serving`` on the tiny bundle, with tiny counts; the server is stopped afterwards."""
    args = bench.build_parser().parse_args([
        "--requests", "60", "--clients", "4", "--sequential", "20", "--warmup", "2",
        "--batch-size", "8", "--batch-utterances", "16"])
    texts = ["hello", "a large pizza please", "what's the weather in Berlin?"]
    texts_file = tmp_path / "texts.json"
    texts_file.write_text('["hello", "a large pizza please"]')
    start = bench.dialab_server(bundles.nlu, tmp_path, "auto")
    servers = []

    def spawn(port):
        servers.append(start(port, "parse"))
        return servers[-1]

    result = bench.measure_parse_server(spawn, texts, args, texts_file, batch=True)
    assert servers[0].process.poll() is not None  # stopped
    assert result["cold_start_s"] > 0 and result["rss_mb"] > 0
    assert result["sequential"]["n"] == 20
    assert result["batch"]["utterances"] == 16 and result["batch"]["batch_size"] == 8
    assert result["throughput"]["utterances_per_s"] == result["batch"]["utterances_per_s"]
    load = result["load"]
    assert (load["n"], load["errors"], load["clients"]) == (60, 0, 4)
    assert load["p50_ms"] <= load["p99_ms"]
