"""PolicyEnsemble: every policy predicts, Rasa's rule picks one (DIET_TED_REFERENCE §3.4).

The pick is Rasa 3.x's ``DefaultPolicyPredictionEnsemble``:

1. if the tracker's last event rejected an action (``ActionExecutionRejected``), that action's
   confidence is set to 0 in every prediction;
2. "no user" predictions (a loop's happy path) win over all others;
3. otherwise end-to-end predictions (made from the user's text) win over intent-based ones;
4. among the rest, the highest ``(max_confidence, priority)``, compared lexicographically; on
   a full tie the policy listed first wins.

The predicted action is the winner's most confident one. When every policy abstains (all
zeros: possible only without a RulePolicy, whose fallback always answers), the winner is the
highest-priority policy's empty prediction and the action is ``action_listen`` with confidence
0, which is what Rasa's ``argmax`` over all zeros gives (``action_listen`` is action 0).

:func:`PolicyEnsemble.from_config` reads the ``policies:`` list of a Rasa ``config.yml``;
policy names resolve through :data:`POLICY_REGISTRY`, where neural policies (TEDPolicy,
UnexpecTEDIntentPolicy) register themselves with :func:`register_policy`.
"""
from __future__ import annotations

import copy
import inspect
from typing import Any, Callable, Mapping, Sequence

from dialogue_models.domain import Domain
from dialogue_models.events import ACTION_LISTEN, ActionExecutionRejected
from dialogue_models.policies.base import Policy, PolicyPrediction
from dialogue_models.policies.memoization import AugmentedMemoizationPolicy, MemoizationPolicy
from dialogue_models.policies.rule import RulePolicy
from dialogue_models.states import DialogueSpace
from dialogue_models.tracker import Tracker

# Rasa policy name → policy class (or factory taking the config options as keyword arguments,
# with a ``from_dict`` for loading). TED registers itself from dialogue_models.policies.ted.
POLICY_REGISTRY: dict[str, Any] = {
    "RulePolicy": RulePolicy,
    "MemoizationPolicy": MemoizationPolicy,
    "AugmentedMemoizationPolicy": AugmentedMemoizationPolicy,
}
IGNORED_OPTIONS = frozenset({"name", "enable_feature_string_compression"})


def register_policy(name: str, factory: Callable[..., Policy]) -> None:
    """Make ``name`` usable in ``policies:`` configs (e.g. ``TEDPolicy``)."""
    POLICY_REGISTRY[name] = factory


def policy_from_config(item: Mapping[str, Any]) -> Policy:
    """One policy from a ``policies:`` entry (``{"name": "RulePolicy", ...options}``)."""
    if not isinstance(item, Mapping) or not item.get("name"):
        raise ValueError(f"each entry of 'policies' needs a 'name', not {item!r}")
    name = str(item["name"]).rsplit(".", 1)[-1]  # "rasa.core.policies.x.RulePolicy" too
    if name not in POLICY_REGISTRY:
        raise ValueError(f"unknown policy '{item['name']}'; known: "
                         f"{', '.join(sorted(POLICY_REGISTRY))}")
    factory = POLICY_REGISTRY[name]
    options = {k: v for k, v in item.items() if k not in IGNORED_OPTIONS}
    accepted = _accepted_options(factory)
    if accepted is not None:
        unknown = sorted(set(options) - accepted)
        if unknown:
            raise ValueError(f"{name} has no option {', '.join(unknown)}; its options: "
                             f"{', '.join(sorted(accepted))}")
    return factory(**options)


def _accepted_options(factory: Callable[..., Policy]) -> set[str] | None:
    """The keyword arguments ``factory`` takes, or None when it takes ``**kwargs``."""
    parameters = inspect.signature(factory).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters if p.name != "self"}


class PolicyEnsemble:
    """Policies trained together and asked together; Rasa's rule picks the answer."""

    def __init__(self, policies: Sequence[Policy]) -> None:
        if not policies:
            raise ValueError("a PolicyEnsemble needs at least one policy")
        self.policies = list(policies)
        self.space: DialogueSpace | None = None

    @classmethod
    def from_config(cls, policies_config: Sequence[Mapping[str, Any]]) -> "PolicyEnsemble":
        """The ensemble of a Rasa ``config.yml`` ``policies:`` list."""
        return cls([policy_from_config(item) for item in policies_config])

    def train(self, trackers: Sequence[Tracker], domain: Domain,
              space: DialogueSpace | None = None, *, retrain: bool = False) -> None:
        """Train every policy on the same trackers (stories, augmented stories and rule
        trackers; each policy keeps what it uses). A policy that comes trained (a
        ``TEDPolicy`` wrapping a fitted model, a loaded policy: its ``space`` is set) is kept
        as it is unless ``retrain``."""
        self.space = space or DialogueSpace.from_domain(domain)
        for policy in self.policies:
            if retrain or policy.space is None:
                policy.train(trackers, domain, self.space)

    def predict(self, tracker: Tracker, domain: Domain) -> tuple[PolicyPrediction, str]:
        """The winning prediction and its action name (read in the winner's own space)."""
        answers = [(self._without_rejected(tracker, p.predict(tracker, domain), p), p)
                   for p in self.policies]
        best = pick_best([prediction for prediction, _ in answers])
        policy = next(p for prediction, p in answers if prediction is best)
        return best, best.action(policy.space or self._space()) or ACTION_LISTEN

    def predictions(self, tracker: Tracker, domain: Domain) -> list[PolicyPrediction]:
        """Every policy's prediction, in policy order (for reports and debugging)."""
        return [p.predict(tracker, domain) for p in self.policies]

    def _without_rejected(self, tracker: Tracker, prediction: PolicyPrediction,
                          policy: Policy) -> PolicyPrediction:
        """Rasa's ``_exclude_last_action_from_predictions_if_it_was_rejected``."""
        last = tracker.events[-1] if tracker.events else None
        space = policy.space or self._space()
        if not isinstance(last, ActionExecutionRejected) or last.name not in space.actions:
            return prediction
        prediction = copy.copy(prediction)
        prediction.probabilities = list(prediction.probabilities)
        prediction.probabilities[space.action_index(last.name)] = 0.0
        return prediction

    def _space(self) -> DialogueSpace:
        if self.space is None:
            raise RuntimeError("the ensemble is not trained: call train() or load it first")
        return self.space

    # ---- persistence (JSON) --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Every policy's JSON (neural policies raise: they save their weights themselves)."""
        return {"space": self._space().to_dict(),
                "policies": [policy.to_dict() | {"name": policy.name}
                             for policy in self.policies]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PolicyEnsemble":
        policies = []
        for item in data["policies"]:
            factory = POLICY_REGISTRY.get(item["name"])
            if factory is None or not hasattr(factory, "from_dict"):
                raise ValueError(f"cannot load policy '{item['name']}'; loadable: "
                                 f"{', '.join(sorted(POLICY_REGISTRY))}")
            policies.append(factory.from_dict(item))
        ensemble = cls(policies)
        ensemble.space = DialogueSpace.from_dict(data["space"])
        return ensemble


def pick_best(predictions: Sequence[PolicyPrediction]) -> PolicyPrediction:
    """Rasa's ``_pick_best_policy``: no-user predictions first, then end-to-end over
    intent-based ones, then the highest ``(max_confidence, priority)``."""
    if not predictions:
        raise ValueError("no predictions to pick from")
    no_user = any(p.is_no_user_prediction for p in predictions)
    end_to_end = any(p.is_end_to_end for p in predictions)
    best: PolicyPrediction | None = None
    for prediction in predictions:
        if prediction.is_no_user_prediction != no_user:
            continue
        if not no_user and prediction.is_end_to_end != end_to_end:
            continue
        if best is None or ((prediction.max_confidence, prediction.priority)
                            > (best.max_confidence, best.priority)):
            best = prediction
    assert best is not None  # the filters always leave the flagged predictions
    return best
