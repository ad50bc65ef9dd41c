"""Rasa's batching: growing batch size and balanced batches."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from nlu_models.diet.batching import (
    balanced_order,
    batch_size_for_epoch,
    epoch_batches,
    shard_batches,
)


def test_batch_size_grows_linearly_over_epochs():
    sizes = [batch_size_for_epoch([64, 256], e, 5) for e in range(5)]
    assert sizes == [64, 112, 160, 208, 256]
    assert batch_size_for_epoch([64, 256], 0, 1) == 64
    assert batch_size_for_epoch(32, 7, 10) == 32


def test_balanced_batches_oversample_rare_labels_and_cover_every_example():
    labels = [0] * 90 + [1] * 8 + [2] * 2
    rng = np.random.default_rng(0)
    order = balanced_order(labels, rng, 10, list(range(len(labels))))
    counts = Counter(labels[i] for i in order)
    # every class is cycled at least once; rare classes appear more often than their share
    assert set(order.tolist()) >= set(range(90, 100))
    assert counts[2] / len(order) > 2 / 100
    # the majority class is not fully covered before the rare ones are: the loop stops when
    # the *last* class completes its first cycle
    assert counts[0] >= 90


def test_epoch_batches_shapes_and_strategies():
    labels = [i % 3 for i in range(50)]
    rng = np.random.default_rng(1)
    batches = epoch_batches(labels, 16, "sequence", rng)
    assert [len(b) for b in batches] == [16, 16, 16, 2]
    assert sorted(i for b in batches for i in b) == list(range(50))
    balanced = epoch_batches(labels, 16, "balanced", np.random.default_rng(1))
    assert all(len(b) <= 16 for b in balanced)
    with pytest.raises(ValueError, match="batch_strategy"):
        epoch_batches(labels, 16, "random", rng)


def test_same_seed_same_batches():
    labels = [i % 4 for i in range(40)]
    a = epoch_batches(labels, 8, "balanced", np.random.default_rng([42, 3]))
    b = epoch_batches(labels, 8, "balanced", np.random.default_rng([42, 3]))
    assert a == b


def test_shard_batches_gives_each_rank_the_same_number():
    batches = [[i] for i in range(7)]
    shards = [shard_batches(batches, r, 2) for r in range(2)]
    assert [len(s) for s in shards] == [3, 3]
    assert not set(map(tuple, shards[0])) & set(map(tuple, shards[1]))


def test_shard_batches_never_leaves_a_rank_empty():
    shards = [shard_batches([[0], [1]], r, 4) for r in range(4)]
    assert [len(s) for s in shards] == [1, 1, 1, 1]
