"""The glue between HTTP and the models: :class:`Agent` holds one NLU interpreter, an optional
dialogue policy, a tracker store and the action server client, and runs one request on one
conversation: load the sender's tracker, change it, save the new events.

Requests for the same sender are serialised: striped locks in this process, then the tracker
store's lock across processes (several servers on one store); its append-only saves keep every
event even where a store has no lock. A request that fails (e.g. the action
server is down) saves nothing, so the conversation stays as it was before it.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from dialogue_models.actions import ActionRunner, CustomAction
from dialogue_models.domain import Domain
from dialogue_models.events import (DEFAULT_ACTIONS, DEFAULT_INTENTS, ActionExecuted,
                                    ActionExecutionRejected, BotUttered, Event,
                                    ReminderCancelled, Restarted, UserUttered)
from dialogue_models.processor import MessageProcessor
from dialogue_models.tracker import Tracker
from serving.intent_shortcut import parse_intent_shortcut
from serving.reminders import REMINDER_CHANNEL, ReminderScheduler, pending_reminders
from serving.tracker_store import EventLogStore, InMemoryTrackerStore, tracker_store_from_url

if TYPE_CHECKING:  # torch-backed types; an NLU-only server on ONNX never imports torch
    from dialogue_models.inference import DialoguePolicy
    from nlu_models.inference import NLUInterpreter

__all__ = ["Agent", "NoPolicyError", "UnknownNameError", "channel_messages", "tracker_json",
           "EVENT_VERBOSITY"]

EVENT_VERBOSITY = ("ALL", "AFTER_RESTART", "APPLIED", "NONE")
_LOCK_STRIPES = 64
log = logging.getLogger("serving.agent")


class NoPolicyError(RuntimeError):
    """A conversation route was called on a server started without a policy bundle."""


class UnknownNameError(LookupError):
    """An intent or action the domain does not know."""


class Agent:
    """One assistant: NLU, optional policy, tracker store, custom actions (see module doc)."""

    def __init__(self, nlu: NLUInterpreter, policy: DialoguePolicy | None = None,
                 tracker_store: EventLogStore | None = None,
                 custom_action: CustomAction | None = None, max_actions: int = 10) -> None:
        self.nlu, self.policy = nlu, policy
        self.domain: Domain | None = policy.domain if policy is not None else None
        if policy is not None and self.domain is None:
            raise ValueError("the policy bundle carries no domain.yml; export it from a "
                             "checkpoint trained by experiments.train")
        self.tracker_store = tracker_store or InMemoryTrackerStore()
        if self.domain is not None:
            self.tracker_store.slots = dict(self.domain.slots)
        self.processor: MessageProcessor | None = None
        if policy is not None and self.domain is not None:
            runner = ActionRunner(self.domain, custom_action, seed=None)
            self.processor = MessageProcessor(self.domain, self._predict_next, runner,
                                              max_actions)
        nlu_intents = getattr(getattr(nlu, "labels", None), "intents", None) or []
        self._known_intents = set(nlu_intents) | set(
            self.domain.intent_names if self.domain else []) | DEFAULT_INTENTS
        self._locks = [threading.Lock() for _ in range(_LOCK_STRIPES)]
        self.reminders: ReminderScheduler | None = None  # set by the app when it has a policy

    @classmethod
    def load(cls, nlu: str | Path, policy: str | Path | None = None,
             tracker_store: str = "memory://", action_endpoint: str | None = None,
             action_timeout_s: float = 10.0, max_actions: int = 10,
             torch_threads: int | None = 1, nlu_backend: str = "auto",
             fallback: Any = None) -> "Agent":
        """From bundle folders and a tracker store URL. ``nlu_backend``: ``auto`` runs the NLU
        bundle's ONNX graph when it has one (no torch for NLU), else torch; or ``torch``,
        ``onnx``, ``onnx-int8``. ``torch_threads`` sets torch's
        intra-op threads for the whole process (None: leave them): one thread per request is
        much faster for these small models than several threads fighting over the cores (on 2
        loaded cores: 4 ms instead of 16-300 ms per parse); scale with processes instead.
        ``fallback``: Rasa's FallbackClassifier on every parse (:mod:`nlu_models.fallback`):
        None applies the NLU bundle's own (``fallback.json``, if any), False none, True Rasa's
        defaults, ``{"threshold": t, "ambiguity_threshold": a}`` those."""
        from serving.action_client import ActionServerClient

        from nlu_models.onnx_runtime import has_onnx, load_interpreter

        uses_torch = policy is not None or nlu_backend == "torch" or (
            nlu_backend == "auto" and not has_onnx(nlu))
        if torch_threads and uses_torch:
            import torch

            torch.set_num_threads(torch_threads)
        options = {} if nlu_backend == "torch" or (nlu_backend == "auto" and not has_onnx(nlu)) \
            else {"num_threads": torch_threads or None}
        if fallback is not None:
            options["fallback"] = fallback
        client = ActionServerClient(action_endpoint, action_timeout_s) if action_endpoint \
            else None
        if policy is not None:
            from dialogue_models.inference import DialoguePolicy
        return cls(load_interpreter(nlu, nlu_backend, **options),
                   DialoguePolicy.load(policy) if policy else None,
                   tracker_store_from_url(tracker_store), client, max_actions)

    # ---- NLU -----------------------------------------------------------------------------------
    def parse(self, text: str, message_id: str | None = None) -> dict[str, Any]:
        """Rasa's parse result; ``/intent{...}`` shortcuts skip the model."""
        result = self._shortcut(text) or self.nlu.parse(text)
        return {**result, "message_id": message_id} if message_id is not None else result

    def parse_many(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """Parse results in order; the texts that are no shortcut go to the model as one batch."""
        results: list[dict[str, Any] | None] = [self._shortcut(t) for t in texts]
        todo = [i for i, r in enumerate(results) if r is None]
        for i, parsed in zip(todo, self.nlu.parse([texts[i] for i in todo]) if todo else []):
            results[i] = parsed
        return [r for r in results if r is not None]

    def _shortcut(self, text: str) -> dict[str, Any] | None:
        parsed = parse_intent_shortcut(text)
        if parsed is None or parsed["intent"]["name"] not in self._known_intents:
            return None  # Rasa too parses "/unknown_intent" with the model
        return parsed

    # ---- conversations -------------------------------------------------------------------------
    def tracker(self, sender_id: str) -> Tracker:
        """The stored conversation, or a new empty one (not saved)."""
        return self.tracker_store.retrieve_or_create(sender_id)

    @contextlib.contextmanager
    def conversation(self, sender_id: str) -> Iterator[Tracker]:
        """The sender's tracker, saved after the block unless it raised."""
        with self._locks[zlib.crc32(sender_id.encode()) % _LOCK_STRIPES], \
                self.tracker_store.lock(sender_id):
            tracker = self.tracker(sender_id)
            start = len(tracker.events)
            yield tracker
            self.tracker_store.save(tracker)
        if self.reminders is not None:
            self.reminders.watch(tracker, tracker.events[start:])

    def handle_text(self, sender_id: str, text: str, parse_data: Mapping[str, Any] | None = None,
                    input_channel: str | None = None) -> list[BotUttered]:
        """Parse ``text`` (unless ``parse_data`` is given), run the bot until it listens; the
        bot's messages."""
        processor = self._require_processor()
        message = self.user_message(text, parse_data, input_channel)
        with self.conversation(sender_id) as tracker:
            return processor.handle_message(tracker, message)

    def log_message(self, sender_id: str, text: str, parse_data: Mapping[str, Any] | None = None,
                    input_channel: str | None = None) -> Tracker:
        """Append a user message without predicting (Rasa's ``log_message``): session start if
        due, ``action_listen`` if the bot was not listening, the message, extracted slots."""
        processor = self._require_processor()
        message = self.user_message(text, parse_data, input_channel)
        with self.conversation(sender_id) as tracker:
            processor.log_message(tracker, message)
        return tracker

    def append_events(self, sender_id: str, events: Sequence[Event]) -> Tracker:
        """Append ``events`` as they are (Rasa's ``POST .../tracker/events``): nothing runs."""
        with self.conversation(sender_id) as tracker:
            for event in events:
                tracker.update(event)
        return tracker

    def predict(self, sender_id: str) -> tuple[Any, Tracker]:
        """The policy's ranking for the stored conversation (nothing is saved)."""
        self._require_processor()
        tracker = self.tracker(sender_id)
        assert self.policy is not None
        return self.policy.predict(tracker), tracker

    def execute(self, sender_id: str, action: str, policy: str | None = None,
                confidence: float | None = None) -> tuple[Tracker, list[BotUttered]]:
        """Run ``action`` once, as if predicted (Rasa's ``execute_action``: no prediction loop
        after it); the tracker and the bot's messages."""
        processor = self._require_processor()
        self._check_action(action)
        with self.conversation(sender_id) as tracker:
            start = len(tracker.events)
            processor.start_session_if_needed(tracker)
            events = processor.runner.run(action, tracker)
            if not any(isinstance(e, ActionExecutionRejected) for e in events):
                tracker.update(ActionExecuted(action, policy=policy, confidence=confidence))
            for event in events:
                tracker.update(event)
        return tracker, _bot_messages(tracker, start)

    def trigger_intent(self, sender_id: str, intent: str,
                       entities: Sequence[Mapping[str, Any]] | Mapping[str, Any] = ()
                       ) -> tuple[Tracker, list[BotUttered]]:
        """Inject ``intent`` as if the user said it and run the bot (Rasa's external events)."""
        processor = self._require_processor()
        assert self.domain is not None
        if intent not in self.domain.intent_names:
            raise UnknownNameError(f"the intent '{intent}' does not exist in the domain")
        with self.conversation(sender_id) as tracker:
            start = len(tracker.events)
            processor.trigger_intent(tracker, intent, entities or ())
        return tracker, _bot_messages(tracker, start)

    def fire_reminder(self, sender_id: str, name: str, now: float | None = None
                      ) -> list[BotUttered] | None:
        """Trigger the pending reminder ``name`` if it is due; the bot's messages, or None when
        it is no longer pending (cancelled, killed, fired by another server) or not yet due."""
        processor = self._require_processor()
        assert self.domain is not None
        with self.conversation(sender_id) as tracker:
            reminder = next((r for r in pending_reminders(tracker.events) if r.name == name),
                            None)
            if reminder is None or reminder.due_at() > (time.time() if now is None else now):
                return None
            if reminder.intent not in self.domain.intent_names:
                log.warning("reminder '%s' of '%s' triggers the unknown intent '%s'; cancelled",
                            name, sender_id, reminder.intent)
                tracker.update(ReminderCancelled(name=name))
                return None
            return processor.trigger_intent(tracker, reminder.intent, reminder.entities or (),
                                            input_channel=REMINDER_CHANNEL,
                                            parse_data={"reminder": name})

    def user_message(self, text: str, parse_data: Mapping[str, Any] | None = None,
                     input_channel: str | None = None) -> UserUttered:
        parse = dict(parse_data) if parse_data else self.parse(text)
        parse.setdefault("text", text)
        intent = parse.get("intent") or {}
        return UserUttered(text, intent.get("name"), list(parse.get("entities") or []),
                           float(intent.get("confidence") or 1.0), parse_data=parse,
                           input_channel=input_channel)

    # ---- helpers -------------------------------------------------------------------------------
    def _predict_next(self, tracker: Tracker) -> tuple[str, float, str | None]:
        assert self.policy is not None
        ranking = self.policy.predict(tracker)
        return ranking.action, ranking.confidence, ranking.policy

    def _require_processor(self) -> MessageProcessor:
        if self.processor is None:
            raise NoPolicyError("this server has no dialogue policy: start it with --policy "
                                "BUNDLE to hold conversations (only /model/parse works "
                                "without one)")
        return self.processor

    def _check_action(self, action: str) -> None:
        domain = self.domain
        assert domain is not None
        known = set(DEFAULT_ACTIONS) | set(domain.actions) | set(domain.responses) | \
            set(domain.retrieval_actions) | set(domain.forms)
        if action not in known:
            raise UnknownNameError(f"the action '{action}' does not exist in the domain")


def _bot_messages(tracker: Tracker, start: int) -> list[BotUttered]:
    return [e for e in tracker.events[start:] if isinstance(e, BotUttered)]


def channel_messages(recipient_id: str, messages: Sequence[BotUttered]) -> list[dict[str, Any]]:
    """Bot messages as Rasa's REST channel (``CollectingOutputChannel``) sends them: text split
    at blank lines, buttons (or quick replies) with the text, then image, custom, attachment."""
    out: list[dict[str, Any]] = []
    for message in messages:
        data, text = message.data or {}, message.text
        buttons = data.get("quick_replies") or data.get("buttons")
        if buttons:
            out.append({"recipient_id": recipient_id, "text": text, "buttons": buttons})
        elif text:
            out += [{"recipient_id": recipient_id, "text": part}
                    for part in text.strip().split("\n\n")]
        for key in ("custom", "image", "attachment", "elements"):
            if data.get(key):
                out.append({"recipient_id": recipient_id, key: data[key]})
    return out


def tracker_json(tracker: Tracker, include_events: str = "AFTER_RESTART") -> dict[str, Any]:
    """Rasa's tracker state with ``include_events`` = ALL, AFTER_RESTART (Rasa's default),
    APPLIED or NONE."""
    state = tracker.to_dict()
    if include_events == "AFTER_RESTART":
        last = max((i for i, e in enumerate(tracker.events) if isinstance(e, Restarted)),
                   default=-1)
        state["events"] = state["events"][last + 1:]
    elif include_events == "APPLIED":
        state["events"] = [e.to_dict() for e in tracker.applied_events()]
    elif include_events == "NONE":
        state["events"] = None
    elif include_events != "ALL":
        raise ValueError(f"include_events must be one of {', '.join(EVENT_VERBOSITY)}, not "
                         f"{include_events!r}")
    return state
