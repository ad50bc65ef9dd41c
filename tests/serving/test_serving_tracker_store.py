"""Tracker stores: append-only saves that lose no events when several servers share one store,
conversations that survive a restart, and the store chosen by URL. Redis is tested only where a
redis-server binary exists."""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from dialogue_models.domain import read_domain
from dialogue_models.events import (ActionExecuted, BotUttered, SlotSet, UserUttered)
from dialogue_models.tracker import Tracker
from serving.app import create_app
from serving.settings import ServerSettings, default_tracker_store_url
from serving.tracker_store import (InMemoryTrackerStore, RedisTrackerStore, SQLTrackerStore,
                                   tracker_store_from_url)
from tests.conftest import DEMO_BOT

SLOTS = read_domain(DEMO_BOT / "domain.yml").slots


def events(n: int, start: int = 0) -> list:
    out = []
    for i in range(start, start + n):
        out += [UserUttered(f"text {i}", "inform", [{"entity": "size", "value": "small"}], 0.5),
                SlotSet("size", "small"), ActionExecuted("utter_greet", policy="RulePolicy",
                                                         confidence=0.9),
                BotUttered(f"reply {i}", {"buttons": [{"title": "A", "payload": "/affirm"}]})]
    return out


def check_store(store) -> None:
    """The behaviour every store shares."""
    assert store.retrieve("nobody") is None
    tracker = Tracker("s", SLOTS, events(2))
    store.save(tracker)
    again = store.retrieve("s")
    assert [e.to_dict() for e in again.events] == [e.to_dict() for e in tracker.events]
    assert again.slots["size"] == "small" and again.latest_message.text == "text 1"

    # two servers took the same conversation at once: both appends are kept, none is lost
    first, second = store.retrieve("s"), store.retrieve("s")
    first.update(BotUttered("from the first"))
    second.update(BotUttered("from the second"))
    second.update(BotUttered("and more"))
    store.save(first)
    store.save(second)
    store.save(second)  # saving twice appends nothing new
    texts = [e.text for e in store.retrieve("s").events[len(tracker.events):]]
    assert texts == ["from the first", "from the second", "and more"]
    assert "s" in store.keys()

    # two servers start the same new conversation at once: both keep their events
    first, second = store.retrieve_or_create("new"), store.retrieve_or_create("new")
    first.update(UserUttered("one"))
    second.update(UserUttered("two"))
    store.save(first)
    store.save(second)
    assert [e.text for e in store.retrieve("new").events] == ["one", "two"]


def test_memory_store():
    check_store(InMemoryTrackerStore(SLOTS))


def test_sql_store(tmp_path):
    check_store(SQLTrackerStore(f"sqlite:///{tmp_path / 'a' / 'trackers.db'}", SLOTS))
    rows = SQLTrackerStore(f"sqlite:///{tmp_path / 'a' / 'trackers.db'}")  # another process
    assert len(rows.retrieve("s").events) == 11


def test_sql_stores_writing_at_once_lose_no_events(tmp_path):
    """Four stores (four engines, as four server processes would have) append to one
    conversation at the same time: retrieve, add a message, save; every message is kept."""
    url = f"sqlite:///{tmp_path / 'trackers.db'}"
    stores = [SQLTrackerStore(url, SLOTS) for _ in range(4)]

    def chat(index: int) -> None:
        for turn in range(10):
            tracker = stores[index].retrieve_or_create("busy")
            tracker.update(UserUttered(f"{index}-{turn}"))
            tracker.update(BotUttered(f"reply {index}-{turn}"))
            stores[index].save(tracker)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(chat, range(4)))
    stored = stores[0].retrieve("busy").events
    assert len(stored) == 80
    assert sorted(e.text for e in stored if isinstance(e, UserUttered)) == \
        sorted(f"{i}-{t}" for i in range(4) for t in range(10))
    # each reply follows its own message: appends are never interleaved
    for message, reply in zip(stored[::2], stored[1::2]):
        assert reply.text == f"reply {message.text}"


def test_sql_store_retries_when_another_writer_took_the_seq(tmp_path):
    url = f"sqlite:///{tmp_path / 'trackers.db'}"

    class Stale(SQLTrackerStore):
        """Reads a stale next seq once, as if another process inserted in between."""
        stale = 1

        def _next_seq(self, connection, sender_id):
            seq = super()._next_seq(connection, sender_id)
            if self.stale and seq:
                self.stale -= 1
                return seq - 1
            return seq

    store = Stale(url, SLOTS)
    store.save(Tracker("s", SLOTS, events(1)))
    tracker = store.retrieve("s")
    tracker.update(BotUttered("after a conflict"))
    store.save(tracker)
    assert store.stale == 0  # the conflict happened, and the retry appended
    assert [e.to_dict() for e in SQLTrackerStore(url).retrieve("s").events] == \
        [e.to_dict() for e in tracker.events]


def test_redis_store(tmp_path):
    binary = shutil.which("redis-server")
    if binary is None:
        print("skipping: no redis-server binary on this machine")
        pytest.skip("no redis-server binary: RedisTrackerStore is not exercised here")
    port = _free_port()
    server = subprocess.Popen([binary, "--port", str(port), "--save", "", "--dir",
                               str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        store = RedisTrackerStore(f"redis://127.0.0.1:{port}/0", SLOTS)
        for _ in range(50):
            try:
                store.client.ping()
                break
            except Exception:
                time.sleep(0.1)
        check_store(store)
    finally:
        server.terminate()
        server.wait(10)


def test_store_by_url(tmp_path):
    assert isinstance(tracker_store_from_url("memory://"), InMemoryTrackerStore)
    assert isinstance(tracker_store_from_url(f"sqlite:///{tmp_path / 't.db'}"), SQLTrackerStore)
    assert isinstance(tracker_store_from_url("redis://127.0.0.1:1/0"), RedisTrackerStore)
    with pytest.raises(ValueError, match="no scheme"):
        tracker_store_from_url("trackers.db")
    assert default_tracker_store_url().endswith("/dialab_trackers.db")
    assert ServerSettings(nlu="x").tracker_store == default_tracker_store_url()


def test_a_conversation_survives_a_restart(bundles, action_server, tmp_path):
    settings = ServerSettings(nlu=bundles.nlu, policy=bundles.policy,
                              tracker_store=f"sqlite:///{tmp_path / 'trackers.db'}",
                              action_endpoint=action_server.url)
    with TestClient(create_app(settings)) as first:  # loads the bundles itself
        first.post("/webhooks/rest/webhook", json={"sender": "r", "message": "/greet"})
        first.post("/webhooks/rest/webhook", json={"sender": "r", "message": "/order_pizza"})
        before = first.get("/conversations/r/tracker").json()
    with TestClient(create_app(settings)) as second:
        assert second.get("/conversations/r/tracker").json() == before
        answer = second.post("/webhooks/rest/webhook",
                             json={"sender": "r", "message": '/inform{"size": "small"}'})
        texts = read_domain(DEMO_BOT / "domain.yml").response_templates("utter_ask_topping")
        assert answer.json()[-1]["text"] in texts  # the form went on where it was


def test_two_servers_on_one_database_lose_no_events(make_client):
    one, two = make_client(), make_client()  # two apps, two stores, one SQLite file
    sent = []
    for i, client in enumerate([one, two, one, two, two, one]):
        text = ["/greet", "/ask_menu", "/help", "/bot_challenge", "/thank", "/goodbye"][i]
        client.post("/webhooks/rest/webhook", json={"sender": "shared", "message": text})
        sent.append(text)
    for client in (one, two):
        tracker = client.get("/conversations/shared/tracker").json()
        assert [e["text"] for e in tracker["events"] if e["event"] == "user"] == sent

    # the same sender from both servers at once: every message is stored
    def send(args):
        client, i = args
        return client.post("/webhooks/rest/webhook", json={"sender": "race",
                                                           "message": f"/greet@0.{i + 1}"})

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(send, [(c, i) for i in range(6) for c in (one, two)]))
    assert all(a.status_code == 200 for a in answers)
    tracker = one.get("/conversations/race/tracker", params={"include_events": "ALL"}).json()
    users = [e for e in tracker["events"] if e["event"] == "user"]
    assert len(users) == 12
    assert SQLTrackerStore(one.app.state.settings.tracker_store).keys().count("race") == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
