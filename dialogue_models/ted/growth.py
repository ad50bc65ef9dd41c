"""Fine-tuning a trained TED on a grown domain (new intents, actions, entities, slots, forms).

The data module extends the old model's :class:`DialogueSpace` by the new domain's
(``DialogueDataModule.prepare(extend=space)``: old ids kept, new ones appended), a
:class:`TEDModel` is built for the grown sizes, and :func:`grow_ted` copies the old weights into
it: each turn attribute's input projection columns of the old features, the action label
features of the old actions, every other weight whole. New columns keep their fresh
initialisation. ``python -m experiments.train experiment=ted_demo init_from=PATH`` does all of
this (PATH: a TED checkpoint or a ``policy`` bundle); the rule and memoization policies are
simply trained again on the new stories.
"""
from __future__ import annotations

from pathlib import Path

import torch

from dialogue_models.featurize import StateFeaturizer
from dialogue_models.policies.ted import TEDPolicy
from dialogue_models.ted.model import TEDModel
from nlu_models.modules.growth import (
    IndexMaps,
    check_same_config,
    describe_growth,
    grow_state_dict,
    positions_of,
)

# the TEDConfig keys a grown domain changes; anything else must match
GROWN_KEYS = ("feature_sizes", "num_actions")


def load_trained(path: str | Path) -> TEDPolicy:
    """The TED to continue from: a training checkpoint (``.ckpt``) or a ``policy`` bundle."""
    from dialogue_models.inference import DialoguePolicy

    ted = DialoguePolicy.load(path).ensemble.policies[-1]
    if not isinstance(ted, TEDPolicy):
        raise ValueError(f"{path} holds no TED policy to fine-tune")
    return ted


def grow_ted(old: TEDPolicy, model: TEDModel, featurizer: StateFeaturizer) -> str:
    """Copy ``old``'s weights into ``model``, built for ``featurizer`` (whose space extends
    ``old``'s); returns what grew, e.g. ``"actions: 30 → 31 (+utter_price); ..."``. Raises a
    ``ValueError`` naming the keys when the configs differ in more than sizes."""
    check_same_config(old.model.config.to_dict(), model.config.to_dict(), GROWN_KEYS, "TED")
    model.load_state_dict(grow_state_dict(old.model.state_dict(), model,
                                          index_maps(old, featurizer)))
    before, after = old.space, featurizer.space
    return "; ".join([
        describe_growth("actions", before.actions, after.actions),
        describe_growth("intents", before.intents, after.intents),
        describe_growth("entity states", before.entity_states, after.entity_states),
        describe_growth("slots", [s.name for s in before.slots], [s.name for s in after.slots]),
        describe_growth("forms", before.forms, after.forms)])


def index_maps(old: TEDPolicy, featurizer: StateFeaturizer) -> IndexMaps:
    """For each TED parameter with a domain-sized dimension, where the old entries go."""
    maps = {f"turn_inputs.{attribute}.dense.weight": {1: torch.from_numpy(columns)}
            for attribute, columns in featurizer.column_maps(old.featurizer).items()}
    maps["label_input.weight"] = {1: positions_of(old.space.actions, featurizer.space.actions,
                                                  "actions")}    # (dense, actions)
    return maps


__all__ = ["GROWN_KEYS", "grow_ted", "index_maps", "load_trained"]
