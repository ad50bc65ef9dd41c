"""The demo bot's action server (data/demo_bot/actions.py) and ``python -m
experiments.demo_conversation``: each action's events and messages through the webhook, the form
validator driving the real form loop (it asks about delivery once the pizza is complete), and
the whole demo end to end on the tiny twins with real server subprocesses."""
from __future__ import annotations

import functools
import importlib.util
import io
import sys

import psutil
import pytest
from fastapi.testclient import TestClient

from dialogue_models.actions import ActionRunner
from dialogue_models.domain import Domain, domain_to_plain, read_domain
from dialogue_models.events import ACTION_LISTEN, UserUttered
from dialogue_models.processor import MessageProcessor
from dialogue_models.tracker import Tracker
from experiments import demo_conversation as demo
from serving.action_client import ActionServerClient
from tests.conftest import DEMO_BOT

FORM = "pizza_order_form"


@functools.lru_cache(maxsize=None)
def actions_module():
    """data/demo_bot/actions.py, imported from its path (data/ is no package)."""
    spec = importlib.util.spec_from_file_location("demo_bot_actions", demo.ACTIONS_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@functools.lru_cache(maxsize=None)
def demo_domain() -> Domain:
    return read_domain(DEMO_BOT / "domain.yml")


@pytest.fixture
def client():
    with TestClient(actions_module().create_app(seed=0)) as test_client:
        yield test_client


def call(client, action: str, slots: dict | None = None, intent: str | None = None,
         entities: list[dict] | None = None, events: list[dict] | None = None) -> dict:
    """POST one action in the rasa-sdk webhook format; the JSON answer."""
    tracker = {"sender_id": "alice", "slots": {"requested_slot": None, **(slots or {})},
               "latest_message": {"text": "...", "intent": {"name": intent, "confidence": 1.0},
                                  "entities": entities or []},
               "events": events or [], "active_loop": {}, "latest_action_name": ACTION_LISTEN}
    response = client.post("/webhook", json={"next_action": action, "sender_id": "alice",
                                             "tracker": tracker,
                                             "domain": domain_to_plain(demo_domain()),
                                             "version": "3.6.0"})
    assert response.status_code == 200, response.text
    return response.json()


def slot(name, value) -> dict:
    return {"event": "slot", "name": name, "value": value}


PIZZA = {"size": "large", "topping": ["ham", "olives"], "crust": "thin"}


# ---- the action server ---------------------------------------------------------------------------
def test_health_actions_and_unknown_action(client):
    assert client.get("/health").json() == {"status": "ok"}
    names = {a["name"] for a in client.get("/actions").json()}
    assert names == {a for a in demo_domain().actions}  # every custom action of the domain
    response = client.post("/webhook", json={"next_action": "action_nope", "tracker": {}})
    assert response.status_code == 404
    assert response.json()["action_name"] == "action_nope"
    assert client.post("/webhook", content=b"not json").status_code == 400


def test_validator_accepts_candidates_and_leaves_the_next_slot_to_the_form(client):
    candidates = [{"event": "action", "name": FORM}, slot("size", "Large")]
    answer = call(client, "validate_pizza_order_form", {"size": "Large"}, events=candidates)
    assert answer == {"events": [slot("size", "large")], "responses": []}  # no requested_slot


def test_validator_asks_for_delivery_once_the_pizza_is_complete(client):
    events = [{"event": "action", "name": FORM}, slot("crust", "thin")]
    answer = call(client, "validate_pizza_order_form", PIZZA, events=events)
    assert answer["events"] == [slot("crust", "thin"), slot("requested_slot", "wants_delivery")]
    done = call(client, "validate_pizza_order_form", {**PIZZA, "wants_delivery": False},
                events=[{"event": "action", "name": FORM}, slot("wants_delivery", False)])
    assert done["events"] == [slot("wants_delivery", False), slot("requested_slot", None)]


def test_validator_rejects_an_unknown_size_and_cleans_toppings(client):
    events = [{"event": "action", "name": FORM}, slot("size", "huge"),
              slot("topping", ["Ham", "ham", " olives "])]
    answer = call(client, "validate_pizza_order_form", {"size": "huge"}, events=events)
    assert answer["events"] == [slot("size", None), slot("topping", ["ham", "olives"])]
    assert "small, medium or large" in answer["responses"][0]["text"]


def test_the_validator_drives_the_real_form_loop(client):
    """The form (dialogue_models.forms) over the real ActionServerClient and this server: the
    pizza's three slots, then wants_delivery, then the order."""
    def predict(tracker: Tracker, excluded=frozenset()):  # rules.yml, enough of it
        last = tracker.latest_action_name
        if tracker.active_loop == FORM and last != FORM:
            return FORM, 1.0, "RulePolicy"
        if last == FORM and tracker.active_loop is None:
            return "action_place_order", 1.0, "RulePolicy"
        if last == ACTION_LISTEN and tracker.latest_message.intent == "order_pizza":
            return FORM, 1.0, "RulePolicy"
        return ACTION_LISTEN, 1.0, "RulePolicy"

    domain = demo_domain()
    server = ActionServerClient(f"{client.base_url}/webhook", client=client)
    bot, tracker = MessageProcessor(domain, predict, ActionRunner(domain, server)), \
        Tracker("alice", domain.slots)
    asked = []
    for intent, entities in (("order_pizza", []), ("inform", [("size", "large")]),
                             ("inform", [("topping", "ham"), ("topping", "olives")]),
                             ("inform", [("crust", "thin")]), ("deny", [])):
        replies = bot.handle_message(tracker, UserUttered(intent, intent, [
            {"entity": e, "value": v} for e, v in entities]))
        asked.append(tracker.requested_slot)
    assert asked == ["size", "topping", "crust", "wants_delivery", None]
    assert tracker.active_loop is None and tracker.slots["wants_delivery"] is False
    assert tracker.slots["order_id"] == "PZ7311"  # seed 0
    assert replies[-1].text == ("Thanks! Your order PZ7311 is in: a large ham and olives pizza, "
                                "thin crust. It will be ready for pickup in about 20 minutes.")


def test_place_order_gives_fresh_codes_and_remembers_the_order(client):
    first = call(client, "action_place_order", {**PIZZA, "wants_delivery": True})
    code = first["events"][0]["value"]
    assert first["events"] == [slot("order_id", code)]
    assert len(code) == 6 and code[:2] == "PZ" and code[2:].isdigit()
    assert first["responses"][0]["text"] == (f"Thanks! Your order {code} is in: a large ham and "
                                             "olives pizza, thin crust. It will be at your door "
                                             "in about 35 minutes.")
    second = call(client, "action_place_order", {**PIZZA, "wants_delivery": False})
    assert second["events"][0]["value"] != code
    status = call(client, "action_check_order_status", {**PIZZA, "order_id": code})
    assert status == {"events": [], "responses": [{"text": f"Order {code} (a large ham and "
                      "olives pizza, thin crust) is being prepared and will be on its way to "
                      "you soon."}]}


def test_weather_is_canned_deterministic_and_asks_for_a_city(client):
    today = call(client, "action_get_weather", {"city": "Berlin"}, "ask_weather",
                 [{"entity": "city", "value": "Berlin"}])
    text = today["responses"][0]["text"]
    assert text.startswith("Weather in Berlin today: ") and "°C" in text
    assert today["events"] == []
    assert call(client, "action_get_weather", {"city": "Berlin"}, "ask_weather") == today
    tomorrow = call(client, "action_get_weather", {"city": "Berlin", "date": "tomorrow"},
                    "ask_weather_followup", [{"entity": "date", "value": "tomorrow"}])
    assert tomorrow["responses"][0]["text"] == actions_module().forecast("Berlin", "tomorrow")
    assert tomorrow["responses"][0]["text"].startswith("Weather in Berlin tomorrow: ")
    # a follow-up without a date keeps the slot's date; a new question without one means today
    again = call(client, "action_get_weather", {"city": "Berlin", "date": "tomorrow"},
                 "ask_weather_followup")
    assert again == tomorrow
    new = call(client, "action_get_weather", {"city": "Berlin", "date": "tomorrow"},
               "ask_weather")
    assert new == today
    assert call(client, "action_get_weather", {}, "ask_weather") == {
        "events": [], "responses": [{"response": "utter_ask_city"}]}


def test_order_status_of_unknown_codes_and_without_a_code(client):
    assert call(client, "action_check_order_status")["responses"] == [
        {"response": "utter_ask_order_id"}]
    first = call(client, "action_check_order_status", {"order_id": "KD1007"})
    assert first["responses"][0]["text"].startswith("Order KD1007 is ")
    assert call(client, "action_check_order_status", {"order_id": "KD1007"}) == first


def test_cancel_order(client):
    code = call(client, "action_place_order", {**PIZZA, "wants_delivery": True})["events"][0][
        "value"]
    answer = call(client, "action_cancel_order", {**PIZZA, "wants_delivery": True,
                                                  "order_id": code})
    assert answer["responses"][0]["text"] == (f"Order {code} (a large ham and olives pizza, "
                                              "thin crust) is cancelled and will not be charged.")
    assert answer["events"] == [slot(s, None) for s in ("size", "topping", "crust",
                                                        "wants_delivery")]
    status = call(client, "action_check_order_status", {"order_id": code})
    assert status["responses"][0]["text"] == f"Order {code} was cancelled; you have not been " \
        "charged."
    # in the middle of the form (no order yet): the pizza is discarded
    mid_form = call(client, "action_cancel_order", {"size": "medium"})
    assert mid_form == {"events": [slot("size", None)], "responses": [
        {"text": "I've discarded the pizza we were putting together."}]}
    assert call(client, "action_cancel_order", {"order_id": "KD4410"})["responses"] == [
        {"text": "Order KD4410 is cancelled and will not be charged."}]


def test_update_order_swaps_toppings(client):
    swap = call(client, "action_update_order", {"size": "large", "topping": ["olives"]},
                "change_order", [{"entity": "topping", "value": "olives", "role": "remove"},
                                 {"entity": "topping", "value": "mushrooms", "role": "add"}])
    assert swap == {"events": [slot("topping", ["mushrooms"])],
                    "responses": [{"text": "Got it: no olives, with mushrooms."}]}
    code = call(client, "action_place_order", PIZZA)["events"][0]["value"]
    placed = call(client, "action_update_order", {**PIZZA, "order_id": code}, "change_order",
                  [{"entity": "topping", "value": "bacon", "role": "add"},
                   {"entity": "crust", "value": "thick"}])
    assert placed["events"] == [slot("topping", ["ham", "olives", "bacon"])]
    assert placed["responses"][0]["text"] == (f"Order {code} updated: a large ham and olives "
                                              "and bacon pizza, thick crust.")
    nothing = call(client, "action_update_order", PIZZA, "change_order")
    assert nothing["events"] == [] and "What would you like to change?" in \
        nothing["responses"][0]["text"]


# ---- the demo script -----------------------------------------------------------------------------
def test_latest_run_picks_the_newest_finished_run(tmp_path):
    for stamp, finished in (("2026-01-01_10-00-00", True), ("2026-01-02_10-00-00", True),
                            ("2026-01-03_10-00-00", False)):
        run = tmp_path / "ted_demo" / "runs" / stamp
        (run / "checkpoints").mkdir(parents=True)
        if finished:
            (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert demo.latest_run("ted_demo", tmp_path).name == "2026-01-02_10-00-00"
    with pytest.raises(demo.DemoError, match="experiment=diet_demo"):
        demo.latest_run("diet_demo", tmp_path)


def test_main_without_runs_exits_2_with_a_clear_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DIALAB_OUTPUTS", str(tmp_path))
    assert demo.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no finished diet_demo run under")
    assert "python -m experiments.train experiment=diet_demo" in err


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """Run folders (checkpoints/last.ckpt, reports/) of the tiny DIET and TED twins."""
    from experiments.train import train
    from tests.entry_points.conftest import compose_config

    runs = {}
    for kind, overrides in (("nlu", ["experiment=diet_tiny"]),
                            ("policy", ["experiment=ted_tiny", "evaluate=false"])):
        runs[kind] = tmp_path_factory.mktemp(f"{kind}_run")
        train(compose_config("train", overrides, runs[kind]))
    return runs


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_demo_conversation_end_to_end(tiny_runs, tmp_path, capsys):
    """Export, both servers as subprocesses, the scripted conversation, both servers stopped.
    The tiny DIET misreads most texts, so the button payloads go in their place."""
    before = _children()
    result = demo.run_demo(tiny_runs["nlu"], tiny_runs["policy"], out=tmp_path / "demo")
    printed = capsys.readouterr().out
    assert result.ok, result.problems
    assert len(result.pids) == 2 and all(_gone(pid) for pid in result.pids)
    assert _children() <= before  # no server left behind

    speakers = [speaker for speaker, _ in result.transcript]
    assert speakers[0] == "user" and speakers[-1] == "bot"  # "[no answer]" is recorded too
    for i, speaker in enumerate(speakers):  # every user message got at least one bot message
        if speaker == "user":
            assert speakers[i + 1] == "bot"
    users = [text for speaker, text in result.transcript if speaker == "user"]
    assert len(users) == 9  # greet, order, size, toppings, crust, delivery, weather,
    assert users[1] in ("I'd like to order a pizza", "/order_pizza")  # its follow-up, an FAQ
    assert users[-3] in ("what's the weather in Berlin?", '/ask_weather{"city": "Berlin"}')
    assert users[-2] in ("and tomorrow?", '/ask_weather_followup{"date": "tomorrow"}')
    assert users[-1] == "when are you open?"  # always the text: a shortcut has no response
    bots = [text for speaker, text in result.transcript if speaker == "bot"]
    assert any(text.startswith("Thanks! Your order PZ") for text in bots)  # the action server
    for speaker, text in result.transcript:  # printed exactly as sent and received
        assert f"{speaker}: {'' if speaker == 'user' else ' '}{text}\n" in printed
    assert (tmp_path / "demo" / "nlu_bundle" / "manifest.json").is_file()
    assert (tmp_path / "demo" / "server.log").is_file()


def test_main_exits_0_and_a_server_that_cannot_start_is_reported(tiny_runs, tmp_path, capsys):
    before = _children()
    # a policy bundle where the NLU bundle should be: the dialab server exits at once
    with pytest.raises(demo.DemoError, match="the dialab server exited with code 1"):
        demo.run_demo(tiny_runs["policy"], tiny_runs["policy"], out=tmp_path / "bad",
                      stream=io.StringIO())
    assert _children() <= before  # the action server was stopped too

    assert demo.main(["--nlu-run", str(tiny_runs["nlu"]),
                      "--policy-run", str(tiny_runs["policy"])]) == 0
    out = capsys.readouterr().out
    assert "user: " in out and "bot:  " in out
    assert out.rstrip().endswith("the demo conversation went through; both servers are stopped.")
    assert _children() <= before
