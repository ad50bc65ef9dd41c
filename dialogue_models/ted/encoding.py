"""TED examples as arrays and padded batches (no Lightning here: inference uses it too)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from dialogue_models.featurize import DialogueExample, StateFeaturizer
from dialogue_models.ted.model import TEDInputs

IGNORE_LABEL = -100


class EncodedDialogue:
    """One example as arrays: ``features[attr]`` ``(D, F)`` and ``label_ids`` ``(labels,)``
    (None at inference)."""

    __slots__ = ("features", "label_ids")

    def __init__(self, features: dict[str, np.ndarray], label_ids: np.ndarray | None = None
                 ) -> None:
        self.features, self.label_ids = features, label_ids


def encode_examples(examples: Sequence[DialogueExample], featurizer: StateFeaturizer
                    ) -> list[EncodedDialogue]:
    space = featurizer.space
    return [EncodedDialogue(featurizer.encode(e.states),
                            np.asarray([space.action_index(a) for a in e.labels], np.int64))
            for e in examples]


def collate(batch: Sequence[EncodedDialogue], mode: str) -> TEDInputs:
    """Left-aligned turns, zero padding; labels ``(B,)`` (max-history) or ``(B, D)`` with
    -100 on padding (full-dialogue), None when the examples carry none (inference)."""
    lengths = [next(iter(e.features.values())).shape[0] for e in batch]
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
    return TEDInputs(features=features, dialogue_mask=mask, label_ids=labels)
