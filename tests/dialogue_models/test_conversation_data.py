"""A conversation's events as stories and NLU examples (what ``dialab interactive`` saves)."""
from __future__ import annotations

from dialogue_models.conversation_data import (conversation_examples, conversation_stories,
                                               kept_events)
from dialogue_models.events import (ActionExecuted, ActiveLoop, Restarted, SessionStarted,
                                    SlotSet, UserUttered, UserUtteranceReverted)
from dialogue_models.stories import read_stories, stories_to_yaml
from dialogue_models.story_model import ActionStep, SlotWasSet, Story, StoryEntity, UserStep
from dialogue_models.story_model import ActiveLoop as ActiveLoopStep
from nlu_models.data.rasa_yaml import nlu_to_yaml, read_nlu_yaml
from nlu_models.data.schema import EntitySpan

BERLIN = {"entity": "city", "value": "Berlin", "start": 11, "end": 17}


def listen() -> ActionExecuted:
    return ActionExecuted("action_listen")


def conversation() -> list:
    return [
        ActionExecuted("action_session_start"), SessionStarted(), SlotSet("city", "Rome"),
        listen(),
        UserUttered("hello", "greet"), ActionExecuted("utter_greet"), listen(),
        UserUttered("weather in Berlin", "ask_weather", [BERLIN]),
        SlotSet("city", "Berlin"), SlotSet("date", "today"), SlotSet("city", "Paris"),
        ActionExecuted("action_get_weather"), listen(),
        UserUttered("oops", "deny"), ActionExecuted("utter_goodbye"),
        UserUtteranceReverted(), listen(),
        UserUttered("/order_pizza", "order_pizza"), ActionExecuted("pizza_order_form"),
        ActiveLoop("pizza_order_form"), SlotSet("requested_slot", "size"), listen(),
        ActionExecuted("action_restart"), Restarted(), listen(),
        UserUttered("hello", "greet"), ActionExecuted("utter_greet"), listen(),
    ]


def test_reverted_turns_go_and_restarts_stay():
    kept = kept_events(conversation())
    texts = [e.text for e in kept if isinstance(e, UserUttered)]
    assert texts == ["hello", "weather in Berlin", "/order_pizza", "hello"]
    assert any(isinstance(e, Restarted) for e in kept)


def test_stories_split_at_restarts_and_keep_the_last_slot_value():
    stories = conversation_stories(conversation(), "s").stories
    assert [s.name for s in stories] == ["s", "s (2)"]
    assert stories[0].steps == [
        UserStep("greet"), ActionStep("utter_greet"),
        UserStep("ask_weather", entities=[StoryEntity("city", "Berlin")]),
        SlotWasSet([("date", "today")]), SlotWasSet([("city", "Paris")]),  # corrected, moved
        ActionStep("action_get_weather"),
        UserStep("order_pizza"), ActionStep("pizza_order_form"),
        ActiveLoopStep("pizza_order_form"), SlotWasSet([("requested_slot", "size")]),
        ActionStep("action_restart")]
    assert stories[1].steps == [UserStep("greet"), ActionStep("utter_greet")]


def test_a_new_session_starts_a_new_story_without_its_carried_over_slots():
    events = [listen(), UserUttered("hi", "greet"), ActionExecuted("utter_greet"), listen(),
              ActionExecuted("action_session_start"), SessionStarted(), SlotSet("city", "Oslo"),
              listen(), UserUttered("bye", "goodbye")]
    stories = conversation_stories(events, "s").stories
    assert [s.steps for s in stories] == [[UserStep("greet"), ActionStep("utter_greet")],
                                          [UserStep("goodbye")]]


def test_stories_round_trip_through_the_yaml_reader(tmp_path):
    data = conversation_stories(conversation(), "interactive story")
    path = tmp_path / "stories.yml"
    path.write_text(stories_to_yaml(data), encoding="utf-8")
    assert read_stories(path).stories == data.stories


def test_examples_once_each_without_payloads_and_with_their_spans(tmp_path):
    nlu = conversation_examples(conversation(), skip_text=lambda t: t.startswith("/"))
    assert [(m.text, m.intent) for m in nlu.examples] == [("hello", "greet"),
                                                          ("weather in Berlin", "ask_weather")]
    assert nlu.examples[1].entities == [EntitySpan(11, 17, "Berlin", "city")]
    path = tmp_path / "nlu.yml"
    path.write_text(nlu_to_yaml(nlu), encoding="utf-8")
    assert "weather in [Berlin](city)" in path.read_text()
    assert read_nlu_yaml(path).examples == nlu.examples


def test_an_empty_conversation_gives_nothing():
    assert conversation_stories([listen()], "s").stories == []
    assert conversation_examples([listen()]).examples == []
    assert conversation_stories([UserUttered("hi", "greet")], "s").stories == \
        [Story("s", [UserStep("greet")])]
