"""Export the dialogue policies to a ``policy`` bundle, and :func:`export_bundle`, which looks
at any dialab checkpoint and writes the bundle of its kind. The bundle format is described in
:mod:`nlu_models.export`; a policy bundle holds, besides the common files:

- ``labels.json``: ``{"actions": [...], "max_history": int | null, "ted_priority": int | null}``
- ``featurizers.json``: the TED state featurizer (``StateFeaturizer.to_dict()``): the dialogue
  space and, for end-to-end models, the fitted user-text NLU pipeline under ``"text"``
- ``policies.json``: the rule/memoization policies as ``PolicyEnsemble.to_dict()`` —
  ``{"space": ..., "policies": [...]}``, or ``{"policies": []}`` when TED runs alone
- ``domain.yml``: the training domain, when the checkpoint carries it

Loading (:func:`policy_from_bundle`, behind ``DialoguePolicy.load(folder)``) reads JSON,
YAML and safetensors only: no pickle, no Lightning.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from dialogue_models.domain import Domain, domain_to_yaml, read_domain
from dialogue_models.policies.ensemble import PolicyEnsemble
from dialogue_models.policies.ted import TEDPolicy
from nlu_models.export import (model_weights, open_bundle, read_checkpoint, write_bundle,
                               write_nlu_bundle)

DOMAIN_FILE = "domain.yml"


def export_bundle(checkpoint_path: str | Path, out_dir: str | Path,
                  metrics: Mapping[str, Any] | None = None, onnx: bool = False,
                  int8: bool = False) -> Path:
    """Any dialab checkpoint → its bundle: DIET checkpoints carry ``dialab_featurizers``, TED
    ones ``hyper_parameters.featurizer``. ``onnx`` / ``int8`` add DIET's ONNX graph (see
    :func:`nlu_models.export.export_nlu_bundle`); policy bundles have none."""
    from nlu_models.inference import CHECKPOINT_FEATURIZERS_KEY

    checkpoint = read_checkpoint(checkpoint_path)
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{checkpoint_path} is not a training checkpoint (a "
                         f"{type(checkpoint).__name__}, not a dict)")
    if CHECKPOINT_FEATURIZERS_KEY in checkpoint:
        return write_nlu_bundle(checkpoint, out_dir, metrics, onnx=onnx, int8=int8 and onnx)
    if (checkpoint.get("hyper_parameters") or {}).get("featurizer"):
        return write_policy_bundle(checkpoint, out_dir, metrics)
    raise ValueError(f"{checkpoint_path} is neither a DIET checkpoint (no "
                     f"'{CHECKPOINT_FEATURIZERS_KEY}' entry) nor a TED one (no "
                     "hyper_parameters.featurizer): cannot tell what to export")


def export_policy_bundle(checkpoint_path: str | Path, out_dir: str | Path,
                         metrics: Mapping[str, Any] | None = None) -> Path:
    """A TED training checkpoint (``TEDLitModule``, with its rule/memoization policies and
    domain when trained by ``experiments.train``) → a ``policy`` bundle in ``out_dir``."""
    return write_policy_bundle(read_checkpoint(checkpoint_path), out_dir, metrics)


def write_policy_bundle(checkpoint: Mapping[str, Any], out_dir: str | Path,
                        metrics: Mapping[str, Any] | None = None) -> Path:
    from dialogue_models.inference import domain_from_plain
    from dialogue_models.ted.model import TEDConfig, TEDModel

    hparams = checkpoint.get("hyper_parameters") or {}
    if not hparams.get("featurizer"):
        raise ValueError("not a TED checkpoint with a state featurizer (no "
                         "hyper_parameters.featurizer); train it with experiments.train")
    labels = dict(hparams["labels"])
    files: dict[str, Any] = {
        "config.json": TEDConfig.from_dict(dict(hparams["config"])).to_dict(),
        "labels.json": {"actions": list(labels["actions"]),
                        "max_history": labels.get("max_history"),
                        "ted_priority": labels.get("ted_priority")},
        "featurizers.json": dict(hparams["featurizer"]),
        "policies.json": labels.get("policies") or {"policies": []}}
    if labels.get("domain"):
        files[DOMAIN_FILE] = domain_to_yaml(domain_from_plain(labels["domain"]))
    return write_bundle(out_dir, "policy", TEDModel.__name__, files, model_weights(checkpoint),
                        metrics)


def policy_from_bundle(path: str | Path) -> tuple[PolicyEnsemble, Domain | None]:
    """The policy ensemble (rule/memoization policies, then TED) and the domain of a verified
    ``policy`` bundle."""
    bundle = open_bundle(path, "policy")
    labels = bundle.json("labels.json")
    ted = TEDPolicy.from_dict({"config": bundle.json("config.json"),
                               "featurizer": bundle.json("featurizers.json"),
                               "max_history": labels.get("max_history"),
                               "priority": labels.get("ted_priority")}, bundle.weights())
    saved = bundle.json("policies.json")
    others = list(PolicyEnsemble.from_dict(saved).policies) if saved.get("policies") else []
    domain = read_domain(bundle.path / DOMAIN_FILE) if bundle.has(DOMAIN_FILE) else None
    return PolicyEnsemble(others + [ted]), domain
