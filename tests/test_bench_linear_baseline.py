"""The linear baseline on DIET's sparse features: one row per message (token features summed,
sentence features beside them), and a logistic regression trained and scored end to end."""
from __future__ import annotations

import json

import numpy as np
import pytest

from experiments.bench.linear_baseline import main, message_matrix
from nlu_models.featurize import MessageFeatures
from nlu_models.tokenize import WhitespaceTokenizer


def features(text: str, seq: list[list[tuple[int, float]]], sent: list[tuple[int, float]]):
    tokens = WhitespaceTokenizer().tokenize(text)
    assert len(tokens) == len(seq)
    indptr = np.cumsum([0, *map(len, seq)])
    flat = [pair for row in seq for pair in row]
    return MessageFeatures(
        tokens=tokens, seq_indptr=indptr.astype(np.int64),
        seq_ids=np.array([i for i, _ in flat], dtype=np.int64),
        seq_values=np.array([v for _, v in flat], dtype=np.float32),
        sent_ids=np.array([i for i, _ in sent], dtype=np.int64),
        sent_values=np.array([v for _, v in sent], dtype=np.float32))


def test_a_message_row_sums_its_tokens_beside_its_sentence_features():
    rows = message_matrix([features("a b", [[(1, 1.0), (3, 2.0)], [(3, 1.0)]], [(2, 5.0)]),
                           features("c", [[(4, 1.0)]], [])], seq_size=4, sent_size=2)
    assert rows.toarray().tolist() == [[1.0, 0.0, 3.0, 0.0, 0.0, 5.0],
                                       [0.0, 0.0, 0.0, 1.0, 0.0, 0.0]]


def test_the_baseline_learns_the_demo_bots_intents(tmp_path):
    results = main(["--experiments", "diet_demo", "--out", str(tmp_path)])
    written = json.loads((tmp_path / "linear_baseline_diet_demo.json").read_text())
    assert written["intent_accuracy"] == results[0]["intent_accuracy"]
    assert written["num_train_examples"] > 400 and written["n_examples"] > 100
    # ~20 intents (chance ~5 %): a linear model on the n-gram counts gets most test texts right
    assert written["intent_accuracy"] > 0.7
    assert 0.0 < written["intent_macro_f1"] <= 1.0
    assert {"command", "machine", "date"} <= set(written)


def test_multi_label_data_is_refused(tmp_path):
    with pytest.raises(ValueError, match="multi-label"):
        main(["--experiments", "diet_tiny", "--out", str(tmp_path), "data.multi_label=true"])
