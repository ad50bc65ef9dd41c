"""`dialab data validate` warnings on a small bot with one of each inconsistency."""
from __future__ import annotations

import textwrap

from dialogue_models.cli import main
from dialogue_models.project import load_bot
from dialogue_models.validation import validate_bot

DOMAIN = """\
version: "3.1"
intents: [greet, goodbye, inform, unused_intent]
entities:
- city:
    roles: [from, to]
slots:
  city:
    type: text
    mappings: [{type: from_entity, entity: city}]
responses:
  utter_greet: [{text: hi}]
  utter_goodbye: [{text: bye}]
"""
NLU = """\
version: "3.1"
nlu:
- intent: greet
  examples: |
    - hello
    - hello
    - hi there
- intent: goodbye
  examples: |
    - hi there
    - bye
- intent: inform
  examples: |
    - to [Berlin]{"entity": "city", "role": "via"}
    - in [Rome](town)
    - in [Romeo](city) please
    - the [Ber](city)lin one
- intent: not_in_domain
  examples: |
    - something else
"""
STORIES = """\
version: "3.1"
stories:
- story: contradicts the rule
  steps:
  - intent: greet
  - action: utter_goodbye
  - intent: mystery_intent
  - action: utter_missing
  - action: action_custom
  - slot_was_set:
    - unknown_slot: 1
rules:
- rule: greet back
  steps:
  - intent: greet
  - action: utter_greet
"""


def _bot(tmp_path):
    (tmp_path / "domain.yml").write_text(DOMAIN)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "nlu.yml").write_text(NLU)
    (tmp_path / "data" / "stories.yml").write_text(STORIES)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_nlu.yml").write_text(textwrap.dedent("""\
        nlu:
        - intent: goodbye
          examples: |
            - bye
        """))
    return tmp_path


def test_each_inconsistency_is_reported_with_a_location(tmp_path):
    issues = validate_bot(load_bot(_bot(tmp_path), collect_errors=True))
    messages = [str(i) for i in issues]
    expected = {
        "appear more than once": "nlu.yml:5",
        "is listed under 2 intents (goodbye, greet)": "nlu.yml:",
        "test examples also appear in the training data": "test_nlu.yml:4",
        "intent 'not_in_domain' has NLU examples but is not in the domain": "nlu.yml:20",
        "intent 'mystery_intent' is used in 'contradicts the rule'": "stories.yml:",
        "action 'utter_missing' is used": "stories.yml:",
        "add a response for it": "stories.yml:",
        "action 'action_custom' is used": "stories.yml:",
        "entity 'town' is annotated but not declared": "nlu.yml:15",
        "role 'via' of entity 'city' is not declared": "nlu.yml:14",
        "slot 'unknown_slot' is set": "stories.yml:",
        "rule 'greet back'": "stories.yml:",
        "intent 'unused_intent' is in the domain but has no NLU training examples": "domain.yml",
        "misaligned entity annotation": "nlu.yml:17",
    }
    for fragment, where in expected.items():
        hits = [m for m in messages if fragment in m]
        assert hits, f"no warning containing {fragment!r} in {messages}"
        assert any(where in m for m in hits), (fragment, hits)
    assert all(i.level == "warning" for i in issues)


def test_cli_exit_codes(tmp_path, capsys):
    bot = _bot(tmp_path)
    assert main(["data", "validate", str(bot)]) == 0
    assert "validation passed" in capsys.readouterr().out
    assert main(["data", "validate", "--fail-on-warnings", str(bot)]) == 1
    (bot / "data" / "broken.yml").write_text("nlu:\n- intent: x\n  examples: |\n    - [a](b\n")
    assert main(["data", "validate", str(bot)]) == 1
    out = capsys.readouterr()
    assert "broken.yml:4: unclosed entity annotation" in out.err
    assert "validation failed" in out.out
