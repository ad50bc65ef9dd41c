"""MemoizationPolicy and AugmentedMemoizationPolicy (DIET_TED_REFERENCE §3.4).

Rasa parity:

* trained on story trackers only: augmented trackers (``is_augmented``) and rule trackers
  (``is_rule``) are skipped, as Rasa's ``MemoizationPolicy`` (``SupportedData.ML_DATA``);
* for every action of every tracker, the last ``max_history`` states before it (all of them
  for ``max_history=None``) are the key and the action the value; a key seen with two
  different actions is dropped for good (ambiguous, Rasa's contradicting examples);
* prediction: an exact key match gives that action with confidence 1.0 (or the latest intent
  confidence with ``use_nlu_confidence_as_score``), else the policy abstains (all zeros).

``AugmentedMemoizationPolicy`` retries a miss on truncated trackers, as Rasa's
``_recall_using_truncation``: the tracker is cut to its last ``max_history`` actions, then,
one action at a time from the oldest side, it is restarted at the next action and its states
recomputed from the remaining events only (so slots set before the cut are forgotten and the
first state is the empty conversation start). This lets a story opening be recognised in the
middle of a conversation.

Differences from Rasa: the key is the plain JSON of the states (Rasa optionally compresses it,
``enable_feature_string_compression``, which changes nothing but the size); Rasa's removal of
rule-only slots and loops from the states (``rule_only_data``) is not done.
"""
from __future__ import annotations

from typing import Any, ClassVar, Iterator, Mapping, Sequence

from dialogue_models.domain import Domain
from dialogue_models.events import ActionExecuted
from dialogue_models.policies.base import Policy, PolicyPrediction
from dialogue_models.states import DialogueSpace, State, state_key, tracker_actions, \
    tracker_states
from dialogue_models.tracker import Tracker


class MemoizationPolicy(Policy):
    """Recalls the next action of conversations seen verbatim in the stories."""

    name: ClassVar[str] = "MemoizationPolicy"
    default_priority: ClassVar[int] = 3

    def __init__(self, max_history: int | None = 5, priority: int | None = None,
                 use_nlu_confidence_as_score: bool = False) -> None:
        super().__init__(priority)
        if max_history is not None and max_history < 1:
            raise ValueError(f"max_history must be None or at least 1, not {max_history}")
        self.max_history = max_history
        self.use_nlu_confidence_as_score = use_nlu_confidence_as_score
        self.lookup: dict[str, str] = {}

    # ---- training ------------------------------------------------------------------------------
    def train(self, trackers: Sequence[Tracker], domain: Domain, space: DialogueSpace,
              **kwargs: Any) -> None:
        self.space = space
        self.lookup = {}
        ambiguous: set[str] = set()
        for tracker in trackers:
            if tracker.is_augmented or tracker.is_rule:
                continue
            states = tracker_states(tracker, space)
            for index, action in enumerate(tracker_actions(tracker)):
                key = self._key(states[:index + 1])
                if key in ambiguous:
                    continue
                if self.lookup.setdefault(key, action) != action:
                    del self.lookup[key]
                    ambiguous.add(key)

    def _key(self, states: Sequence[State]) -> str:
        window = states if self.max_history is None else states[-self.max_history:]
        return state_key(window)

    # ---- prediction ----------------------------------------------------------------------------
    def predict(self, tracker: Tracker, domain: Domain) -> PolicyPrediction:
        action = self.recall(tracker)
        if action is None:
            return self.abstain()
        message = tracker.latest_message
        score = (message.intent_confidence if self.use_nlu_confidence_as_score and message
                 else 1.0)
        return self.one_hot(action, score, diagnostics={"memorized": True})

    def recall(self, tracker: Tracker) -> str | None:
        """The memorized next action for ``tracker``, or None."""
        return self.lookup.get(self._key(tracker_states(tracker, self._space())))

    # ---- persistence ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "max_history": self.max_history, "priority": self.priority,
                "use_nlu_confidence_as_score": self.use_nlu_confidence_as_score,
                "space": self._space().to_dict(), "lookup": dict(self.lookup)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MemoizationPolicy":
        policy = cls(max_history=data["max_history"], priority=data["priority"],
                     use_nlu_confidence_as_score=data.get("use_nlu_confidence_as_score", False))
        policy.space = DialogueSpace.from_dict(data["space"])
        policy.lookup = dict(data["lookup"])
        return policy


class AugmentedMemoizationPolicy(MemoizationPolicy):
    """Memoization that also tries the conversation with its oldest turns forgotten."""

    name: ClassVar[str] = "AugmentedMemoizationPolicy"

    def recall(self, tracker: Tracker) -> str | None:
        found = super().recall(tracker)
        if found is not None:
            return found
        for truncated in self._truncations(tracker):
            found = self.lookup.get(self._key(tracker_states(truncated, self._space())))
            if found is not None:
                return found
        return None

    def _truncations(self, tracker: Tracker) -> Iterator[Tracker]:
        """The tracker restarted at each of its last ``max_history`` actions, oldest first
        (a restart at its very first event would be the tracker itself, already tried)."""
        events = tracker.applied_events()
        starts = [i for i, e in enumerate(events) if isinstance(e, ActionExecuted)]
        if self.max_history is not None:
            starts = starts[-self.max_history:]
        for start in starts:
            if start > 0:
                yield Tracker(tracker.sender_id, tracker.declared_slots, events[start:])
