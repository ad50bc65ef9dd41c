"""Reminders (Rasa's ``reminder`` / ``cancel_reminder`` events) and the session greeting: which
reminders are pending, firing them through the dialogue loop, surviving a server restart, firing
once with two servers on one store, the background thread, and ``session_config.greeting``."""
from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timedelta, timezone

import pytest

from dialogue_models.actions import ActionRunner
from dialogue_models.domain import read_domain
from dialogue_models.events import (ACTION_SESSION_START, ActionExecuted, BotUttered,
                                    ReminderCancelled, ReminderScheduled, Restarted,
                                    SessionStarted, UserUttered, event_from_dict)
from dialogue_models.tracker import Tracker
from serving.reminders import REMINDER_CHANNEL, ReminderScheduler, pending_reminders
from tests.conftest import DEMO_BOT
from tests.serving.conftest import ActionServer, demo_actions


def at(seconds: float) -> str:
    """An ISO date-time ``seconds`` from now, as a custom action would write it."""
    return (datetime.now().astimezone() + timedelta(seconds=seconds)).isoformat()


def names(events) -> list[str]:
    return sorted(r.name for r in pending_reminders(events))


def test_reminder_events_speak_rasas_json():
    data = {"event": "reminder", "timestamp": 1.0, "intent": "greet", "entities": {"city": "Rome"},
            "date_time": "2026-11-24T12:00:00+00:00", "name": "r1", "kill_on_user_msg": False}
    event = event_from_dict(data)
    assert isinstance(event, ReminderScheduled) and not event.kill_on_user_message
    assert event.to_dict() == data
    assert event.due_at() == datetime(2026, 11, 24, 12, tzinfo=timezone.utc).timestamp()
    cancel = event_from_dict({"event": "cancel_reminder", "name": None, "intent": "greet",
                              "entities": None})
    assert isinstance(cancel, ReminderCancelled) and cancel.cancels(event)
    assert ReminderScheduled("greet", at(1)).name  # unnamed reminders get a name


def test_which_reminders_are_pending():
    a, b = ReminderScheduled("greet", at(60), name="a"), ReminderScheduled("help", at(60), name="b")
    keep = ReminderScheduled("thank", at(60), name="keep", kill_on_user_message=False)
    assert names([a, b, keep]) == ["a", "b", "keep"]
    assert names([a, b, ReminderCancelled(name="a")]) == ["b"]
    assert names([a, b, ReminderCancelled(intent="help")]) == ["a"]
    assert names([a, keep, UserUttered("hi", "greet")]) == ["keep"]  # the user wrote
    fired = UserUttered("EXTERNAL: greet", "greet", parse_data={"reminder": "a"},
                        input_channel=REMINDER_CHANNEL)
    assert names([a, b, fired]) == ["b"]  # a fired reminder kills no other
    assert names([a, b, Restarted()]) == []
    moved = ReminderScheduled("greet", at(120), name="a")
    assert pending_reminders([a, moved]) == [moved]  # the same name again replaces it


@pytest.fixture
def reminder_client(make_client, tmp_path):
    """A client whose action server answers ``action_get_weather`` by scheduling a reminder
    (``server.reminder`` holds the next one to schedule)."""
    def answer(body):
        if body["next_action"] == "action_get_weather":
            return 200, {"events": [server.reminder], "responses": [{"text": "later!"}]}
        return demo_actions(body)

    server = ActionServer(answer)
    server.reminder = {"event": "reminder", "intent": "greet", "date_time": at(0.2),
                       "name": "wake", "entities": None, "kill_on_user_msg": True}
    yield lambda: make_client(action_endpoint=server.url), server
    server.close()


def schedule(client, sender: str = "r") -> None:
    answer = client.post(f"/conversations/{sender}/execute", json={"name": "action_get_weather"})
    assert answer.status_code == 200, answer.text


def user_events(client, sender: str = "r") -> list[dict]:
    events = client.get(f"/conversations/{sender}/tracker").json()["events"]
    return [e for e in events if e["event"] == "user"]


def test_a_due_reminder_triggers_its_intent(reminder_client):
    make, _ = reminder_client
    client = make()
    agent = client.app.state.agent
    callback = ActionServer(lambda body: (200, {}))  # where the bot's answers are POSTed
    scheduler = ReminderScheduler(agent, callback_url=callback.url)
    agent.reminders = scheduler  # a request that schedules one queues it at once
    schedule(client)
    assert scheduler.run_due(now=time.time() - 60) == 0  # not due yet
    assert scheduler.run_due(now=time.time() + 5) == 1
    assert scheduler.run_due(now=time.time() + 5) == 0  # fired once
    [fired] = user_events(client)
    assert fired["parse_data"]["intent"]["name"] == "greet"
    assert fired["input_channel"] == REMINDER_CHANNEL
    assert fired["parse_data"]["reminder"] == "wake"
    events = client.get("/conversations/r/tracker").json()["events"]
    assert events[-1]["event"] == "action" and events[-1]["name"] == "action_listen"
    answers = [e["text"] for e in events[events.index(fired):] if e["event"] == "bot"]
    assert answers and [m.get("text") for m in callback.requests] == answers
    assert {m["recipient_id"] for m in callback.requests} == {"r"}
    callback.close()


def test_events_can_be_appended_as_rasas_route_does(make_client):
    client = make_client()
    answer = client.post("/conversations/e/tracker/events", json=[
        {"event": "slot", "name": "city", "value": "Rome"},
        {"event": "reminder", "intent": "greet", "date_time": at(60), "name": "n"}])
    assert answer.status_code == 200
    assert answer.json()["slots"]["city"] == "Rome"
    assert [e["event"] for e in answer.json()["events"]] == ["slot", "reminder"]
    bad = client.post("/conversations/e/tracker/events", json={"event": "no_such_event"})
    assert bad.status_code == 422 and "unknown event type 'no_such_event'" in bad.json()["message"]


def test_a_user_message_or_a_cancel_stops_a_reminder(reminder_client):
    make, server = reminder_client
    client = make()
    scheduler = ReminderScheduler(client.app.state.agent)
    schedule(client, "killed")
    client.post("/webhooks/rest/webhook", json={"sender": "killed", "message": "/thank"})
    server.reminder = {**server.reminder, "name": "cancelled"}
    schedule(client, "cancelled")
    client.post("/conversations/cancelled/tracker/events",
                json={"event": "cancel_reminder", "name": "cancelled"})
    scheduler.scan()
    assert scheduler.run_due(now=time.time() + 5) == 0
    assert [e["input_channel"] for e in user_events(client, "killed")] != [REMINDER_CHANNEL]


def test_reminders_survive_a_restart_and_fire_once_with_two_servers(reminder_client):
    make, _ = reminder_client
    first = make()
    schedule(first)  # the server that scheduled it stops before it is due
    first.close()
    one, two = make(), make()  # two servers start on the same store
    schedulers = [ReminderScheduler(c.app.state.agent) for c in (one, two)]
    assert [s.scan() for s in schedulers] == [1, 1]
    fired = [s.run_due(now=time.time() + 5) for s in schedulers]
    assert sorted(fired) == [0, 1]
    assert len(user_events(one)) == 1


def test_the_app_runs_the_scheduler_in_the_background(reminder_client):
    make, _ = reminder_client
    with make() as client:  # the app's lifespan starts and stops the scheduler
        assert client.app.state.agent.reminders is not None
        schedule(client)
        deadline = time.monotonic() + 15
        while not user_events(client) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [e["input_channel"] for e in user_events(client)] == [REMINDER_CHANNEL]


def test_the_session_greeting_is_said_when_a_session_starts():
    domain = read_domain(DEMO_BOT / "domain.yml")
    tracker = Tracker("g", domain.slots)
    assert not any(isinstance(e, BotUttered)
                   for e in ActionRunner(domain).run(ACTION_SESSION_START, tracker))
    domain.session_config = dataclasses.replace(domain.session_config, greeting="utter_greet")
    events = ActionRunner(domain).run(ACTION_SESSION_START, tracker)
    assert isinstance(events[0], SessionStarted)
    assert isinstance(events[-2], BotUttered) and events[-2].text in \
        domain.response_templates("utter_greet")
    assert events[-1] == ActionExecuted("action_listen")  # the policies see no extra action


def test_a_greeting_must_name_a_response(tmp_path):
    from nlu_models.data.errors import DataError

    text = (DEMO_BOT / "domain.yml").read_text()
    bad = tmp_path / "domain.yml"
    bad.write_text(text.replace("session_config:", "session_config:\n  greeting: hello", 1))
    with pytest.raises(DataError, match="greeting must name a response"):
        read_domain(bad)
