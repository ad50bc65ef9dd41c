"""Fixtures of the serving tests: the tiny DIET and TED bundles (trained and exported once per
session, ~10 s), a real action server on a loopback port, and app factories."""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import pytest

from dialogue_models.export import export_bundle
from dialogue_models.inference import DialoguePolicy
from nlu_models.inference import NLUInterpreter


@dataclass
class Bundles:
    nlu: Path
    policy: Path


@pytest.fixture(scope="session")
def bundles(tmp_path_factory) -> Bundles:
    from experiments.train import train
    from tests.entry_points.conftest import compose_config

    paths = {}
    for kind, overrides in (("nlu", ["experiment=diet_tiny"]),
                            ("policy", ["experiment=ted_tiny", "evaluate=false"])):
        out = tmp_path_factory.mktemp(kind)
        train(compose_config("train", overrides, out))
        # the NLU bundle carries its ONNX graph, so the server runs its default (onnxruntime) path
        paths[kind] = export_bundle(out / "checkpoints" / "last.ckpt", out / "bundle",
                                    onnx=kind == "nlu")
    return Bundles(paths["nlu"], paths["policy"])


@pytest.fixture(scope="session")
def models(bundles):
    """The loaded interpreter and policy, shared by the apps of the tests (read-only)."""
    return NLUInterpreter.load(bundles.nlu), DialoguePolicy.load(bundles.policy)


Answer = Callable[[dict[str, Any]], "tuple[int, dict[str, Any]]"]


def demo_actions(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The demo bot's custom actions, as an action server would run them."""
    name, slots = body["next_action"], body["tracker"]["slots"]
    if name == "validate_pizza_order_form":
        return 200, {"events": [], "responses": []}  # accept every value, add no slot
    if name == "action_place_order":
        return 200, {"events": [{"event": "slot", "name": "order_id", "value": "PZ0042"}],
                     "responses": [{"text": f"Order PZ0042 placed: a {slots.get('size')} "
                                    "pizza."}]}
    if name == "action_get_weather":
        return 200, {"events": [], "responses": [{"text": f"Sunny in {slots.get('city')}."}]}
    if name == "action_check_order_status":
        return 200, {"events": [], "responses": [{"response": "utter_ask_order_id"}]}
    return 404, {"error": f"no action '{name}'"}


class ActionServer:
    """A real HTTP action server in a thread; records every request body."""

    def __init__(self, answer: Answer = demo_actions) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answer = answer
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                status, answer = server.answer(body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # keep the test output quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/webhook"

    def actions(self) -> list[str]:
        return [r["next_action"] for r in self.requests]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def action_server():
    server = ActionServer()
    yield server
    server.close()


@pytest.fixture
def make_client(bundles, models, tmp_path):
    """``make_client(**settings)`` → a TestClient of a new app over the shared loaded models;
    the tracker store defaults to ``tmp_path/trackers.db`` (SQLite), so two clients made in
    one test share it like two server processes would."""
    from fastapi.testclient import TestClient

    from serving.action_client import ActionServerClient
    from serving.agent import Agent
    from serving.app import create_app
    from serving.settings import ServerSettings
    from serving.tracker_store import tracker_store_from_url

    made = []

    def make(policy: bool = True, **overrides) -> TestClient:
        overrides.setdefault("tracker_store", f"sqlite:///{tmp_path / 'trackers.db'}")
        settings = ServerSettings(nlu=bundles.nlu, policy=bundles.policy if policy else None,
                                  **overrides)
        endpoint = settings.action_endpoint
        agent = Agent(models[0], models[1] if policy else None,
                      tracker_store_from_url(settings.tracker_store),
                      ActionServerClient(endpoint) if endpoint else None)
        client = TestClient(create_app(settings, agent), raise_server_exceptions=False)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


# ---- real database servers (tests/services.py): started once, a clean database per test -------
@pytest.fixture(scope="session")
def postgres_server_url():
    import contextlib

    from tests.services import postgres_server, start_or_skip

    with contextlib.ExitStack() as stack:
        yield start_or_skip(stack, postgres_server, "PostgreSQL")


@pytest.fixture(scope="session")
def redis_server_url():
    import contextlib

    from tests.services import redis_server, start_or_skip

    with contextlib.ExitStack() as stack:
        yield start_or_skip(stack, redis_server, "Redis")


@pytest.fixture
def store_url(request, tmp_path):
    """A tracker store URL of the kind the test is parametrised with (``indirect``): an empty
    SQLite file, a new PostgreSQL database, or an emptied Redis database."""
    kind = request.param
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'trackers.db'}"
    if kind == "postgres":
        import uuid

        import psycopg

        server = request.getfixturevalue("postgres_server_url")
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return server.rsplit("/", 1)[0] + f"/{name}"
    if kind == "redis":
        import redis

        server = request.getfixturevalue("redis_server_url")
        redis.Redis.from_url(server).flushdb()
        return server
    raise ValueError(f"unknown store kind {kind!r}")
