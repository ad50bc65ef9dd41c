"""A conversation as training data: its stories (Rasa's ``tracker.export_stories``) and the NLU
examples of its user messages, ready for :func:`~dialogue_models.stories.stories_to_yaml` and
:func:`~nlu_models.data.rasa_yaml.nlu_to_yaml`.

Reverted turns (``rewind``/``undo`` events) are left out. A restart or a new session ends one
story and starts the next, so nothing said before it is lost; what precedes a story's first user
message (``action_session_start``, carried-over slots) is not written. Consecutive ``slot``
events of one slot between two turns become one ``slot_was_set`` step with the last value, so
a slot corrected by hand appears once, corrected. A message of a retrieval intent (``faq``) is
written under the key the response selector chose (``faq/opening_hours``), as Rasa's interactive
learning does.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from dialogue_models.actions import selected_response
from dialogue_models.events import (ACTION_LISTEN, ACTION_SESSION_START, ActionExecuted,
                                    ActiveLoop, Event, Restarted, SessionStarted, SlotSet,
                                    UserUttered)
from dialogue_models.story_model import (ActionStep, SlotWasSet, Step, Story, StoryData,
                                         StoryEntity, UserStep)
from dialogue_models.story_model import ActiveLoop as ActiveLoopStep
from dialogue_models.tracker import applied_events
from nlu_models.data.schema import EntitySpan, Message, NLUData

__all__ = ["kept_events", "conversation_stories", "conversation_examples", "example_intent"]

_SKIPPED_ACTIONS = (ACTION_LISTEN, ACTION_SESSION_START)


def kept_events(events: Iterable[Event]) -> list[Event]:
    """``events`` without the reverted ones; restarts and sessions are kept (unlike
    :meth:`Tracker.applied_events`, which forgets what came before them)."""
    return applied_events(events, forget=False)


def conversation_stories(events: Sequence[Event], name: str) -> StoryData:
    """One story per stretch between restarts / session starts that has a user message, named
    ``name`` (then ``name (2)``, ...)."""
    parts: list[list[Step]] = [[]]
    pending: dict[str, Any] = {}  # slot events since the last user or action step

    def flush() -> None:
        parts[-1].extend(SlotWasSet([(slot, value)]) for slot, value in pending.items())
        pending.clear()

    for event in kept_events(events):
        if isinstance(event, (Restarted, SessionStarted)):
            pending.clear()
            parts.append([])
            continue
        started = bool(parts[-1])
        if isinstance(event, UserUttered):
            flush()
            parts[-1].append(user_step(event))
        elif not started:
            continue  # before the story's first user message
        elif isinstance(event, ActionExecuted) and event.name not in _SKIPPED_ACTIONS:
            flush()
            parts[-1].append(ActionStep(event.label))
        elif isinstance(event, SlotSet):
            pending.pop(event.name, None)  # a correction moves the slot to the end
            pending[event.name] = event.value
        elif isinstance(event, ActiveLoop):
            flush()
            parts[-1].append(ActiveLoopStep(event.name))
    flush()
    steps = [p for p in parts if p]
    return StoryData([Story(name if i == 0 else f"{name} ({i + 1})", s)
                      for i, s in enumerate(steps)])


def user_step(event: UserUttered) -> UserStep:
    """The story step of a user message: its intent and entities (values, roles, groups)."""
    entities = [StoryEntity(e["entity"], e.get("value"), e.get("role"), e.get("group"))
                for e in event.entities if e.get("entity")]
    return UserStep(intent=event.intent, entities=entities)


def conversation_examples(events: Sequence[Event], skip_text=None) -> NLUData:
    """The NLU examples of the kept user messages, once each (text + intent), with their entity
    spans; ``skip_text(text)`` → True leaves a message out (e.g. ``/intent`` shortcuts)."""
    seen: set[tuple[str, str]] = set()
    examples: list[Message] = []
    for event in kept_events(events):
        if not isinstance(event, UserUttered) or not event.text or not event.intent:
            continue
        if (event.text, event.intent) in seen or (skip_text and skip_text(event.text)):
            continue
        seen.add((event.text, event.intent))
        examples.append(Message(event.text, example_intent(event), entity_spans(event.entities)))
    return NLUData(examples=examples)


def example_intent(event: UserUttered) -> str | None:
    """The NLU data's intent of a user message: ``faq/opening_hours`` for the retrieval intent
    ``faq`` when the parse data says which response was selected (Rasa's
    ``full_retrieval_intent_name``), else the intent."""
    parse = event.parse_data or {}
    full = (parse.get("intent") or {}).get("full_retrieval_intent_name")
    if full:
        return full
    key = (selected_response(parse, event.intent or "") or {}).get("intent_response_key")
    return key if key and key.split("/", 1)[0] == event.intent else event.intent


def entity_spans(entities: Iterable[dict[str, Any]]) -> list[EntitySpan]:
    """Rasa entity dicts as spans; entities without ``start``/``end`` (e.g. from a shortcut or a
    custom extractor that gives none) have no place in the text and are left out."""
    return [EntitySpan(int(e["start"]), int(e["end"]), e.get("value"), e["entity"],
                       e.get("role"), e.get("group"))
            for e in entities if e.get("entity") and e.get("start") is not None
            and e.get("end") is not None]
