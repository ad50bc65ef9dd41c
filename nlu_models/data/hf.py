"""Hugging Face ``datasets`` views of :class:`NLUData`, and seeded stratified splits.

A dataset row is ``{"text", "intent", "entities": [{start, end, value, entity, role, group}]}``.
Entity values are stored as strings (``str(value)``); synonyms, regexes, lookups and responses
are not part of the dataset. Everything works offline (``HF_DATASETS_OFFLINE=1``).
"""
from __future__ import annotations

import random
from typing import Any

import datasets

from nlu_models.data.schema import EntitySpan, Message, NLUData

ENTITY_FEATURES = {
    "start": datasets.Value("int32"),
    "end": datasets.Value("int32"),
    "value": datasets.Value("string"),
    "entity": datasets.Value("string"),
    "role": datasets.Value("string"),
    "group": datasets.Value("string"),
}
FEATURES = datasets.Features({
    "text": datasets.Value("string"),
    "intent": datasets.Value("string"),
    "entities": [ENTITY_FEATURES],  # a list of structs, not a struct of lists
})


def to_hf_dataset(nlu: NLUData) -> datasets.Dataset:
    """One row per example, with the columns of :data:`FEATURES`."""
    rows = {
        "text": [m.text for m in nlu.examples],
        "intent": [m.intent for m in nlu.examples],
        "entities": [[_entity_row(span) for span in m.entities] for m in nlu.examples],
    }
    return datasets.Dataset.from_dict(rows, features=FEATURES)


def _entity_row(span: EntitySpan) -> dict[str, Any]:
    return {"start": span.start, "end": span.end, "value": str(span.value),
            "entity": span.entity, "role": span.role, "group": span.group}


def from_hf_dataset(ds: datasets.Dataset) -> NLUData:
    """The inverse of :func:`to_hf_dataset` (``entities`` and ``intent`` columns are optional)."""
    examples = []
    for row in ds:
        spans = [EntitySpan(start=e["start"], end=e["end"], value=e["value"],
                            entity=e["entity"], role=e.get("role"), group=e.get("group"))
                 for e in row.get("entities") or []]
        examples.append(Message(text=row["text"], intent=row.get("intent"), entities=spans))
    return NLUData(examples=examples)


def to_dataset_dict(splits: dict[str, NLUData]) -> datasets.DatasetDict:
    """``{"train": nlu, "test": nlu}`` → a ``DatasetDict`` with the same keys."""
    return datasets.DatasetDict({name: to_hf_dataset(nlu) for name, nlu in splits.items()})


def train_test_split(nlu: NLUData, test_size: float = 0.2, seed: int = 42,
                     stratify: bool = True) -> tuple[NLUData, NLUData]:
    """Split the examples into (train, test), deterministic for a given seed.

    Stratified: each intent sends ``round(n * test_size)`` of its ``n`` examples to test, but
    always keeps at least one in train (so intents with a single example go to train). Both
    parts keep the original example order and share the synonyms, regexes, lookups and responses.
    """
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be a fraction between 0 and 1, not {test_size}")
    rng = random.Random(seed)
    groups = _groups_by_intent(nlu.examples) if stratify else [list(range(len(nlu.examples)))]
    test_indices: set[int] = set()
    for indices in groups:
        shuffled = list(indices)
        rng.shuffle(shuffled)
        n_test = min(round(len(indices) * test_size), len(indices) - 1)
        test_indices.update(shuffled[:n_test])
    train = [m for i, m in enumerate(nlu.examples) if i not in test_indices]
    test = [m for i, m in enumerate(nlu.examples) if i in test_indices]
    return nlu.with_examples(train), nlu.with_examples(test)


def _groups_by_intent(examples: list[Message]) -> list[list[int]]:
    """Example indices per intent, intents in sorted order (None last) for determinism."""
    groups: dict[str | None, list[int]] = {}
    for i, message in enumerate(examples):
        groups.setdefault(message.intent, []).append(i)
    return [groups[k] for k in sorted(groups, key=lambda k: (k is None, k or ""))]

