"""Conversations over HTTP on the demo bot: the REST webhook through the pizza form with a real
action server, the /conversations routes (tracker, messages, predict, execute, trigger_intent),
and what happens without a policy or when the action server fails."""
from __future__ import annotations

import functools

from dialogue_models.domain import Domain, read_domain
from tests.conftest import DEMO_BOT

FORM = "pizza_order_form"


@functools.lru_cache(maxsize=None)
def domain() -> Domain:
    return read_domain(DEMO_BOT / "domain.yml")


def texts(name: str) -> list[str]:
    return domain().response_templates(name)


def say(client, text: str, sender: str = "alice") -> list[dict]:
    answer = client.post("/webhooks/rest/webhook", json={"sender": sender, "message": text})
    assert answer.status_code == 200, answer.text
    messages = answer.json()
    assert all(m["recipient_id"] == sender for m in messages)
    return messages


def test_ordering_a_pizza_through_the_webhook(make_client, action_server):
    client = make_client(action_endpoint=action_server.url)

    greeting, intro = say(client, "/greet")
    assert greeting["text"] in texts("utter_greet")
    assert intro["text"] in texts("utter_intro")
    assert [b["payload"] for b in intro["buttons"]] == ["/order_pizza", "/ask_menu",
                                                         "/ask_weather"]

    messages = say(client, intro["buttons"][0]["payload"])  # the "Order a pizza" button
    assert messages[-1]["text"] in texts("utter_ask_size")
    assert say(client, '/inform{"size": "large"}')[-1]["text"] in texts("utter_ask_topping")
    ask_crust = say(client, '/inform{"topping": ["ham", "olives"]}')[-1]
    assert ask_crust["text"] in texts("utter_ask_crust")
    assert ask_crust["buttons"][0] == {"title": "Thin", "payload": '/inform{"crust": "thin"}'}

    placed, confirm, anything_else = say(client, ask_crust["buttons"][0]["payload"])
    assert placed == {"recipient_id": "alice", "text": "Order PZ0042 placed: a large pizza."}
    assert confirm["text"] in ("One large ham, olives pizza with thin crust coming up!",
                               "Great choice: a large pizza with ham, olives on a thin crust.")
    assert anything_else["text"] in texts("utter_anything_else")

    # free text goes through DIET (the tiny model may get it wrong; the loop still answers)
    say(client, "thanks a lot")

    calls = action_server.actions()
    assert set(calls[:-1]) == {"validate_pizza_order_form"} and len(calls) >= 4
    assert calls[-1] == "action_place_order"
    order = action_server.requests[-1]
    assert set(order) == {"next_action", "sender_id", "tracker", "domain", "version"}
    assert order["sender_id"] == "alice" and order["version"].startswith("3.")
    slots = order["tracker"]["slots"]
    assert (slots["size"], slots["topping"], slots["crust"]) == ("large", ["ham", "olives"],
                                                                 "thin")
    assert order["tracker"]["events"][0]["event"] == "action"
    assert FORM in order["domain"]["forms"] and "size" in order["domain"]["slots"]
    assert "utter_ask_size" in order["domain"]["responses"]

    tracker = client.get("/conversations/alice/tracker").json()
    assert tracker["sender_id"] == "alice" and tracker["active_loop"] == {}
    assert tracker["slots"]["order_id"] == "PZ0042"
    assert tracker["latest_action_name"] == "action_listen"
    users = [e for e in tracker["events"] if e["event"] == "user"]
    assert [e["text"] for e in users][:2] == ["/greet", "/order_pizza"]
    assert users[-1]["text"] == "thanks a lot" and users[-1]["input_channel"] == "rest"
    assert users[-1]["parse_data"]["intent"]["confidence"] < 1.0  # the model parsed it
    assert [e["event"] for e in tracker["events"][:3]] == ["action", "session_started",
                                                           "action"]


def test_conversation_routes(make_client, action_server):
    client = make_client(action_endpoint=action_server.url)
    assert client.get("/conversations/bob/tracker").json()["events"] == []  # new, not saved

    tracker = client.post("/conversations/bob/messages",
                          json={"text": "/greet", "sender": "user"}).json()
    kinds = [(e["event"], e.get("name")) for e in tracker["events"]]
    assert kinds == [("action", "action_session_start"), ("session_started", None),
                     ("action", "action_listen"), ("user", None)]
    assert tracker["latest_message"]["intent"]["name"] == "greet"

    prediction = client.post("/conversations/bob/predict").json()
    scores = [s["score"] for s in prediction["scores"]]
    assert scores == sorted(scores, reverse=True) and prediction["confidence"] == scores[0]
    assert prediction["scores"][0]["action"] == "utter_greet"
    assert prediction["policy"] and prediction["tracker"]["events"] == tracker["events"]
    assert client.get("/conversations/bob/tracker").json()["events"] == tracker["events"]

    executed = client.post("/conversations/bob/execute",
                           json={"name": "utter_greet", "policy": "me", "confidence": 0.5})
    assert executed.status_code == 200
    body = executed.json()
    assert [m["text"] in texts("utter_greet") for m in body["messages"]] == [True]
    assert body["tracker"]["latest_action_name"] == "utter_greet"  # no loop after execute
    action = [e for e in body["tracker"]["events"] if e["event"] == "action"][-1]
    assert (action["policy"], action["confidence"]) == ("me", 0.5)

    # a custom action whose action server answers with a response name
    status = client.post("/conversations/bob/execute",
                         json={"name": "action_check_order_status"}).json()
    assert [m["text"] for m in status["messages"]] == texts("utter_ask_order_id")

    triggered = client.post("/conversations/bob/trigger_intent",
                            json={"name": "order_pizza", "entities": {"size": "small"}})
    assert triggered.status_code == 200
    body = triggered.json()
    assert body["tracker"]["active_loop"] == {"name": FORM}
    assert body["tracker"]["slots"]["size"] == "small"
    assert body["messages"][-1]["text"] in texts("utter_ask_topping")
    assert body["tracker"]["latest_message"]["text"] == "EXTERNAL: order_pizza"

    logged = client.post("/conversations/bob/messages", json={
        "text": "ham", "parse_data": {"intent": {"name": "inform", "confidence": 0.9},
                                      "entities": [{"entity": "topping", "value": "ham"}]}})
    assert logged.json()["latest_message"]["intent"]["name"] == "inform"
    assert logged.json()["slots"]["topping"] == ["ham"]  # action_extract_slots ran


def test_executing_the_retrieval_action_says_the_selected_faq(make_client):
    """``utter_faq`` is an action of the demo domain (its responses are utter_faq/<key>): it
    says the response the message's response selector chose, named in the bot event."""
    client = make_client()
    client.post("/conversations/faq/messages", json={
        "text": "do you take cards?", "parse_data": {
            "intent": {"name": "faq", "confidence": 0.9}, "entities": [],
            "response_selector": {"all_retrieval_intents": ["faq"], "default": {
                "response": {"responses": None, "confidence": 0.8,
                             "intent_response_key": "faq/payment_methods",
                             "utter_action": "utter_faq/payment_methods"},
                "ranking": [{"confidence": 0.8, "intent_response_key": "faq/payment_methods"}]}}}})
    executed = client.post("/conversations/faq/execute", json={"name": "utter_faq"})
    assert executed.status_code == 200, executed.text
    body = executed.json()
    assert [m["text"] for m in body["messages"]] == texts("utter_faq/payment_methods")
    bot = [e for e in body["tracker"]["events"] if e["event"] == "bot"][-1]
    assert bot["metadata"] == {"utter_action": "utter_faq/payment_methods"}
    assert body["tracker"]["latest_action_name"] == "utter_faq"


def test_conversation_route_errors(make_client):
    client = make_client()
    missing = client.post("/conversations/c/execute", json={"name": "utter_nothing"})
    assert missing.status_code == 404 and "utter_nothing" in missing.json()["error"]
    unknown = client.post("/conversations/c/trigger_intent", json={"name": "dance"})
    assert unknown.status_code == 404 and "dance" in unknown.json()["error"]
    bot = client.post("/conversations/c/messages", json={"text": "hi", "sender": "bot"})
    assert bot.status_code == 400 and "only user messages" in bot.json()["error"]
    bad = client.get("/conversations/c/tracker", params={"include_events": "SOME"})
    assert bad.status_code == 422
    say(client, "/greet", sender="c")
    client.post("/conversations/c/execute", json={"name": "action_restart"})
    say(client, "/greet", sender="c")
    every = client.get("/conversations/c/tracker", params={"include_events": "ALL"}).json()
    after = client.get("/conversations/c/tracker").json()
    assert "restart" in [e["event"] for e in every["events"]]
    assert len(after["events"]) < len(every["events"])
    assert "restart" not in [e["event"] for e in after["events"]]
    assert client.get("/conversations/c/tracker",
                      params={"include_events": "NONE"}).json()["events"] is None


def test_without_a_policy_conversations_answer_409(make_client):
    client = make_client(policy=False)
    answer = client.post("/webhooks/rest/webhook", json={"sender": "x", "message": "hi"})
    assert answer.status_code == 409 and "--policy" in answer.json()["error"]
    assert client.post("/conversations/x/predict").status_code == 409
    assert client.post("/model/parse", json={"text": "hi"}).status_code == 200


def test_an_unreachable_action_server_gives_a_clean_500(make_client):
    client = make_client(action_endpoint="http://127.0.0.1:1/webhook")
    say(client, "/greet", sender="d")
    before = client.get("/conversations/d/tracker").json()["events"]
    answer = client.post("/webhooks/rest/webhook", json={"sender": "d",
                                                         "message": "/order_pizza"})
    assert answer.status_code == 500
    error = answer.json()["error"]
    assert "validate_pizza_order_form" in error and "127.0.0.1:1" in error
    assert "Traceback" not in answer.text and 'File "' not in answer.text
    assert client.get("/conversations/d/tracker").json()["events"] == before  # not saved


def test_without_an_action_endpoint_custom_actions_fail_clearly(make_client):
    client = make_client()
    answer = client.post("/conversations/e/execute", json={"name": "action_place_order"})
    assert answer.status_code == 500 and "action server" in answer.json()["error"]
