"""Entry points: serving imports no Lightning/Hydra, `python -m serving` starts a real server,
`dialab shell` chats over stdin; and the action client's response rendering."""
from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import time

import httpx
import pytest

from dialogue_models.actions import ActionRejection, ActionRunner
from dialogue_models.cli import main as dialab
from dialogue_models.domain import read_domain
from dialogue_models.events import ActionExecutionRejected, BotUttered, SlotSet
from dialogue_models.tracker import Tracker
from serving.action_client import ActionServerClient, ActionServerError, bot_uttered
from tests.conftest import DEMO_BOT, REPO_ROOT
from tests.serving.conftest import ActionServer

DOMAIN = read_domain(DEMO_BOT / "domain.yml")
ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


def test_serving_imports_neither_lightning_nor_hydra(bundles):
    code = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from serving.app import create_app\n"
        "from serving.settings import ServerSettings\n"
        "import serving.__main__, serving.shell\n"
        f"s = ServerSettings(nlu={str(bundles.nlu)!r}, policy={str(bundles.policy)!r}, "
        "tracker_store='memory://')\n"
        "c = TestClient(create_app(s))\n"
        "assert c.post('/webhooks/rest/webhook', json={'message': '/greet'}).status_code == 200\n"
        "print(sorted(m for m in ('lightning', 'pytorch_lightning', 'hydra', 'omegaconf')"
        " if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=ENV, cwd=REPO_ROOT, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_python_m_serving_help():
    result = subprocess.run([sys.executable, "-m", "serving", "--help"], capture_output=True,
                            text=True, env=ENV, cwd=REPO_ROOT, timeout=60)
    assert result.returncode == 0
    for flag in ("--nlu", "--policy", "--host", "--port", "--auth-token", "--tracker-store",
                 "--action-endpoint", "--cors"):
        assert flag in result.stdout


def _wait_healthy(server: subprocess.Popen, url: str) -> None:
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert server.poll() is None, server.stdout.read()
        time.sleep(0.1)
    raise AssertionError(f"no answer from {url}/health")


def test_python_m_serving_serves(bundles, tmp_path):
    port = _free_port()
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "serving", "--nlu", str(bundles.nlu), "--policy",
         str(bundles.policy), "--port", str(port), "--auth-token", "t", "--log-level", "warning"],
        env=ENV, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(server, url)
        ready = time.perf_counter() - started
        answer = httpx.post(f"{url}/webhooks/rest/webhook?token=t",
                            json={"sender": "p", "message": "/greet"}, timeout=30)
        assert answer.status_code == 200 and answer.json()[0]["recipient_id"] == "p"
        assert (tmp_path / "dialab_trackers.db").is_file()  # the default store, in the cwd
        print(f"python -m serving answered /health {ready:.2f} s after the start")
    finally:
        server.terminate()
        server.wait(20)


def test_workers_share_one_port_and_the_conversations(bundles, tmp_path):
    """--workers 2: two processes answer on one port (each logs its load), the batch route
    works, and a conversation continued over several connections stays one conversation
    (the workers share the default SQLite store)."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "serving", "--nlu", str(bundles.nlu), "--policy",
         str(bundles.policy), "--port", str(port), "--workers", "2", "--log-level", "info"],
        env=ENV, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(server, url)
        parsed = httpx.post(f"{url}/model/parse/batch", json={"texts": ["hi", "bye"]},
                            timeout=30).json()
        assert [p["text"] for p in parsed] == ["hi", "bye"]
        for _ in range(4):  # a new connection each time: either worker may answer
            with httpx.Client(timeout=30) as client:
                client.post(f"{url}/webhooks/rest/webhook",
                            json={"sender": "w", "message": "/greet"})
        tracker = httpx.get(f"{url}/conversations/w/tracker", timeout=30).json()
        assert sum(e["event"] == "user" for e in tracker["events"]) == 4
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=30)
    assert len(set(re.findall(r"worker (\d+) loaded in", out))) == 2, out


def test_the_workers_socket_turns_nagle_off_on_its_connections():
    """The listening socket of --workers is bound by dialab; asyncio sets TCP_NODELAY on the
    connections it accepts only when it reports IPPROTO_TCP (uvicorn's own binding reports 0,
    and every keep-alive answer then waits ~40 ms for the client's delayed ACK)."""
    import asyncio

    from serving.workers import TCPConfig

    listener = TCPConfig("serving.workers:app_from_environment", factory=True, workers=2,
                         host="127.0.0.1", port=_free_port()).bind_socket()
    assert listener.proto == socket.IPPROTO_TCP and listener.get_inheritable()

    async def accepted_nodelay() -> int:
        seen = asyncio.get_running_loop().create_future()

        def accepted(reader, writer):
            sock = writer.get_extra_info("socket")
            seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(accepted, sock=listener)
        _, writer = await asyncio.open_connection(*listener.getsockname())
        try:
            return await asyncio.wait_for(seen, 10)
        finally:
            writer.close()
            server.close()

    assert asyncio.run(accepted_nodelay()) == 1


def test_workers_refuse_a_store_they_cannot_share(bundles, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "serving", "--nlu", str(bundles.nlu), "--policy",
         str(bundles.policy), "--workers", "2", "--tracker-store", "memory://"],
        env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "not memory://" in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "serving", "--nlu", str(tmp_path), "--workers", "2"],
        env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "is not an export bundle" in result.stderr


def test_dialab_serve_and_shell_parse(capsys):
    with pytest.raises(SystemExit):
        dialab(["serve", "--help"])
    assert "--tracker-store" in capsys.readouterr().out


def test_dialab_shell_chats_over_stdin(bundles, action_server, monkeypatch, capsys):
    # "1" presses the intro's first button ("/order_pizza"); /quit ends the chat
    monkeypatch.setattr(sys, "stdin", io.StringIO("/greet\n\n1\n/quit\n/greet\n"))
    code = dialab(["shell", "--nlu", str(bundles.nlu), "--policy", str(bundles.policy),
                   "--action-endpoint", action_server.url])
    out = capsys.readouterr().out
    assert code == 0
    assert "1: Order a pizza (/order_pizza)" in out
    assert any(f"bot: {t}" in out for t in DOMAIN.response_templates("utter_ask_size"))
    assert out.rstrip().endswith("Bye.")
    assert action_server.actions() == ["validate_pizza_order_form"]  # nothing after /quit


def test_the_shell_survives_a_failing_action_server(bundles, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("/order_pizza\n/greet\n"))
    dialab(["shell", "--nlu", str(bundles.nlu), "--policy", str(bundles.policy),
            "--action-endpoint", "http://127.0.0.1:1/webhook"])
    out = capsys.readouterr().out
    assert "error: custom action 'validate_pizza_order_form' failed" in out
    assert "bot: " in out  # the greeting after the error


# ---- the action client -----------------------------------------------------------------------
def test_responses_render_like_the_sdk_dispatcher():
    tracker = Tracker("u", DOMAIN.slots, [SlotSet("size", "small"), SlotSet("crust", "thin"),
                                          SlotSet("topping", ["ham"])])
    confirm = bot_uttered({"response": "utter_confirm_order", "size": "large"}, tracker, DOMAIN)
    assert confirm.text in ("One large ham pizza with thin crust coming up!",
                            "Great choice: a large pizza with ham on a thin crust.")
    with_buttons = bot_uttered({"response": "utter_ask_crust", "buttons": [
        {"title": "Stuffed", "payload": "/x"}]}, tracker, DOMAIN)
    assert [b["title"] for b in with_buttons.data["buttons"]] == ["Thin", "Classic", "Thick",
                                                                  "Stuffed"]
    assert bot_uttered({"response": "utter_missing"}, tracker, DOMAIN) is None
    plain = bot_uttered({"text": "hi", "image": "http://x/p.png", "custom": {"a": 1}},
                        tracker, DOMAIN)
    assert plain == BotUttered("hi", {"image": "http://x/p.png", "custom": {"a": 1}})


def test_action_server_answers_become_events_rejections_or_errors():
    server = ActionServer(lambda body: {
        "action_place_order": (200, {"events": [{"event": "slot", "name": "order_id",
                                                 "value": "PZ1"}],
                                     "responses": [{"text": "done"}]}),
        "action_cancel_order": (400, {"action_name": "action_cancel_order", "error": "no"}),
        "action_update_order": (500, {"error": "boom"}),
        "action_get_weather": (200, {"events": [{"event": "dance"}]}),
    }[body["next_action"]])
    try:
        client = ActionServerClient(server.url)
        tracker = Tracker("u", DOMAIN.slots)
        assert client("action_place_order", tracker, DOMAIN) == [BotUttered("done"),
                                                                 SlotSet("order_id", "PZ1")]
        with pytest.raises(ActionRejection):
            client("action_cancel_order", tracker, DOMAIN)
        runner = ActionRunner(DOMAIN, client)
        assert runner.run("action_cancel_order", tracker) == \
            [ActionExecutionRejected("action_cancel_order")]
        with pytest.raises(ActionServerError, match="answered 500"):
            client("action_update_order", tracker, DOMAIN)
        with pytest.raises(ActionServerError, match="bad event.*dance"):
            client("action_get_weather", tracker, DOMAIN)
    finally:
        server.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_nlu_only_server_on_the_onnx_bundle_never_imports_torch(bundles):
    code = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from serving.app import create_app\n"
        "from serving.settings import ServerSettings\n"
        f"s = ServerSettings(nlu={str(bundles.nlu)!r}, tracker_store='memory://')\n"
        "c = TestClient(create_app(s))\n"
        "r = c.post('/model/parse', json={'text': 'hello there'})\n"
        "assert r.status_code == 200 and r.json()['intent']['name'], r.text\n"
        "print('torch' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=ENV, cwd=REPO_ROOT, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_the_fallback_flags_reach_the_parse(bundles):
    from fastapi.testclient import TestClient

    from serving.__main__ import build_parser, settings_from_args
    from serving.app import create_app

    parser = build_parser()
    base = ["--nlu", str(bundles.nlu), "--tracker-store", "memory://"]
    assert settings_from_args(parser.parse_args(base)).fallback is None  # the bundle's own
    assert settings_from_args(parser.parse_args(base + ["--no-fallback"])).fallback is False
    settings = settings_from_args(parser.parse_args(base + ["--fallback-threshold", "0.999",
                                                            "--ambiguity-threshold", "0.2"]))
    assert settings.fallback == {"threshold": 0.999, "ambiguity_threshold": 0.2}
    with TestClient(create_app(settings)) as client:
        parsed = client.post("/model/parse", json={"text": "hello there"}).json()
    assert parsed["intent"] == {"name": "nlu_fallback", "confidence": 0.999}
    assert parsed["intent_ranking"][0]["name"] == "nlu_fallback"
