"""Fine-tuning a trained TED on a grown domain (new intents, actions, entities, slots, forms).

The data module extends the old model's :class:`DialogueSpace` by the new domain's, and its
user-text pipeline (end-to-end) by the new stories' texts
(``DialogueDataModule.prepare(extend=featurizer)``: old ids kept, new ones appended), a
:class:`TEDModel` is built for the grown sizes, and :func:`grow_ted` copies the old weights into
it: each turn attribute's input projection columns of the old features (the text projection's
rows of the old n-grams), the action label features of the old actions, every other weight
whole. New columns keep their fresh initialisation. A model with text features cannot be
fine-tuned into one without, nor the other way round. ``python -m experiments.train
experiment=ted_demo init_from=PATH`` does all of this (PATH: a TED checkpoint or a ``policy``
bundle); the rule and memoization policies are simply trained again on the new stories.
"""
from __future__ import annotations

from pathlib import Path

import torch

from dialogue_models.featurize import TEXT, StateFeaturizer
from dialogue_models.policies.ted import TEDPolicy
from dialogue_models.ted.model import SPARSE_ATTRIBUTES, TEDModel
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
    _check_same_text(old.featurizer, featurizer)
    check_same_config(old.model.config.to_dict(), model.config.to_dict(), GROWN_KEYS, "TED")
    model.load_state_dict(grow_state_dict(old.model.state_dict(), model,
                                          index_maps(old, featurizer)))
    before, after = old.space, featurizer.space
    text = ([describe_growth("text features", old.featurizer.feature_sizes[TEXT],
                             featurizer.feature_sizes[TEXT])]
            if featurizer.text is not None else [])
    return "; ".join([
        describe_growth("actions", before.actions, after.actions),
        describe_growth("intents", before.intents, after.intents),
        describe_growth("entity states", before.entity_states, after.entity_states),
        describe_growth("slots", [s.name for s in before.slots], [s.name for s in after.slots]),
        describe_growth("forms", before.forms, after.forms), *text])


def _check_same_text(old: StateFeaturizer, new: StateFeaturizer) -> None:
    for what, option, has in (("user-text", "model.featurizers", lambda f: f.text is not None),
                              ("previous-action-text", "model.prev_action_text",
                               lambda f: f.action_text)):
        if has(old) != has(new):
            having, lacking = ("the old", "the new") if has(old) else ("the new", "the old")
            raise ValueError(f"cannot fine-tune this TED: {having} model has {what} features "
                             f"({option}) and {lacking} one has none; use the options the "
                             "model was trained with, or train from scratch")


def index_maps(old: TEDPolicy, featurizer: StateFeaturizer) -> IndexMaps:
    """For each TED parameter with a domain-sized dimension, where the old entries go."""
    columns = featurizer.column_maps(old.featurizer)
    maps = {f"turn_inputs.{attribute}.dense.weight": {1: torch.from_numpy(columns[attribute])}
            for attribute in columns if attribute not in SPARSE_ATTRIBUTES}
    if TEXT in columns:  # (n-grams + 1, dense) table: row 0 is padding, row c + 1 column c
        rows = torch.cat([torch.zeros(1, dtype=torch.long),
                          torch.from_numpy(columns[TEXT]) + 1])
        for attribute in SPARSE_ATTRIBUTES:  # the user's and the bot's texts share it
            if attribute in columns:
                maps[f"turn_inputs.{attribute}.dense.bag.weight"] = {0: rows}
        if old.model.config.label_action_text:  # the actions' texts share the vocabulary
            maps["label_text.dense.bag.weight"] = {0: rows}
    maps["label_input.weight"] = {1: positions_of(old.space.actions, featurizer.space.actions,
                                                  "actions")}    # (dense, actions)
    return maps


__all__ = ["GROWN_KEYS", "grow_ted", "index_maps", "load_trained"]
