"""What every dialogue policy is: trained on trackers, asked for the next action of a tracker.

A policy answers with a :class:`PolicyPrediction` (one probability per action of the
:class:`~dialogue_models.states.DialogueSpace`); the
:class:`~dialogue_models.policies.ensemble.PolicyEnsemble` picks among the answers with Rasa's
rules (DIET_TED_REFERENCE §3.4). Policies persist as plain JSON (``to_dict``/``from_dict``) plus,
for neural ones, their weights: no pickle.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

from dialogue_models.domain import Domain
from dialogue_models.events import Event
from dialogue_models.states import DialogueSpace
from dialogue_models.tracker import Tracker


@dataclass
class PolicyPrediction:
    """``probabilities[i]`` is the confidence in ``space.actions[i]``; all zeros = abstain."""

    probabilities: list[float]
    policy: str
    priority: int
    is_end_to_end: bool = False
    is_no_user_prediction: bool = False  # e.g. a loop's happy path that needs no user input
    optional_events: list[Event] = field(default_factory=list)
    diagnostics: dict[str, Any] = field(default_factory=dict)

    @property
    def max_confidence(self) -> float:
        return max(self.probabilities, default=0.0)

    @property
    def action_index(self) -> int | None:
        """The index of the most confident action, or None when the policy abstained."""
        if self.max_confidence <= 0:
            return None
        return max(range(len(self.probabilities)), key=self.probabilities.__getitem__)

    def action(self, space: DialogueSpace) -> str | None:
        index = self.action_index
        return None if index is None else space.actions[index]


class Policy(ABC):
    """Base class. ``name`` is what reports show (Rasa's class names: ``RulePolicy`` ...)."""

    name: ClassVar[str] = "Policy"
    default_priority: ClassVar[int] = 0

    def __init__(self, priority: int | None = None) -> None:
        self.priority = self.default_priority if priority is None else priority
        self.space: DialogueSpace | None = None

    @abstractmethod
    def train(self, trackers: Sequence[Tracker], domain: Domain, space: DialogueSpace,
              **kwargs: Any) -> None:
        """Learn from training trackers (stories, augmented stories and rule trackers, each
        flagged by ``tracker.is_augmented`` / ``tracker.is_rule``; a policy skips what it does
        not use)."""

    @abstractmethod
    def predict(self, tracker: Tracker, domain: Domain) -> PolicyPrediction:
        """Confidences for the next action of ``tracker``."""

    def abstain(self) -> PolicyPrediction:
        return PolicyPrediction([0.0] * len(self._space().actions), self.name, self.priority)

    def one_hot(self, action: str, confidence: float = 1.0, **kwargs: Any) -> PolicyPrediction:
        probabilities = [0.0] * len(self._space().actions)
        probabilities[self._space().action_index(action)] = confidence
        return PolicyPrediction(probabilities, self.name, self.priority, **kwargs)

    def _space(self) -> DialogueSpace:
        if self.space is None:
            raise RuntimeError(f"{self.name} is not trained: call train() or load it first")
        return self.space

    # ---- persistence (JSON) --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the trained policy, JSON-safe."""
        raise NotImplementedError(f"{self.name} cannot be saved yet")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Policy":
        raise NotImplementedError(f"{cls.__name__} cannot be loaded yet")
