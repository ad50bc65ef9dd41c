"""Domain reading (Rasa 1.x keys, 2.x, 3.x), merging, writing and errors with file:line."""
from __future__ import annotations

import functools
import textwrap
from pathlib import Path

import pytest

from dialogue_models.domain import (Domain, EntitySpec, IntentSpec, MappingCondition, SessionConfig,
                                    SlotMapping, domain_from_yaml, domain_to_yaml, read_domain)
from nlu_models.data.errors import DataError
from nlu_models.data.yaml_io import parse_yaml
from tests.conftest import shared_data as data_path

RASA_BOTS = ["carbon-bot", "financial-demo", "helpdesk-assistant"] + [
    f"rasa-examples/{name}" for name in ("breakoutbot", "concertbot", "e2ebot", "formbot",
                                         "knowledgebasebot", "moodbot", "reminderbot",
                                         "responseselectorbot", "rules")]


@functools.lru_cache(maxsize=None)
def cached_domain(relative: str) -> Domain:
    return read_domain(data_path(relative))


def domain_of(text: str, tmp_path: Path, name: str = "domain.yml") -> Domain:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return read_domain(path)


def round_trip(domain: Domain) -> Domain:
    return domain_from_yaml(parse_yaml(domain_to_yaml(domain), "written.yml"), "written.yml")


# ---- real domains --------------------------------------------------------------------------------
@pytest.mark.parametrize("bot", RASA_BOTS)
def test_rasa_bot_domain_loads_and_round_trips(bot):
    domain = cached_domain(f"rasa_bots/{bot}/domain.yml")
    assert domain.intents and domain.responses
    assert domain.warnings == []
    assert round_trip(domain) == domain
    for slot in domain.slots.values():  # after reading, every slot is 3.x-shaped
        assert slot.mappings, slot.name
        assert slot.type != "any" or not slot.influence_conversation


def test_formbot_2x_domain_is_migrated():
    domain = cached_domain("rasa_bots/rasa-examples/formbot/domain.yml")
    form = domain.forms["restaurant_form"]
    assert form.required_slots == ["cuisine", "feedback", "num_people", "outdoor_seating",
                                   "preferences"]
    assert form.ignored_intents == ["chitchat"]
    seating = domain.slots["outdoor_seating"]
    assert seating.type == "text"  # from rasa.shared.core.slots.TextSlot
    assert [m.type for m in seating.mappings] == ["from_entity", "from_intent", "from_intent"]
    assert seating.mappings[0].conditions == [MappingCondition("restaurant_form", None)]
    assert seating.mappings[1].conditions == [MappingCondition("restaurant_form",
                                                               "outdoor_seating")]
    assert seating.mappings[1].value is True
    assert domain.slots["num_people"].mappings[0].intent == ["inform", "request_restaurant"]
    assert domain.slots["requested_slot"].mappings == [SlotMapping("custom")]
    assert domain.intents[0] == IntentSpec("request_restaurant", use_entities=[])
    assert domain.e2e_actions == []


def test_helpdesk_3x_mappings_with_conditions():
    domain = cached_domain("rasa_bots/helpdesk-assistant/domain.yml")
    conditioned = [m for s in domain.slots.values() for m in s.mappings if m.conditions]
    assert conditioned
    assert all(c.active_loop for m in conditioned for c in m.conditions)


@pytest.mark.parametrize("variant, slots", [("e2e", 0), ("e2e-status", 7)])
def test_multiwoz_e2e_domain_needs_the_tab_fallback(variant, slots):
    domain = cached_domain(f"multiwoz21_ted/{variant}/domain.yml")
    assert len(domain.actions) == 6529  # SOURCE.md: 6,529 utterance-actions
    assert len(domain.slots) == slots
    assert len(domain.warnings) == 13  # SOURCE.md: 13 lines with literal TABs
    assert "domain.yml:2236: TAB character replaced" in domain.warnings[0]
    assert "Located at _number_ trinity street ." in domain.actions
    assert not any("\t" in action for action in domain.actions)


@pytest.mark.parametrize("variant, slots", [("modular", 30), ("modular-status", 35)])
def test_multiwoz_modular_domain(variant, slots):
    domain = cached_domain(f"multiwoz21_ted/{variant}/domain.yml")
    assert domain.intent_names == ["inform", "bye"]
    assert len(domain.actions) == 48
    assert len(domain.responses) == 48  # 1.x "templates:"
    assert len(domain.slots) == slots
    assert len(domain.entities) == slots
    assert domain.warnings == []
    # 1.x/2.x: a slot named like an entity is filled from it (auto_fill)
    assert domain.slots["taxi_departure"].mappings == [SlotMapping("from_entity",
                                                                   entity="taxi_departure")]
    assert round_trip(domain) == domain


def test_tab_error_without_tab_on_the_line_is_not_hidden(tmp_path):
    text = 'actions:\n  - "quoted\ttab"\n  - a: b: c\n'
    with pytest.raises(DataError, match=r"domain.yml:3: invalid YAML: mapping values"):
        domain_of(text, tmp_path)


# ---- hand-written fixtures -----------------------------------------------------------------------
DOMAIN_2X = """\
version: "2.0"
intents:
- greet
- inform:
    use_entities: [city]
- chitchat:
    ignore_entities: [city]
entities:
- city
- count
slots:
  city:
    type: text
  count:
    type: float
    auto_fill: false
    max_value: 10
  notes:
    type: unfeaturized
  size:
    type: categorical
    values: [small, large]
  people:
    type: rasa.shared.core.slots.FloatSlot
forms:
  booking_form:
    required_slots:
      people:
      - type: from_entity
        entity: count
      - type: from_intent
        intent: affirm
        value: 2
  other_form:
    size:
    - type: from_text
responses:
  utter_greet:
  - text: "Hi {city}! {{not a slot}}"
  - text: "Hello {size}"
    channel: slack
"""


def test_2x_domain(tmp_path):
    domain = domain_of(DOMAIN_2X, tmp_path)
    assert domain.intents[1] == IntentSpec("inform", use_entities=["city"])
    assert domain.intents[2].ignore_entities == ["city"]
    assert domain.slots["city"].mappings == [SlotMapping("from_entity", entity="city")]
    assert domain.slots["count"].mappings == [SlotMapping("custom")]  # auto_fill: false
    assert domain.slots["count"].max_value == 10.0
    notes = domain.slots["notes"]
    assert (notes.type, notes.influence_conversation) == ("any", False)
    assert domain.slots["people"].type == "float"
    assert domain.slots["people"].mappings == [
        SlotMapping("from_entity", entity="count",
                    conditions=[MappingCondition("booking_form")]),
        SlotMapping("from_intent", intent=["affirm"], value=2,
                    conditions=[MappingCondition("booking_form", "people")])]
    assert domain.forms["other_form"].required_slots == ["size"]  # 2.0 layout without the key
    assert domain.slots["size"].mappings[0].conditions == [MappingCondition("other_form",
                                                                            "size")]
    assert domain.response_slots("utter_greet") == ["city", "size"]
    assert round_trip(domain) == domain


DOMAIN_3X = """\
version: "3.1"
intents:
- affirm
entities:
- city:
    roles: [departure, destination]
    groups: ["1", "2"]
slots:
  logged_in:
    type: bool
    initial_value: false
    mappings:
    - type: custom
      action: action_login
  destination:
    type: text
    influence_conversation: false
    mappings:
    - type: from_entity
      entity: city
      role: destination
      conditions:
      - active_loop: flight_form
        requested_slot: destination
    - type: from_trigger_intent
      intent: [book, reserve]
      not_intent: chitchat
      value: somewhere
  anything:
    type: any
    influence_conversation: true
    mappings: [{type: from_text}]
responses:
  utter_ask:
  - text: "Where to?"
    buttons:
    - {title: Paris, payload: '/inform{"city": "Paris"}'}
    condition:
    - {type: slot, name: logged_in, value: true}
    metadata: {rephrase: true}
  utter_card:
  - custom: {blocks: [1, 2]}
    channel: slack
  - image: "https://example.com/a.png"
actions:
- action_login
- action_search: {send_domain: true}
forms:
  flight_form:
    required_slots: [destination]
    ignored_intents: chitchat
session_config:
  session_expiration_time: 0
  carry_over_slots_to_new_session: false
config:
  store_entities_as_slots: false
"""


def test_3x_domain(tmp_path):
    domain = domain_of(DOMAIN_3X, tmp_path)
    assert domain.entities == [EntitySpec("city", ["departure", "destination"], ["1", "2"])]
    mapping = domain.slots["destination"].mappings[0]
    assert (mapping.role, mapping.conditions) == ("destination",
                                                  [MappingCondition("flight_form", "destination")])
    trigger = domain.slots["destination"].mappings[1]
    assert (trigger.intent, trigger.not_intent, trigger.value) == (["book", "reserve"],
                                                                   ["chitchat"], "somewhere")
    assert domain.slots["logged_in"].initial_value is False
    assert domain.slots["anything"].influence_conversation is False  # forced for type any
    assert domain.responses["utter_ask"][0]["condition"] == [
        {"type": "slot", "name": "logged_in", "value": True}]
    assert domain.responses["utter_card"][0]["channel"] == "slack"
    assert domain.actions == ["action_login", "action_search"]
    assert domain.action_options == {"action_search": {"send_domain": True}}
    assert domain.forms["flight_form"].ignored_intents == ["chitchat"]
    assert domain.session_config == SessionConfig(0, False)
    assert domain.store_entities_as_slots is False
    assert round_trip(domain) == domain


def test_file_with_nlu_and_stories_keys_is_a_domain_too(tmp_path):
    text = "version: '3.1'\nintents: [greet]\nnlu: []\nstories: []\nrules: []\n"
    assert domain_of(text, tmp_path).intent_names == ["greet"]


def test_missing_mappings_are_lenient_without_version(tmp_path):
    domain = domain_of("entities: [city]\nslots:\n  city: {type: text}\n  x: {type: text}\n",
                       tmp_path)
    assert domain.slots["city"].mappings == [SlotMapping("from_entity", entity="city")]
    assert domain.slots["x"].mappings == [SlotMapping("custom")]


def test_directory_domain_is_merged(tmp_path):
    (tmp_path / "a.yml").write_text("intents: [greet]\nresponses:\n  utter_hi: [{text: hi}]\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yaml").write_text("intents: [greet, bye]\nactions: [action_x]\n")
    (tmp_path / "notes.txt").write_text("not yaml: [")
    domain = read_domain(tmp_path)
    assert domain.intent_names == ["greet", "bye"]
    assert domain.actions == ["action_x"] and list(domain.responses) == ["utter_hi"]
    assert read_domain([tmp_path / "a.yml", tmp_path / "sub" / "b.yaml"]) == domain


@pytest.mark.parametrize("second", [
    "intents:\n- greet:\n    use_entities: []\n",
    "slots:\n  s: {type: bool, mappings: [{type: custom}]}\n",
    "responses:\n  utter_hi: [{text: hello}]\n",
    "forms:\n  f: {required_slots: []}\n",
])
def test_conflicting_definitions_name_both_files(tmp_path, second):
    first = ("intents: [greet]\nslots:\n  s: {type: text, mappings: [{type: custom}]}\n"
             "responses:\n  utter_hi: [{text: hi}]\nforms:\n  f: {required_slots: [s]}\n")
    (tmp_path / "first.yml").write_text(first)
    (tmp_path / "second.yml").write_text(second)
    with pytest.raises(DataError, match="defined differently") as err:
        read_domain([tmp_path / "first.yml", tmp_path / "second.yml"])
    assert "first.yml" in str(err.value) and "second.yml" in str(err.value)


def test_identical_definitions_merge_silently(tmp_path):
    (tmp_path / "a.yml").write_text("intents: [greet]\nactions: [a]\n")
    (tmp_path / "b.yml").write_text("intents: [greet]\nactions: [a, b]\n")
    assert read_domain(tmp_path).actions == ["a", "b"]


# ---- malformed domains: (yaml, reason); the line marked "#!" is where the error is -------------
MALFORMED = {
    "unknown top-level key": ("intents: [greet]\nintens: [bye]  #!\n", "unknown domain key"),
    "unknown slot type": ("slots:\n  s:\n    type: txt  #!\n", "unknown slot type 'txt'"),
    "slot without type": ("slots:\n  s:  #!\n    initial_value: 1\n", "has no type"),
    "categorical without values": ("slots:\n  s:  #!\n    type: categorical\n",
                                   "has no values"),
    "from_entity without entity": (
        "slots:\n  s:\n    type: text\n    mappings:\n    - type: from_entity  #!\n",
        "names no entity"),
    "unknown mapping type": ("slots:\n  s:\n    type: text\n    mappings:\n"
                             "    - type: from_entitty  #!\n", "unknown slot mapping type"),
    "from_intent without value": ("slots:\n  s:\n    type: text\n    mappings:\n"
                                  "    - type: from_intent  #!\n      intent: affirm\n",
                                  "has no value"),
    "bad mapping condition": ("slots:\n  s:\n    type: text\n    mappings:\n    - type: from_text\n"
                              "      conditions:\n      - requested_slot: s  #!\n",
                              "must have 'active_loop'"),
    "3.x slot without mappings": ('version: "3.1"\nslots:\n  s:  #!\n    type: text\n',
                                  "Rasa 3.x requires 'mappings'"),
    "auto_fill in 3.x": ('version: "3.0"\nslots:\n  s:\n    type: text\n    auto_fill: false  #!\n'
                         "    mappings: []\n", "auto_fill"),
    "min above max": ("slots:\n  s:\n    type: float\n    min_value: 5  #!\n    max_value: 1\n",
                      "min_value 5.0 > max_value"),
    "form requires undeclared slot": ("slots: {}\nforms:\n  f:\n    required_slots:\n"
                                      "    - ghost  #!\n", "requires slot 'ghost'"),
    "2.x form maps undeclared slot": ("forms:\n  f:\n    required_slots:\n      ghost:  #!\n"
                                      "      - type: from_text\n", "not declared"),
    "response not a list": ("responses:\n  utter_hi: hello  #!\n", "non-empty list"),
    "variation without text": ("responses:\n  utter_hi:\n  - channel: slack  #!\n",
                               "has no text, custom, image"),
    "intent declared twice": ("intents:\n- greet\n- bye\n- greet  #!\n", "declared twice"),
    "entity declared twice": ("entities:\n- city\n- city: {roles: [a]}  #!\n", "declared twice"),
    "action declared twice": ("actions:\n- a\n- a  #!\n", "declared twice"),
    "intents not a list": ("intents:  #!\n  greet: {}\n", "'intents' must be a list"),
    "unknown intent property": ("intents:\n- greet:\n    use_entity: []  #!\n",
                                "unknown key 'use_entity'"),
    "use_entities not a list": ("intents:\n- greet:\n    use_entities: city  #!\n",
                                "use_entities of intent 'greet'"),
    "negative session expiry": ("session_config:\n  session_expiration_time: -1  #!\n",
                                "session_expiration_time"),
    "duplicate YAML key": ("slots: {}\nintents: [a]\nslots: {}  #!\n", "duplicate key 'slots'"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_domain(tmp_path, case):
    text, reason = MALFORMED[case]
    line = next(n for n, ln in enumerate(text.splitlines(), 1) if ln.endswith("#!"))
    with pytest.raises(DataError) as err:
        domain_of(text, tmp_path, name="bad_domain.yml")
    message = str(err.value)
    assert f"bad_domain.yml:{line}: " in message, message
    assert reason in message, message
    assert "hint:" in message, message
