"""A dialogue space extended for fine-tuning keeps every old id; its featurizer says where the
old feature columns went."""
from __future__ import annotations

import pytest

from dialogue_models.domain_slots import Slot
from dialogue_models.featurize import StateFeaturizer
from dialogue_models.states import DialogueSpace


def space(intents, actions, slots, forms=()) -> DialogueSpace:
    return DialogueSpace(intents=list(intents), actions=list(actions), entity_states=["city"],
                         slots=list(slots), forms=list(forms))


def test_extended_space_appends_new_names_and_maps_old_columns():
    size = Slot("size", "categorical", values=["small", "large"])
    old = space(["greet", "bye"], ["action_listen", "utter_hi"], [size])
    new = space(["ask_price", "greet"], ["action_listen", "utter_price"],
                [Slot("paid", "bool"), size], forms=["order_form"])
    grown = old.extended(new)
    assert grown.intents == ["greet", "bye", "ask_price"]
    assert grown.actions == ["action_listen", "utter_hi", "utter_price"]
    assert [s.name for s in grown.slots] == ["size", "paid"]
    assert grown.forms == ["order_form"]

    maps = StateFeaturizer(grown).column_maps(StateFeaturizer(old))
    assert set(maps) == {"intent", "action_name", "entities", "slots"}  # old had no forms
    assert maps["intent"].tolist() == [0, 1]
    assert maps["slots"].tolist() == [0, 1, 2]   # size's 3 columns stay first
    with pytest.raises(ValueError, match="does not extend the old one"):
        StateFeaturizer(new).column_maps(StateFeaturizer(old))


def test_a_slot_that_changed_its_features_is_refused():
    old = space(["greet"], ["action_listen"], [Slot("size", "categorical", values=["s"])])
    new = space(["greet"], ["action_listen"], [Slot("size", "categorical", values=["s", "l"])])
    with pytest.raises(ValueError, match="slot 'size' changed its features"):
        old.extended(new)
