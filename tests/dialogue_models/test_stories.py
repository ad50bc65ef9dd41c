"""Stories, rules and test stories: YAML and 1.x Markdown readers, the YAML writer, errors."""
from __future__ import annotations

import functools
import textwrap
from pathlib import Path

import pytest

from dialogue_models.domain import read_domain
from dialogue_models.stories import (FILLED, ActionStep, ActiveLoop, Checkpoint, OrStep,
                                     SlotWasSet, StoryData, StoryEntity, UserStep,
                                     read_markdown_stories, read_stories, stories_from_yaml,
                                     stories_to_yaml)
from dialogue_models.stories_markdown import parse_markdown_stories
from nlu_models.data.errors import DataError
from nlu_models.data.yaml_io import parse_yaml
from tests.conftest import shared_data as data_path


# Stories / rules per bot, over every YAML file of the bot (training and test stories), counted
# independently of this reader with:
#   grep -rhE '^\s*- story:' --include=*.yml --include=*.yaml $BOT | wc -l   (and '- rule:')
# The third number counts '- story:' lines in files under a test folder (tests/, test_stories/).
RASA_BOT_COUNTS = {
    "carbon-bot": (58, 4, 7),
    "financial-demo": (67, 20, 48),
    "helpdesk-assistant": (26, 7, 12),
    "rasa-examples/breakoutbot": (4, 3, 1),
    "rasa-examples/concertbot": (6, 5, 0),
    "rasa-examples/e2ebot": (8, 0, 4),
    "rasa-examples/formbot": (5, 6, 3),
    "rasa-examples/knowledgebasebot": (1, 4, 0),
    "rasa-examples/moodbot": (3, 2, 0),
    "rasa-examples/reminderbot": (1, 7, 0),
    "rasa-examples/responseselectorbot": (3, 3, 0),
    "rasa-examples/rules": (0, 13, 0),
}
# multiwoz21_ted/SOURCE.md: stories / user turns / bot-action lines (slot events included).
MULTIWOZ_COUNTS = {
    ("e2e", "train"): (740, 5389, 5389), ("e2e", "test"): (185, 1358, 1358),
    ("e2e-status", "train"): (740, 5389, 9156), ("e2e-status", "test"): (185, 1358, 2302),
    ("modular", "train"): (740, 5389, 9820), ("modular", "test"): (185, 1358, 2488),
    ("modular-status", "train"): (740, 5389, 10720), ("modular-status", "test"): (185, 1358, 2703),
}
# ted_sub_dialogues/SOURCE.md, same three counts per file.
TED_SUB_COUNTS = {
    "train/restaurant_happy.md": (8, 44, 83),
    "train/simulated_restaurant_train.md": (50, 470, 963),
    "train/hotel_happy.md": (11, 71, 130),
    "train/simulated_hotel_train.md": (78, 815, 1549),
    "train/simulated_hotel_train2.md": (1, 2, 3),
    "test/simulated_hotel_test.md": (30, 374, 707),
    "test/simulated_hotel_test2.md": (1, 17, 37),
    "test/simulated_hotel_test3.md": (1, 2, 3),
    "attn_plot.md": (1, None, None),
}


def story_files(bot: Path) -> list[Path]:
    return sorted(p for p in bot.rglob("*") if p.suffix in (".yml", ".yaml")
                  and p.name not in ("domain.yml", "config.yml") and "actions" not in p.parts)


def counts(data: StoryData) -> tuple[int, int, int]:
    steps = [step for story in data.stories for step in story.steps]
    users = sum(isinstance(s, (UserStep, OrStep)) for s in steps)
    bots = sum(isinstance(s, (ActionStep, SlotWasSet, ActiveLoop)) for s in steps)
    return len(data.stories), users, bots


@functools.lru_cache(maxsize=None)
def multiwoz(variant: str, split: str) -> StoryData:
    return read_markdown_stories(data_path(f"multiwoz21_ted/{variant}/data/{split}/stories.md"))


def round_trip(data: StoryData) -> StoryData:
    return stories_from_yaml(parse_yaml(stories_to_yaml(data), "written.yml"), "written.yml")


def yaml_stories(text: str, file: str = "stories.yml") -> StoryData:
    return stories_from_yaml(parse_yaml(textwrap.dedent(text), file), file)


# ---- real data -----------------------------------------------------------------------------------
@pytest.mark.parametrize("bot", list(RASA_BOT_COUNTS))
def test_rasa_bot_stories_load_count_and_round_trip(bot):
    root = data_path(f"rasa_bots/{bot}")
    files = story_files(root)
    data = read_stories(files)
    n_stories, n_rules, n_test = RASA_BOT_COUNTS[bot]
    assert (len(data.stories), len(data.rules)) == (n_stories, n_rules)
    test_files = [f for f in files if any(p.startswith("test") for p in f.relative_to(root).parts)]
    assert len(read_stories(test_files).stories) == n_test
    assert round_trip(data) == data
    for item in data.stories + data.rules:
        assert item.steps and item.source.file.endswith((".yml", ".yaml")) and item.source.line


def test_rasa_bot_details():
    e2e = read_stories(story_files(data_path("rasa_bots/rasa-examples/e2ebot")))
    user = e2e.stories[2].steps[4]
    assert user == UserStep(intent=None, text="I can always go for sushi")
    tested = [s for story in e2e.stories for s in story.steps
              if isinstance(s, UserStep) and s.intent and s.text]
    assert tested[0] == UserStep("greet", "hi")  # block text is stripped
    rules = read_stories(data_path("rasa_bots/rasa-examples/rules/data/rules.yml")).rules
    assert rules[0].conversation_start is True
    assert rules[2].condition == [ActiveLoop("loop_q_form"),
                                  SlotWasSet([("requested_slot", "some_slot")])]
    assert sum(not r.wait_for_user_input for r in rules) == 2
    assert ActiveLoop(None) in rules[3].steps


@pytest.mark.parametrize("variant, split", list(MULTIWOZ_COUNTS))
def test_multiwoz_markdown_counts(variant, split):
    assert counts(multiwoz(variant, split)) == MULTIWOZ_COUNTS[(variant, split)]


def test_multiwoz_e2e_turns_are_texts_matching_the_domain_actions():
    domain = read_domain(data_path("multiwoz21_ted/e2e/domain.yml"))
    story = multiwoz("e2e", "train").stories[0]
    assert story.name == "story_SNG0073"
    assert story.steps[0] == UserStep(text="I would like a taxi from _attraction_name_ to "
                                           "_attraction_name_ Hut Fen Ditton.")
    actions = [s for split in ("train", "test") for st in multiwoz("e2e", split).stories
               for s in st.steps if isinstance(s, ActionStep)]
    assert all(s.name is None and s.text for s in actions)
    texts = [s.text for s in actions]
    assert not set(texts) - set(domain.actions)  # TABs normalised the same way on both sides
    assert "Located at _number_ trinity street ." in texts
    sample = StoryData(multiwoz("e2e-status", "test").stories[:40])
    assert round_trip(sample) == sample


def test_multiwoz_modular_turns_are_intents_with_entities():
    story = multiwoz("modular-status", "train").stories[0]
    assert story.steps[0] == UserStep("inform", entities=[
        StoryEntity("taxi_destination", "specific"), StoryEntity("taxi_departure", "specific"),
        StoryEntity("taxi_status", "available")])
    assert story.steps[3] == ActionStep("action_book_taxi")
    assert story.steps[4] == SlotWasSet([("taxi_status", "booked"), ("taxi_type", "specific")])
    sample = StoryData(multiwoz("modular-status", "test").stories[:50])
    assert round_trip(sample) == sample


@pytest.mark.parametrize("name", list(TED_SUB_COUNTS))
def test_ted_sub_dialogue_counts_and_round_trip(name):
    data = read_markdown_stories(data_path(f"ted_sub_dialogues/core/{name}"))
    expected = TED_SUB_COUNTS[name]
    assert counts(data)[0] == expected[0]
    if expected[1] is not None:
        assert counts(data) == expected
    assert all(isinstance(s, UserStep) and s.intent for st in data.stories for s in st.steps
               if isinstance(s, (UserStep, OrStep)))  # intent-based, not e2e
    assert round_trip(data) == data


# ---- hand-written YAML fixtures ------------------------------------------------------------------
STORIES = """\
version: "3.1"
stories:
- story: full
  metadata: {author: me}
  steps:
  - checkpoint: start
    slot_was_set: [{logged_in: true}]
  - intent: inform
    entities:
    - city: Berlin
    - city: Paris
      role: destination
      group: "1"
    - number
    - entity: date
      value: tomorrow
  - user: "fly to [Rome](city) in [business]{\\"entity\\": \\"class\\", \\"value\\": \\"biz\\"}"
    intent: inform
  - or:
    - intent: affirm
    - intent: thankyou
    - slot_was_set: [confirmed]
  - action: flight_form
  - active_loop: flight_form
  - slot_was_set:
    - city: Berlin
    - requested_slot: null
    - confirmed
  - active_loop: null
  - bot: "Booked!"
  - checkpoint: done
rules:
- rule: greet at start
  conversation_start: true
  steps:
  - intent: greet
  - action: utter_greet
- rule: submit
  condition:
  - active_loop: flight_form
  - slot_was_set: [{logged_in: true}]
  steps:
  - action: flight_form
  - active_loop: null
  - action: action_submit
  wait_for_user_input: false
"""


def test_yaml_story_steps():
    data = yaml_stories(STORIES)
    story = data.stories[0]
    assert story.metadata == {"author": "me"}
    assert story.steps[0] == Checkpoint("start", [("logged_in", True)])
    assert story.steps[1].entities == [
        StoryEntity("city", "Berlin"), StoryEntity("city", "Paris", "destination", "1"),
        StoryEntity("number"), StoryEntity("date", "tomorrow")]
    e2e = story.steps[2]
    assert (e2e.intent, e2e.text) == ("inform", "fly to Rome in business")
    assert e2e.entities == [StoryEntity("city", "Rome"), StoryEntity("class", "biz")]
    assert [(s.start, s.end) for s in e2e.spans] == [(7, 11), (15, 23)]
    assert story.steps[3] == OrStep([UserStep("affirm"), UserStep("thankyou"),
                                     SlotWasSet([("confirmed", FILLED)])])
    slots = story.steps[6].slots
    assert slots == [("city", "Berlin"), ("requested_slot", None), ("confirmed", FILLED)]
    assert slots[1][1] != FILLED and slots[2][1] is not None  # bare name is not null
    assert story.steps[7] == ActiveLoop(None)
    assert story.steps[8] == ActionStep(text="Booked!")
    assert story.steps[1].source.line == 8 and story.source.line == 3
    greet, submit = data.rules
    assert greet.conversation_start and greet.wait_for_user_input
    assert submit.condition == [ActiveLoop("flight_form"), SlotWasSet([("logged_in", True)])]
    assert not submit.wait_for_user_input and not submit.conversation_start
    assert round_trip(data) == data


def test_writer_output_is_rasa_3_1():
    text = stories_to_yaml(yaml_stories(STORIES))
    assert text.startswith("version: '3.1'\nstories:\n- story: full\n")
    assert "user: fly to [Rome](city) in [business]" in text
    assert "- active_loop: null" in text and "wait_for_user_input: false" in text
    assert "conversation_start: true" in text and "condition:" in text


def test_equality_ignores_source_locations():
    a, b = yaml_stories(STORIES, "a.yml"), yaml_stories("\n\n" + STORIES, "b.yml")
    assert a == b and a.stories[0].source != b.stories[0].source


def test_merge_and_empty_sections():
    data = yaml_stories("stories:\nrules:\nnlu: []\n")
    assert data.is_empty()
    merged = data.merge(yaml_stories(STORIES), yaml_stories(STORIES))
    assert (len(merged.stories), len(merged.rules)) == (2, 4)


def test_read_stories_folder_mixes_yaml_and_markdown(tmp_path):
    (tmp_path / "a.yml").write_text(STORIES)
    (tmp_path / "domain.yml").write_text("intents: [greet]\n")
    (tmp_path / "b.md").write_text("## md story\n* greet\n  - utter_greet\n")
    (tmp_path / "nlu.md").write_text("## intent:greet\n- hi\n")  # 1.x NLU: not stories
    data = read_stories(tmp_path)
    assert [s.name for s in data.stories] == ["full", "md story"] and len(data.rules) == 2


# ---- Markdown ------------------------------------------------------------------------------------
MARKDOWN = """\
<!-- a comment
spanning lines -->
## story one
> start_cp
* greet OR affirm{"mood": "good"}
  - utter_greet
* inform{"city": "Berlin", "count": 2}
  - slot{"city": "Berlin", "seen": null}
  - form{"name": "flight_form"}
  - flight_form
  - form{"name": null}
  - active_loop{"name": "other_form"}
* greet: hello from [Rome](city)
  - action_listen
> end_cp

## story two
* faq/ask_name
   - utter_faq
"""


def test_markdown_stories():
    data = parse_markdown_stories(MARKDOWN, "s.md")
    one, two = data.stories
    assert one.name == "story one" and one.source.line == 3
    assert one.steps[0] == Checkpoint("start_cp")
    assert one.steps[1] == OrStep([UserStep("greet"),
                                   UserStep("affirm", entities=[StoryEntity("mood", "good")])])
    assert one.steps[3].entities == [StoryEntity("city", "Berlin"), StoryEntity("count", 2)]
    assert one.steps[4] == SlotWasSet([("city", "Berlin"), ("seen", None)])
    assert one.steps[5:9] == [ActiveLoop("flight_form"), ActionStep("flight_form"),
                              ActiveLoop(None), ActiveLoop("other_form")]
    assert one.steps[9] == UserStep("greet", "hello from Rome", [StoryEntity("city", "Rome")],
                                    one.steps[9].spans)
    assert one.steps[-1] == Checkpoint("end_cp")
    assert two.steps[0] == UserStep("faq/ask_name") and two.steps[1].source.line == 19
    assert round_trip(data) == data


def test_markdown_e2e_detection():
    text = "## s\n* hello there\n  - Hi! How can I help?\n  - slot{\"a\": 1}\n* bye\n  - bye\n"
    data = parse_markdown_stories(text, "e2e.md")
    assert data.stories[0].steps == [UserStep(text="hello there"),
                                     ActionStep(text="Hi! How can I help?"),
                                     SlotWasSet([("a", 1)]), UserStep(text="bye"),
                                     ActionStep(text="bye")]
    forced = parse_markdown_stories("## s\n* bye\n  - bye\n", "x.md", e2e=True)
    assert forced.stories[0].steps == [UserStep(text="bye"), ActionStep(text="bye")]
    tabbed = parse_markdown_stories("## s\n* hi there\n  - at street\t.\n", "x.md")
    assert tabbed.stories[0].steps[1] == ActionStep(text="at street .")


# ---- malformed input: (text, reason); the line marked "#!" is where the error is -----------------
MALFORMED_YAML = {
    "intent and action in one step": (
        "stories:\n- story: s\n  steps:\n  - intent: greet  #!\n    action: utter_greet\n",
        "a step mixes action and intent"),
    "unknown step key": ("stories:\n- story: s\n  steps:\n  - intnet: greet  #!\n",
                         "unknown step key 'intnet'"),
    "story without steps": ("stories:\n- story: s  #!\n  metadata: {}\n", "has no steps"),
    "empty steps": ("stories:\n- story: s\n  steps: []  #!\n", "has no steps"),
    "steps not a list": ("stories:\n- story: s\n  steps:  #!\n    intent: greet\n",
                         "must be a list"),
    "missing story name": ("stories:\n- steps:  #!\n  - intent: greet\n",
                           "a story without a name"),
    "rule without name": ("rules:\n- rule:  #!\n  steps:\n  - intent: greet\n",
                          "a rule without a name"),
    "or with an action": ("stories:\n- story: s\n  steps:\n  - or:\n    - intent: a\n"
                          "    - action: utter_x  #!\n", "'or' may only hold user steps"),
    "checkpoint in a rule": ("rules:\n- rule: r\n  steps:\n  - checkpoint: cp  #!\n"
                             "  - intent: greet\n", "rules cannot use checkpoints"),
    "condition with a user turn": ("rules:\n- rule: r\n  condition:\n  - intent: greet  #!\n"
                                   "  steps:\n  - action: a\n", "may only hold active_loop"),
    "unknown key in a story": ("stories:\n- story: s\n  step:  #!\n  - intent: greet\n",
                               "unknown key 'step' in a story"),
    "stories not a list": ("stories:  #!\n  s: {}\n", "'stories' must be a list"),
    "story item not a mapping": ("stories:\n- just a name  #!\n", "must be a mapping"),
    "entity with two types": ("stories:\n- story: s\n  steps:\n  - intent: i\n    entities:\n"
                              "    - city: Berlin  #!\n      date: today\n",
                              "exactly one entity type"),
    "entities not a list": ("stories:\n- story: s\n  steps:\n  - intent: i\n"
                            "    entities:  #!\n      city: Berlin\n", "entities must be a list"),
    "entities without intent": ("stories:\n- story: s\n  steps:\n  - entities: [city]  #!\n",
                                "'entities' without 'intent'"),
    "slot_was_set not a list": ("stories:\n- story: s\n  steps:\n  - slot_was_set: city  #!\n",
                                "slot_was_set must be a list"),
    "active_loop a list": ("stories:\n- story: s\n  steps:\n  - active_loop: [f]  #!\n",
                           "active_loop must be a form name"),
    "conversation_start not a bool": ("rules:\n- rule: r\n  conversation_start: maybe  #!\n"
                                      "  steps:\n  - intent: greet\n", "must be true or false"),
    "bad annotation in user text": ("stories:\n- story: s\n  steps:\n"
                                    "  - user: 'go to [Rome](city:)'  #!\n",
                                    "has ':' but no value"),
    "step is a string": ("stories:\n- story: s\n  steps:\n  - greet  #!\n",
                         "a step must be a mapping"),
}


@pytest.mark.parametrize("case", list(MALFORMED_YAML))
def test_malformed_yaml_stories(case):
    text, reason = MALFORMED_YAML[case]
    line = next(n for n, ln in enumerate(text.splitlines(), 1) if ln.endswith("#!"))
    with pytest.raises(DataError) as err:
        yaml_stories(text, "bad_stories.yml")
    message = str(err.value)
    assert f"bad_stories.yml:{line}: " in message, message
    assert reason in message, message
    assert "hint:" in message, message


MALFORMED_MARKDOWN = {
    "prose line": ("## s\n* greet\n  - utter_greet\nthis is prose\n", 4, "not a story line"),
    "step before a story": ("* greet\n## s\n* greet\n", 1, "before the first story"),
    "invalid JSON": ('## s\n* greet\n* inform{city: "x"}\n', 3, "invalid JSON"),
    "entities not an object": ('## s\n* inform["x"]\n', 2, "not a user turn"),
    "unsupported event": ('## s\n* greet\n  - reminder{"a": 1}\n', 3, "unsupported event"),
    "form event without name": ('## s\n* greet\n  - form{"nam": "f"}\n', 3, "form event needs"),
    "two action names": ("## s\n* greet\n  - utter_a utter_b\n", 3, "not an action name"),
    "story without steps": ("## s\n* greet\n## empty\n## t\n* bye\n", 3, "has no steps"),
    "story without a name": ("##\n* greet\n", 1, "a story without a name"),
    "markdown rule": (">> rule\n* greet\n", 1, "Markdown rules"),
    "empty user turn": ("## s\n*\n", 2, "an empty user turn"),
}


@pytest.mark.parametrize("case", list(MALFORMED_MARKDOWN))
def test_malformed_markdown_stories(case):
    text, line, reason = MALFORMED_MARKDOWN[case]
    with pytest.raises(DataError) as err:
        parse_markdown_stories(text, "bad_stories.md", e2e=False)
    message = str(err.value)
    assert f"bad_stories.md:{line}: " in message, message
    assert reason in message, message
