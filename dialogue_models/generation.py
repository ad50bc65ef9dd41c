"""Stories and rules replayed into training trackers.

:func:`step_events` turns one story step into tracker events the way Rasa's story reader does
(``action_listen`` before every user message, ``"filled"`` for a bare ``slot_was_set`` name).
:func:`generate_trackers` follows checkpoints between stories, expands ``or`` steps, and adds
augmented trackers made by gluing random complete stories end to start (Rasa's
``--augmentation``, default 50).

Differences from Rasa's generator, kept deliberately simple: augmentation glues pairs of complete
stories (``augmentation_factor × 10`` of them, seeded), where Rasa runs further phases over
checkpoint-less story ends; a story may pass each checkpointed segment once (so cycles end).
"""
from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from dialogue_models.domain import Domain
from dialogue_models.events import (ACTION_LISTEN, ActionExecuted, ActiveLoop, Event, SlotSet,
                                    UserUttered)
from dialogue_models.story_model import (FILLED, ActionStep, Checkpoint, OrStep, Rule, SlotWasSet,
                                         Step, Story, StoryData, UserStep)
from dialogue_models.story_model import ActiveLoop as ActiveLoopStep
from dialogue_models.tracker import Tracker

STORY_START = "STORY_START"
MAX_TRACKERS_PER_CHECKPOINT = 1000
FILLED_TEXT = "filled"


# ---- one step → events ---------------------------------------------------------------------------
def user_event(step: UserStep) -> UserUttered:
    entities = [{"entity": e.entity, "value": e.value,
                 **({"role": e.role} if e.role else {}),
                 **({"group": e.group} if e.group else {})} for e in step.entities]
    for span, entity in zip(step.spans, entities[len(entities) - len(step.spans):]):
        entity.update(start=span.start, end=span.end)
    return UserUttered(text=step.text, intent=step.intent, entities=entities)


def slot_value(domain: Domain | None, name: str, value: Any) -> Any:
    """A bare ``slot_was_set: - name`` means "set to something": Rasa's ``"filled"``."""
    if value is not FILLED:
        return value
    slot = domain.slots.get(name) if domain else None
    return [FILLED_TEXT] if slot is not None and slot.type == "list" else FILLED_TEXT


def step_events(step: Step, domain: Domain | None, previous: Sequence[Event] = ()) -> list[Event]:
    """Events for one (non-``or``, non-checkpoint) step, given the events before it."""
    if isinstance(step, UserStep):
        events: list[Event] = []
        if not (previous and isinstance(previous[-1], ActionExecuted)
                and previous[-1].name == ACTION_LISTEN):
            events.append(ActionExecuted(ACTION_LISTEN))
        message = user_event(step)
        events.append(message)
        if domain is not None and domain.fills_slots_from_entities:
            events += _entity_slots(message, domain)
        return events
    if isinstance(step, ActionStep):
        return [ActionExecuted(step.name, action_text=step.text if not step.name else None)]
    if isinstance(step, SlotWasSet):
        return [SlotSet(n, slot_value(domain, n, v)) for n, v in step.slots]
    if isinstance(step, ActiveLoopStep):
        return [ActiveLoop(step.name)]
    raise TypeError(f"step_events does not take {type(step).__name__} steps")


def _entity_slots(message: UserUttered, domain: Domain) -> list[Event]:
    """Rasa 1.x/2.x: every entity with a slot of the same name sets it (list slots collect)."""
    values: dict[str, list[Any]] = {}
    for entity in message.entities:
        if entity["entity"] in domain.slots:
            values.setdefault(entity["entity"], []).append(entity["value"])
    return [SlotSet(name, found if domain.slots[name].type == "list" else found[-1])
            for name, found in values.items()]


def steps_events(steps: Iterable[Step], domain: Domain | None,
                 previous: Sequence[Event] = ()) -> list[list[Event]]:
    """Every event sequence ``steps`` can produce (``or`` steps branch)."""
    branches: list[list[Event]] = [[]]
    for step in steps:
        if isinstance(step, Checkpoint):
            continue
        options = step.alternatives if isinstance(step, OrStep) else [step]
        branches = [branch + step_events(option, domain, list(previous) + branch)
                    for branch in branches for option in options]
    return branches


# ---- story graph ---------------------------------------------------------------------------------
@dataclass
class _Segment:
    name: str
    start: list[Checkpoint]
    steps: list[Step]
    end: list[Checkpoint]
    index: int = 0


def _segments(stories: Sequence[Story]) -> list[_Segment]:
    """Each story split at its checkpoints: leading ones are where it starts, trailing ones
    where it continues; a checkpoint in the middle ends one segment and starts the next."""
    segments: list[_Segment] = []
    for story in stories:
        start: list[Checkpoint] = []
        steps: list[Step] = []
        pending_end: list[Checkpoint] = []
        for step in story.steps:
            if isinstance(step, Checkpoint):
                if steps:
                    pending_end.append(step)
                else:
                    start.append(step)
                continue
            if pending_end:
                segments.append(_Segment(story.name, start, steps, pending_end))
                start, steps, pending_end = list(pending_end), [], []
            steps.append(step)
        segments.append(_Segment(story.name, start, steps, pending_end))
    for index, segment in enumerate(segments):
        segment.index = index
    return segments


@dataclass
class _Partial:
    events: list[Event]
    names: list[str]
    used: frozenset[int] = field(default_factory=frozenset)
    uid: int = field(default_factory=itertools.count().__next__)


def generate_trackers(data: StoryData | Sequence[Story], domain: Domain, *,
                      augmentation_factor: int = 50, seed: int = 42,
                      final_listen: bool = True) -> list[Tracker]:
    """Training trackers from stories: checkpoints followed, ``or`` expanded, then
    ``augmentation_factor × 10`` augmented trackers (``is_augmented=True``) made by gluing two
    random complete stories. Rules are not included (see
    :func:`dialogue_models.policies.rule_data.rule_trackers`)."""
    stories = data.stories if isinstance(data, StoryData) else list(data)
    rng = random.Random(seed)
    complete = _follow_checkpoints(_segments(stories), domain, rng, final_listen)
    trackers = [Tracker(" > ".join(p.names), domain.slots, p.events, name=" > ".join(p.names))
                for p in complete]
    if augmentation_factor > 0 and len(complete) > 1:
        trackers += _augmented(complete, domain, rng, augmentation_factor * 10, final_listen)
    return trackers


def _follow_checkpoints(segments: list[_Segment], domain: Domain, rng: random.Random,
                        final_listen: bool) -> list[_Partial]:
    waiting: dict[str, list[_Partial]] = {STORY_START: [_Partial([], [])]}
    complete: list[_Partial] = []
    done: set[tuple[int, int]] = set()  # (segment, id of partial) already extended
    changed = True
    while changed:
        changed = False
        for segment in segments:
            for partial in _incoming(segment, waiting):
                if (segment.index, partial.uid) in done or segment.index in partial.used:
                    continue
                done.add((segment.index, partial.uid))
                changed = True
                for events in steps_events(segment.steps, domain, partial.events):
                    grown = _Partial(partial.events + events,
                                     partial.names + ([segment.name] if not partial.names or
                                                      partial.names[-1] != segment.name else []),
                                     partial.used | {segment.index} if segment.start
                                     else partial.used)
                    if segment.end:
                        for checkpoint in segment.end:
                            _add_capped(waiting.setdefault(checkpoint.name, []), grown, rng)
                    else:
                        complete.append(_finish(grown, final_listen))
    started = {c.name for segment in segments for c in segment.start}
    for name, pool in waiting.items():  # a story ending in a checkpoint that nothing continues
        if name != STORY_START and name not in started:
            complete += [_finish(p, final_listen) for p in pool]
    return complete


def _incoming(segment: _Segment, waiting: dict[str, list[_Partial]]) -> list[_Partial]:
    if not segment.start:
        return list(waiting[STORY_START])
    found: list[_Partial] = []
    for checkpoint in segment.start:
        found += [p for p in waiting.get(checkpoint.name, [])
                  if _slots_match(p.events, checkpoint.slot_was_set)]
    return found


def _slots_match(events: Sequence[Event], required: Sequence[tuple[str, Any]]) -> bool:
    if not required:
        return True
    slots = {e.name: e.value for e in events if isinstance(e, SlotSet)}
    return all(slots.get(n) is not None if v is FILLED else slots.get(n) == v
               for n, v in required)


def _add_capped(pool: list[_Partial], partial: _Partial, rng: random.Random) -> None:
    if len(pool) < MAX_TRACKERS_PER_CHECKPOINT:
        pool.append(partial)
    else:  # reservoir-style: keep the pool a uniform sample of what arrived
        pool[rng.randrange(len(pool))] = partial


def _finish(partial: _Partial, final_listen: bool) -> _Partial:
    last = partial.events[-1] if partial.events else None
    if final_listen and isinstance(last, ActionExecuted) and last.name != ACTION_LISTEN:
        partial.events.append(ActionExecuted(ACTION_LISTEN))
    return partial


def _augmented(complete: list[_Partial], domain: Domain, rng: random.Random, count: int,
               final_listen: bool) -> list[Tracker]:
    trackers = []
    for number in range(count):
        first, second = rng.sample(complete, 2)
        events = list(first.events) + [e for e in second.events]
        if (len(first.events) and isinstance(first.events[-1], ActionExecuted)
                and first.events[-1].name == ACTION_LISTEN and second.events
                and isinstance(second.events[0], ActionExecuted)
                and second.events[0].name == ACTION_LISTEN):
            events = list(first.events) + list(second.events[1:])
        name = f"augmented {number}: {' > '.join(first.names)} + {' > '.join(second.names)}"
        trackers.append(Tracker(name, domain.slots, events, name=name, is_augmented=True))
    return trackers


# ---- test stories --------------------------------------------------------------------------------
def story_tracker(story: Story, domain: Domain, final_listen: bool = False) -> Tracker:
    """The tracker of one test story (its first ``or`` branch; checkpoints ignored)."""
    events = steps_events(story.steps, domain)[0]
    if final_listen:
        events = _finish(_Partial(events, [story.name]), True).events
    return Tracker(story.name, domain.slots, events, name=story.name)


def rule_steps(rule: Rule) -> list[Step]:
    return list(rule.condition) + list(rule.steps)
