"""The story model: user and bot steps, stories, rules and :class:`StoryData`.

Every object keeps where it was read (``source``), which equality ignores.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from nlu_models.data.errors import SourceLocation
from nlu_models.data.schema import EntitySpan


class _Filled:
    """The value of a bare slot name in ``slot_was_set`` (any value, as long as it is set)."""

    def __repr__(self) -> str:
        return "FILLED"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Filled)

    def __hash__(self) -> int:
        return hash("FILLED")


FILLED = _Filled()


@dataclass
class StoryEntity:
    """An entity of a user step; ``value`` is None for a bare entity name."""

    entity: str
    value: Any = None
    role: str | None = None
    group: str | None = None


@dataclass
class UserStep:
    """A user turn: an intent, an end-to-end text, or both.

    ``entities`` holds all entities, including those annotated in ``text``; ``spans`` keeps the
    annotations themselves so the text can be written back annotated."""

    intent: str | None = None
    text: str | None = None
    entities: list[StoryEntity] = field(default_factory=list)
    spans: list[EntitySpan] = field(default_factory=list)
    source: SourceLocation | None = field(default=None, compare=False)


@dataclass
class ActionStep:
    """A bot turn: an action name, or an end-to-end bot text."""

    name: str | None = None
    text: str | None = None
    source: SourceLocation | None = field(default=None, compare=False)


@dataclass
class SlotWasSet:
    """Slots set at this point: ``(name, value)``, value :data:`FILLED` for a bare name."""

    slots: list[tuple[str, Any]] = field(default_factory=list)
    source: SourceLocation | None = field(default=None, compare=False)


@dataclass
class ActiveLoop:
    name: str | None  # None: the loop was deactivated
    source: SourceLocation | None = field(default=None, compare=False)


@dataclass
class Checkpoint:
    name: str
    slot_was_set: list[tuple[str, Any]] = field(default_factory=list)
    source: SourceLocation | None = field(default=None, compare=False)


@dataclass
class OrStep:
    """One user step with alternatives (user turns or slot events)."""

    alternatives: list[Union[UserStep, SlotWasSet]] = field(default_factory=list)
    source: SourceLocation | None = field(default=None, compare=False)


Step = Union[UserStep, ActionStep, SlotWasSet, ActiveLoop, Checkpoint, OrStep]


@dataclass
class Story:
    name: str
    steps: list[Step] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    source: SourceLocation | None = field(default=None, compare=False)


@dataclass
class Rule:
    name: str
    steps: list[Step] = field(default_factory=list)
    condition: list[Step] = field(default_factory=list)
    conversation_start: bool = False
    wait_for_user_input: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)
    source: SourceLocation | None = field(default=None, compare=False)


@dataclass
class StoryData:
    stories: list[Story] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)

    def merge(self, *others: "StoryData") -> "StoryData":
        return StoryData(self.stories + [s for o in others for s in o.stories],
                         self.rules + [r for o in others for r in o.rules])

    def is_empty(self) -> bool:
        return not self.stories and not self.rules
