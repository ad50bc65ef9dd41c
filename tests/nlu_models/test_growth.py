"""Growing label and vocabulary tables for fine-tuning: the generic weight copy on small
tensors, and featurizers and labels that keep every old id when extended."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nlu_models.data.loading import load_nlu
from nlu_models.data.schema import LookupTable, NLUData, RegexPattern
from nlu_models.diet.labels import DIETLabels
from nlu_models.featurize import (
    CountVectorsFeaturizer,
    LexicalSyntacticFeaturizer,
    RegexFeaturizer,
    default_pipeline,
)
from nlu_models.modules.growth import (
    check_same_config,
    describe_growth,
    grow_state_dict,
    positions_of,
)
from nlu_models.tokenize import tokenize
from tests.conftest import DEMO_BOT


# ---- grow_state_dict -------------------------------------------------------------------------
class Tables(nn.Module):
    """A label table (rows = labels), a CRF-like square table and a size-free layer."""

    def __init__(self, labels: int) -> None:
        super().__init__()
        self.labels = nn.Linear(4, labels)                 # weight (labels, 4), bias (labels,)
        self.transitions = nn.Parameter(torch.randn(labels, labels))
        self.shared = nn.Linear(4, 4)


def test_old_rows_are_copied_exactly_and_new_rows_stay_fresh():
    torch.manual_seed(0)
    old, new = Tables(3), Tables(5)
    fresh = {k: v.clone() for k, v in new.state_dict().items()}
    where = torch.tensor([0, 2, 4])  # old label i now sits at where[i]; 1 and 3 are new
    maps = {"labels.weight": {0: where}, "labels.bias": {0: where},
            "transitions": {0: where, 1: where}}
    new.load_state_dict(grow_state_dict(old.state_dict(), new, maps))

    assert torch.equal(new.labels.weight[where], old.labels.weight)
    assert torch.equal(new.labels.bias[where], old.labels.bias)
    assert torch.equal(new.transitions[where][:, where], old.transitions)
    for added in (1, 3):
        assert torch.equal(new.labels.weight[added], fresh["labels.weight"][added])
        assert torch.equal(new.transitions[added], fresh["transitions"][added])
        assert torch.equal(new.transitions[:, added], fresh["transitions"][:, added])
    assert torch.equal(new.shared.weight, old.shared.weight)   # size-free: copied whole
    assert torch.equal(new.shared.bias, old.shared.bias)


def test_parameters_only_the_new_model_has_keep_their_fresh_values():
    old = nn.ModuleDict({"a": nn.Linear(2, 2)})
    new = nn.ModuleDict({"a": nn.Linear(2, 2), "b": nn.Linear(2, 3)})
    fresh_b = new["b"].weight.clone()
    new.load_state_dict(grow_state_dict(old.state_dict(), new, {}))
    assert torch.equal(new["a"].weight, old["a"].weight)
    assert torch.equal(new["b"].weight, fresh_b)


@pytest.mark.parametrize("maps, message", [
    ({}, "labels.weight: dimension 0 has size 3 in the old model and 5"),
    ({"labels.weight": {0: torch.tensor([0, 1])}}, "has 2 entries for 3 old ones"),
    ({"labels.weight": {0: torch.tensor([0, 1, 5])}}, "points outside the new size 5"),
    ({"labels.weight": {0: torch.tensor([0, 1, 1])}}, "sends two old entries to one place"),
    ({"missing.weight": {0: torch.tensor([0])}}, "parameters the new model lacks"),
])
def test_bad_growth_names_the_parameter(maps, message):
    old, new = Tables(3), Tables(5)
    maps = {"labels.bias": {0: torch.arange(3)}, "transitions": {0: torch.arange(3),
                                                                 1: torch.arange(3)}, **maps}
    with pytest.raises(ValueError, match=message):
        grow_state_dict(old.state_dict(), new, maps)


def test_an_old_parameter_without_a_place_is_an_error():
    old = nn.ModuleDict({"a": nn.Linear(2, 2), "gone": nn.Linear(2, 2)})
    with pytest.raises(ValueError, match="no place for the old parameters"):
        grow_state_dict(old.state_dict(), nn.ModuleDict({"a": nn.Linear(2, 2)}), {})


def test_positions_config_check_and_growth_description():
    assert positions_of(["b", "a"], ["a", "b", "c"], "intents").tolist() == [1, 0]
    with pytest.raises(ValueError, match="intents: the grown table lost"):
        positions_of(["gone"], ["a"], "intents")
    check_same_config({"size": 4, "n": 1}, {"size": 4, "n": 2}, ["n"], "DIET")
    with pytest.raises(ValueError, match=r"transformer_size: 256 → 128"):
        check_same_config({"transformer_size": 256, "n": 1}, {"transformer_size": 128, "n": 2},
                          ["n"], "DIET")
    assert describe_growth("intents", ["a", "b"], ["a", "b", "c"]) == "intents: 2 → 3 (+c)"
    assert describe_growth("vocabulary", 4812, 4903) == "vocabulary: 4,812 → 4,903"


# ---- featurizers -----------------------------------------------------------------------------
def _fit(featurizer, texts, nlu=None):
    return featurizer.fit([tokenize(t) for t in texts], texts, nlu)


def test_count_vectors_keep_old_columns_and_append_new_terms():
    old = _fit(CountVectorsFeaturizer("word"), ["a pizza please", "hello"])
    new = _fit(CountVectorsFeaturizer("word"), ["price of a pizza", "hello"])
    grown = old.extended(new)
    assert list(grown.vocabulary)[:len(old.vocabulary)] == list(old.vocabulary)
    assert all(grown.vocabulary[t] == i for t, i in old.vocabulary.items())
    assert set(grown.vocabulary) == set(old.vocabulary) | set(new.vocabulary)
    assert list(grown.vocabulary.values()) == list(range(len(grown.vocabulary)))
    assert grown.featurize(tokenize("a pizza"), "a pizza") == old.featurize(tokenize("a pizza"),
                                                                          "a pizza")
    assert CountVectorsFeaturizer.from_dict(grown.to_dict()).vocabulary == grown.vocabulary
    with pytest.raises(ValueError, match="options differ.*max_ngram"):
        old.extended(_fit(CountVectorsFeaturizer("word", max_ngram=2), ["hello"]))


def test_regex_and_lexical_syntactic_featurizers_append_new_entries():
    old_nlu = NLUData(regexes=[RegexPattern("order_id", r"[A-Z]{2}\d{4}")])
    new_nlu = NLUData(regexes=[RegexPattern("order_id", r"[A-Z]{2}\d{4}")],
                      lookups=[LookupTable("city", ["Berlin", "Paris"])])
    old = _fit(RegexFeaturizer(), [], old_nlu)
    grown = old.extended(_fit(RegexFeaturizer(), [], new_nlu))
    assert grown.patterns[:1] == old.patterns and len(grown.patterns) == 2

    features = [["low", "title"], ["suffix2"], ["low"]]
    old_lex = _fit(LexicalSyntacticFeaturizer(features), ["hello there"])
    new_lex = _fit(LexicalSyntacticFeaturizer(features), ["order pizza now"])
    grown_lex = old_lex.extended(new_lex)
    assert grown_lex.columns[:len(old_lex.columns)] == old_lex.columns
    assert set(grown_lex.columns) == set(old_lex.columns) | set(new_lex.columns)
    text = "hello there"
    assert grown_lex.featurize(tokenize(text), text) == old_lex.featurize(tokenize(text), text)


@pytest.fixture(scope="module")
def demo() -> NLUData:
    return load_nlu(DEMO_BOT / "data" / "nlu.yml")


def test_extended_pipeline_gives_old_texts_the_old_features_at_mapped_ids(demo):
    without = demo.with_examples([m for m in demo.examples if m.intent != "ask_menu"])
    old = default_pipeline().fit(without.examples, without)
    grown = old.extended(default_pipeline().fit(demo.examples, demo))
    assert grown.seq_vocab_size > old.seq_vocab_size
    seq_map, sent_map = grown.column_maps(old)
    assert seq_map.shape == (old.seq_vocab_size,) and sent_map.shape == (old.sent_vocab_size,)
    for message in without.examples[:40]:
        before, after = old.transform(message), grown.transform(message)
        assert np.array_equal(seq_map[before.seq_ids - 1] + 1, after.seq_ids)
        assert np.array_equal(sent_map[before.sent_ids - 1] + 1, after.sent_ids)
        assert np.array_equal(before.seq_values, after.seq_values)
    with pytest.raises(ValueError, match="does not extend the old one"):
        old.column_maps(grown)


def test_extending_a_different_pipeline_is_refused(demo):
    old = default_pipeline().fit(demo.examples, demo)
    other = default_pipeline()
    other.sparse = other.sparse[1:]
    with pytest.raises(ValueError, match="the pipelines differ"):
        old.extended(other.fit(demo.examples, demo))


# ---- labels ----------------------------------------------------------------------------------
def test_extended_labels_keep_every_old_intent_and_tag_id(demo):
    without = demo.with_examples([m for m in demo.examples if m.intent != "ask_menu"
                                  and not any(s.entity == "crust" for s in m.entities)])
    old = DIETLabels.from_data(without)
    grown = old.extended(DIETLabels.from_data(demo))
    assert grown.intents == old.intents + ["ask_menu"]
    assert grown.entities == old.entities + ["crust"]
    for head in ("entity", "role"):
        assert grown.tags(head)[:len(old.tags(head))] == old.tags(head)
    assert grown.intent_id("greet") == old.intent_id("greet")
    with pytest.raises(ValueError, match="cannot extend BILOU tags by BIO"):
        old.extended(DIETLabels.from_data(demo, scheme="BIO"))
