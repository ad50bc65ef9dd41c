"""Stories → trackers → states → features, checked against hand-written expectations."""
from __future__ import annotations

import numpy as np
import pytest

from dialogue_models.domain import domain_from_yaml
from dialogue_models.events import (ACTION_LISTEN, ActionExecuted, ActionReverted, ActiveLoop,
                                    BotUttered, Restarted, SlotSet, UserUttered,
                                    UserUtteranceReverted, event_from_dict)
from dialogue_models.featurize import (StateFeaturizer, full_dialogue_examples,
                                       max_history_examples)
from dialogue_models.generation import generate_trackers, story_tracker
from dialogue_models.states import DialogueSpace, slot_features, tracker_actions, tracker_states
from dialogue_models.stories import stories_from_yaml
from dialogue_models.tracker import Tracker
from nlu_models.data.yaml_io import parse_yaml

DOMAIN = """
version: "3.1"
intents: [greet, inform, bye]
entities: [city, {topping: {roles: [add]}}]
slots:
  city: {type: text, mappings: [{type: from_entity, entity: city}]}
  size: {type: categorical, values: [small, large], mappings: [{type: custom}]}
  vip: {type: bool, influence_conversation: false, mappings: [{type: custom}]}
forms:
  order_form: {required_slots: [size]}
responses:
  utter_greet: [{text: hi}]
  utter_bye: [{text: bye}]
  utter_ok: [{text: ok}]
actions: [action_weather]
"""


def _domain(text: str = DOMAIN):
    return domain_from_yaml(parse_yaml(text, "domain.yml"), "domain.yml")


def _stories(text: str):
    return stories_from_yaml(parse_yaml(text, "stories.yml"), "stories.yml")


def _labels(events):
    return [(type(e).__name__, getattr(e, "name", None) or getattr(e, "intent", None))
            for e in events]


def test_story_becomes_events_with_listens_and_a_final_listen():
    data = _stories("""
stories:
- story: weather
  steps:
  - intent: greet
  - action: utter_greet
  - intent: inform
    entities: [{city: Berlin}]
  - slot_was_set: [{city: Berlin}]
  - action: action_weather
""")
    [tracker] = generate_trackers(data, _domain(), augmentation_factor=0)
    assert _labels(tracker.events) == [
        ("ActionExecuted", ACTION_LISTEN), ("UserUttered", "greet"),
        ("ActionExecuted", "utter_greet"), ("ActionExecuted", ACTION_LISTEN),
        ("UserUttered", "inform"), ("SlotSet", "city"), ("ActionExecuted", "action_weather"),
        ("ActionExecuted", ACTION_LISTEN)]
    assert tracker.slots["city"] == "Berlin"
    assert tracker.latest_message.entities == [{"entity": "city", "value": "Berlin"}]


def test_checkpoints_join_stories_and_or_steps_branch():
    data = _stories("""
stories:
- story: start
  steps:
  - intent: greet
  - action: utter_greet
  - checkpoint: greeted
- story: then bye
  steps:
  - checkpoint: greeted
  - or:
    - intent: bye
    - intent: inform
  - action: utter_bye
- story: then weather
  steps:
  - checkpoint: greeted
  - intent: inform
  - action: action_weather
""")
    trackers = generate_trackers(data, _domain(), augmentation_factor=0)
    paths = sorted(tuple(tracker_actions(t)) + (t.latest_message.intent,) for t in trackers)
    assert paths == sorted([
        (ACTION_LISTEN, "utter_greet", ACTION_LISTEN, "utter_bye", ACTION_LISTEN, "bye"),
        (ACTION_LISTEN, "utter_greet", ACTION_LISTEN, "utter_bye", ACTION_LISTEN, "inform"),
        (ACTION_LISTEN, "utter_greet", ACTION_LISTEN, "action_weather", ACTION_LISTEN,
         "inform")])
    assert all(t.name.startswith("start > then") for t in trackers)


def test_augmentation_is_seeded_and_flagged():
    data = _stories("""
stories:
- story: a
  steps: [{intent: greet}, {action: utter_greet}]
- story: b
  steps: [{intent: bye}, {action: utter_bye}]
""")
    first = generate_trackers(data, _domain(), augmentation_factor=2, seed=1)
    again = generate_trackers(data, _domain(), augmentation_factor=2, seed=1)
    assert len(first) == 2 + 20
    assert sum(t.is_augmented for t in first) == 20
    assert [t.name for t in first] == [t.name for t in again]
    glued = next(t for t in first if t.is_augmented)
    assert tracker_actions(glued) == [ACTION_LISTEN, tracker_actions(glued)[1], ACTION_LISTEN,
                                      tracker_actions(glued)[3], ACTION_LISTEN]


def test_states_follow_rasa_single_state_featurizer():
    domain = _domain()
    data = _stories("""
stories:
- story: form
  steps:
  - intent: greet
  - action: utter_greet
  - intent: inform
    entities: [{city: Paris}, {entity: topping, value: ham, role: add}]
  - slot_was_set: [{city: Paris}, {vip: true}]
  - action: order_form
  - active_loop: order_form
  - slot_was_set: [{size: LARGE}]
""")
    tracker = story_tracker(data.stories[0], domain)
    states = tracker_states(tracker, DialogueSpace.from_domain(domain))
    assert states == [
        {},
        {"user": {"intent": "greet"}, "prev_action": {"action_name": ACTION_LISTEN}},
        {"prev_action": {"action_name": "utter_greet"}},
        {"user": {"intent": "inform", "entities": ("city", "topping", "topping#add")},
         "prev_action": {"action_name": ACTION_LISTEN}, "slots": {"city": (1.0,)}},
        {"prev_action": {"action_name": "order_form"}, "active_loop": {"name": "order_form"},
         "slots": {"city": (1.0,), "size": (0.0, 1.0, 0.0)}},
    ]


@pytest.mark.parametrize("kind,value,expected", [
    ("text", None, (0.0,)), ("text", "x", (1.0,)), ("list", [], (0.0,)), ("list", ["a"], (1.0,)),
    ("bool", None, (0.0, 0.0)), ("bool", "false", (1.0, 0.0)), ("bool", True, (1.0, 1.0)),
    ("float", 5.0, (1.0, 0.5)), ("float", 99, (1.0, 1.0)), ("float", "x", (0.0, 0.0)),
    ("categorical", "Small", (1.0, 0.0, 0.0)), ("categorical", "huge", (0.0, 0.0, 1.0)),
    ("any", "x", ())])
def test_slot_features(kind, value, expected):
    from dialogue_models.domain_slots import Slot
    slot = Slot("s", kind, values=["small", "large"], min_value=0.0, max_value=10.0)
    assert slot_features(slot, value) == expected


def test_featurizer_one_hots_and_examples():
    domain = _domain()
    space = DialogueSpace.from_domain(domain)
    featurizer = StateFeaturizer(space)
    assert featurizer.feature_sizes == {"intent": 3, "action_name": len(space.actions),
                                        "entities": 3, "slots": 1 + 3, "active_loop": 1}
    data = _stories("""
stories:
- story: a
  steps: [{intent: greet}, {action: utter_greet}, {intent: bye}, {action: utter_bye}]
- story: a again
  steps: [{intent: greet}, {action: utter_greet}, {intent: bye}, {action: utter_bye}]
""")
    trackers = generate_trackers(data, domain, augmentation_factor=0)
    examples = max_history_examples(trackers, space, max_history=2)
    assert [e.labels for e in examples] == [[ACTION_LISTEN], ["utter_greet"], [ACTION_LISTEN],
                                            ["utter_bye"], [ACTION_LISTEN]]
    assert [len(e.states) for e in examples] == [1, 2, 2, 2, 2]
    features = featurizer.encode(examples[1].states)
    assert features["intent"].shape == (2, 3)
    np.testing.assert_array_equal(features["intent"][1], [1, 0, 0])
    assert features["action_name"][1, space.actions.index(ACTION_LISTEN)] == 1
    assert features["action_name"][0].sum() == 0  # the empty first state
    [full] = full_dialogue_examples(trackers, space)
    assert full.labels == [ACTION_LISTEN, "utter_greet", ACTION_LISTEN, "utter_bye",
                           ACTION_LISTEN]
    assert len(full.states) == 5


def test_legacy_domains_fill_slots_from_entities():
    legacy = _domain(DOMAIN.replace('version: "3.1"', 'version: "2.0"'))
    data = _stories("""
stories:
- story: s
  steps: [{intent: inform, entities: [{city: Rome}]}, {action: action_weather}]
""")
    assert story_tracker(data.stories[0], legacy).slots["city"] == "Rome"
    assert story_tracker(data.stories[0], _domain()).slots["city"] is None


def test_applied_events_follow_reverts_and_restarts():
    tracker = Tracker("u", _domain().slots)
    for event in [ActionExecuted(ACTION_LISTEN), UserUttered("hi", "greet"),
                  SlotSet("city", "Oslo"), ActionExecuted("utter_greet"),
                  BotUttered("hi"), ActionExecuted(ACTION_LISTEN), UserUttered("x", "inform")]:
        tracker.update(event)
    tracker.update(UserUtteranceReverted())
    assert tracker.latest_message.intent == "greet" and tracker.latest_action_name == "utter_greet"
    tracker.update(ActionReverted())
    assert tracker.latest_action_name == ACTION_LISTEN and tracker.slots["city"] == "Oslo"
    tracker.update(ActiveLoop("order_form"))
    assert tracker.active_loop == "order_form"
    tracker.update(Restarted())
    assert tracker.slots["city"] is None and tracker.active_loop is None
    assert tracker.applied_events() == []


def test_tracker_json_round_trip():
    tracker = Tracker("u", _domain().slots, [
        ActionExecuted(ACTION_LISTEN),
        UserUttered("in Rome", "inform", [{"entity": "city", "value": "Rome"}], 0.9),
        SlotSet("city", "Rome"), ActionExecuted("action_weather", policy="TEDPolicy",
                                                confidence=0.7), ActiveLoop("order_form")])
    data = tracker.to_dict()
    assert data["latest_message"]["intent"] == {"name": "inform", "confidence": 0.9}
    assert data["active_loop"] == {"name": "order_form"}
    again = Tracker.from_dict(data, _domain().slots)
    assert again.events == tracker.events and again.slots == tracker.slots
    with pytest.raises(ValueError, match="unknown event type 'nonsense'"):
        event_from_dict({"event": "nonsense"})

