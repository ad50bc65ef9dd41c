"""Rasa 3.x ``action_extract_slots``: fill slots from the latest user message by their mappings.

:func:`extract_slots` is a pure function of (tracker, domain), run after every user message (by
:class:`~dialogue_models.processor.MessageProcessor`) and again when a form is activated (by
:func:`~dialogue_models.forms.run_form`), as Rasa 3.6's ``ActionExtractSlots.run`` and
``FormAction.activate`` do. For each slot its mappings are tried in order; the first mapping
that applies and yields a value wins (values are not merged across mappings):

- ``from_entity``: the values of the message's entities with that entity type *and* exactly the
  mapping's role and group (no role in the mapping = only entities without a role); a list slot
  gets all of them, any other slot the last one;
- ``from_text``: the message text;
- ``from_intent``: the mapping's ``value``;
- ``from_trigger_intent``: the mapping's ``value``, but only while a form is active (and, when
  the mapping has conditions, while one of *their* forms is active). The user-turn extraction
  runs before the form is activated, so such a slot fills at the activation re-run, i.e. when the
  intent triggered the form;
- ``custom``: never filled here (a custom action or the form's validation action does it).

A mapping applies when the intent passes ``intent``/``not_intent`` (the active form's
``ignored_intents`` count as ``not_intent``) and, except for ``from_trigger_intent``, one of its
``conditions`` holds: ``active_loop`` equals the active form (``active_loop: null`` = no form)
and ``requested_slot``, if given, equals the requested slot. No condition matches the requested
slot of a form that was just rejected. While a form is active, a ``from_entity`` mapping shared
by several of its required slots fills only the requested one (Rasa's unique-entity check).

**Mappings without conditions apply on every user message**, form or no form, for every mapping
type: Rasa 3.x has no "requested slot only" rule for ``from_text``/``from_intent`` (that was 2.x
form behaviour; ``rasa data migrate`` and :mod:`dialogue_models.domain_slots` turn 2.x form
mappings into ``conditions`` with ``requested_slot``).

Simplification: only slots whose value changes get a :class:`SlotSet` (Rasa emits one for every
mapped value, changed or not); ``action_validate_slot_mappings`` and custom mappings with an
``action`` are not run.
"""
from __future__ import annotations

from typing import Any

from dialogue_models.domain import Domain
from dialogue_models.domain_slots import Slot, SlotMapping
from dialogue_models.events import REQUESTED_SLOT, SlotSet
from dialogue_models.tracker import Tracker

__all__ = ["extract_slots", "extract_slot_value", "active_loop_rejected", "mapping_applies"]


def extract_slots(tracker: Tracker, domain: Domain) -> list[SlotSet]:
    """``SlotSet`` events for the slots the latest user message fills with a new value."""
    events = []
    for slot in domain.slots.values():
        if slot.name == REQUESTED_SLOT:
            continue
        value, found = extract_slot_value(slot, tracker, domain)
        if found and value != tracker.slots.get(slot.name):
            events.append(SlotSet(slot.name, value))
    return events


def extract_slot_value(slot: Slot, tracker: Tracker, domain: Domain) -> tuple[Any, bool]:
    """``(value, True)`` from the first applicable mapping that yields a value, else
    ``(None, False)``. A yielded ``None`` counts only when it clears a filled slot."""
    for mapping in slot.mappings:
        if not mapping_applies(slot.name, mapping, tracker, domain):
            continue
        values = _mapping_values(mapping, tracker)
        if not values:
            continue
        value = values if slot.type == "list" else values[-1]
        if value is not None or tracker.slots.get(slot.name) is not None:
            return value, True
    return None, False


def mapping_applies(slot_name: str, mapping: SlotMapping, tracker: Tracker,
                    domain: Domain) -> bool:
    """Whether ``mapping`` may fill ``slot_name`` now (type, intent, conditions, uniqueness)."""
    if mapping.type == "custom":
        return False
    if mapping.type == "from_entity" and mapping.entity not in domain.entity_names:
        return False
    if mapping.type == "from_intent" and any(i not in domain.intent_names
                                             for i in mapping.intent or []):
        return False
    if not _intent_is_desired(mapping, tracker, domain):
        return False
    if mapping.type != "from_trigger_intent" and not _conditions_hold(slot_name, mapping,
                                                                      tracker):
        return False
    return not _fails_unique_entity_check(slot_name, mapping, tracker, domain)


def active_loop_rejected(tracker: Tracker) -> bool:
    """Whether the active form rejected to run and has not run since."""
    return tracker.is_active_loop_rejected()


# ---- the checks ----------------------------------------------------------------------------------
def _intent_is_desired(mapping: SlotMapping, tracker: Tracker, domain: Domain) -> bool:
    message = tracker.latest_message
    intent = message.intent if message else None
    wanted = mapping.intent or []
    blocked = set(mapping.not_intent or [])
    form = domain.forms.get(tracker.active_loop or "")
    if form is not None:
        blocked |= set(form.ignored_intents)
    return intent in wanted or (not wanted and intent not in blocked)


def _conditions_hold(slot_name: str, mapping: SlotMapping, tracker: Tracker) -> bool:
    if not mapping.conditions:
        return True
    if active_loop_rejected(tracker) and tracker.requested_slot == slot_name:
        return False
    for condition in mapping.conditions:
        if condition.active_loop is None:
            if tracker.active_loop is None:
                return True
        elif condition.active_loop == tracker.active_loop and \
                condition.requested_slot in (None, tracker.requested_slot):
            return True
    return False


def _fails_unique_entity_check(slot_name: str, mapping: SlotMapping, tracker: Tracker,
                               domain: Domain) -> bool:
    """A ``from_entity`` mapping that several required slots of the active form share fills
    only the requested slot."""
    form = domain.forms.get(tracker.active_loop or "")
    if mapping.type != "from_entity" or form is None or tracker.requested_slot == slot_name \
            or slot_name not in form.required_slots:
        return False
    shared = [m for s in form.required_slots if s in domain.slots
              for m in domain.slots[s].mappings if m.type == "from_entity"]
    return shared.count(mapping) > 1


def _mapping_values(mapping: SlotMapping, tracker: Tracker) -> list[Any]:
    message = tracker.latest_message
    if mapping.type == "from_entity":
        if message is None:
            return []
        return [e.get("value") for e in message.entities
                if e.get("entity") == mapping.entity and e.get("role") == mapping.role
                and e.get("group") == mapping.group]
    if mapping.type == "from_intent":
        return [mapping.value]
    if mapping.type == "from_trigger_intent":
        loops = [c.active_loop for c in mapping.conditions]
        active = tracker.active_loop
        return [mapping.value] if active and (not loops or active in loops) else []
    if mapping.type == "from_text":
        return [message.text if message is not None else None]
    return []
