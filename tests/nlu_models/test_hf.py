"""Hugging Face datasets round trips and seeded, stratified train/test splits."""
from __future__ import annotations

import os
import subprocess
import sys

import datasets
import pytest

from nlu_models.data.benchmarks import read_jointbert
from nlu_models.data.hf import (
    FEATURES,
    from_hf_dataset,
    to_dataset_dict,
    to_hf_dataset,
    train_test_split,
)
from nlu_models.data.schema import EntitySpan, LookupTable, Message, NLUData
from tests.conftest import REPO_ROOT, shared_data as data_path


@pytest.fixture
def small() -> NLUData:
    return NLUData(examples=[
        Message("fly from Berlin to Paris", "book_flight", [
            EntitySpan(9, 15, "Berlin", "city", role="departure", group="1"),
            EntitySpan(19, 24, "Paris", "city", role="destination")]),
        Message("hello", "greet"),
        Message("ny please", None, [EntitySpan(0, 2, "New York", "city")]),
    ])


def make_imbalanced(counts: dict[str, int]) -> NLUData:
    return NLUData(examples=[Message(f"{intent} {i}", intent)
                             for intent, n in counts.items() for i in range(n)])


# ---- round trips -----------------------------------------------------------------------------
def test_round_trip_keeps_text_intent_and_entities(small):
    ds = to_hf_dataset(small)
    assert ds.column_names == ["text", "intent", "entities"]
    assert ds.features == FEATURES
    assert ds[0]["entities"][1] == {"start": 19, "end": 24, "value": "Paris", "entity": "city",
                                    "role": "destination", "group": None}
    assert from_hf_dataset(ds).examples == small.examples


def test_non_string_values_become_strings():
    nlu = NLUData([Message("in 3 days", "remind", [EntitySpan(3, 4, 3, "number")])])
    [row] = to_hf_dataset(nlu)
    assert row["entities"][0]["value"] == "3"


def test_empty_data_gives_empty_dataset():
    ds = to_hf_dataset(NLUData())
    assert len(ds) == 0 and ds.features == FEATURES
    assert from_hf_dataset(ds).examples == []


def test_round_trip_on_snips_dev():
    nlu = read_jointbert(data_path("snips/jointbert/dev"))
    assert from_hf_dataset(to_hf_dataset(nlu)).examples == nlu.examples


def test_dataset_dict(small):
    dd = to_dataset_dict({"train": small, "test": NLUData(small.examples[:1])})
    assert isinstance(dd, datasets.DatasetDict)
    assert {name: len(ds) for name, ds in dd.items()} == {"train": 3, "test": 1}


def test_works_offline(tmp_path):
    code = ("from nlu_models.data.hf import to_hf_dataset, from_hf_dataset\n"
            "from nlu_models.data.schema import Message, NLUData\n"
            "nlu = NLUData([Message('hi', 'greet')])\n"
            "ds = to_hf_dataset(nlu)\n"
            "ds.save_to_disk(r'%s')\n"
            "import datasets\n"
            "assert from_hf_dataset(datasets.load_from_disk(r'%s')).examples == nlu.examples\n"
            % (tmp_path / "ds", tmp_path / "ds"))
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1",
               HF_HOME=str(tmp_path / "hf_home"))
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# ---- splits ----------------------------------------------------------------------------------
def test_stratified_split_proportions():
    nlu = make_imbalanced({"a": 100, "b": 50, "c": 10, "d": 3, "e": 2, "single": 1})
    train, test = train_test_split(nlu, test_size=0.2, seed=7)
    test_counts, train_counts = test.count_by_intent(), train.count_by_intent()
    assert test_counts == {"a": 20, "b": 10, "c": 2, "d": 1}
    assert train_counts == {"a": 80, "b": 40, "c": 8, "d": 2, "e": 2, "single": 1}


def test_split_partitions_examples_and_keeps_order():
    nlu = make_imbalanced({"a": 30, "b": 20})
    train, test = train_test_split(nlu)
    texts = [m.text for m in nlu.examples]
    assert sorted(m.text for m in train.examples + test.examples) == sorted(texts)
    assert not {m.text for m in train.examples} & {m.text for m in test.examples}
    for part in (train, test):
        positions = [texts.index(m.text) for m in part.examples]
        assert positions == sorted(positions)


def test_split_is_deterministic_per_seed():
    nlu = make_imbalanced({"a": 40, "b": 40})

    def test_texts(seed):
        return [m.text for m in train_test_split(nlu, seed=seed)[1].examples]

    assert test_texts(42) == test_texts(42)
    assert test_texts(42) != test_texts(43)


def test_unstratified_split_size():
    nlu = make_imbalanced({"a": 90, "b": 10})
    train, test = train_test_split(nlu, test_size=0.25, stratify=False)
    assert (len(train.examples), len(test.examples)) == (75, 25)


def test_split_keeps_lookups_and_synonyms_in_both_parts():
    nlu = make_imbalanced({"a": 10})
    nlu.synonyms = {"New York": ["ny"]}
    nlu.lookups = [LookupTable("city", ["Berlin"])]
    for part in train_test_split(nlu):
        assert part.synonyms == nlu.synonyms and part.lookups == nlu.lookups


def test_split_on_snips_is_stratified():
    nlu = read_jointbert(data_path("snips/jointbert/dev"))
    train, test = train_test_split(nlu, test_size=0.2, seed=42)
    for intent, n in nlu.count_by_intent().items():
        assert test.count_by_intent()[intent] == round(n * 0.2)


@pytest.mark.parametrize("size", [0.0, 1.0, 5])
def test_split_rejects_bad_test_size(size):
    with pytest.raises(ValueError, match="test_size"):
        train_test_split(make_imbalanced({"a": 5}), test_size=size)
