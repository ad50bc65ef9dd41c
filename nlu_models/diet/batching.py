"""Rasa's batching for DIET/TED: a batch size that grows linearly over the epochs, and
"balanced" batches that over-sample rare labels.

Both are plain functions of (labels, epoch, seed) so they are easy to test and to reuse for TED.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

BATCH_STRATEGIES = ("balanced", "sequence")


def batch_size_for_epoch(batch_size: int | Sequence[int], epoch: int, max_epochs: int) -> int:
    """``int(b0 + epoch · (b1 − b0) / (E − 1))`` for ``[b0, b1]`` (Smith et al. 2017);
    a single number stays fixed."""
    if isinstance(batch_size, int):
        return batch_size
    sizes = list(batch_size)
    if len(sizes) == 1:
        return int(sizes[0])
    first, last = int(sizes[0]), int(sizes[1])
    if max_epochs <= 1:
        return first
    return int(first + epoch * (last - first) / (max_epochs - 1))


def epoch_batches(label_ids: Sequence[int], batch_size: int, strategy: str,
                  rng: np.random.Generator) -> list[list[int]]:
    """Example indices grouped into the batches of one epoch."""
    if strategy not in BATCH_STRATEGIES:
        raise ValueError(f"batch_strategy must be one of {BATCH_STRATEGIES}, not {strategy!r}")
    order = rng.permutation(len(label_ids))
    if strategy == "balanced":
        order = balanced_order([label_ids[i] for i in order], rng, batch_size, order)
    return [list(map(int, order[i:i + batch_size])) for i in range(0, len(order), batch_size)]


def balanced_order(labels: Sequence[int], rng: np.random.Generator, batch_size: int,
                   indices: Sequence[int]) -> np.ndarray:
    """Rasa's ``balance_session_data``: sweep over the classes in random order, taking
    ``int(count_c / N · batch_size) + 1`` examples of class c per visit, until every class has
    been fully cycled once; a class already cycled is visited only every other sweep.
    Rare classes are over-sampled, so the epoch gets longer."""
    classes = sorted(set(labels))
    by_class = [[idx for idx, lab in zip(indices, labels) if lab == c] for c in classes]
    counts = [len(members) for members in by_class]
    total = len(labels)
    position = [0] * len(classes)
    cycles = [0] * len(classes)
    skipped = [False] * len(classes)
    order: list[int] = []
    while min(cycles) == 0:
        for c in rng.permutation(len(classes)):
            if cycles[c] > 0 and not skipped[c]:
                skipped[c] = True
                continue
            skipped[c] = False
            take = int(counts[c] / total * batch_size) + 1
            order.extend(by_class[c][position[c]:position[c] + take])
            position[c] += take
            if position[c] >= counts[c]:
                cycles[c] += 1
                position[c] = 0
            if min(cycles) > 0:
                break
    return np.asarray(order, dtype=np.int64)


def shard_batches(batches: list[list[int]], rank: int, world_size: int) -> list[list[int]]:
    """This rank's share for data-parallel training: every ``world_size``-th batch, the same
    number on every rank."""
    if world_size <= 1:
        return batches
    if len(batches) < world_size:  # too few batches: repeat some so no rank is left without
        batches = [batches[i % len(batches)] for i in range(world_size)]
    per_rank = len(batches) // world_size
    return batches[rank::world_size][:per_rank]
