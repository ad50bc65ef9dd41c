"""Tracker stores: append-only saves that lose no events when several servers share one store,
locks that serialise one conversation across processes, conversations that survive a restart,
and the store chosen by URL. SQLite, PostgreSQL and Redis are real servers (tests/services.py:
PostgreSQL and Redis are started on loopback, and skipped with a printed reason where they
cannot start)."""
from __future__ import annotations

import multiprocessing
import os
import signal
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
                                   TrackerStoreError, tracker_store_from_url)
from tests.conftest import DEMO_BOT

SLOTS = read_domain(DEMO_BOT / "domain.yml").slots
SHARED = ["sqlite", "postgres", "redis"]  # the stores several server processes can share
shared_stores = pytest.mark.parametrize("store_url", SHARED, indirect=True)


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


@shared_stores
def test_shared_store(store_url):
    check_store(tracker_store_from_url(store_url, SLOTS))
    another_process = tracker_store_from_url(store_url)  # a new connection, no slots given
    assert len(another_process.retrieve("s").events) == 11


@shared_stores
def test_stores_writing_at_once_lose_no_events(store_url):
    """Four stores (four connections, as four server processes would have) append to one
    conversation at the same time: retrieve, add a message, save; every message is kept."""
    stores = [tracker_store_from_url(store_url, SLOTS) for _ in range(4)]

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


def _locked_turns(store_url: str, worker: int, turns: int) -> None:
    """One server process's work (run in a forked child): each turn reads the conversation
    under its lock, waits a little and answers with how many messages it saw before its own."""
    store = tracker_store_from_url(store_url, SLOTS)
    for turn in range(turns):
        with store.lock("shared"):
            tracker = store.retrieve_or_create("shared")
            seen = sum(isinstance(e, UserUttered) for e in tracker.events)
            tracker.update(UserUttered(f"{worker}-{turn}"))
            time.sleep(0.005)  # room for another process to read the same state
            tracker.update(BotUttered(f"saw {seen}"))
            store.save(tracker)


@shared_stores
def test_the_lock_serialises_a_conversation_across_processes(store_url):
    """Three processes take turns on one conversation: under the store's lock each turn sees
    every earlier turn (without it, two would read the same state and answer the same count)."""
    fork = multiprocessing.get_context("fork")
    workers = [fork.Process(target=_locked_turns, args=(store_url, i, 8)) for i in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    stored = tracker_store_from_url(store_url, SLOTS).retrieve("shared").events
    assert len(stored) == 48
    assert [e.text for e in stored[1::2]] == [f"saw {n}" for n in range(24)]


def _open_at(store_url: str, start) -> None:
    start.wait(10)
    tracker_store_from_url(store_url, SLOTS).save(Tracker("opened", SLOTS))


@shared_stores
def test_servers_starting_together_create_the_store_once(store_url):
    """Processes that open a fresh store at the same moment all race to create its table; the
    losers find it created and go on instead of failing to start."""
    fork = multiprocessing.get_context("fork")
    start = fork.Event()
    openers = [fork.Process(target=_open_at, args=(store_url, start)) for _ in range(6)]
    for opener in openers:
        opener.start()
    start.set()
    for opener in openers:
        opener.join(60)
    assert [opener.exitcode for opener in openers] == [0] * 6


def _hold_the_lock(store_url: str, held) -> None:
    store = tracker_store_from_url(store_url, SLOTS)
    if isinstance(store, RedisTrackerStore):
        store.lock_ttl_s = 1.0  # a killed server's Redis lock expires
    with store.lock("held"):
        held.set()
        time.sleep(120)


@shared_stores
def test_a_lock_waits_times_out_and_dies_with_its_server(store_url):
    fork = multiprocessing.get_context("fork")
    held = fork.Event()
    holder = fork.Process(target=_hold_the_lock, args=(store_url, held))
    holder.start()
    try:
        assert held.wait(30)
        store = tracker_store_from_url(store_url, SLOTS)
        store.lock_timeout_s = 0.3
        with pytest.raises(TrackerStoreError, match="stayed locked by another server"):
            with store.lock("held"):
                pass
        with store.lock("other"):  # other conversations are free
            pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # the server holding it dies
        holder.join(10)
    store.lock_timeout_s = 10.0
    started = time.monotonic()
    with store.lock("held"):
        assert time.monotonic() - started < 5


def test_stores_in_one_process_share_a_sqlite_lock(tmp_path):
    """Two stores (two apps) in one process on one SQLite file exclude each other too."""
    url = f"sqlite:///{tmp_path / 'trackers.db'}"
    first, second = SQLTrackerStore(url, SLOTS), SQLTrackerStore(url, SLOTS)
    second.lock_timeout_s = 0.2
    with first.lock("s"):
        with pytest.raises(TrackerStoreError):
            with second.lock("s"):
                pass
    with second.lock("s"):
        pass


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


def test_a_store_told_the_database_is_locked_while_opening_tries_again(tmp_path, monkeypatch):
    """SQLite answers "database is locked" at once (no busy wait) when a server starting beside
    this one holds the file while it makes the table; the store waits and tries again."""
    import sqlalchemy as sa

    real, calls = sa.MetaData.create_all, []

    def locked_twice(metadata, engine, *args, **kwargs):
        calls.append(1)
        if len(calls) <= 2:
            raise sa.exc.OperationalError("CREATE TABLE", {}, Exception("database is locked"))
        return real(metadata, engine, *args, **kwargs)

    monkeypatch.setattr(sa.MetaData, "create_all", locked_twice)
    url = f"sqlite:///{tmp_path / 'trackers.db'}"
    SQLTrackerStore(url, SLOTS).save(Tracker("s", SLOTS, events(1)))
    assert len(calls) == 3 and SQLTrackerStore(url).retrieve("s") is not None

    def always_broken(metadata, engine, *args, **kwargs):
        raise sa.exc.OperationalError("CREATE TABLE", {}, Exception("disk I/O error"))

    monkeypatch.setattr(sa.MetaData, "create_all", always_broken)
    with pytest.raises(TrackerStoreError, match="disk I/O error"):
        SQLTrackerStore(f"sqlite:///{tmp_path / 'other.db'}")


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


@shared_stores
def test_two_servers_on_one_store_lose_no_events(make_client, store_url):
    one, two = (make_client(tracker_store=store_url) for _ in range(2))  # two apps, one store
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
    # the store's lock kept each request's events together: every message's turn ends with
    # action_listen before the next message starts
    names = [e["event"] if e["event"] != "action" else e["name"] for e in tracker["events"]]
    turns = "|".join(names).split("|user|")[1:]
    assert len(turns) == 12 and all(t.split("|")[-1] == "action_listen" for t in turns)
    assert tracker_store_from_url(store_url).keys().count("race") == 1
