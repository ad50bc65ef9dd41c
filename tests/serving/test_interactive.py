"""``dialab interactive``: the session driven with scripted answers over the tiny bundles (and a
real action server), the files it saves read back with the project's readers, retraining, and
one run of the command through a real pseudo-terminal."""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import sys
from datetime import datetime
from pathlib import Path

import pytest
from rich.console import Console

from dialogue_models.events import ActionExecuted, UserUttered
from dialogue_models.project import load_bot
from dialogue_models.stories import read_stories
from dialogue_models.story_model import ActionStep, ActiveLoop, SlotWasSet, StoryEntity, UserStep
from dialogue_models.validation import validate_bot
from nlu_models.data.rasa_yaml import read_nlu_yaml
from serving.action_client import ActionServerClient
from serving.agent import Agent
from serving.interactive import InteractiveSession
from serving.tracker_store import InMemoryTrackerStore

REPO = Path(__file__).resolve().parents[2]
STARTED = datetime(2024, 5, 17, 9, 30, 0)
SAVED = "interactive_20240517-093000"


class ScriptedIO:
    """Answers prompts from a list (EOFError when it runs out); keeps a plain-text transcript."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = list(answers)
        self.buffer = io.StringIO()
        self.console = Console(file=self.buffer, width=120, color_system=None, highlight=False)

    def show(self, *items) -> None:
        self.console.print(*items)

    def ask(self, prompt: str) -> str:
        self.console.print(prompt, end="")
        if not self.answers:
            raise EOFError
        answer = self.answers.pop(0)
        self.console.print(answer, markup=False)
        return answer

    @property
    def transcript(self) -> str:
        return self.buffer.getvalue()


@pytest.fixture
def bot_dir(tmp_path) -> Path:
    """A copy of the demo bot: the session writes into it, never into the repository."""
    return Path(shutil.copytree(REPO / "data" / "demo_bot", tmp_path / "bot"))


@pytest.fixture
def run_session(models, bot_dir, action_server):
    """``run_session(answers, **options)`` → (session, io) after the session ran to the end of
    the answers; the shared tiny models, a fresh in-memory store, the demo action server."""

    def run(answers: list[str], **options) -> tuple[InteractiveSession, ScriptedIO]:
        agent = Agent(models[0], models[1], InMemoryTrackerStore(),
                      ActionServerClient(action_server.url))
        scripted = ScriptedIO(answers)
        session = InteractiveSession(agent, scripted, bot_dir, **options)
        session.started = STARTED
        assert session.run() == 0
        assert scripted.answers == [], scripted.transcript  # every answer was asked for
        return session, scripted

    return run


def events_of(session: InteractiveSession):
    return session.agent.tracker(session.sender).applied_events()


def actions_of(session: InteractiveSession) -> list[str]:
    return [e.name for e in events_of(session) if isinstance(e, ActionExecuted)]


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ---- confirming, correcting ------------------------------------------------------------------
def test_confirmed_predictions_run_and_the_story_is_saved(run_session, bot_dir):
    # /greet skips the model; the rules answer a greeting at the start with utter_greet,
    # utter_intro, then listen
    session, scripted = run_session(["/greet", "y", "y", "y", "y", "/save"])
    assert actions_of(session)[-3:] == ["utter_greet", "utter_intro", "action_listen"]
    assert "intent    greet (1.00)" in scripted.transcript
    assert "next action (RulePolicy)" in scripted.transcript
    folder = bot_dir / "data" / SAVED
    assert session.saved_to == folder
    assert not (folder / "nlu.yml").exists()  # a button payload is no NLU example
    [story] = read_stories(folder / "stories.yml").stories
    assert story.steps == [UserStep("greet"), ActionStep("utter_greet"), ActionStep("utter_intro")]


def test_corrected_intent_entities_and_actions_are_logged_and_saved(run_session, bot_dir,
                                                                    action_server):
    session, scripted = run_session([
        "what is the weather in Berlin", "n", "ask_weather",
        "what is the weather in [Berlin](city)",
        "y",                                   # slots: city = "Berlin"
        "n", "action_get_weather",             # whatever the policy says
        "n", "action_listen",
        "/save"])
    message = next(e for e in events_of(session) if isinstance(e, UserUttered))
    assert message.intent == "ask_weather" and message.intent_confidence == 1.0
    assert [(e["entity"], e["value"], e["start"], e["end"]) for e in message.entities] == \
        [("city", "Berlin", 23, 29)]
    assert action_server.actions() == ["action_get_weather"]
    assert "bot: Sunny in Berlin." in scripted.transcript
    executed = [e for e in events_of(session) if isinstance(e, ActionExecuted)]
    assert (executed[-2].name, executed[-2].policy) == ("action_get_weather", "interactive")

    folder = bot_dir / "data" / SAVED
    [example] = read_nlu_yaml(folder / "nlu.yml").examples
    assert (example.text, example.intent) == ("what is the weather in Berlin", "ask_weather")
    assert [(s.entity, s.value, s.start, s.end) for s in example.entities] == \
        [("city", "Berlin", 23, 29)]
    [story] = read_stories(folder / "stories.yml").stories
    assert story.steps == [UserStep("ask_weather", entities=[StoryEntity("city", "Berlin")]),
                           SlotWasSet([("city", "Berlin")]), ActionStep("action_get_weather")]


def test_entity_roles_and_bad_annotations(run_session, bot_dir):
    text = "swap the olives for ham"
    session, scripted = run_session([
        text, "n", "change_order",
        "swap the olives for [ham](city",      # broken markup
        "swap the [olives](pepper) for ham",   # no such entity
        "swap the olives for hams",            # another text
        'swap the [olives]{"entity": "topping", "role": "remove"} for '
        '[ham]{"entity": "topping", "role": "add"}',
        "n", "utter_keep_order", "n", "action_listen", "/save"])
    assert "unclosed entity annotation" in scripted.transcript
    assert "not entities of the domain: pepper" in scripted.transcript
    assert "the text must stay 'swap the olives for ham', not 'swap the olives for hams'" in \
        scripted.transcript
    folder = bot_dir / "data" / SAVED
    [example] = read_nlu_yaml(folder / "nlu.yml").examples
    assert [(s.value, s.role) for s in example.entities] == [("olives", "remove"), ("ham", "add")]
    [story] = read_stories(folder / "stories.yml").stories
    assert story.steps[0] == UserStep("change_order", entities=[
        StoryEntity("topping", "olives", role="remove"), StoryEntity("topping", "ham", role="add")])


def test_slot_values_can_be_corrected(run_session, bot_dir, action_server):
    session, scripted = run_session([
        "weather in Berlin", "n", "ask_weather", "weather in [Berlin](city)",
        "n", "town=Paris", 'city="Paris"', "",   # an unknown slot is refused
        "n", "action_get_weather", "n", "action_listen", "/save"])
    assert "write name=value with a slot of the domain" in scripted.transcript
    assert action_server.requests[0]["tracker"]["slots"]["city"] == "Paris"
    [story] = read_stories(bot_dir / "data" / SAVED / "stories.yml").stories
    assert story.steps[1] == SlotWasSet([("city", "Paris")])  # the correction, once


def test_the_form_writes_active_loop_and_requested_slot_steps(run_session, bot_dir):
    session, _ = run_session([
        "/order_pizza", "y", "n", "pizza_order_form", "n", "action_listen",
        '/inform{"size": "large"}', "y", "y", "n", "pizza_order_form", "n", "action_listen",
        "/save"])
    [story] = read_stories(bot_dir / "data" / SAVED / "stories.yml").stories
    assert story.steps == [
        UserStep("order_pizza"), ActionStep("pizza_order_form"), ActiveLoop("pizza_order_form"),
        SlotWasSet([("requested_slot", "size")]),
        UserStep("inform", entities=[StoryEntity("size", "large")]),
        SlotWasSet([("size", "large")]), ActionStep("pizza_order_form"),
        SlotWasSet([("size", "large")]), SlotWasSet([("requested_slot", "topping")])]


def test_a_failing_custom_action_does_not_end_the_session(run_session):
    session, scripted = run_session(["/cancel_order", "y", "n", "action_update_order",
                                     "n", "action_listen"])
    assert "action_update_order failed" in scripted.transcript
    assert actions_of(session)[-1] == "action_listen"
    assert "action_update_order" not in actions_of(session)


def test_the_retrieval_action_is_a_choice_and_its_keys_are_not(models, bot_dir):
    session = InteractiveSession(Agent(models[0], models[1]), ScriptedIO([]), bot_dir)
    choices = session.actions()
    assert "utter_faq" in choices and "utter_greet" in choices
    assert not [a for a in choices if a.startswith("utter_faq/")]


# ---- commands ----------------------------------------------------------------------------------
def test_undo_takes_back_the_last_message_and_quit_asks_to_save(run_session, bot_dir):
    session, scripted = run_session([
        "/greet", "y", "y", "y", "y",
        "/goodbye", "y", "/undo",              # a command in the middle of the turn
        "/quit", "y"])
    assert "Undone" in scripted.transcript and "Bye." in scripted.transcript
    assert [e.intent for e in events_of(session) if isinstance(e, UserUttered)] == ["greet"]
    assert session.bot_listening()
    [story] = read_stories(bot_dir / "data" / SAVED / "stories.yml").stories
    assert [getattr(s, "intent", None) for s in story.steps] == ["greet", None, None]


def test_nothing_is_overwritten_and_later_saves_rewrite_the_sessions_own_files(
        run_session, bot_dir):
    taken = bot_dir / "data" / SAVED
    taken.mkdir()
    (taken / "nlu.yml").write_text("version: '3.1'\nnlu: []\n")
    before = tree_digest(bot_dir)
    session, _ = run_session([
        # the plain message as the entities' answer: none, whatever the model found
        "good morning Slice", "n", "greet", "good morning Slice", "n", "utter_greet",
        "n", "action_listen", "/save",
        "hello", "n", "greet", "hello", "n", "utter_greet", "n", "action_listen",  # known
        "this is a brand new greeting", "n", "greet", "this is a brand new greeting",
        "n", "action_listen", "/save"])
    after = tree_digest(bot_dir)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing changed
    assert session.saved_to == bot_dir / "data" / f"{SAVED}_2"
    assert sorted(set(after) - set(before)) == [f"data/{SAVED}_2/nlu.yml",
                                                f"data/{SAVED}_2/stories.yml"]
    examples = read_nlu_yaml(session.saved_to / "nlu.yml").examples
    assert [m.text for m in examples] == ["good morning Slice", "this is a brand new greeting"]
    [story] = read_stories(session.saved_to / "stories.yml").stories
    assert [s.intent for s in story.steps if isinstance(s, UserStep)] == ["greet"] * 3


def test_the_saved_session_loads_with_the_bot_and_validates(run_session, bot_dir):
    before = validate_bot(load_bot(bot_dir, collect_errors=True))
    run_session(["what is the weather in Berlin", "n", "ask_weather",
                 "what is the weather in [Berlin](city)", "y", "n", "action_get_weather",
                 "n", "action_listen", "/save"])
    bot = load_bot(bot_dir, collect_errors=True)
    assert any(m.text == "what is the weather in Berlin" and m.source and SAVED in m.source.file
               for m in bot.nlu.examples)
    assert any(s.name.startswith("interactive story") for s in bot.stories.stories)
    after = validate_bot(bot)
    assert [i for i in after if i.level == "error"] == []
    assert len(after) == len(before), [str(i) for i in after]


def test_retrain_swaps_the_agent_and_keeps_the_conversation(models, bot_dir, action_server):
    agents = []

    def retrain() -> Agent:
        assert (bot_dir / "data" / SAVED / "nlu.yml").is_file()  # saved before retraining
        agents.append(Agent(models[0], models[1]))
        return agents[-1]

    first = Agent(models[0], models[1])
    scripted = ScriptedIO(["hi there Slice", "n", "greet", "hi there Slice", "/retrain",
                           "n", "utter_greet", "n", "action_listen"])
    session = InteractiveSession(first, scripted, bot_dir, retrain=retrain)
    session.started = STARTED
    session.run()
    assert session.agent is agents[0] is not first
    assert actions_of(session)[-2:] == ["utter_greet", "action_listen"]
    assert [e.text for e in events_of(session) if isinstance(e, UserUttered)] == \
        ["hi there Slice"]


def test_retraining_trains_on_the_saved_files(models, bot_dir, tmp_path):
    """The real path: tiny DIET and TED, one epoch each, on the bot folder with the session."""
    from experiments.retrain_bot import retrain_bundles

    def retrain() -> Agent:
        nlu, policy = retrain_bundles(bot_dir, tmp_path / "models", "diet_tiny", "ted_tiny",
                                      epochs=1)
        return Agent.load(nlu, policy)

    scripted = ScriptedIO(["weather in Zanzibar", "n", "ask_weather",
                           "weather in [Zanzibar](city)", "y", "/retrain"])
    session = InteractiveSession(Agent(models[0], models[1]), scripted, bot_dir, retrain=retrain)
    session.run()
    assert "Retrained" in scripted.transcript, scripted.transcript
    vocabulary = (tmp_path / "models" / "nlu" / "featurizers.json").read_text()
    assert "zanzibar" in vocabulary.lower()  # the new example was in the training data
    assert [e.text for e in events_of(session) if isinstance(e, UserUttered)] == \
        ["weather in Zanzibar"]


# ---- the command in a terminal -------------------------------------------------------------------
def test_dialab_interactive_in_a_pseudo_terminal(bundles, bot_dir, action_server):
    pexpect = pytest.importorskip("pexpect")
    env = {**os.environ, "TERM": "dumb", "COLUMNS": "120", "NO_COLOR": "1",
           "PYTHONPATH": str(REPO)}
    child = pexpect.spawn(sys.executable, [
        "-m", "dialogue_models.cli", "interactive", "--data", str(bot_dir),
        "--nlu", str(bundles.nlu), "--policy", str(bundles.policy),
        "--action-endpoint", action_server.url], cwd=str(REPO), env=env, encoding="utf-8",
        timeout=60, dimensions=(50, 120))
    try:
        for expected, answer in [
                ("Your input ->", "what is the weather in Berlin"),
                (r"right\? \[Y/n\]", "n"),
                (r"Intent \(number or name", "ask_weather"),
                ("  -> ", "what is the weather in [Berlin](city)"),
                (r"slot values right\? \[Y/n\]", "y"),
                (r"next\? \[Y/n\]", "n"),
                (r"Action \(number or name", "action_get_weather"),
                ("bot: Sunny in Berlin.", None),
                (r"next\? \[Y/n\]", "n"),
                (r"Action \(number or name", "action_listen"),
                ("Your input ->", "/save"),
                ("Saved 1 new NLU examples and 1 stories", None),
                ("Your input ->", "/quit"),
                (r"Save this session before quitting\? \[Y/n\]", "n"),
                ("Bye.", None)]:
            child.expect(expected, timeout=60)
            if answer is not None:
                child.sendline(answer)
        child.expect(pexpect.EOF, timeout=30)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, child.before
    [folder] = (bot_dir / "data").glob("interactive_*")
    [example] = read_nlu_yaml(folder / "nlu.yml").examples
    assert (example.intent, [(s.entity, s.value) for s in example.entities]) == \
        ("ask_weather", [("city", "Berlin")])
    [story] = read_stories(folder / "stories.yml").stories
    assert story.steps[-1] == ActionStep("action_get_weather")
    assert action_server.actions() == ["action_get_weather"]
