"""The dialogue tracker: a conversation's events and the state they add up to.

:class:`Tracker` keeps every event (``events``) and applies them as Rasa does: ``restart`` and
``session_started`` forget what came before, ``rewind`` undoes the latest user message and
``undo`` the latest action (:meth:`Tracker.applied_events`). Slots, the latest message, the
latest action and the active loop are read from the applied events.
"""
from __future__ import annotations

import copy
from typing import Any, Iterable, Iterator, Mapping

from dialogue_models.domain_slots import Slot
from dialogue_models.events import (ACTION_LISTEN, REQUESTED_SLOT, ActionExecuted,
                                    ActionExecutionRejected, ActionReverted, ActiveLoop, AllSlotsReset, Event, Restarted,
                                    SessionStarted, SlotSet, UserUttered, UserUtteranceReverted,
                                    event_from_dict)

_FORGET = (Restarted, SessionStarted)


class Tracker:
    """One conversation. ``slots`` gives the declared slots (their initial values); a slot set by
    an event but not declared is kept too (Rasa warns; a tracker is a record, not a validator).

    ``is_augmented`` and ``is_rule`` mark training trackers made by story concatenation and from
    rules, which some policies skip."""

    def __init__(self, sender_id: str = "default", slots: Mapping[str, Slot] | None = None,
                 events: Iterable[Event] = (), *, name: str = "", is_augmented: bool = False,
                 is_rule: bool = False) -> None:
        self.sender_id = sender_id
        self.declared_slots = dict(slots or {})
        self.name, self.is_augmented, self.is_rule = name, is_augmented, is_rule
        self.events: list[Event] = []
        self._reset()
        for event in events:
            self.update(event)

    # ---- applying events -----------------------------------------------------------------------
    def _reset(self) -> None:
        self.slots: dict[str, Any] = {n: copy.deepcopy(s.initial_value)
                                      for n, s in self.declared_slots.items()}
        self.latest_message: UserUttered | None = None
        self.latest_action: ActionExecuted | None = None
        self.active_loop: str | None = None

    def update(self, event: Event) -> None:
        """Append ``event`` and apply it."""
        if not isinstance(event, Event):
            raise TypeError(f"a tracker takes Event objects, not {type(event).__name__}")
        self.events.append(event)
        if isinstance(event, (UserUtteranceReverted, ActionReverted)):
            self._replay()
        else:
            self._apply(event)

    def _apply(self, event: Event) -> None:
        if isinstance(event, _FORGET):
            self._reset()
        elif isinstance(event, UserUttered):
            self.latest_message = event
        elif isinstance(event, ActionExecuted):
            self.latest_action = event
        elif isinstance(event, SlotSet):
            self.slots[event.name] = event.value
        elif isinstance(event, ActiveLoop):
            self.active_loop = event.name
            if event.name is None:
                self.slots[REQUESTED_SLOT] = None
        elif isinstance(event, AllSlotsReset):
            self.slots = {n: copy.deepcopy(s.initial_value)
                          for n, s in self.declared_slots.items()}

    def _replay(self) -> None:
        self._reset()
        for event in self.applied_events():
            self._apply(event)

    def applied_events(self) -> list[Event]:
        """The events that still count after restarts, sessions and reverts (Rasa's rules)."""
        return applied_events(self.events)

    # ---- reading -------------------------------------------------------------------------------
    @property
    def latest_action_name(self) -> str | None:
        return self.latest_action.label if self.latest_action else None

    @property
    def requested_slot(self) -> str | None:
        return self.slots.get(REQUESTED_SLOT)

    def is_active_loop_rejected(self) -> bool:
        """Rasa's ``is_active_loop_rejected``: the active loop refused to run
        (``ActionExecutionRejected``) and has not run or been re-activated since."""
        loop, rejected = None, False
        for event in self.applied_events():
            if isinstance(event, ActiveLoop):
                loop, rejected = event.name, False
            elif isinstance(event, ActionExecuted) and loop and event.name == loop:
                rejected = False
            elif isinstance(event, ActionExecutionRejected) and loop and event.name == loop:
                rejected = True
        return rejected

    def is_waiting_for_user(self) -> bool:
        return self.latest_action_name == ACTION_LISTEN

    def copy(self) -> "Tracker":
        clone = Tracker.__new__(Tracker)
        clone.__dict__.update(self.__dict__)
        clone.events = list(self.events)
        clone.slots = dict(self.slots)
        return clone

    def walk(self) -> Iterator[tuple[Event, "Tracker"]]:
        """Each applied event with the tracker as it was just before it. The tracker yielded is
        one object updated in place: read it, do not keep it."""
        view = Tracker(self.sender_id, self.declared_slots)
        for event in self.applied_events():
            yield event, view
            view._apply(event)

    def past_actions(self) -> Iterator[ActionExecuted]:
        return (e for e in self.applied_events() if isinstance(e, ActionExecuted))

    # ---- Rasa's tracker JSON -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        message = self.latest_message
        return {
            "sender_id": self.sender_id,
            "slots": dict(self.slots),
            "latest_message": (message.to_dict()["parse_data"] if message else {}),
            "latest_event_time": self.events[-1].timestamp if self.events else None,
            "followup_action": None,
            "paused": False,
            "events": [e.to_dict() for e in self.events],
            "latest_input_channel": message.input_channel if message else None,
            "active_loop": {"name": self.active_loop} if self.active_loop else {},
            "latest_action": ({"action_name": self.latest_action.name} if self.latest_action
                              else {}),
            "latest_action_name": self.latest_action_name,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], slots: Mapping[str, Slot] | None = None
                  ) -> "Tracker":
        return cls(str(data.get("sender_id", "default")), slots,
                   [event_from_dict(e) for e in data.get("events") or []])

    def __repr__(self) -> str:
        return (f"Tracker({self.sender_id!r}, {len(self.events)} events, "
                f"active_loop={self.active_loop!r}, latest_action={self.latest_action_name!r})")


def applied_events(events: Iterable[Event], forget: bool = True) -> list[Event]:
    """``events`` without the reverted ones (``rewind``, ``undo``) and, with ``forget``, without
    those before the latest restart or session start."""
    applied: list[Event] = []
    for event in events:
        if forget and isinstance(event, _FORGET):
            applied = []
        elif isinstance(event, ActionReverted):
            _undo_till(ActionExecuted, applied)
        elif isinstance(event, UserUtteranceReverted):
            _undo_till(UserUttered, applied)
            _undo_till(ActionExecuted, applied)
        else:
            applied.append(event)
    return applied


def _undo_till(kind: type, events: list[Event]) -> None:
    """Drop events from the end up to and including the latest one of ``kind``."""
    while events:
        if isinstance(events.pop(), kind):
            return
