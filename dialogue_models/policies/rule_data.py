"""Rules as training trackers, and the partial states the RulePolicy matches.

:func:`rule_trackers` turns :class:`~dialogue_models.story_model.Rule` objects into trackers
(``is_rule=True``) the way Rasa's ``RuleParser`` and story generator do:

* the ``condition`` items become events at the very start (slots, active loop);
* unless ``conversation_start: true``, a rule-snippet action ``...`` follows the condition: what
  came before it is "anything" (the RulePolicy drops every state up to and including the one
  right after ``...``);
* the steps follow (``action_listen`` before each user message, as in stories);
* the rule ends with ``action_listen`` (``wait_for_user_input: true``, the default) or with
  another ``...`` (``wait_for_user_input: false``: nothing is learned after the last action);
* ``null`` slot values and ``active_loop: null`` become :data:`SHOULD_NOT_BE_SET` (Rasa's
  ``should_not_be_set`` marker), in the condition and in the steps alike.

:func:`policy_states` gives a tracker's states with those markers kept; with
``omit_unset_slots=True`` (rule trackers, as Rasa's ``omit_unset_slots``) only slots the rule
itself sets appear, so a rule names nothing it does not mention.
:func:`rule_applies` is Rasa's ``_is_rule_applicable``: rule states aligned at the end of the
conversation, each a subset of the conversation state there.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from dialogue_models.domain import Domain
from dialogue_models.events import (ACTION_LISTEN, ActionExecuted, ActionExecutionRejected,
                                    ActiveLoop, Event, SlotSet)
from dialogue_models.generation import generate_trackers, steps_events, slot_value
from dialogue_models.states import DialogueSpace, State, slot_features
from dialogue_models.story_model import ActiveLoop as ActiveLoopStep
from dialogue_models.story_model import Rule, SlotWasSet, StoryData
from dialogue_models.tracker import Tracker

RULE_SNIPPET_ACTION = "..."
SHOULD_NOT_BE_SET = "should_not_be_set"


# ---- rules → trackers ----------------------------------------------------------------------------
def rule_trackers(rules: Iterable[Rule], domain: Domain) -> list[Tracker]:
    """One tracker per rule (per branch of its ``or`` steps), flagged ``is_rule``. Each keeps
    the rule's ``source`` (file:line) as ``tracker.source`` for error messages."""
    trackers = []
    for rule in rules:
        prefix = _condition_events(rule, domain)
        if not rule.conversation_start:
            prefix.append(ActionExecuted(RULE_SNIPPET_ACTION))
        for branch in steps_events(rule.steps, domain, prefix):
            events = prefix + [_mark_null(e) for e in branch]
            if not rule.wait_for_user_input:
                events.append(ActionExecuted(RULE_SNIPPET_ACTION))
            elif not (isinstance(events[-1], ActionExecuted) and events[-1].name == ACTION_LISTEN):
                events.append(ActionExecuted(ACTION_LISTEN))
            tracker = Tracker(rule.name, domain.slots, events, name=rule.name, is_rule=True)
            tracker.source = rule.source  # type: ignore[attr-defined]
            trackers.append(tracker)
    return trackers


def training_trackers(data: StoryData, domain: Domain, *, augmentation_factor: int = 50,
                      seed: int = 42) -> list[Tracker]:
    """Story trackers (plus augmented ones) and rule trackers: what an ensemble trains on."""
    return (generate_trackers(data, domain, augmentation_factor=augmentation_factor, seed=seed)
            + rule_trackers(data.rules, domain))


def _condition_events(rule: Rule, domain: Domain) -> list[Event]:
    events: list[Event] = []
    for step in rule.condition:
        if isinstance(step, SlotWasSet):
            events += [SlotSet(n, SHOULD_NOT_BE_SET if v is None else slot_value(domain, n, v))
                       for n, v in step.slots]
        elif isinstance(step, ActiveLoopStep):
            events.append(ActiveLoop(step.name or SHOULD_NOT_BE_SET))
    return events


def _mark_null(event: Event) -> Event:
    if isinstance(event, SlotSet) and event.value is None:
        return SlotSet(event.name, SHOULD_NOT_BE_SET)
    if isinstance(event, ActiveLoop) and event.name is None:
        return ActiveLoop(SHOULD_NOT_BE_SET)
    return event


# ---- states with markers -------------------------------------------------------------------------
def policy_states(tracker: Tracker, space: DialogueSpace, *,
                  omit_unset_slots: bool = False) -> list[State]:
    """Like :func:`~dialogue_models.states.tracker_states` (one state before each action, then
    the current one), keeping :data:`SHOULD_NOT_BE_SET` markers; with ``omit_unset_slots`` only
    the slots set by the tracker's own events appear."""
    states: list[State] = []
    set_slots: set[str] = set()
    only = set_slots if omit_unset_slots else None
    for event, view in tracker.walk():
        if isinstance(event, ActionExecuted):
            states.append(_marked_state(view, space, only))
        elif isinstance(event, SlotSet):
            set_slots.add(event.name)
    states.append(_marked_state(tracker, space, only))
    return states


def _marked_state(view: Tracker, space: DialogueSpace, only: set[str] | None) -> State:
    state = space.state(view)
    slots: dict[str, Any] = {}
    for slot in space.slots:
        if only is not None and slot.name not in only:
            continue
        value = view.slots.get(slot.name)
        if isinstance(value, str) and value == SHOULD_NOT_BE_SET:
            slots[slot.name] = SHOULD_NOT_BE_SET
        elif any(features := slot_features(slot, value)):
            slots[slot.name] = features
    state.pop("slots", None)
    if slots:
        state["slots"] = slots
    return state


def active_loop_name(tracker: Tracker) -> str | None:
    """The active loop, None when none is active (or the rule marker says none may be)."""
    loop = tracker.active_loop
    return None if loop in (None, SHOULD_NOT_BE_SET) else loop


def is_active_loop_rejected(tracker: Tracker) -> bool:
    """Rasa's ``tracker.is_active_loop_rejected``, for a loop that is really active."""
    return tracker.is_active_loop_rejected() and active_loop_name(tracker) is not None


def emulate_loop_rejection(tracker: Tracker) -> bool:
    """Rasa's ``rasa.core.test.emulate_loop_rejection``: when a story does not follow the
    active loop's prediction, mark the loop as having rejected (in place) so that rules and
    other policies decide; evaluation and the contradiction check predict again after it.
    Returns False (and changes nothing) when no loop is active."""
    loop = active_loop_name(tracker)
    if loop is None:
        return False
    tracker.update(ActionExecutionRejected(loop))
    return True


# ---- matching ------------------------------------------------------------------------------------
def state_matches(rule_state: State, state: State) -> bool:
    """Every feature ``rule_state`` names is in ``state`` with the same value; a
    :data:`SHOULD_NOT_BE_SET` feature must be absent (Rasa's ``_does_rule_match_state``)."""
    for kind, wanted in rule_state.items():
        present = state.get(kind, {})
        for key, value in wanted.items():
            have = present.get(key)
            if value == SHOULD_NOT_BE_SET:
                if have and have != SHOULD_NOT_BE_SET:
                    return False
            elif value and have != value:
                return False
    return True


def rule_applies(rule_states: Sequence[State], states: Sequence[State]) -> bool:
    """Rule states aligned at the end of the conversation. A state without ``prev_action`` is a
    conversation start and only matches another one (``conversation_start`` rules)."""
    for rule_state, state in zip(reversed(rule_states), reversed(states)):
        rule_prev, prev = "prev_action" in rule_state, "prev_action" in state
        if not rule_prev and not prev:
            continue
        if not rule_prev or not prev or not state_matches(rule_state, state):
            return False
    return True


def after_snippet(states: Sequence[State]) -> list[State]:
    """The states after the last rule snippet: everything up to and including the state right
    after ``...`` is "anything" (Rasa's ``_create_feature_key`` for rules)."""
    kept: list[State] = []
    for state in reversed(states):
        if state.get("prev_action", {}).get("action_name") == RULE_SNIPPET_ACTION:
            break
        kept.insert(0, state)
    return kept


def named_features(states: Sequence[State]) -> int:
    return sum(len(sub) for state in states for sub in state.values())


def freeze(value: Any) -> Any:
    """JSON lists back to the tuples states hold (slot features, entity states)."""
    if isinstance(value, dict):
        return {k: freeze(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value
