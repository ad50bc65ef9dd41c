"""Dialogue states: what the policies see of a tracker, turn by turn (DIET_TED_REFERENCE §3.1).

A state is a small dict, the shape Rasa's policies use::

    {"user": {"intent": "inform", "entities": ("city", "topping#add")},
     "prev_action": {"action_name": "utter_ask_city"},
     "slots": {"city": (1.0,)},
     "active_loop": {"name": "pizza_order_form"}}

Sub-states that would be empty are left out. As in Rasa's SingleStateFeaturizer, the user part is
present only in a turn that follows ``action_listen`` (a real user input). Slots appear only when
they influence the conversation and their features are not all zero.

:class:`DialogueSpace` holds what a state can contain for one domain (intents, actions, entity
states, featurized slots, forms); :func:`tracker_states` gives one state before each action of a
tracker plus the current one.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping, Sequence

from dialogue_models.domain import Domain
from dialogue_models.domain_slots import Slot
from dialogue_models.events import (ACTION_LISTEN, DEFAULT_ACTIONS, REQUESTED_SLOT,
                                    ActionExecuted)
from dialogue_models.tracker import Tracker
from nlu_models.diet.labels import appended

State = dict[str, dict[str, Any]]
UNFEATURIZED_SLOT_TYPES = ("any", "unfeaturized")
OTHER_VALUE = "__other__"


# ---- slot features (Rasa's Slot.as_feature) ------------------------------------------------------
def slot_feature_size(slot: Slot) -> int:
    return {"text": 1, "list": 1, "bool": 2, "float": 2,
            "categorical": len(slot.values) + 1}.get(slot.type, 0)


def slot_features(slot: Slot, value: Any) -> tuple[float, ...]:
    """text/list ``[set]``, bool ``[set, value]``, float ``[set, scaled]``, categorical one-hot
    over the values plus ``__other__`` (case-insensitive match, as Rasa)."""
    if slot.type in ("text", "list"):
        return (1.0 if value not in (None, [], "") else 0.0,)
    if slot.type == "bool":
        return (0.0, 0.0) if value is None else (1.0, float(_as_bool(value)))
    if slot.type == "float":
        try:
            number = float(value)
        except (TypeError, ValueError):
            return (0.0, 0.0)
        low, high = slot.min_value, slot.max_value
        capped = max(low, min(high, number))
        return (1.0, (capped - low) / (abs(high - low) or 1.0))
    if slot.type == "categorical":
        out = [0.0] * (len(slot.values) + 1)
        if value is not None:
            names = [str(v).lower() for v in slot.values]
            out[names.index(str(value).lower()) if str(value).lower() in names else -1] = 1.0
        return tuple(out)
    return ()


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "y", "on")
    return bool(value)


# ---- the space of one domain ---------------------------------------------------------------------
@dataclass
class DialogueSpace:
    """What a state can hold: label spaces for featurization and action prediction."""

    intents: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    entity_states: list[str] = field(default_factory=list)
    slots: list[Slot] = field(default_factory=list)  # the featurized ones, in domain order
    forms: list[str] = field(default_factory=list)
    # intent → entity names it passes on (None: all); from use_entities / ignore_entities
    intent_entities: dict[str, list[str] | None] = field(default_factory=dict)

    @classmethod
    def from_domain(cls, domain: Domain) -> "DialogueSpace":
        actions = list(DEFAULT_ACTIONS)
        # a retrieval response utter_faq/ask_x makes utter_faq an action (Rasa's ResponseSelector)
        responses = [name.split("/")[0] for name in domain.responses]
        for name in (domain.actions + responses + list(domain.forms)
                     + domain.e2e_actions):
            if name not in actions:
                actions.append(name)
        entity_states = []
        for entity in domain.entities:
            if entity.influence_conversation:
                entity_states += [entity.name] + [f"{entity.name}#{r}" for r in entity.roles] \
                    + [f"{entity.name}#{g}" for g in entity.groups]
        slots = [s for s in domain.slots.values()
                 if s.influence_conversation and slot_feature_size(s) > 0
                 and not (s.name == REQUESTED_SLOT and s.source is None)]
        return cls(intents=domain.intent_names, actions=actions, entity_states=entity_states,
                   slots=slots, forms=list(domain.forms),
                   intent_entities={i.name: _passed_entities(i, domain.entity_names)
                                    for i in domain.intents})

    def extended(self, other: "DialogueSpace") -> "DialogueSpace":
        """This space with ``other``'s new intents, actions, entity states, slots and forms
        appended (fine-tuning on a grown domain): everything old keeps its index. A slot in
        both must featurize the same way (type, values, range)."""
        old_slots = {s.name: s for s in self.slots}
        for slot in other.slots:
            if slot.name in old_slots and _slot_key(slot) != _slot_key(old_slots[slot.name]):
                raise ValueError(f"slot '{slot.name}' changed its features from "
                                 f"{_slot_key(old_slots[slot.name])} to {_slot_key(slot)} "
                                 "(type, values, min, max): a fine-tuned model cannot follow; "
                                 "rename the slot or train from scratch")
        return DialogueSpace(
            intents=appended(self.intents, other.intents),
            actions=appended(self.actions, other.actions),
            entity_states=appended(self.entity_states, other.entity_states),
            slots=self.slots + [s for s in other.slots if s.name not in old_slots],
            forms=appended(self.forms, other.forms),
            intent_entities={**self.intent_entities, **other.intent_entities})

    @cached_property
    def _action_ids(self) -> dict[str, int]:
        return {a: i for i, a in enumerate(self.actions)}

    def action_index(self, name: str) -> int:
        try:
            return self._action_ids[name]
        except KeyError:
            raise KeyError(f"action '{name}' is not in the domain (neither a response, an "
                           f"action, a form nor a default action)") from None

    # ---- states --------------------------------------------------------------------------------
    def state(self, tracker: Tracker, with_text: bool = False) -> State:
        """The state of ``tracker`` as it is now. A user turn holds its intent, or its text
        when it has none; ``with_text`` keeps the text beside the intent too (TED's end-to-end
        versions, :mod:`dialogue_models.featurize`)."""
        state: State = {}
        prev = tracker.latest_action_name
        message = tracker.latest_message
        if message is not None and prev == ACTION_LISTEN:
            user: dict[str, Any] = {}
            if message.intent:
                user["intent"] = message.intent
            if message.text and (with_text or not message.intent):
                user["text"] = message.text
            entities = self._entities(message.intent, message.entity_states())
            if entities:
                user["entities"] = entities
            if user:
                state["user"] = user
        if prev:
            state["prev_action"] = {"action_name": prev}
        slots = {}
        for slot in self.slots:
            features = slot_features(slot, tracker.slots.get(slot.name))
            if any(features):
                slots[slot.name] = features
        if slots:
            state["slots"] = slots
        if tracker.active_loop:
            state["active_loop"] = {"name": tracker.active_loop}
        return state

    def _entities(self, intent: str | None, names: Sequence[str]) -> tuple[str, ...]:
        allowed = self.intent_entities.get(intent) if intent else None
        known = set(self.entity_states)
        return tuple(sorted(n for n in names if n in known
                            and (allowed is None or n.split("#")[0] in allowed)))

    # ---- JSON ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"intents": self.intents, "actions": self.actions,
                "entity_states": self.entity_states,
                "slots": [{"name": s.name, "type": s.type, "values": list(s.values),
                           "min_value": s.min_value, "max_value": s.max_value}
                          for s in self.slots],
                "forms": self.forms, "intent_entities": self.intent_entities}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DialogueSpace":
        return cls(intents=list(data["intents"]), actions=list(data["actions"]),
                   entity_states=list(data["entity_states"]),
                   slots=[Slot(**s) for s in data["slots"]], forms=list(data["forms"]),
                   intent_entities=dict(data["intent_entities"]))


def _slot_key(slot: Slot) -> tuple[Any, ...]:
    return slot.type, list(slot.values), slot.min_value, slot.max_value


def _passed_entities(intent, entity_names: list[str]) -> list[str] | None:
    use = intent.use_entities
    if use is True and not intent.ignore_entities:
        return None
    chosen = list(entity_names) if use is True else list(use or [])
    return [e for e in chosen if e not in intent.ignore_entities]


# ---- trackers → states ---------------------------------------------------------------------------
def tracker_states(tracker: Tracker, space: DialogueSpace, with_text: bool = False
                   ) -> list[State]:
    """One state before each action of ``tracker`` (what the policy saw when choosing it), then
    the current state: ``len(actions) + 1`` states, as Rasa's ``tracker.past_states``.
    ``with_text``: user turns keep their text beside their intent (:meth:`DialogueSpace.state`)."""
    states = [space.state(view, with_text) for event, view in tracker.walk()
              if isinstance(event, ActionExecuted)]
    states.append(space.state(tracker, with_text))
    return states


def tracker_actions(tracker: Tracker) -> list[str]:
    """The labels: the applied actions in order (``states[i]`` came just before ``actions[i]``)."""
    return [e.label for e in tracker.past_actions()]


def state_key(states: Sequence[State]) -> str:
    """A canonical string for a sequence of states (memoization lookups, de-duplication)."""
    return json.dumps(list(states), sort_keys=True, separators=(",", ":"))
