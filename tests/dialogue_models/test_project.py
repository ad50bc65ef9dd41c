"""Whole assistants: loading, statistics, validation and YAML round trips through the CLI."""
from __future__ import annotations

import json

import pytest

from dialogue_models.cli import main
from dialogue_models.convert import write_rasa_yaml
from dialogue_models.project import bot_stats, load_bot
from dialogue_models.validation import validate_bot
from tests.conftest import DEMO_BOT, shared_data

# (training NLU examples, intents, stories, rules, test stories). There is no
# rasa_bots/SOURCE.md; these were counted with plain PyYAML (list items of every `examples`
# block, `stories`/`rules` list lengths; files under tests/ or named test* are test data),
# independently of dialab's readers.
RASA_BOTS = {
    "carbon-bot": (2521, 25, 51, 4, 7),   # 25 intents: chitchat/... keys count once
    "financial-demo": (578, 17, 19, 20, 48),
    "helpdesk-assistant": (452, 14, 14, 7, 12),
    "rasa-examples/breakoutbot": (85, 9, 3, 3, 1),
    "rasa-examples/concertbot": (29, 9, 6, 5, 0),
    "rasa-examples/e2ebot": (33, 4, 4, 0, 4),
    "rasa-examples/formbot": (288, 9, 2, 6, 3),
    "rasa-examples/knowledgebasebot": (44, 4, 1, 4, 0),
    "rasa-examples/moodbot": (68, 7, 3, 2, 0),
    "rasa-examples/reminderbot": (35, 5, 1, 7, 0),
    "rasa-examples/responseselectorbot": (76, 8, 3, 3, 0),
    "rasa-examples/rules": (289, 9, 0, 13, 0),
}


@pytest.mark.parametrize("name", list(RASA_BOTS))
def test_rasa_bot_counts(name):
    bot = load_bot(shared_data(f"rasa_bots/{name}"))
    stats = bot_stats(bot)
    counted = (stats["examples"], stats["intents"], stats["stories"], stats["rules"],
               stats["test_stories"])
    assert counted == RASA_BOTS[name]
    assert stats["domain_intents"] > 0 and not bot.errors
    if name == "carbon-bot":  # retrieval intents count once; their keys are counted apart
        assert 1 <= stats["retrieval_intents"] < stats["response_keys"]
        assert stats["intents"] + stats["response_keys"] - stats["retrieval_intents"] == 51


def _assert_round_trip(bot, tmp_path):
    written = write_rasa_yaml(bot, tmp_path / "out")
    assert written
    again = load_bot(tmp_path / "out")
    assert again.nlu == bot.nlu
    assert again.stories == bot.stories
    assert again.test_nlu == bot.test_nlu
    assert again.test_stories == bot.test_stories
    assert again.domain == bot.domain


@pytest.mark.parametrize("name", list(RASA_BOTS))
def test_rasa_bot_yaml_round_trip(name, tmp_path):
    _assert_round_trip(load_bot(shared_data(f"rasa_bots/{name}")), tmp_path)


def test_demo_bot_round_trip(tmp_path):
    _assert_round_trip(load_bot(DEMO_BOT), tmp_path)


def test_single_file_conversion_of_markdown(tmp_path):
    source = shared_data("snips/rasa_md_diet_paper/test.md")
    out = tmp_path / "snips_test.yml"
    assert main(["data", "convert", str(source), str(out)]) == 0
    assert load_bot(out).nlu == load_bot(source).nlu


def test_atis_markdown_copy_is_reported_as_duplicated(capsys):
    path = shared_data("atis/rasa_md_diet_paper/train.md")
    issues = validate_bot(load_bot(path, collect_errors=True))
    duplicates = [i for i in issues if "appear more than once" in i.message]
    assert len(duplicates) == 1
    message = duplicates[0].message
    # the same split from JointBERT: ATIS itself repeats some utterances, the copy triples all
    jointbert = load_bot(shared_data("atis/jointbert")).nlu.examples
    unique = len({(m.text, m.intent) for m in jointbert})
    expected = f"{3 * len(jointbert) - unique} redundant copies among {3 * len(jointbert)}"
    assert expected in message and f"{unique} unique" in message
    assert main(["data", "validate", str(path)]) == 0  # warnings only
    assert main(["data", "validate", "--fail-on-warnings", str(path)]) == 1
    assert expected in capsys.readouterr().out


def test_stats_json_is_one_object(capsys):
    assert main(["data", "stats", "--json", str(DEMO_BOT)]) == 0
    stats = json.loads(capsys.readouterr().out)
    for key in ("examples", "intents", "entity_types", "synonyms", "regexes", "lookups",
                "stories", "rules", "slots", "forms", "responses", "actions"):
        assert isinstance(stats[key], int)


def test_benchmark_stats_through_cli(capsys):
    assert main(["data", "stats", "--json", str(shared_data("snips/jointbert"))]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["examples"], stats["test_examples"], stats["intents"]) == (13_084, 700, 7)
