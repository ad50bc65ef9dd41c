"""Dialogue states → per-turn features, and training examples in TED's two modes.

:class:`StateFeaturizer` is Rasa's ``SingleStateFeaturizer``: one-hot intent and previous
action, multi-hot entity states (``entity``, ``entity#role``), the slots' ``as_feature``
vectors concatenated, one-hot active loop. Each attribute is its own array so TED can embed
each separately (DIET_TED_REFERENCE §3.2). With a fitted NLU :class:`FeaturizerPipeline`
(end-to-end), a user turn's text also gets its *sentence* features as a sparse bag of
(id, value) pairs (:class:`TextBags`), never a dense matrix. With ``action_text`` the previous
action is read by its string's sentence features (an end-to-end bot utterance's words, a named
action's name: one word of the vocabulary, as distinct as a one-hot) *instead of* its one-hot,
as Rasa 1.x's label-tokenizing featurizer did for the TED paper's MultiWOZ runs and Rasa 3.x
does for bot texts: a bot utterance never seen in training is still understood by its words.

End-to-end versions (:func:`state_versions`), as Rasa's TED: a user turn is featurized by its
intent when it has one the domain knows, else by its text (Rasa's
``_remove_user_text_if_intent``); when the current turn has both, a second *text version*
featurizes that turn by its text alone (``use_text_for_last_user_input``: intent and entities
dropped). Training uses both versions; :class:`~dialogue_models.policies.ted.TEDPolicy`
predicts with both and keeps the text one when it is confident (``e2e_confidence_threshold``).

Examples (:func:`max_history_examples`, :func:`full_dialogue_examples`):

- **max-history** (Rasa's ``MaxHistoryTrackerFeaturizer``, the 3.x default): one example per
  action — the last ``max_history`` states before it → the action; duplicates removed.
- **full-dialogue** (``FullDialogueTrackerFeaturizer``, the TED paper's causal setting): one
  example per tracker — every state before an action → that action. Only the intent version:
  a user turn with both an intent and a text is featurized by its intent.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Collection, Iterable, Mapping, Sequence

import numpy as np

from dialogue_models.states import (DialogueSpace, State, slot_feature_size, state_key,
                                    tracker_actions, tracker_states)
from dialogue_models.tracker import Tracker
from nlu_models.featurize import FeaturizerPipeline

DENSE_ATTRIBUTES = ("intent", "action_name", "entities", "slots", "active_loop")
TEXT = "text"   # a sparse attribute: a user turn's sentence features
ACTION_TEXT = "action_text"   # the other: the previous action's string's sentence features
TEXT_CACHE_SIZE = 1 << 16   # featurized user texts kept (least recently used dropped)
EXAMPLE_MODES = ("max_history", "full_dialogue")


@dataclass
class TextBags:
    """The user-text sentence features of ``D`` turns, back to back: turn ``d`` owns
    ``ids[start:start + counts[d]]`` (1-based pipeline ids); a turn without text has none."""

    ids: np.ndarray      # (nnz,) int64
    values: np.ndarray   # (nnz,) float32
    counts: np.ndarray   # (D,) int64


class StateFeaturizer:
    """Turns states into ``{attribute: (D, F_attribute) float32 array}`` (:meth:`encode`) and,
    given a fitted ``text`` pipeline, their user texts into :class:`TextBags`
    (:meth:`encode_text`; :meth:`encode_bags` adds the previous actions' strings with
    ``action_text``). Unknown intents, actions, entities and loops (not in the domain) give
    zeros, as Rasa's featurizer does; so do texts made only of unseen words."""

    def __init__(self, space: DialogueSpace, text: FeaturizerPipeline | None = None,
                 action_text: bool = False) -> None:
        if text is not None and (text.dense is not None or text.sent_vocab_size == 0):
            raise ValueError("TED's text features are the sparse sentence features of a "
                             "fitted pipeline without a dense featurizer (got "
                             f"{text.sent_vocab_size} sparse columns, dense "
                             f"{type(text.dense).__name__ if text.dense else None})")
        if action_text and text is None:
            raise ValueError("action_text (the previous action's text features) needs the "
                             "text pipeline (model.featurizers)")
        self.space = space
        self.text = text
        self.action_text = action_text
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
        if action_text:  # the previous action by its string instead of its one-hot
            del sizes["action_name"]
        self.dense_sizes = {a: n for a, n in sizes.items() if n > 0}
        self.feature_sizes = dict(self.dense_sizes)
        if text is not None:
            self.feature_sizes[TEXT] = text.sent_vocab_size
        if action_text:
            self.feature_sizes[ACTION_TEXT] = text.sent_vocab_size
        self._cache: dict[str, dict[str, np.ndarray]] = {}
        # texts repeat across training windows; a server sees new ones without end, so the
        # cache keeps the most recent TEXT_CACHE_SIZE only
        self._text_cache: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def encode_state(self, state: State) -> dict[str, np.ndarray]:
        key = state_key([state])
        if key not in self._cache:
            self._cache[key] = self._encode(state)
        return self._cache[key]

    def _encode(self, state: State) -> dict[str, np.ndarray]:
        out = {a: np.zeros(n, dtype=np.float32) for a, n in self.dense_sizes.items()}
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
        """``{attribute: (D, F)}`` for a sequence of ``D`` states (the dense attributes)."""
        encoded = [self.encode_state(s) for s in states]
        return {a: (np.stack([e[a] for e in encoded]) if encoded
                    else np.zeros((0, n), dtype=np.float32))
                for a, n in self.dense_sizes.items()}

    def encode_text(self, states: Sequence[State]) -> TextBags | None:
        """The sentence features of each state's user text; None without a text pipeline."""
        if self.text is None:
            return None
        return self._bags([s.get("user", {}).get(TEXT) for s in states])

    def encode_bags(self, states: Sequence[State]) -> dict[str, TextBags]:
        """The sparse attributes of ``states``: the user texts' sentence features (``text``)
        and, with ``action_text``, the previous actions' strings' (``action_text``)."""
        bags = {}
        if self.text is not None:
            bags[TEXT] = self.encode_text(states)
        if self.action_text:
            bags[ACTION_TEXT] = self._bags([s.get("prev_action", {}).get("action_name")
                                            for s in states])
        return bags

    def encode_labels(self) -> TextBags:
        """The sentence features of every action's string, in action order (TED's
        ``label_action_text``): an end-to-end bot utterance's words, a named action's name."""
        if self.text is None:
            raise ValueError("action texts need the text pipeline (model.featurizers)")
        return self._bags(self.space.actions)

    def _bags(self, texts: Sequence[str | None]) -> TextBags:
        bags = [self._sentence(text) for text in texts]
        return TextBags(np.concatenate([np.zeros(0, np.int64)] + [i for i, _ in bags]),
                        np.concatenate([np.zeros(0, np.float32)] + [v for _, v in bags]),
                        np.asarray([len(i) for i, _ in bags], dtype=np.int64))

    def _sentence(self, text: str | None) -> tuple[np.ndarray, np.ndarray]:
        if not text:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        cached = self._text_cache.get(text)
        if cached is None:
            features = self.text.transform(text)
            cached = self._text_cache[text] = (features.sent_ids, features.sent_values)
            if len(self._text_cache) > TEXT_CACHE_SIZE:
                self._text_cache.popitem(last=False)
        else:
            self._text_cache.move_to_end(text)
        return cached

    def column_maps(self, old: "StateFeaturizer") -> dict[str, np.ndarray]:
        """Per attribute of ``old``, where each of its feature columns sits here (this
        featurizer's space must extend ``old``'s: :meth:`DialogueSpace.extended`; its text
        pipeline ``old``'s: :meth:`FeaturizerPipeline.extended`)."""
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
        if old.text is not None:
            if self.text is None:
                raise ValueError("the old model has text features and this one has none")
            maps[TEXT] = self.text.column_maps(old.text)[1]   # sentence columns
            if old.action_text:
                maps[ACTION_TEXT] = maps[TEXT]
        return {a: np.asarray(maps[a], dtype=np.int64) for a in old.feature_sizes}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"space": self.space.to_dict()}
        if self.text is not None:
            out[TEXT] = self.text.to_dict()
        if self.action_text:
            out[ACTION_TEXT] = True
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "StateFeaturizer":
        text = FeaturizerPipeline.from_dict(data[TEXT]) if data.get(TEXT) else None
        return cls(DialogueSpace.from_dict(data["space"]), text, bool(data.get(ACTION_TEXT)))


def _set(out: dict[str, np.ndarray], attribute: str, index: int | None) -> None:
    if index is not None and attribute in out:
        out[attribute][index] = 1.0


# ---- end-to-end versions --------------------------------------------------------------------
def state_versions(states: Sequence[State], intents: Collection[str]) -> list[list[State]]:
    """What TED sees of ``states`` (made ``with_text``): the intent version — each user turn
    by its intent when it has one in ``intents``, else by its text — and, when the last state
    is a user turn with both, the text version, where that turn is its text alone. A turn
    featurized by its text has no entity features (Rasa's ``UserUttered.as_sub_state``)."""
    by_intent = intent_version(states, intents)
    if not states or not _has_both(states[-1], intents):
        return [by_intent]
    return [by_intent, by_intent[:-1] + [_by_text(states[-1])]]


def intent_version(states: Sequence[State], intents: Collection[str]) -> list[State]:
    """Each user turn by its intent when it has one in ``intents``, else by its text (Rasa's
    ``_remove_user_text_if_intent``)."""
    return [_by_intent(s, intents) for s in states]


def _has_both(state: State, intents: Collection[str]) -> bool:
    user = state.get("user", {})
    return bool(user.get(TEXT)) and user.get("intent") in intents


def _by_intent(state: State, intents: Collection[str]) -> State:
    user = state.get("user", {})
    if not user.get(TEXT):
        return state
    if user.get("intent") in intents:
        return {**state, "user": {k: v for k, v in user.items() if k != TEXT}}
    return _by_text(state)  # no intent, or one the domain lacks (it would have no features)


def _by_text(state: State) -> State:
    return {**state, "user": {TEXT: state["user"][TEXT]}}


def user_texts(states: Iterable[State]) -> set[str]:
    return {s["user"][TEXT] for s in states if s.get("user", {}).get(TEXT)}


# ---- training examples ---------------------------------------------------------------------------
@dataclass
class DialogueExample:
    """States and labels of one example. Max-history: ``labels`` has one action (after the
    last state). Full-dialogue: ``labels[i]`` follows ``states[i]``."""

    states: list[State]
    labels: list[str]
    tracker: str = ""


def max_history_examples(trackers: Iterable[Tracker], space: DialogueSpace,
                         max_history: int | None = 5, remove_duplicates: bool = True,
                         with_text: bool = False) -> list[DialogueExample]:
    """``with_text``: user turns with both an intent and a text give both versions
    (:func:`state_versions`); without it, such a turn is its intent."""
    examples: list[DialogueExample] = []
    seen: set[str] = set()
    intents = set(space.intents)
    for tracker in trackers:
        states, actions = tracker_states(tracker, space, with_text), tracker_actions(tracker)
        for i, action in enumerate(actions):
            window = states[:i + 1] if max_history is None else states[max(0, i + 1 -
                                                                             max_history):i + 1]
            for version in (state_versions(window, intents) if with_text else [window]):
                if remove_duplicates:
                    key = state_key(version) + "\x00" + action
                    if key in seen:
                        continue
                    seen.add(key)
                examples.append(DialogueExample(version, [action], tracker.name))
    return examples


def full_dialogue_examples(trackers: Iterable[Tracker], space: DialogueSpace,
                           remove_duplicates: bool = True, with_text: bool = False
                           ) -> list[DialogueExample]:
    """``with_text``: the intent version only (:func:`intent_version`)."""
    examples: list[DialogueExample] = []
    seen: set[str] = set()
    intents = set(space.intents)
    for tracker in trackers:
        states, actions = tracker_states(tracker, space, with_text), tracker_actions(tracker)
        if with_text:
            states = intent_version(states, intents)
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
                  max_history: int | None = 5, with_text: bool = False
                  ) -> list[DialogueExample]:
    if mode not in EXAMPLE_MODES:
        raise ValueError(f"mode must be one of {EXAMPLE_MODES}, not {mode!r}")
    if mode == "full_dialogue":
        return full_dialogue_examples(trackers, space, with_text=with_text)
    return max_history_examples(trackers, space, max_history, with_text=with_text)
