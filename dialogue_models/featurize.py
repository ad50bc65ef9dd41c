"""Dialogue states → per-turn features, and training examples in TED's two modes.

:class:`StateFeaturizer` is Rasa's ``SingleStateFeaturizer`` without NLU features: one-hot
intent and previous action, multi-hot entity states (``entity``, ``entity#role``), the slots'
``as_feature`` vectors concatenated, one-hot active loop. Each attribute is its own array so
TED can embed each separately (DIET_TED_REFERENCE §3.2).

Examples (:func:`max_history_examples`, :func:`full_dialogue_examples`):

- **max-history** (Rasa's ``MaxHistoryTrackerFeaturizer``, the 3.x default): one example per
  action — the last ``max_history`` states before it → the action; duplicates removed.
- **full-dialogue** (``FullDialogueTrackerFeaturizer``, the TED paper's causal setting): one
  example per tracker — every state before an action → that action.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from dialogue_models.states import (DialogueSpace, State, slot_feature_size, state_key,
                                    tracker_actions, tracker_states)
from dialogue_models.tracker import Tracker

ATTRIBUTES = ("intent", "action_name", "entities", "slots", "active_loop")
EXAMPLE_MODES = ("max_history", "full_dialogue")


class StateFeaturizer:
    """Turns states into ``{attribute: (D, F_attribute) float32 array}``. Unknown intents,
    actions, entities and loops (not in the domain) give zeros, as Rasa's featurizer does."""

    def __init__(self, space: DialogueSpace) -> None:
        self.space = space
        self._intent = {n: i for i, n in enumerate(space.intents)}
        self._action = {n: i for i, n in enumerate(space.actions)}
        self._entity = {n: i for i, n in enumerate(space.entity_states)}
        self._loop = {n: i for i, n in enumerate(space.forms)}
        self._slot_offset: dict[str, int] = {}
        offset = 0
        for slot in space.slots:
            self._slot_offset[slot.name] = offset
            offset += slot_feature_size(slot)
        sizes = {"intent": len(space.intents), "action_name": len(space.actions),
                 "entities": len(space.entity_states), "slots": offset,
                 "active_loop": len(space.forms)}
        self.feature_sizes = {a: n for a, n in sizes.items() if n > 0}
        self._cache: dict[str, dict[str, np.ndarray]] = {}

    def encode_state(self, state: State) -> dict[str, np.ndarray]:
        key = state_key([state])
        if key not in self._cache:
            self._cache[key] = self._encode(state)
        return self._cache[key]

    def _encode(self, state: State) -> dict[str, np.ndarray]:
        out = {a: np.zeros(n, dtype=np.float32) for a, n in self.feature_sizes.items()}
        user = state.get("user", {})
        _set(out, "intent", self._intent.get(user.get("intent")))
        for entity in user.get("entities", ()):
            _set(out, "entities", self._entity.get(entity))
        _set(out, "action_name", self._action.get(state.get("prev_action", {})
                                                  .get("action_name")))
        _set(out, "active_loop", self._loop.get(state.get("active_loop", {}).get("name")))
        for name, values in state.get("slots", {}).items():
            if name in self._slot_offset:
                start = self._slot_offset[name]
                out["slots"][start:start + len(values)] = values
        return out

    def encode(self, states: Sequence[State]) -> dict[str, np.ndarray]:
        """``{attribute: (D, F)}`` for a sequence of ``D`` states."""
        encoded = [self.encode_state(s) for s in states]
        return {a: (np.stack([e[a] for e in encoded]) if encoded
                    else np.zeros((0, n), dtype=np.float32))
                for a, n in self.feature_sizes.items()}

    def column_maps(self, old: "StateFeaturizer") -> dict[str, np.ndarray]:
        """Per attribute of ``old``, where each of its feature columns sits here (this
        featurizer's space must extend ``old``'s: :meth:`DialogueSpace.extended`)."""
        space = old.space
        try:
            maps = {"intent": [self._intent[n] for n in space.intents],
                    "action_name": [self._action[n] for n in space.actions],
                    "entities": [self._entity[n] for n in space.entity_states],
                    "slots": [self._slot_offset[s.name] + i for s in space.slots
                              for i in range(slot_feature_size(s))],
                    "active_loop": [self._loop[n] for n in space.forms]}
        except KeyError as missing:
            raise ValueError(f"this dialogue space does not extend the old one: {missing} is "
                             "gone") from None
        return {a: np.asarray(maps[a], dtype=np.int64) for a in old.feature_sizes}

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.space.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "StateFeaturizer":
        return cls(DialogueSpace.from_dict(data["space"]))


def _set(out: dict[str, np.ndarray], attribute: str, index: int | None) -> None:
    if index is not None and attribute in out:
        out[attribute][index] = 1.0


# ---- training examples ---------------------------------------------------------------------------
@dataclass
class DialogueExample:
    """States and labels of one example. Max-history: ``labels`` has one action (after the
    last state). Full-dialogue: ``labels[i]`` follows ``states[i]``."""

    states: list[State]
    labels: list[str]
    tracker: str = ""


def max_history_examples(trackers: Iterable[Tracker], space: DialogueSpace,
                         max_history: int | None = 5,
                         remove_duplicates: bool = True) -> list[DialogueExample]:
    examples: list[DialogueExample] = []
    seen: set[str] = set()
    for tracker in trackers:
        states, actions = tracker_states(tracker, space), tracker_actions(tracker)
        for i, action in enumerate(actions):
            window = states[:i + 1] if max_history is None else states[max(0, i + 1 -
                                                                             max_history):i + 1]
            if remove_duplicates:
                key = state_key(window) + "\x00" + action
                if key in seen:
                    continue
                seen.add(key)
            examples.append(DialogueExample(window, [action], tracker.name))
    return examples


def full_dialogue_examples(trackers: Iterable[Tracker], space: DialogueSpace,
                           remove_duplicates: bool = True) -> list[DialogueExample]:
    examples: list[DialogueExample] = []
    seen: set[str] = set()
    for tracker in trackers:
        states, actions = tracker_states(tracker, space), tracker_actions(tracker)
        if not actions:
            continue
        if remove_duplicates:
            key = state_key(states[:-1]) + "\x00" + "\x00".join(actions)
            if key in seen:
                continue
            seen.add(key)
        examples.append(DialogueExample(states[:-1], actions, tracker.name))
    return examples


def make_examples(trackers: Iterable[Tracker], space: DialogueSpace, mode: str = "max_history",
                  max_history: int | None = 5) -> list[DialogueExample]:
    if mode not in EXAMPLE_MODES:
        raise ValueError(f"mode must be one of {EXAMPLE_MODES}, not {mode!r}")
    if mode == "full_dialogue":
        return full_dialogue_examples(trackers, space)
    return max_history_examples(trackers, space, max_history)
