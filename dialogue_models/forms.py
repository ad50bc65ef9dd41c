"""The form loop: Rasa 3.6's ``FormAction`` (``rasa/core/actions/forms.py``) for domain forms.

:func:`run_form` returns the events one run of the form adds; it never changes the tracker.

- **Activation** (the form is not the active loop): ``ActiveLoop(form)``, then
  ``action_extract_slots`` runs again with the form active (this fills ``from_trigger_intent``
  and form-conditioned mappings), the required slots already filled are validated, and the first
  empty required slot is requested.
- **Active, right after ``action_listen``**: the candidates are the ``SlotSet`` events since the
  latest user message for the form's required slots (and the requested slot); they are already
  in the tracker because ``action_extract_slots`` ran after the message. They are validated; if
  a slot is requested and validation produced no ``SlotSet`` (other than ``requested_slot``) the
  form answers ``[ActionExecutionRejected(form)]``: Rasa's unhappy path, other policies decide.
  (Rasa's rule is "the message filled none of the form's slots", not only the requested one.)
- **Active, after another action** (e.g. ``utter_menu`` of an interruption rule), or after the
  form was rejected and another action ran (returning from an unhappy path): nothing is
  validated; the form only asks for the next slot.
- **Validation**: ``validate(form, tracker, domain, candidates)`` stands in for the custom action
  ``validate_<form>``. Its tracker is Rasa's temporary tracker (``requested_slot``,
  ``ActionExecuted(form)``, then a ``SlotSet`` per candidate), so a Rasa SDK
  ``FormValidationAction`` sees the candidates as "slots to validate". A candidate it returns no
  ``SlotSet`` for is kept as it is; ``SlotSet(slot, None)`` rejects a value. Returning
  ``SlotSet(requested_slot, x)`` chooses the next slot (this is how the SDK adds required slots
  dynamically); ``SlotSet(requested_slot, None)`` or ``ActiveLoop(None)`` ends the form; an
  ``ActionExecutionRejected`` event among its events stops the form without asking.
- **Requesting**: the first required slot that is still empty (unless validation set
  ``requested_slot``): ``SlotSet(requested_slot, slot)`` and the first of
  ``action_ask_<form>_<slot>``, ``utter_ask_<form>_<slot>``, ``action_ask_<slot>``,
  ``utter_ask_<slot>`` the domain has, run
  by ``ask(name, tracker)`` (``ActionRunner`` passes its own ``run``: responses become
  ``BotUttered``, ``action_ask_*`` go to the action server). Without ``ask`` the chosen name is
  returned as a ``FollowupAction(name)`` marker for the caller to execute.
- **Done**: ``SlotSet(requested_slot, None)`` then ``ActiveLoop(None)``.

Simplifications: Rasa marks a return from an unhappy path with the RulePolicy's
``LoopInterrupted`` event; here it is read from the events (:func:`loop_interrupted`). At
activation the validator is called once (Rasa calls it in ``activate`` and again in ``do`` when
nothing was pre-filled).
"""
from __future__ import annotations

from typing import Any, Callable

from dialogue_models.domain import Domain
from dialogue_models.events import (ACTION_EXTRACT_SLOTS, ACTION_LISTEN, REQUESTED_SLOT,
                                    ActionExecuted, ActionExecutionRejected, ActiveLoop, Event,
                                    FollowupAction, SlotSet, UserUttered)
from dialogue_models.slot_extraction import extract_slots
from dialogue_models.tracker import Tracker

__all__ = ["Validator", "AskAction", "run_form", "validate_slots", "ask_action_name",
           "loop_interrupted", "slot_candidates"]

Validator = Callable[[str, Tracker, Domain, dict[str, Any]], list[Event]]
AskAction = Callable[[str, Tracker], list[Event]]


def run_form(form_name: str, tracker: Tracker, domain: Domain, validate: Validator | None = None,
             ask: AskAction | None = None) -> list[Event]:
    """The events of one run of form ``form_name`` on ``tracker`` (see the module docstring)."""
    if form_name not in domain.forms:
        raise KeyError(f"'{form_name}' is not a form of the domain; forms: "
                       f"{', '.join(domain.forms) or 'none'}")
    if tracker.active_loop != form_name:
        events: list[Event] = [ActiveLoop(form_name)]
        events += _activate(form_name, _with(tracker, events), domain, validate)
    else:
        validated = _validate_if_required(form_name, tracker, domain, validate)
        if validated is None:
            return [ActionExecutionRejected(form_name)]
        events = validated
    if _rejected_manually(events):
        return events
    if not _is_done(events):
        events += _request_next_slot(form_name, tracker, domain, events, ask)
    if _is_done(events):
        events.append(ActiveLoop(None))
    return events


def validate_slots(form_name: str, tracker: Tracker, domain: Domain, candidates: dict[str, Any],
                   validate: Validator | None) -> list[Event]:
    """``SlotSet`` per candidate, passed through ``validate`` when there is one (its events
    first, then the candidates it did not set)."""
    events: list[Event] = [SlotSet(name, value) for name, value in candidates.items()]
    if validate is None:
        return events
    validated = list(validate(form_name, _temporary(form_name, tracker, events), domain,
                              dict(candidates)))
    names = {e.name for e in validated if isinstance(e, SlotSet)}
    return validated + [e for e in events if e.name not in names]


def slot_candidates(form_name: str, tracker: Tracker, domain: Domain) -> dict[str, Any]:
    """Values set since the latest user message for the form's required (or requested) slots.
    A slot filled only through a ``from_entity`` mapping that other required slots share counts
    only when it is the requested slot (Rasa's unique-entity rule)."""
    applied = tracker.applied_events()
    start = max((i for i, e in enumerate(applied) if isinstance(e, UserUttered)), default=0)
    wanted = set(domain.forms[form_name].required_slots) | {tracker.requested_slot}
    candidates: dict[str, Any] = {}
    for event in applied[start:]:
        if isinstance(event, SlotSet) and event.name in wanted and event.name != REQUESTED_SLOT:
            if _set_by_unique_mapping(form_name, event.name, tracker, domain):
                candidates[event.name] = event.value
    return candidates


def ask_action_name(form_name: str, slot: str, domain: Domain) -> str | None:
    """The action or response that asks for ``slot``, in Rasa's search order."""
    known = set(domain.actions) | set(domain.responses)
    search = (f"action_ask_{form_name}_{slot}", f"utter_ask_{form_name}_{slot}",
              f"action_ask_{slot}", f"utter_ask_{slot}")
    return next((name for name in search if name in known), None)


def loop_interrupted(tracker: Tracker, form_name: str) -> bool:
    """Whether the form comes back from an unhappy path: since it last ran it was rejected and
    some other action ran (then the user's latest message is not an answer to validate)."""
    rejected = other_action = False
    for event in tracker.applied_events():
        if isinstance(event, ActiveLoop) or (isinstance(event, ActionExecuted)
                                             and event.name == form_name):
            rejected = other_action = False
        elif isinstance(event, ActionExecutionRejected) and event.name == form_name:
            rejected = True
        elif isinstance(event, ActionExecuted) and rejected and \
                event.name not in (ACTION_LISTEN, ACTION_EXTRACT_SLOTS):
            other_action = True
    return rejected and other_action


# ---- the steps -----------------------------------------------------------------------------------
def _activate(form_name: str, tracker: Tracker, domain: Domain,
              validate: Validator | None) -> list[Event]:
    """``tracker`` already has ``ActiveLoop(form)``: extract again, validate what is filled."""
    extracted = extract_slots(tracker, domain)
    filled = _with(tracker, extracted)
    prefilled = {s: filled.slots.get(s) for s in domain.forms[form_name].required_slots
                 if filled.slots.get(s) is not None}
    if validate is None:
        return list(extracted)
    validated = validate_slots(form_name, filled, domain, prefilled, validate)
    names = {e.name for e in validated if isinstance(e, SlotSet)}
    return validated + [e for e in extracted if e.name not in names]


def _validate_if_required(form_name: str, tracker: Tracker, domain: Domain,
                          validate: Validator | None) -> list[Event] | None:
    """Validation events, or None when the form rejects to run."""
    if tracker.latest_action_name != ACTION_LISTEN or loop_interrupted(tracker, form_name):
        return validate_slots(form_name, tracker, domain, {}, validate)
    candidates = slot_candidates(form_name, tracker, domain)
    events = validate_slots(form_name, tracker, domain, candidates, validate)
    validated = any(isinstance(e, SlotSet) and e.name != REQUESTED_SLOT for e in events)
    if tracker.requested_slot and not validated and not _rejected_manually(events):
        return None
    return events


def _request_next_slot(form_name: str, tracker: Tracker, domain: Domain,
                       events_so_far: list[Event], ask: AskAction | None) -> list[Event]:
    if _is_done(events_so_far):
        return [SlotSet(REQUESTED_SLOT, None)]
    slot = next((e.value for e in events_so_far
                 if isinstance(e, SlotSet) and e.name == REQUESTED_SLOT), None)
    temporary = _temporary(form_name, tracker, events_so_far)
    events: list[Event] = []
    if not slot:
        slot = next((s for s in domain.forms[form_name].required_slots
                     if temporary.slots.get(s) is None), None)
        events.append(SlotSet(REQUESTED_SLOT, slot))
    if not slot:
        return [SlotSet(REQUESTED_SLOT, None)]
    name = ask_action_name(form_name, slot, domain)
    if name is None:
        return events
    if ask is None:
        return events + [FollowupAction(name)]
    return events + list(ask(name, _with(temporary, events)))


# ---- helpers -------------------------------------------------------------------------------------
def _with(tracker: Tracker, events: list[Event]) -> Tracker:
    copy = tracker.copy()
    for event in events:
        copy.update(event)
    return copy


def _temporary(form_name: str, tracker: Tracker, events: list[Event]) -> Tracker:
    """Rasa's temporary tracker: requested slot of this form, ``ActionExecuted(form)``, events."""
    requested = tracker.requested_slot if tracker.active_loop == form_name else None
    return _with(tracker, [SlotSet(REQUESTED_SLOT, requested), ActionExecuted(form_name),
                           *events])


def _is_done(events: list[Event]) -> bool:
    if _rejected_manually(events):
        return False
    last_request = next((e for e in reversed(events)
                         if isinstance(e, SlotSet) and e.name == REQUESTED_SLOT), None)
    last_loop = next((e for e in reversed(events) if isinstance(e, ActiveLoop)), None)
    return (last_request is not None and last_request.value is None) or \
        (last_loop is not None and last_loop.name is None)


def _rejected_manually(events: list[Event]) -> bool:
    return any(isinstance(e, ActionExecutionRejected) for e in events)


def _set_by_unique_mapping(form_name: str, slot: str, tracker: Tracker, domain: Domain) -> bool:
    if slot == tracker.requested_slot or slot not in domain.slots:
        return True
    required = domain.forms[form_name].required_slots
    shared = [m for s in required if s in domain.slots for m in domain.slots[s].mappings
              if m.type == "from_entity"]
    return any(m.type != "from_entity" or shared.count(m) == 1
               for m in domain.slots[slot].mappings)
