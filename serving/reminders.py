"""Reminders: a custom action returns Rasa's ``reminder`` event (an intent to trigger at a time),
and the server triggers that intent in the conversation when it is due, running the bot as
``/conversations/{id}/trigger_intent`` would.

The reminders live only in the tracker store, as events, so they survive a restart: a starting
server scans the stored conversations for pending ones (and again every ``rescan_s``, to pick up
those that another server process scheduled), and each request that adds a reminder tells the
scheduler at once. A reminder is pending until it fires, a ``cancel_reminder`` event matches it,
or (``kill_on_user_msg``, the default) the user writes after it was scheduled. One that fell due
while no server ran fires at the next start. Firing happens under the conversation's lock and
re-checks that the reminder is still pending, so several servers on one store fire it once.

The fired intent's message has ``input_channel: "reminder"`` and ``parse_data.reminder`` = the
reminder's name. The bot's answers are stored in the tracker; with a ``callback_url`` they are
also POSTed there one by one, in Rasa's callback-channel shape (``{"recipient_id", "text", ...}``).
"""
from __future__ import annotations

import heapq
import json
import logging
import threading
import time
import urllib.request
from typing import TYPE_CHECKING, Sequence

from dialogue_models.events import (Event, ReminderCancelled, ReminderScheduled, Restarted,
                                    UserUttered)
from dialogue_models.tracker import Tracker

if TYPE_CHECKING:
    from serving.agent import Agent

__all__ = ["ReminderScheduler", "pending_reminders", "REMINDER_CHANNEL"]

REMINDER_CHANNEL = "reminder"
log = logging.getLogger("serving.reminders")


def pending_reminders(events: Sequence[Event]) -> list[ReminderScheduled]:
    """The reminders among ``events`` that have not fired, been cancelled or been killed by a
    later user message (a reminder scheduled again under the same name replaces the first)."""
    pending: dict[str, ReminderScheduled] = {}
    for event in events:
        if isinstance(event, ReminderScheduled):
            pending[str(event.name)] = event
        elif isinstance(event, ReminderCancelled):
            pending = {n: r for n, r in pending.items() if not event.cancels(r)}
        elif isinstance(event, UserUttered):
            fired = (event.parse_data or {}).get("reminder")
            if fired:
                pending.pop(fired, None)
            elif event.input_channel != REMINDER_CHANNEL:  # the user wrote
                pending = {n: r for n, r in pending.items() if not r.kill_on_user_message}
        elif isinstance(event, Restarted):
            pending.clear()  # a restart forgets the conversation, its reminders too
    return list(pending.values())


class ReminderScheduler:
    """Fires due reminders for one :class:`~serving.agent.Agent` from a background thread."""

    def __init__(self, agent: "Agent", poll_s: float = 0.25, rescan_s: float = 60.0,
                 callback_url: str | None = None) -> None:
        self.agent, self.poll_s, self.rescan_s = agent, poll_s, rescan_s
        self.callback_url = callback_url
        self._queue: list[tuple[float, str, str]] = []  # (due, sender_id, name), a heap
        self._queued: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- scheduling ----------------------------------------------------------------------------
    def watch(self, tracker: Tracker, new_events: Sequence[Event] | None = None) -> None:
        """Queue the tracker's pending reminders (only if ``new_events``, when given, has
        one: most requests schedule nothing)."""
        if new_events is not None and not any(isinstance(e, ReminderScheduled)
                                              for e in new_events):
            return
        for reminder in pending_reminders(tracker.events):
            self._push(reminder, tracker.sender_id)

    def scan(self) -> int:
        """Queue every stored conversation's pending reminders; returns how many are queued."""
        store = self.agent.tracker_store
        for sender_id in store.keys():
            tracker = store.retrieve(sender_id)
            if tracker is not None:
                self.watch(tracker)
        with self._lock:
            return len(self._queue)

    def run_due(self, now: float | None = None) -> int:
        """Fire every queued reminder due by ``now``; returns how many fired."""
        now = time.time() if now is None else now
        fired = 0
        while True:
            with self._lock:
                if not self._queue or self._queue[0][0] > now:
                    return fired
                _, sender_id, name = heapq.heappop(self._queue)
                self._queued.discard((sender_id, name))
            try:
                messages = self.agent.fire_reminder(sender_id, name)
            except Exception:  # one broken conversation must not stop the others
                log.exception("reminder '%s' of conversation '%s' failed", name, sender_id)
                continue
            if messages is None:  # cancelled, fired elsewhere, or rescheduled for later
                self.watch(self.agent.tracker(sender_id))
            else:
                fired += 1
                self._send(sender_id, messages)

    # ---- the thread ----------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="dialab-reminders",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _loop(self) -> None:
        next_scan = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_scan:
                    self.scan()
                    next_scan = time.monotonic() + self.rescan_s
                self.run_due()
            except Exception:  # e.g. the store is briefly unreachable: try again later
                log.exception("the reminder scheduler failed; retrying")
            self._stop.wait(self.poll_s)

    # ---- helpers -------------------------------------------------------------------------------
    def _push(self, reminder: ReminderScheduled, sender_id: str) -> None:
        key = (sender_id, str(reminder.name))
        try:
            due = reminder.due_at()
        except ValueError:
            log.warning("reminder '%s' of '%s' has no valid date_time (%r); ignored",
                        reminder.name, sender_id, reminder.date_time)
            return
        with self._lock:
            if key not in self._queued:
                self._queued.add(key)
                heapq.heappush(self._queue, (due, sender_id, str(reminder.name)))

    def _send(self, sender_id: str, messages: list) -> None:
        if not self.callback_url or not messages:
            return
        from serving.agent import channel_messages

        for message in channel_messages(sender_id, messages):
            request = urllib.request.Request(self.callback_url, json.dumps(message).encode(),
                                             {"Content-Type": "application/json"})
            try:
                urllib.request.urlopen(request, timeout=10).close()
            except OSError as err:
                log.warning("could not send a reminder's message to %s: %s",
                            self.callback_url, err)
