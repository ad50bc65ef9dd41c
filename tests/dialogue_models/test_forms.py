"""Slot extraction (Rasa 3.x action_extract_slots) and the form loop, on small domains and on the
demo bot's pizza_order_form."""
from __future__ import annotations

import functools
import textwrap

import pytest

from dialogue_models.actions import ActionRunner
from dialogue_models.domain import Domain, domain_from_yaml, read_domain
from dialogue_models.events import (ACTION_LISTEN, REQUESTED_SLOT, ActionExecuted,
                                    ActionExecutionRejected, ActiveLoop, BotUttered,
                                    FollowupAction, SlotSet, UserUttered)
from dialogue_models.forms import ask_action_name, loop_interrupted, run_form
from dialogue_models.slot_extraction import extract_slots
from dialogue_models.tracker import Tracker
from nlu_models.data.yaml_io import parse_yaml
from tests.conftest import DEMO_BOT

FORM = "pizza_order_form"


def domain_of(text: str) -> Domain:
    return domain_from_yaml(parse_yaml(textwrap.dedent(text), "domain.yml"), "domain.yml")


@functools.lru_cache(maxsize=None)
def demo_domain() -> Domain:
    return read_domain(DEMO_BOT / "domain.yml")


def entity(name: str, value: str, role: str | None = None, group: str | None = None) -> dict:
    found = {"entity": name, "value": value}
    found.update({k: v for k, v in (("role", role), ("group", group)) if v})
    return found


def user(tracker: Tracker, domain: Domain, intent: str, *entities: dict,
         text: str | None = None) -> Tracker:
    """The user says something: action_listen, the message, then action_extract_slots."""
    if tracker.latest_action_name != ACTION_LISTEN:
        tracker.update(ActionExecuted(ACTION_LISTEN))
    tracker.update(UserUttered(text or intent, intent, list(entities)))
    for event in extract_slots(tracker, domain):
        tracker.update(event)
    return tracker


def apply(tracker: Tracker, action: str, events: list) -> Tracker:
    """Log an action as the processor does (no ActionExecuted when it was rejected)."""
    if not any(isinstance(e, ActionExecutionRejected) for e in events):
        tracker.update(ActionExecuted(action))
    for event in events:
        tracker.update(event)
    return tracker


def slot_sets(events: list) -> dict:
    return {e.name: e.value for e in events if isinstance(e, SlotSet)}


# ---- slot extraction -----------------------------------------------------------------------------
MAPPINGS = """
version: "3.1"
intents: [inform, affirm, deny, chitchat, book]
entities:
- city: {roles: [from, to], groups: ["1"]}
- name
slots:
  origin:
    type: text
    mappings:
    - {type: from_entity, entity: city, role: from}
  destination:
    type: text
    mappings:
    - {type: from_entity, entity: city, role: to}
  any_city:
    type: text
    mappings:
    - {type: from_entity, entity: city}
  grouped_city:
    type: text
    mappings:
    - {type: from_entity, entity: city, group: "1"}
  cities:
    type: list
    mappings:
    - {type: from_entity, entity: city}
  informed_name:
    type: text
    mappings:
    - {type: from_entity, entity: name, intent: inform}
  not_denied_name:
    type: text
    mappings:
    - {type: from_entity, entity: name, not_intent: deny}
  confirmed:
    type: bool
    mappings:
    - {type: from_intent, intent: affirm, value: true}
    - {type: from_intent, intent: deny, value: false}
  note:
    type: text
    mappings:
    - {type: from_text, conditions: [{active_loop: trip_form, requested_slot: note}]}
  last_text:
    type: text
    mappings:
    - {type: from_text}
  outside_form:
    type: text
    mappings:
    - {type: from_text, intent: chitchat, conditions: [{active_loop: null}]}
  booking:
    type: bool
    mappings:
    - {type: from_trigger_intent, intent: book, value: true, conditions: [{active_loop: trip_form}]}
  by_action:
    type: text
    mappings:
    - {type: custom}
forms:
  trip_form:
    required_slots: [origin, destination, note]
    ignored_intents: [chitchat]
"""


@pytest.fixture(scope="module")
def mappings() -> Domain:
    return domain_of(MAPPINGS)


def test_from_entity_matches_role_and_group_exactly(mappings):
    tracker = user(Tracker("u", mappings.slots), mappings, "inform",
                   entity("city", "Berlin", role="from"), entity("city", "Paris", role="to"),
                   entity("city", "Rome", group="1"))
    assert tracker.slots["origin"] == "Berlin"
    assert tracker.slots["destination"] == "Paris"
    assert tracker.slots["grouped_city"] == "Rome"
    # no role/group in the mapping = only entities with neither: none here
    assert tracker.slots["any_city"] is None and tracker.slots["cities"] is None


def test_list_slot_collects_every_value_and_other_slots_take_the_last(mappings):
    tracker = user(Tracker("u", mappings.slots), mappings, "inform",
                   entity("city", "Berlin"), entity("city", "Paris"))
    assert tracker.slots["cities"] == ["Berlin", "Paris"]
    assert tracker.slots["any_city"] == "Paris"


def test_intent_and_not_intent_filters(mappings):
    tracker = user(Tracker("u", mappings.slots), mappings, "deny", entity("name", "Ada"))
    assert tracker.slots["informed_name"] is None and tracker.slots["not_denied_name"] is None
    user(tracker, mappings, "inform", entity("name", "Ada"))
    assert tracker.slots["informed_name"] == "Ada" and tracker.slots["not_denied_name"] == "Ada"


def test_from_intent_sets_the_mapped_value(mappings):
    tracker = user(Tracker("u", mappings.slots), mappings, "affirm")
    assert tracker.slots["confirmed"] is True
    user(tracker, mappings, "deny")
    assert tracker.slots["confirmed"] is False


def test_from_text_without_conditions_fills_on_every_message(mappings):
    tracker = user(Tracker("u", mappings.slots), mappings, "inform", text="first")
    assert tracker.slots["last_text"] == "first"
    tracker.update(ActiveLoop("trip_form"))
    tracker.update(SlotSet(REQUESTED_SLOT, "origin"))
    user(tracker, mappings, "inform", text="second")
    assert tracker.slots["last_text"] == "second"


def test_conditions_need_the_active_loop_and_the_requested_slot(mappings):
    tracker = user(Tracker("u", mappings.slots), mappings, "inform", text="no form")
    assert tracker.slots["note"] is None
    tracker.update(ActiveLoop("trip_form"))
    tracker.update(SlotSet(REQUESTED_SLOT, "origin"))
    user(tracker, mappings, "inform", text="asked for origin")
    assert tracker.slots["note"] is None
    tracker.update(SlotSet(REQUESTED_SLOT, "note"))
    user(tracker, mappings, "inform", text="window seat")
    assert tracker.slots["note"] == "window seat"


def test_condition_active_loop_null_means_no_form_and_ignored_intents_block(mappings):
    tracker = user(Tracker("u", mappings.slots), mappings, "chitchat", text="hello")
    assert tracker.slots["outside_form"] == "hello"
    tracker.update(ActiveLoop("trip_form"))
    user(tracker, mappings, "chitchat", text="how are you")
    assert tracker.slots["outside_form"] == "hello"
    # chitchat is ignored by trip_form: the conditionless from_text does not fill either
    assert tracker.slots["last_text"] == "hello"


def test_a_rejected_form_does_not_fill_its_requested_slot_through_conditions(mappings):
    tracker = Tracker("u", mappings.slots, [ActiveLoop("trip_form"),
                                            SlotSet(REQUESTED_SLOT, "note"),
                                            ActionExecutionRejected("trip_form")])
    user(tracker, mappings, "inform", text="nothing")
    assert tracker.slots["note"] is None


def test_only_changed_slots_give_events_and_custom_mappings_never_fill(mappings):
    tracker = user(Tracker("u", mappings.slots), mappings, "affirm", text="yes")
    tracker.update(UserUttered("yes", "affirm"))
    assert extract_slots(tracker, mappings) == []
    assert tracker.slots["by_action"] is None


def test_from_trigger_intent_fills_when_the_intent_activates_the_form(mappings):
    tracker = user(Tracker("u", mappings.slots), mappings, "book")
    assert tracker.slots["booking"] is None  # the user turn comes before the activation
    events = run_form("trip_form", tracker, mappings)
    assert events[0] == ActiveLoop("trip_form")
    assert slot_sets(events)["booking"] is True


def test_an_entity_shared_by_required_slots_fills_only_the_requested_one():
    domain = domain_of("""
        version: "3.1"
        intents: [inform]
        entities: [city]
        slots:
          origin: {type: text, mappings: [{type: from_entity, entity: city}]}
          destination: {type: text, mappings: [{type: from_entity, entity: city}]}
        forms:
          trip_form: {required_slots: [origin, destination]}
        """)
    tracker = Tracker("u", domain.slots, [ActiveLoop("trip_form"),
                                          SlotSet(REQUESTED_SLOT, "destination")])
    user(tracker, domain, "inform", entity("city", "Oslo"))
    assert tracker.slots["destination"] == "Oslo" and tracker.slots["origin"] is None


# ---- the demo bot's pizza_order_form -------------------------------------------------------------
def accept_all(form, tracker, domain, candidates):
    """A validate_pizza_order_form that accepts every value (the demo domain declares one)."""
    return []


def runner(validate=accept_all, custom_action=None) -> ActionRunner:
    return ActionRunner(demo_domain(), custom_action=custom_action, validate=validate)


def start_order(*entities: dict, validate=accept_all) -> Tracker:
    domain = demo_domain()
    tracker = user(Tracker("u", domain.slots), domain, "order_pizza", *entities)
    return apply(tracker, FORM, runner(validate).run(FORM, tracker))


def test_activation_asks_for_the_size():
    tracker = start_order()
    assert tracker.active_loop == FORM and tracker.requested_slot == "size"
    asked = tracker.events[-1]
    assert isinstance(asked, BotUttered)
    assert asked.text in demo_domain().response_templates("utter_ask_size")


def test_an_answer_fills_the_slot_and_the_form_asks_the_next_one():
    domain = demo_domain()
    tracker = user(start_order(), domain, "inform", entity("size", "large"))
    events = runner().run(FORM, tracker)
    assert slot_sets(events) == {"size": "large", REQUESTED_SLOT: "topping"}
    assert events[-1].text in domain.response_templates("utter_ask_topping")


def test_a_message_that_fills_nothing_is_rejected():
    tracker = user(start_order(), demo_domain(), "ask_weather", entity("city", "Boston"))
    assert runner().run(FORM, tracker) == [ActionExecutionRejected(FORM)]


def test_after_an_interruption_the_form_asks_again_without_validating():
    domain = demo_domain()
    tracker = user(start_order(), domain, "deny")
    tracker = apply(tracker, FORM, runner().run(FORM, tracker))  # rejected
    tracker = apply(tracker, "utter_ask_continue", [])
    tracker = user(tracker, domain, "affirm")
    assert loop_interrupted(tracker, FORM)
    events = runner().run(FORM, tracker)
    assert slot_sets(events) == {REQUESTED_SLOT: "size"}
    assert isinstance(events[-1], BotUttered)


def test_all_slots_filled_deactivates_the_form():
    domain = demo_domain()
    tracker = start_order(entity("size", "small"), entity("topping", "ham"))
    assert tracker.requested_slot == "crust"
    tracker = user(tracker, domain, "inform", entity("crust", "thin"))
    events = runner().run(FORM, tracker)
    assert events[-2:] == [SlotSet(REQUESTED_SLOT, None), ActiveLoop(None)]
    apply(tracker, FORM, events)
    assert tracker.active_loop is None and tracker.slots["crust"] == "thin"


def test_prefilled_slots_are_validated_at_activation():
    seen = []

    def validate(form, tracker, domain, candidates):
        seen.append(dict(candidates))
        return []

    tracker = start_order(entity("size", "medium"), validate=validate)
    assert seen == [{"size": "medium"}]
    assert tracker.requested_slot == "topping"


def test_a_validator_that_rejects_a_value_makes_the_form_ask_again():
    def no_pineapple(form, tracker, domain, candidates):
        if "pineapple" in (candidates.get("topping") or []):
            return [SlotSet("topping", None), BotUttered("No pineapple, sorry.")]
        return []

    domain = demo_domain()
    tracker = start_order(entity("size", "large"), validate=no_pineapple)
    tracker = user(tracker, domain, "inform", entity("topping", "pineapple"))
    events = runner(no_pineapple).run(FORM, tracker)
    assert ActionExecutionRejected(FORM) not in events
    apply(tracker, FORM, events)
    assert tracker.slots["topping"] is None and tracker.requested_slot == "topping"
    texts = [e.text for e in events if isinstance(e, BotUttered)]
    assert texts[0] == "No pineapple, sorry."
    assert texts[1] in domain.response_templates("utter_ask_topping")


def demo_validator(form, tracker, domain, candidates):
    """validate_pizza_order_form as the demo bot's README describes it (a Rasa SDK
    FormValidationAction overriding required_slots): ask about delivery once the pizza is
    complete."""
    required = list(domain.forms[form].required_slots)
    if all(tracker.slots.get(s) is not None for s in required):
        required.append("wants_delivery")
    missing = next((s for s in required if tracker.slots.get(s) is None), None)
    return [SlotSet(REQUESTED_SLOT, missing)]


def test_a_validator_appends_wants_delivery():
    domain = demo_domain()
    tracker = start_order(entity("size", "large"), entity("topping", "ham"),
                          validate=demo_validator)
    tracker = user(tracker, domain, "inform", entity("crust", "thick"))
    tracker = apply(tracker, FORM, runner(demo_validator).run(FORM, tracker))
    assert tracker.active_loop == FORM and tracker.requested_slot == "wants_delivery"
    assert tracker.events[-1].data["buttons"][0]["payload"] == "/affirm"
    tracker = user(tracker, domain, "affirm")  # from_intent, conditioned on wants_delivery
    tracker = apply(tracker, FORM, runner(demo_validator).run(FORM, tracker))
    assert tracker.slots["wants_delivery"] is True and tracker.active_loop is None


def test_action_deactivate_loop_ends_the_form():
    tracker = start_order()
    events = runner().run("action_deactivate_loop", tracker)
    apply(tracker, "action_deactivate_loop", events)
    assert tracker.active_loop is None and tracker.requested_slot is None


def test_without_ask_the_ask_action_comes_back_as_a_followup_marker():
    domain = demo_domain()
    tracker = user(Tracker("u", domain.slots), domain, "order_pizza")
    events = run_form(FORM, tracker, domain)
    assert events == [ActiveLoop(FORM), SlotSet(REQUESTED_SLOT, "size"),
                      FollowupAction("utter_ask_size")]


def test_custom_ask_actions_win_and_go_to_the_action_server():
    domain = demo_domain()
    custom = Domain(**{**domain.__dict__, "actions": domain.actions + ["action_ask_size"]})
    assert ask_action_name(FORM, "size", custom) == "action_ask_size"
    calls = []

    def server(name, tracker, domain):
        calls.append((name, tracker.active_loop))
        return [BotUttered("Size?")]

    tracker = user(Tracker("u", custom.slots), custom, "order_pizza")
    events = ActionRunner(custom, custom_action=server, validate=lambda *a: []).run(FORM, tracker)
    assert calls == [("action_ask_size", FORM)]
    assert events[-1] == BotUttered("Size?")


def test_run_form_names_an_unknown_form():
    with pytest.raises(KeyError, match="not_a_form"):
        run_form("not_a_form", Tracker("u"), demo_domain())
