"""The dialogue loop on the demo bot with a scripted next-action predictor: responses, forms,
custom actions, sessions, rejections, the max_actions guard and tracker JSON round trips."""
from __future__ import annotations

import functools
import json

import pytest

from dialogue_models.actions import (ActionNotFoundError, ActionRejection, ActionRunner,
                                     render_response)
from dialogue_models.domain import Domain, read_domain
from dialogue_models.events import (ACTION_LISTEN, REQUESTED_SLOT, ActionExecuted,
                                    ActionExecutionRejected, BotUttered, FollowupAction,
                                    Restarted, SessionStarted, SlotSet, UserUttered)
from dialogue_models.processor import GUARD_POLICY, MessageProcessor
from dialogue_models.tracker import Tracker
from tests.conftest import DEMO_BOT

FORM = "pizza_order_form"
ONE_TURN = {"greet": "utter_greet", "goodbye": "utter_goodbye", "order_pizza": FORM,
            "ask_menu": "utter_menu", "help": "utter_help", "ask_weather": "action_get_weather"}


@functools.lru_cache(maxsize=None)
def demo_domain() -> Domain:
    return read_domain(DEMO_BOT / "domain.yml")


def scripted(tracker: Tracker, excluded: frozenset[str] = frozenset()):
    """The demo bot's rules.yml as a function of the tracker."""
    last = tracker.latest_action_name
    if tracker.active_loop == FORM and last != FORM and FORM not in excluded:
        return FORM, 1.0, "RulePolicy"  # the loop's happy path, and resuming after a detour
    if last == FORM and tracker.active_loop is None:
        return "action_place_order", 1.0, "RulePolicy"
    if last == "action_place_order":
        return "utter_confirm_order", 1.0, "RulePolicy"
    if last != ACTION_LISTEN:
        return ACTION_LISTEN, 1.0, "RulePolicy"
    return ONE_TURN.get(tracker.latest_message.intent, "utter_default"), 0.9, "TEDPolicy"


def delivery_validator(form, tracker, domain, candidates):
    """validate_pizza_order_form: ask about delivery once the pizza is complete (README)."""
    required = list(domain.forms[form].required_slots)
    if all(tracker.slots.get(s) is not None for s in required):
        required.append("wants_delivery")
    return [SlotSet(REQUESTED_SLOT, next((s for s in required if tracker.slots.get(s) is None),
                                         None))]


class ActionServer:
    """A stand-in action server that records its calls."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []

    def __call__(self, name: str, tracker: Tracker, domain: Domain):
        self.calls.append((name, dict(tracker.slots)))
        if name == "validate_pizza_order_form":
            return delivery_validator("pizza_order_form", tracker, domain, {})
        if name == "action_place_order":
            return [SlotSet("order_id", "PZ0001")]
        if name == "action_get_weather":
            return [BotUttered(f"Sunny in {tracker.slots.get('city')}.")]
        return []


def processor(server=None, predict=scripted, max_actions: int = 10) -> MessageProcessor:
    domain = demo_domain()
    return MessageProcessor(domain, predict, ActionRunner(domain, server or ActionServer()),
                            max_actions)


def say(intent: str, *entities: tuple[str, str], text: str | None = None) -> UserUttered:
    return UserUttered(text or intent, intent, [{"entity": e, "value": v} for e, v in entities])


def test_a_full_pizza_order():
    server, domain = ActionServer(), demo_domain()
    bot, tracker = processor(server), Tracker("alice", domain.slots)

    replies = bot.handle_message(tracker, say("greet", text="hi"))
    assert [r.text for r in replies] == [replies[0].text]
    assert replies[0].text in domain.response_templates("utter_greet")

    replies = bot.handle_message(tracker, say("order_pizza"))
    assert replies[-1].text in domain.response_templates("utter_ask_size")
    assert tracker.active_loop == FORM and tracker.requested_slot == "size"

    replies = bot.handle_message(tracker, say("inform", ("size", "large")))
    assert replies[-1].text in domain.response_templates("utter_ask_topping")
    replies = bot.handle_message(tracker, say("inform", ("topping", "ham"), ("topping", "olives")))
    assert replies[-1].text in domain.response_templates("utter_ask_crust")
    assert replies[-1].data["buttons"][0] == {"title": "Thin",
                                              "payload": '/inform{"crust": "thin"}'}
    replies = bot.handle_message(tracker, say("inform", ("crust", "thin")))
    assert replies[-1].data["buttons"][0]["payload"] == "/affirm"  # utter_ask_wants_delivery

    replies = bot.handle_message(tracker, say("affirm"))
    assert tracker.active_loop is None and tracker.requested_slot is None
    assert tracker.slots["order_id"] == "PZ0001"
    assert replies[-1].text in ("One large ham, olives pizza with thin crust coming up!",
                                "Great choice: a large pizza with ham, olives on a thin crust.")
    assert tracker.is_waiting_for_user()
    assert [name for name, _ in server.calls].count("action_place_order") == 1
    assert server.calls[-1][1]["wants_delivery"] is True  # the action saw the filled tracker


def test_rasa_event_layout_of_one_form_turn():
    bot, tracker = processor(), Tracker("u", demo_domain().slots)
    bot.handle_message(tracker, say("order_pizza"))
    start = len(tracker.events)
    bot.handle_message(tracker, say("inform", ("size", "small")))
    kinds = [(type(e).__name__, getattr(e, "name", None)) for e in tracker.events[start:]]
    assert kinds[:3] == [("UserUttered", None), ("SlotSet", "size"),
                         ("ActionExecuted", FORM)]  # no ActionExecuted(action_extract_slots)
    assert kinds[-1] == ("ActionExecuted", ACTION_LISTEN)
    form = tracker.events[start + 2]
    assert (form.policy, form.confidence) == ("RulePolicy", 1.0)


def test_an_interruption_rejects_the_form_then_the_form_resumes():
    server = ActionServer()
    bot, tracker = processor(server), Tracker("u", demo_domain().slots)
    bot.handle_message(tracker, say("order_pizza"))
    replies = bot.handle_message(tracker, say("ask_weather", ("city", "Boston")))
    assert replies[0].text == "Sunny in Boston."
    assert replies[-1].text in demo_domain().response_templates("utter_ask_size")
    assert ActionExecutionRejected(FORM) in tracker.events
    assert tracker.active_loop == FORM and tracker.requested_slot == "size"


def test_the_rejected_action_is_excluded_from_the_next_prediction():
    seen = []

    def predict(tracker, excluded=frozenset()):
        seen.append(excluded)
        return scripted(tracker, excluded)

    bot, tracker = processor(predict=predict), Tracker("u", demo_domain().slots)
    bot.handle_message(tracker, say("order_pizza"))
    seen.clear()
    bot.handle_message(tracker, say("goodbye"))
    assert seen[:3] == [frozenset(), frozenset({FORM}), frozenset()]


def test_a_predictor_that_ignores_the_exclusion_makes_the_bot_listen():
    def stubborn(tracker):
        return (FORM, 1.0, "X") if tracker.latest_action_name == ACTION_LISTEN or \
            tracker.active_loop else (ACTION_LISTEN, 1.0, "X")

    bot, tracker = processor(predict=stubborn), Tracker("u", demo_domain().slots)
    bot.handle_message(tracker, say("order_pizza"))
    bot.handle_message(tracker, say("goodbye"))
    assert tracker.events[-1] == ActionExecuted(ACTION_LISTEN)
    assert tracker.events[-1].policy == GUARD_POLICY


def test_the_tracker_json_round_trips_with_the_same_slots():
    bot, tracker = processor(), Tracker("bob", demo_domain().slots)
    for message in (say("order_pizza", ("size", "medium"), ("topping", "ham")),
                    say("inform", ("crust", "classic"))):
        bot.handle_message(tracker, message)
    data = json.loads(json.dumps(tracker.to_dict()))
    again = Tracker.from_dict(data, demo_domain().slots)
    assert again.slots == tracker.slots and again.slots["topping"] == ["ham"]
    assert again.active_loop == tracker.active_loop == FORM
    assert again.requested_slot == "wants_delivery"
    assert again.events == tracker.events
    # the conversation goes on from the restored tracker
    bot.handle_message(again, say("deny"))
    assert again.slots["wants_delivery"] is False and again.active_loop is None


def test_max_actions_guard_forces_listen():
    bot = processor(predict=lambda tracker: ("utter_greet", 0.5, "Loop"), max_actions=3)
    tracker = Tracker("u", demo_domain().slots)
    replies = bot.handle_message(tracker, say("greet"))
    assert len(replies) == 3
    assert tracker.events[-1] == ActionExecuted(ACTION_LISTEN)
    assert tracker.events[-1].policy == GUARD_POLICY


def test_a_custom_action_gets_the_tracker_and_its_events_are_applied():
    calls = []

    def server(name, tracker, domain):
        calls.append((name, tracker.latest_message.intent, tracker.slots["city"]))
        return [SlotSet("date", "today"), BotUttered("Rain in Paris today.")]

    bot, tracker = processor(server), Tracker("u", demo_domain().slots)
    replies = bot.handle_message(tracker, say("ask_weather", ("city", "Paris")))
    assert calls == [("action_get_weather", "ask_weather", "Paris")]
    assert tracker.slots["date"] == "today"
    assert [r.text for r in replies] == ["Rain in Paris today."]


def test_a_custom_action_can_reject():
    def server(name, tracker, domain):
        raise ActionRejection(name)

    assert ActionRunner(demo_domain(), server).run("action_get_weather", Tracker("u")) == \
        [ActionExecutionRejected("action_get_weather")]


def test_unknown_and_unserved_actions_give_clear_errors():
    runner = ActionRunner(demo_domain())
    with pytest.raises(ActionNotFoundError, match="custom action 'action_get_weather' needs an "
                                                  "action server"):
        runner.run("action_get_weather", Tracker("u"))
    with pytest.raises(ActionNotFoundError, match="'action_fly_me_to_the_moon' is not in the "
                                                  "domain"):
        runner.run("action_fly_me_to_the_moon", Tracker("u"))
    with pytest.raises(ActionNotFoundError, match="validate_pizza_order_form"):
        runner.run(FORM, Tracker("u", demo_domain().slots, [UserUttered("x", "order_pizza")]))


def test_a_new_conversation_starts_a_session_and_carries_slots_over_later():
    bot, tracker = processor(), Tracker("u", demo_domain().slots)
    bot.handle_message(tracker, say("ask_weather", ("city", "Oslo")))
    assert [type(e) for e in tracker.events[:3]] == [ActionExecuted, SessionStarted,
                                                     ActionExecuted]
    assert tracker.events[0].name == "action_session_start"
    assert not bot.start_session_if_needed(tracker)
    later = tracker.events[-1].timestamp + 61 * 60
    assert bot.start_session_if_needed(tracker, now=later)
    assert tracker.slots["city"] == "Oslo" and tracker.is_waiting_for_user()


def test_after_a_restart_the_next_message_starts_a_fresh_session():
    def predict(tracker):
        if tracker.latest_action_name == ACTION_LISTEN and \
                tracker.latest_message.intent == "deny":
            return "action_restart", 1.0, "RulePolicy"
        return scripted(tracker)

    bot, tracker = processor(predict=predict), Tracker("u", demo_domain().slots)
    bot.handle_message(tracker, say("ask_weather", ("city", "Oslo")))
    bot.handle_message(tracker, say("deny"))
    assert isinstance(tracker.events[-1], Restarted) and tracker.slots["city"] is None
    bot.handle_message(tracker, say("greet"))
    assert sum(isinstance(e, SessionStarted) for e in tracker.events) == 2


def test_fallback_reverts_the_user_message():
    bot = processor(predict=lambda t: ("action_default_fallback", 0.3, "RulePolicy")
                    if t.latest_action_name == ACTION_LISTEN else (ACTION_LISTEN, 1.0, "R"))
    tracker = Tracker("u", demo_domain().slots)
    replies = bot.handle_message(tracker, say("inform", ("city", "Rome")))
    assert replies[0].text in demo_domain().response_templates("utter_default")
    assert tracker.latest_message is None and tracker.slots["city"] is None


def test_trigger_intent_injects_an_external_message():
    bot, tracker = processor(), Tracker("u", demo_domain().slots)
    replies = bot.trigger_intent(tracker, "ask_weather", {"city": "Lima"})
    assert tracker.latest_message.text == "EXTERNAL: ask_weather"
    assert replies[0].text == "Sunny in Lima."


def test_a_followup_action_runs_next_without_prediction():
    def server(name, tracker, domain):
        return [FollowupAction("utter_menu")] if name == "action_get_weather" else []

    bot, tracker = processor(server), Tracker("u", demo_domain().slots)
    replies = bot.handle_message(tracker, say("ask_weather"))
    assert replies[0].text in demo_domain().response_templates("utter_menu")
    menu = next(e for e in tracker.events
                if isinstance(e, ActionExecuted) and e.name == "utter_menu")
    assert menu.policy == "followup_action"


def test_responses_fill_slots_everywhere_and_keep_unknown_placeholders():
    domain = Domain(responses={"utter_x": [
        {"text": "Hi {name}, {unknown} {{literal}}", "buttons": [
            {"title": "Yes {name}", "payload": '/affirm{"name": "x"}'}]},
        {"text": "VIP {name}", "condition": [{"type": "slot", "name": "vip", "value": True}]},
        {"text": "on slack", "channel": "slack"}]})
    plain = Tracker("u", events=[SlotSet("name", "Ada")])
    message = render_response("utter_x", plain, domain)
    assert message.text == "Hi Ada, {unknown} {{literal}}"
    assert message.data == {"buttons": [{"title": "Yes Ada", "payload": '/affirm{"name": "x"}'}]}
    vip = Tracker("u", events=[SlotSet("name", "Ada"), SlotSet("vip", True)])
    assert render_response("utter_x", vip, domain).text == "VIP Ada"


def test_response_variations_follow_the_seed():
    domain = demo_domain()
    tracker = Tracker("u", domain.slots)
    runs = [[r.run("utter_greet", tracker)[0].text for _ in range(6)]
            for r in (ActionRunner(domain, seed=7), ActionRunner(domain, seed=7))]
    assert runs[0] == runs[1] and len(set(runs[0])) > 1
    assert set(runs[0]) <= set(domain.response_templates("utter_greet"))
