"""The serving benchmark's fault checks, on dialab's server with the demo bot's policy and action
server (see :mod:`experiments.bench.serving`):

- :func:`kill_and_restart`: a conversation is held through ``POST /webhooks/rest/webhook``, its
  events read back, then the server is killed with SIGKILL while the next message is being
  handled and started again on the same tracker store. The tracker must hold exactly the
  events read before, plus that last turn whole or not at all, and the conversation must go on.
- :func:`two_servers`: two server processes on one store; conversations whose messages
  alternate between them run side by side, and some send two messages at once, one to each
  server. :func:`event_loss` then checks every conversation's stored events against what the
  servers answered: every user message answered with 200 stored once, every bot message they
  answered stored, nothing stored twice.

Servers come from a ``start(label, store_url)`` callable that returns a started
:class:`~experiments.demo_conversation.Service` (not yet healthy).
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from dialogue_models.events import event_from_dict
from experiments.demo_conversation import FORM_ANSWERS, OPENING, WEATHER, Service
from serving.agent import channel_messages

__all__ = ["SentMessages", "event_loss", "kill_and_restart", "two_servers", "TURNS"]

TURNS = tuple(s.text for s in (*OPENING, *FORM_ANSWERS.values(), *WEATHER))
RACE = ("thanks!", "what pizzas do you have?")  # sent at once, one to each server
StartServer = Callable[[str, str], Service]


@dataclass
class SentMessages:
    """One conversation as the client saw it: the user texts the servers answered with 200 (in
    the order sent), the bot messages they answered, the other answers, and the texts sent at
    once with another (their order is not fixed)."""

    sender: str
    delivered: list[str] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unordered: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def say(self, client: Any, text: str) -> bool:
        """POST ``text`` to the webhook through ``client`` (an ``httpx.Client``); True on 200."""
        try:
            response = client.post("/webhooks/rest/webhook",
                                   json={"sender": self.sender, "message": text})
        except Exception as err:  # a broken connection is a result here, not a crash
            with self.lock:
                self.errors.append(f"{text!r}: {type(err).__name__}: {err}")
            return False
        with self.lock:
            if response.status_code != 200:
                self.errors.append(f"{text!r}: HTTP {response.status_code} {response.text[:200]}")
                return False
            self.delivered.append(text)
            self.answers.extend(response.json())
        return True


def event_loss(sent: SentMessages, stored: list[dict[str, Any]]) -> dict[str, Any]:
    """What the store lacks (``lost``) or holds twice (``extra``) of ``sent``: user events by
    text, bot messages as the REST channel sends them (recipient left out), and whether the
    user texts sent one after the other are stored in that order."""
    users = [e.get("text") for e in stored if e.get("event") == "user"]
    bots = [event_from_dict(e) for e in stored if e.get("event") == "bot"]
    stored_bot = Counter(_message_key(m) for m in channel_messages(sent.sender, bots))
    answered_bot = Counter(_message_key(m) for m in sent.answers)
    lost = (Counter(sent.delivered) - Counter(users)) + (answered_bot - stored_bot)
    extra = (Counter(users) - Counter(sent.delivered)) + (stored_bot - answered_bot)
    return {"sender": sent.sender, "stored_events": len(stored), "user_messages": len(users),
            "bot_messages": sum(stored_bot.values()), "lost": sum(lost.values()),
            "extra": sum(extra.values()), "lost_items": sorted(lost)[:10],
            "order_kept": [u for u in users if u not in sent.unordered] ==
                          [d for d in sent.delivered if d not in sent.unordered],
            "request_errors": list(sent.errors)}


def _message_key(message: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in message.items() if k != "recipient_id"}, sort_keys=True)


def stored_events(url: str, sender: str) -> list[dict[str, Any]]:
    import httpx

    response = httpx.get(f"{url}/conversations/{sender}/tracker",
                         params={"include_events": "ALL"}, timeout=60.0)
    response.raise_for_status()
    return response.json().get("events") or []


def kill_and_restart(start: StartServer, store_url: str, timeout_s: float = 180.0
                     ) -> dict[str, Any]:
    """Three turns, then SIGKILL while the fourth is handled, a restart on the same store, and
    a fifth turn (see the module docstring)."""
    import httpx

    sent = SentMessages(f"kill9-{uuid.uuid4().hex[:8]}")
    server = start("kill9_before", store_url)
    restarted = None
    try:
        server.wait_healthy(timeout_s)
        with httpx.Client(base_url=server.url, timeout=60.0) as client:
            started = time.perf_counter()
            held = all(sent.say(client, text) for text in TURNS[:3])
            turn_s = (time.perf_counter() - started) / 3
        if not held:
            return {"ok": False, "problem": f"the first turns failed: {sent.errors}"}
        before = stored_events(server.url, sent.sender)
        killed = SentMessages(sent.sender)  # its broken connection is expected
        in_flight = threading.Thread(target=_say_once, args=(server.url, killed, TURNS[3]))
        in_flight.start()
        time.sleep(turn_s / 2)  # about half-way through handling the message
        server.process.kill()
        server.process.wait()
        in_flight.join()
        answered_before_kill = bool(killed.delivered)
        restarted = start("kill9_after", store_url)
        restarted.wait_healthy(timeout_s)
        after = stored_events(restarted.url, sent.sender)
        rest = after[len(before):]
        rest_users = [e.get("text") for e in rest if e.get("event") == "user"]
        whole_turn = not rest or (rest_users == [TURNS[3]] and rest[-1].get("name") ==
                                  "action_listen")
        with httpx.Client(base_url=restarted.url, timeout=60.0) as client:
            went_on = sent.say(client, TURNS[4])
        final = stored_events(restarted.url, sent.sender)
    finally:
        for service in (server, restarted):
            if service is not None:
                service.stop()
    intact = after[:len(before)] == before and whole_turn
    return {"ok": intact and went_on and final[:len(after)] == after,
            "tracker_intact": intact, "events_before_kill": len(before),
            "events_after_restart": len(after), "seconds_per_turn": round(turn_s, 3),
            "in_flight_turn_answered_before_kill": answered_before_kill,
            "in_flight_turn_stored": bool(rest), "in_flight_turn_whole_or_absent": whole_turn,
            "continued_after_restart": went_on, "events_at_end": len(final),
            "request_errors": sent.errors}


def _say_once(url: str, sent: SentMessages, text: str) -> None:
    import httpx

    with httpx.Client(base_url=url, timeout=60.0) as client:
        sent.say(client, text)


def two_servers(start: StartServer, store_url: str, conversations: int = 20,
                workers: int = 8, timeout_s: float = 180.0) -> dict[str, Any]:
    """Servers A and B on ``store_url``; ``conversations`` conversations alternate between them,
    ``workers`` at a time; every fourth also sends :data:`RACE` at once, one text to each."""
    servers = [start("two_servers_A", store_url), start("two_servers_B", store_url)]
    try:
        for server in servers:
            server.wait_healthy(timeout_s)
        prefix = f"pair-{uuid.uuid4().hex[:8]}"
        with ThreadPoolExecutor(workers) as pool:
            logs = list(pool.map(lambda i: _alternate(servers, f"{prefix}-{i}", i),
                                 range(conversations)))
        checks = [event_loss(log, stored_events(servers[i % 2].url, log.sender))
                  for i, log in enumerate(logs)]
    finally:
        for server in servers:
            server.stop()
    return {"ok": all(c["lost"] == 0 and c["extra"] == 0 and c["order_kept"]
                      and not c["request_errors"] for c in checks),
            "conversations": conversations, "concurrent_conversations": workers,
            "messages_sent": sum(len(TURNS) + (len(RACE) if i % 4 == 3 else 0)
                                 for i in range(conversations)),
            "messages_answered": sum(len(log.delivered) for log in logs),
            "request_errors": sum(len(c["request_errors"]) for c in checks),
            "stored_events": sum(c["stored_events"] for c in checks),
            "lost_events": sum(c["lost"] for c in checks),
            "extra_events": sum(c["extra"] for c in checks),
            "order_kept": all(c["order_kept"] for c in checks),
            "problems": [c for c in checks if c["lost"] or c["extra"] or c["request_errors"]
                         or not c["order_kept"]][:5]}


def _alternate(servers: list[Service], sender: str, index: int) -> SentMessages:
    import httpx

    sent = SentMessages(sender)
    clients = [httpx.Client(base_url=s.url, timeout=60.0) for s in servers]
    try:
        for turn, text in enumerate(TURNS):
            sent.say(clients[(index + turn) % 2], text)
        if index % 4 == 3:
            sent.unordered.update(RACE)
            racers = [threading.Thread(target=sent.say, args=(client, text))
                      for client, text in zip(clients, RACE)]
            for racer in racers:
                racer.start()
            for racer in racers:
                racer.join()
    finally:
        for client in clients:
            client.close()
    return sent
