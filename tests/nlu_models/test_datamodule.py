"""NLUDataModule on every benchmark layout the experiment configs name, and the intent-only and
entity-only paths."""
from __future__ import annotations

from collections import Counter

import lightning as L
import pytest

from nlu_models.data.schema import EntitySpan, Message, NLUData
from nlu_models.diet.datamodule import DataSpec, NLUDataModule
from nlu_models.diet.lit_module import DIETLitModule
from tests.conftest import DEMO_BOT, shared_data

TINY = dict(transformer_size=16, number_of_transformer_layers=1, number_of_attention_heads=2,
            dense_dimension_text=16, concat_dimension_text=16, embedding_dimension=8,
            dense_dimension_label=8, number_of_negative_examples=2)


@pytest.mark.parametrize("relative,fmt,splits", [
    ("snips/jointbert", "jointbert", ("train", "val", "test")),
    ("atis/jointbert", "jointbert", ("train", "val", "test")),
    ("hwu64/liu2019_10fold/KFold_3", "hwu64", ("train", "test")),
    ("clinc150/data_full.json", "clinc150", ("train", "val", "test")),
])
def test_benchmark_layouts_load_through_dataspecs(relative, fmt, splits):
    path = str(shared_data(relative))
    specs = {split: DataSpec(path, fmt, split) for split in splits}
    dm = NLUDataModule(**specs, max_examples=150, show_progress=False).prepare()
    assert set(dm.encoded) == set(splits)
    assert all(len(v) == 150 for v in dm.encoded.values())
    assert dm.labels.intents and dm.pipeline.seq_vocab_size > 0


def test_demo_bot_splits_are_training_data_and_held_out_tests():
    dm = NLUDataModule(DataSpec(str(DEMO_BOT), "rasa", "train"),
                       test=DataSpec(str(DEMO_BOT), "rasa", "test"), show_progress=False).prepare()
    train_texts = {m.text for m in dm.split_messages("train")}
    test_texts = {m.text for m in dm.split_messages("test")}
    assert len(train_texts) > 400 and len(test_texts) > 100
    assert not train_texts & test_texts


def _fit(data: NLUData, **model) -> DIETLitModule:
    L.seed_everything(0)
    dm = NLUDataModule(data, batch_size=8, show_progress=False).prepare()
    module = DIETLitModule.for_data(dm, {**TINY, **model})
    L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False).fit(module, datamodule=dm)
    return module


def test_intent_only_data_trains_without_entity_heads():
    data = NLUData(examples=[Message(t, i) for t, i in [("hi", "greet"), ("hello", "greet"),
                                                         ("bye", "bye"), ("see you", "bye")]])
    module = _fit(data)
    assert not module.model.active_heads
    result = module.interpreter().parse("hello there")
    assert result["entities"] == [] and result["intent"]["name"] in ("greet", "bye")


def test_entity_only_training_without_intents():
    data = NLUData(examples=[Message("to Berlin", None, [EntitySpan(3, 9, "Berlin", "city")]),
                             Message("to Paris", None, [EntitySpan(3, 8, "Paris", "city")])])
    module = _fit(data)
    assert module.model.config.intent_classification is False
    result = module.interpreter().parse("to Rome")
    assert result["intent"] is None and isinstance(result["entities"], list)


def test_train_fraction_is_a_seeded_stratified_part_of_train_with_val_and_test_unchanged():
    def prepared(fraction: float, seed: int = 1) -> NLUDataModule:
        return NLUDataModule(DataSpec(str(DEMO_BOT), "rasa", "train"),
                             test=DataSpec(str(DEMO_BOT), "rasa", "test"), val_fraction=0.2,
                             train_fraction=fraction, seed=seed, show_progress=False).prepare()

    full, half = prepared(1.0), prepared(0.5)
    texts = {split: [m.text for m in half.split_messages(split)] for split in half.data}
    assert texts["val"] == [m.text for m in full.split_messages("val")]
    assert texts["test"] == [m.text for m in full.split_messages("test")]
    assert set(texts["train"]) < {m.text for m in full.split_messages("train")}
    n_full = len(full.split_messages("train"))
    assert abs(len(texts["train"]) - n_full / 2) <= len(full.labels.intents)
    # stratified: every intent keeps about half its examples, and at least one
    counts = {split: Counter(m.intent for m in dm.split_messages("train"))
              for split, dm in (("full", full), ("half", half))}
    assert set(counts["half"]) == set(counts["full"])
    for intent, n in counts["full"].items():
        assert counts["half"][intent] == max(1, n - round(n * 0.5)), intent
    # seeded: the same seed gives the same part, another seed another one
    assert [m.text for m in prepared(0.5).split_messages("train")] == texts["train"]
    assert [m.text for m in prepared(0.5, seed=2).split_messages("train")] != texts["train"]


@pytest.mark.parametrize("fraction", [0.0, 1.5])
def test_train_fraction_outside_zero_to_one_is_refused(fraction):
    with pytest.raises(ValueError, match="train_fraction"):
        NLUDataModule(DataSpec(str(DEMO_BOT)), train_fraction=fraction)
