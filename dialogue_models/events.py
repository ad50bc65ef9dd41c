"""Conversation events, in Rasa's JSON shapes (``{"event": "user", ...}``).

A :class:`~dialogue_models.tracker.Tracker` is a list of these. ``to_dict``/:func:`event_from_dict`
speak the same JSON as Rasa's tracker API, so trackers can be stored, sent to an action server
and read back.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, ClassVar

ACTION_LISTEN = "action_listen"
ACTION_RESTART = "action_restart"
ACTION_SESSION_START = "action_session_start"
ACTION_DEFAULT_FALLBACK = "action_default_fallback"
ACTION_DEACTIVATE_LOOP = "action_deactivate_loop"
ACTION_EXTRACT_SLOTS = "action_extract_slots"
# Rasa 3.x default actions, in Rasa's order; every domain has them before its own actions.
DEFAULT_ACTIONS = (ACTION_LISTEN, ACTION_RESTART, ACTION_SESSION_START, ACTION_DEFAULT_FALLBACK,
                   ACTION_DEACTIVATE_LOOP, "action_revert_fallback_events",
                   "action_default_ask_affirmation", "action_default_ask_rephrase",
                   "action_two_stage_fallback", "action_unlikely_intent", "action_back",
                   ACTION_EXTRACT_SLOTS)
REQUESTED_SLOT = "requested_slot"
# Rasa's built-in intents: every domain knows them (``/restart`` restarts the conversation)
DEFAULT_INTENTS = frozenset({"restart", "back", "out_of_scope", "session_start", "nlu_fallback"})


@dataclass
class Event:
    """Base class; ``type_name`` is Rasa's ``event`` key."""

    type_name: ClassVar[str] = ""
    timestamp: float = field(default_factory=time.time, compare=False, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        data = {"event": self.type_name, "timestamp": self.timestamp}
        data.update(self._payload())
        return data

    def _payload(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "timestamp"}

    @classmethod
    def _from_payload(cls, data: dict[str, Any]) -> "Event":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class UserUttered(Event):
    """A user message with its NLU parse. ``entities`` are Rasa entity dicts (entity, value,
    start, end, role, group, ...)."""

    type_name: ClassVar[str] = "user"
    text: str | None = None
    intent: str | None = None
    entities: list[dict[str, Any]] = field(default_factory=list)
    intent_confidence: float = 1.0
    parse_data: dict[str, Any] | None = field(default=None, compare=False)
    input_channel: str | None = field(default=None, compare=False)

    def _payload(self) -> dict[str, Any]:
        parse = dict(self.parse_data or {})
        parse.setdefault("intent", {"name": self.intent, "confidence": self.intent_confidence})
        parse.setdefault("entities", self.entities)
        parse.setdefault("text", self.text)
        return {"text": self.text, "parse_data": parse, "input_channel": self.input_channel}

    @classmethod
    def _from_payload(cls, data: dict[str, Any]) -> "UserUttered":
        parse = data.get("parse_data") or {}
        intent = parse.get("intent") or {}
        return cls(text=data.get("text"), intent=intent.get("name"),
                   entities=list(parse.get("entities") or []),
                   intent_confidence=float(intent.get("confidence") or 1.0), parse_data=parse,
                   input_channel=data.get("input_channel"))

    def entity_states(self) -> list[str]:
        """``entity``, plus ``entity#role`` / ``entity#group`` when set (Rasa's entity states)."""
        found: list[str] = []
        for e in self.entities:
            names = [e["entity"]] + [f"{e['entity']}#{e[k]}" for k in ("role", "group")
                                     if e.get(k)]
            found += [n for n in names if n not in found]
        return found


@dataclass
class ActionExecuted(Event):
    type_name: ClassVar[str] = "action"
    name: str | None = None
    action_text: str | None = None
    policy: str | None = field(default=None, compare=False)
    confidence: float | None = field(default=None, compare=False)

    @property
    def label(self) -> str:
        return self.name or self.action_text or ""


@dataclass
class BotUttered(Event):
    """A bot message: ``data`` holds buttons, image, custom, ...; ``metadata`` says where it came
    from (``{"utter_action": "utter_faq/opening_hours"}`` for a response, as in Rasa)."""

    type_name: ClassVar[str] = "bot"
    text: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.metadata = dict(self.metadata or {})  # an action server may send "metadata": null


@dataclass
class SlotSet(Event):
    type_name: ClassVar[str] = "slot"
    name: str = ""
    value: Any = None


@dataclass
class ActiveLoop(Event):
    """A form (loop) becomes active; ``name=None`` deactivates it."""

    type_name: ClassVar[str] = "active_loop"
    name: str | None = None


@dataclass
class Restarted(Event):
    type_name: ClassVar[str] = "restart"


@dataclass
class SessionStarted(Event):
    type_name: ClassVar[str] = "session_started"


@dataclass
class AllSlotsReset(Event):
    type_name: ClassVar[str] = "reset_slots"


@dataclass
class UserUtteranceReverted(Event):
    """Undo everything back to and including the latest user message."""

    type_name: ClassVar[str] = "rewind"


@dataclass
class ActionReverted(Event):
    """Undo the latest action (and what it did)."""

    type_name: ClassVar[str] = "undo"


@dataclass
class FollowupAction(Event):
    type_name: ClassVar[str] = "followup"
    name: str = ""


@dataclass
class ActionExecutionRejected(Event):
    type_name: ClassVar[str] = "action_execution_rejected"
    name: str = ""


@dataclass
class ReminderScheduled(Event):
    """Trigger ``intent`` (with ``entities``) in this conversation at ``date_time`` (ISO 8601),
    as Rasa's ``reminder`` event; a custom action schedules it. With ``kill_on_user_message``
    a user message after it cancels it. Unnamed reminders get a random name."""

    type_name: ClassVar[str] = "reminder"
    intent: str = ""
    date_time: str = ""
    entities: list[dict[str, Any]] | dict[str, Any] | None = None
    name: str | None = None
    kill_on_user_message: bool = True

    def __post_init__(self) -> None:
        if not self.name:
            self.name = uuid.uuid4().hex

    def due_at(self) -> float:
        """``date_time`` as a Unix time (a time without zone is local time)."""
        return datetime.fromisoformat(self.date_time).timestamp()

    def _payload(self) -> dict[str, Any]:
        return {"intent": self.intent, "entities": self.entities, "date_time": self.date_time,
                "name": self.name, "kill_on_user_msg": self.kill_on_user_message}

    @classmethod
    def _from_payload(cls, data: dict[str, Any]) -> "ReminderScheduled":
        return cls(intent=data.get("intent") or "", date_time=str(data.get("date_time") or ""),
                   entities=data.get("entities"), name=data.get("name"),
                   kill_on_user_message=bool(data.get("kill_on_user_msg", True)))


@dataclass
class ReminderCancelled(Event):
    """Cancel the reminders named ``name``, or else those for ``intent`` (and ``entities``,
    when given), as Rasa's ``cancel_reminder`` event."""

    type_name: ClassVar[str] = "cancel_reminder"
    name: str | None = None
    intent: str | None = None
    entities: list[dict[str, Any]] | dict[str, Any] | None = None

    def cancels(self, reminder: ReminderScheduled) -> bool:
        if self.name:
            return reminder.name == self.name
        return (self.intent is None or reminder.intent == self.intent) and \
            (self.entities is None or reminder.entities == self.entities)


_EVENT_TYPES: dict[str, type[Event]] = {
    cls.type_name: cls for cls in (UserUttered, ActionExecuted, BotUttered, SlotSet, ActiveLoop,
                                   Restarted, SessionStarted, AllSlotsReset,
                                   UserUtteranceReverted, ActionReverted, FollowupAction,
                                   ActionExecutionRejected, ReminderScheduled,
                                   ReminderCancelled)}
_RENAMED = {"form": "active_loop"}  # Rasa 2.0 renamed the form event


def event_from_dict(data: dict[str, Any]) -> Event:
    """An event from Rasa's JSON; an unknown ``event`` type is a ValueError naming it."""
    if not isinstance(data, dict) or "event" not in data:
        raise ValueError(f"an event must be a mapping with an 'event' key, not {data!r}")
    kind = _RENAMED.get(data["event"], data["event"])
    if kind not in _EVENT_TYPES:
        raise ValueError(f"unknown event type '{data['event']}'; known: "
                         f"{', '.join(sorted(_EVENT_TYPES))}")
    cls = _EVENT_TYPES[kind]
    event = cls._from_payload(data)
    if "timestamp" in data and data["timestamp"] is not None:
        event.timestamp = float(data["timestamp"])
    return event
