"""TED examples as arrays and padded batches (no Lightning here: inference uses it too)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from dialogue_models.featurize import DialogueExample, StateFeaturizer, TextBags
from dialogue_models.states import State
from dialogue_models.ted.model import SparseBags, TEDInputs, TEDModel
from nlu_models.diet.encoding import flat_bags

IGNORE_LABEL = -100


class EncodedDialogue:
    """One example as arrays: ``features[attr]`` ``(D, F)``, the sparse attributes' bags
    ``bags[attr]`` (user texts, previous actions' texts; empty without text features) and
    ``label_ids`` ``(labels,)`` (None at inference)."""

    __slots__ = ("features", "label_ids", "bags")

    def __init__(self, features: dict[str, np.ndarray], label_ids: np.ndarray | None = None,
                 bags: dict[str, TextBags] | None = None) -> None:
        self.features, self.label_ids, self.bags = features, label_ids, bags or {}


def encode_states(states: Sequence[State], featurizer: StateFeaturizer,
                  label_ids: np.ndarray | None = None) -> EncodedDialogue:
    return EncodedDialogue(featurizer.encode(states), label_ids, featurizer.encode_bags(states))


def encode_examples(examples: Sequence[DialogueExample], featurizer: StateFeaturizer
                    ) -> list[EncodedDialogue]:
    space = featurizer.space
    return [encode_states(e.states, featurizer,
                          np.asarray([space.action_index(a) for a in e.labels], np.int64))
            for e in examples]


def set_label_texts(model: TEDModel, featurizer: StateFeaturizer) -> None:
    """Give a ``label_action_text`` model its actions' text features from ``featurizer``
    (the state featurizer it was, or is being, trained with)."""
    bags = featurizer.encode_labels()
    model.set_label_texts(torch.from_numpy(bags.ids), torch.from_numpy(bags.values),
                          torch.from_numpy(bags.counts))


def collate(batch: Sequence[EncodedDialogue], mode: str) -> TEDInputs:
    """Left-aligned turns, zero padding; labels ``(B,)`` (max-history) or ``(B, D)`` with
    -100 on padding (full-dialogue), None when the examples carry none (inference). Text bags
    come flat, per sparse attribute: every turn's bag back to back, padded turns empty."""
    lengths = [_length(e) for e in batch]
    width = max(lengths)
    features = {}
    for attribute in batch[0].features:
        size = batch[0].features[attribute].shape[1]
        padded = np.zeros((len(batch), width, size), dtype=np.float32)  # (B, D, F)
        for b, example in enumerate(batch):
            padded[b, :lengths[b]] = example.features[attribute]
        features[attribute] = torch.from_numpy(padded)
    mask = torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]  # (B, D)
    if any(e.label_ids is None for e in batch):
        labels = None
    elif mode == "full_dialogue":
        labels = torch.full((len(batch), width), IGNORE_LABEL, dtype=torch.long)
        for b, example in enumerate(batch):
            labels[b, :lengths[b]] = torch.from_numpy(example.label_ids)
    else:
        labels = torch.from_numpy(np.stack([e.label_ids[-1:] for e in batch])[:, 0])
    bags = {a: SparseBags(*flat_bags([(e.bags[a].ids, e.bags[a].values, e.bags[a].counts)
                                      for e in batch], width))
            for a in batch[0].bags}
    return TEDInputs(features=features, dialogue_mask=mask, label_ids=labels, bags=bags)


def _length(example: EncodedDialogue) -> int:
    if example.features:
        return next(iter(example.features.values())).shape[0]
    return len(next(iter(example.bags.values())).counts)
