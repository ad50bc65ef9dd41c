"""``DialoguePolicy``: the trained policy ensemble (rules, memoization, TED) asked for the next
action of a conversation.

``DialoguePolicy.load(path)`` takes an export bundle folder (``dialab export``; see
:mod:`dialogue_models.export`) or a training checkpoint (``.ckpt``: the TED weights, the state
featurizer and the trained rule/memoization policies as JSON; reading it needs Lightning).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dialogue_models.domain import Domain, domain_from_yaml
from dialogue_models.export import policy_from_bundle
from dialogue_models.policies.base import PolicyPrediction
from dialogue_models.policies.ensemble import PolicyEnsemble
from dialogue_models.policies.ted import TEDPolicy
from dialogue_models.tracker import Tracker
from nlu_models.data.rasa_yaml import dump_yaml
from nlu_models.data.yaml_io import parse_yaml


@dataclass
class ActionRanking:
    """The chosen action, the policy that chose it, and every action's confidence from it."""

    action: str
    confidence: float
    policy: str | None
    ranking: list[tuple[str, float]]


class DialoguePolicy:
    """``domain`` is the domain the policies were trained with (checkpoints carry it)."""

    def __init__(self, ensemble: PolicyEnsemble, domain: Domain | None = None) -> None:
        self.ensemble = ensemble
        self.domain = domain

    @classmethod
    def from_lit_module(cls, module: Any) -> "DialoguePolicy":
        labels = module.hparams["labels"]
        saved = labels.get("policies")
        others = list(PolicyEnsemble.from_dict(saved).policies) if saved else []
        ted = TEDPolicy.from_lit_module(module, priority=labels.get("ted_priority"))
        domain = labels.get("domain")
        return cls(PolicyEnsemble(others + [ted]),
                   domain_from_plain(domain) if domain else None)

    @classmethod
    def load(cls, path: str | Path) -> "DialoguePolicy":
        """From a ``policy`` export bundle folder (``dialab export``: JSON, YAML and safetensors,
        checked against the manifest's sha256) or a training checkpoint (``.ckpt``)."""
        path = Path(path)
        if path.is_dir():
            ensemble, domain = policy_from_bundle(path)
            return cls(ensemble, domain)
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint at {path}")
        from dialogue_models.ted.lit_module import TEDLitModule

        module = TEDLitModule.load_from_checkpoint(str(path), map_location="cpu")
        return cls.from_lit_module(module)

    @property
    def actions(self) -> list[str]:
        return list(self.ensemble.policies[-1].space.actions)

    def predict(self, tracker: Tracker, domain: Domain | None = None) -> ActionRanking:
        domain = domain or self.domain
        if domain is None:
            raise ValueError("no domain: pass one (this checkpoint does not carry its domain)")
        prediction, action = self.ensemble.predict(tracker, domain)
        return ActionRanking(action, prediction.max_confidence, prediction.policy,
                             _ranking(prediction, self.actions))


def domain_from_plain(data: dict[str, Any]) -> Domain:
    """A domain from ``domain_to_plain``'s output (as checkpoints and bundles store it)."""
    return domain_from_yaml(parse_yaml(dump_yaml(data), "domain.yml"), "domain.yml")


def _ranking(prediction: PolicyPrediction, actions: list[str]) -> list[tuple[str, float]]:
    pairs = [(a, p) for a, p in zip(actions, prediction.probabilities) if p > 0]
    return sorted(pairs, key=lambda pair: -pair[1])
