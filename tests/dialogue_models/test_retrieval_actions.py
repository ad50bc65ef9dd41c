"""Retrieval actions (Rasa's ActionRetrieveResponse): ``utter_faq`` utters the response that the
NLU's response selector chose, read from hand-made parse data (no trained model)."""
from __future__ import annotations

import logging

import pytest

from dialogue_models.actions import ActionRunner, selected_response
from dialogue_models.conversation_data import conversation_examples
from dialogue_models.domain import Domain, IntentSpec
from dialogue_models.events import (ACTION_LISTEN, ActionExecuted, BotUttered, SlotSet,
                                    UserUttered, event_from_dict)
from dialogue_models.processor import MessageProcessor
from dialogue_models.project import BotData
from dialogue_models.story_model import ActionStep, Rule, StoryData, UserStep
from dialogue_models.tracker import Tracker
from dialogue_models.validation import validate_bot
from nlu_models.data.schema import Message, NLUData

HOURS = "We're open from 11am to 11pm every day, {name}."


def faq_domain() -> Domain:
    return Domain(responses={
        "utter_greet": [{"text": "Hi!"}],
        "utter_faq/opening_hours": [{"text": HOURS, "buttons": [
            {"title": "Order for {name}", "payload": "/order_pizza"}]}],
        "utter_faq/delivery_area": [{"text": "We deliver within 5 km."}],
        "utter_chitchat/ask_name": [{"text": "I'm Slice."}],
    })


def selection(key: str | None, selector: str = "default", responses=None,
              utter_action: str | None = "auto") -> dict:
    """The parse data of a message whose response selector chose ``key`` (Rasa 3.6 format)."""
    if utter_action == "auto":
        utter_action = f"utter_{key}" if key else None
    response = {"responses": responses, "confidence": 0.93, "intent_response_key": key,
                "utter_action": utter_action}
    return {"intent": {"name": "faq", "confidence": 0.99}, "entities": [],
            "response_selector": {
                "all_retrieval_intents": ["faq", "chitchat"],
                selector: {"response": response,
                           "ranking": [{"confidence": 0.93, "intent_response_key": key}]}}}


def tracker_with(parse_data: dict | None, *events) -> Tracker:
    return Tracker("u", events=[*events, UserUttered("when are you open?", "faq",
                                                     parse_data=parse_data)])


def test_the_domain_knows_its_retrieval_actions():
    domain = faq_domain()
    assert domain.retrieval_actions == ["utter_faq", "utter_chitchat"]
    # a plain response of that name is an ordinary response, not a retrieval action
    domain.responses["utter_faq"] = [{"text": "plain"}]
    assert domain.retrieval_actions == ["utter_chitchat"]


def test_utter_faq_says_the_selected_response_with_slots_and_buttons():
    tracker = tracker_with(selection("faq/opening_hours"), SlotSet("name", "Ada"))
    (message,) = ActionRunner(faq_domain()).run("utter_faq", tracker)
    assert message.text == HOURS.format(name="Ada")
    assert message.data == {"buttons": [{"title": "Order for Ada", "payload": "/order_pizza"}]}
    assert message.metadata == {"utter_action": "utter_faq/opening_hours"}


def test_the_retrieval_intents_own_selector_wins_over_default():
    parse = selection("faq/opening_hours")
    parse["response_selector"]["faq"] = selection("faq/delivery_area")["response_selector"][
        "default"]
    (message,) = ActionRunner(faq_domain()).run("utter_faq", tracker_with(parse))
    assert message.text == "We deliver within 5 km."
    # a selector trained on one retrieval intent only is named after it
    only = selection("faq/delivery_area", selector="faq")
    (message,) = ActionRunner(faq_domain()).run("utter_faq", tracker_with(only))
    assert message.metadata["utter_action"] == "utter_faq/delivery_area"


def test_a_response_missing_from_the_domain_comes_from_the_parse_data():
    parse = selection("faq/payment_methods", responses=[{"text": "Cash or card, {name}."}])
    tracker = tracker_with(parse, SlotSet("name", "Bo"))
    (message,) = ActionRunner(faq_domain()).run("utter_faq", tracker)
    assert message.text == "Cash or card, Bo."
    assert message.metadata == {"utter_action": "utter_faq/payment_methods"}


def test_utter_action_is_derived_from_the_key_when_missing():
    parse = selection("faq/delivery_area", utter_action=None)
    assert selected_response(parse, "faq")["utter_action"] == "utter_faq/delivery_area"
    (message,) = ActionRunner(faq_domain()).run("utter_faq", tracker_with(parse))
    assert message.text == "We deliver within 5 km."


@pytest.mark.parametrize("parse", [
    None,
    {"intent": {"name": "faq", "confidence": 1.0}},
    selection("faq/opening_hours", selector="chitchat"),
    selection(None),
    selection("chitchat/ask_name"),
    selection("faq/no_such_key"),  # neither in the domain nor carried in the parse data
], ids=["no-parse-data", "no-selector", "other-selector-only", "no-key", "other-intent",
        "unknown-response"])
def test_without_a_usable_selection_nothing_is_said(parse, caplog):
    with caplog.at_level(logging.WARNING, logger="dialogue_models.actions"):
        assert ActionRunner(faq_domain()).run("utter_faq", tracker_with(parse)) == []
    assert "retrieval action 'utter_faq'" in caplog.text


def test_a_retrieval_action_with_no_user_message_says_nothing():
    assert ActionRunner(faq_domain()).run("utter_faq", Tracker("u")) == []


def test_ordinary_responses_name_themselves_in_the_metadata():
    (message,) = ActionRunner(faq_domain()).run("utter_greet", Tracker("u"))
    assert message == BotUttered("Hi!", {}, {"utter_action": "utter_greet"})
    # a retrieval response can still be run by its full name
    (message,) = ActionRunner(faq_domain()).run("utter_faq/delivery_area", Tracker("u"))
    assert message.metadata == {"utter_action": "utter_faq/delivery_area"}


def test_bot_metadata_survives_the_json_round_trip():
    event = BotUttered("x", {}, {"utter_action": "utter_faq/opening_hours"})
    data = event.to_dict()
    assert data["metadata"] == {"utter_action": "utter_faq/opening_hours"}
    assert event_from_dict(data) == event
    assert event_from_dict({"event": "bot", "text": "y", "metadata": None}).metadata == {}


def test_the_dialogue_loop_runs_utter_faq():
    def predict(tracker):
        if tracker.latest_action_name == ACTION_LISTEN:
            return "utter_faq", 1.0, "RulePolicy"
        return ACTION_LISTEN, 1.0, "RulePolicy"

    domain = faq_domain()
    bot, tracker = MessageProcessor(domain, predict, ActionRunner(domain)), Tracker("u")
    replies = bot.handle_message(tracker, UserUttered(
        "do you deliver to my street?", "faq", parse_data=selection("faq/delivery_area")))
    assert [r.text for r in replies] == ["We deliver within 5 km."]
    assert any(isinstance(e, ActionExecuted) and e.name == "utter_faq" for e in tracker.events)


def test_validation_accepts_the_retrieval_action_and_wants_its_responses():
    domain = faq_domain()
    domain.intents = [IntentSpec("faq"), IntentSpec("greet")]
    nlu = NLUData(examples=[Message("when do you open", "faq/opening_hours"),
                            Message("what do you take", "faq/payment_methods"),
                            Message("hi", "greet")])
    rule = Rule("answer FAQs", [UserStep(intent="faq"), ActionStep("utter_faq")])
    issues = validate_bot(BotData(domain=domain, nlu=nlu, stories=StoryData(rules=[rule])))
    assert [i.message for i in issues] == [
        "retrieval intent 'faq/payment_methods' has NLU examples but no response "
        "'utter_faq/payment_methods'; add it under 'responses:'"]


def test_interactive_examples_keep_the_selected_retrieval_key():
    events = [UserUttered("when are you open?", "faq", parse_data=selection("faq/opening_hours")),
              UserUttered("hi", "greet", parse_data=selection("faq/delivery_area")),
              UserUttered("do you deliver?", "faq", parse_data={
                  "intent": {"name": "faq", "full_retrieval_intent_name": "faq/delivery_area"}})]
    assert [m.intent for m in conversation_examples(events).examples] == [
        "faq/opening_hours", "greet", "faq/delivery_area"]
