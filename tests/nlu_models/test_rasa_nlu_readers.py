"""Rasa YAML and Markdown NLU readers, the YAML writer, and the loader's format detection."""
from __future__ import annotations

import textwrap

import pytest

from nlu_models.data.errors import DataError
from nlu_models.data.loading import detect_format, load_nlu
from nlu_models.data.rasa_markdown import parse_markdown_nlu
from nlu_models.data.rasa_yaml import nlu_from_yaml, nlu_to_yaml, read_nlu_yaml
from nlu_models.data.schema import EntitySpan
from nlu_models.data.yaml_io import parse_yaml
from tests.conftest import shared_data

NLU_3X = textwrap.dedent('''\
    version: "3.1"
    nlu:
    - intent: book_flight
      metadata: {sentiment: neutral}
      examples: |
        - fly from [Berlin](city) to [Paris]{"entity": "city", "role": "destination"}
        - book [two](number:2) tickets
        - I need [economy]{"entity": "class", "value": "eco", "group": "1"} seats
        - [NYC][{"entity": "city"}, {"entity": "state"}]
    - intent: greet
      examples:
      - text: hi there
        metadata: {lang: en}
      - text: hello
    - intent: faq/ask_name
      examples: |
        - what is your name
    - synonym: New York City
      examples: |
        - NYC
        - the big apple
    - regex: account_number
      examples: |
        - \\d{10,12}
    - lookup: city
      examples: |
        - Berlin
        - Paris
    responses:
      utter_faq/ask_name:
      - text: I am a bot
    ''')


def _read(text: str, name: str = "nlu.yml"):
    return nlu_from_yaml(parse_yaml(text, name), name)


def test_yaml_3x_reads_every_construct():
    data = _read(NLU_3X)
    assert data.intents == ["book_flight", "greet", "faq/ask_name"]
    fly = data.examples[0]
    assert fly.text == "fly from Berlin to Paris"
    assert fly.entities == [EntitySpan(9, 15, "Berlin", "city"),
                            EntitySpan(19, 24, "Paris", "city", role="destination")]
    assert data.examples[1].entities == [EntitySpan(5, 8, "2", "number")]
    assert data.examples[2].entities[0].group == "1" and data.examples[2].entities[0].value == "eco"
    assert [e.entity for e in data.examples[3].entities] == ["city", "state"]
    assert data.examples[4].metadata == {"lang": "en"} and data.examples[5].metadata is None
    assert data.intent_metadata == {"book_flight": {"sentiment": "neutral"}}
    assert data.examples[6].retrieval_intent == "faq" and data.examples[6].response_key == "ask_name"
    assert data.synonyms == {"New York City": ["NYC", "the big apple"]}
    assert data.regexes[0].pattern == r"\d{10,12}"
    assert data.lookups[0].elements == ["Berlin", "Paris"]
    assert data.responses == {"utter_faq/ask_name": [{"text": "I am a bot"}]}
    assert data.entity_synonyms()["nyc"] == "New York City"
    assert data.entity_synonyms()["two"] == "2"


def test_example_lines_are_tracked():
    data = _read(NLU_3X)
    assert [m.source.line for m in data.examples[:4]] == [6, 7, 8, 9]
    assert data.examples[4].source.line == 12
    assert data.regexes[0].source.line == 24


def test_yaml_round_trip_is_lossless():
    data = _read(NLU_3X)
    again = _read(nlu_to_yaml(data))
    assert again == data


def test_yaml_2x_and_lookup_file(tmp_path):
    (tmp_path / "cities.txt").write_text("Berlin\nParis\n\nRome\n")
    (tmp_path / "nlu.yml").write_text(textwrap.dedent('''\
        version: "2.0"
        nlu:
        - intent: inform
          examples: |
            - to [Rome](city)
        - lookup: city
          examples: cities.txt
        '''))
    data = read_nlu_yaml(tmp_path / "nlu.yml")
    assert data.lookups[0].elements == ["Berlin", "Paris", "Rome"]
    assert data.examples[0].entities[0].value == "Rome"


def test_markdown_nlu():
    text = textwrap.dedent('''\
        <!-- a comment
        over two lines -->
        ## intent:check_balance
        - what is my [savings](account) balance
        - how much is on my [credit card](account:credit)

        ## synonym:credit
        - credit card
        ## regex:zipcode
        - [0-9]{5}
        ## lookup:account
        - savings
        - checking
        ''')
    data = parse_markdown_nlu(text, "nlu.md")
    assert data.intents == ["check_balance"]
    assert data.examples[1].entities[0].value == "credit"
    assert data.examples[0].source.line == 4
    assert data.synonyms == {"credit": ["credit card"]}
    assert data.regexes[0].pattern == "[0-9]{5}"
    assert data.lookups[0].elements == ["savings", "checking"]


def test_merge_of_several_files(tmp_path):
    (tmp_path / "a.yml").write_text('nlu:\n- intent: greet\n  examples: |\n    - hi\n')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yml").write_text('nlu:\n- intent: bye\n  examples: |\n    - bye\n'
                                            '- synonym: x\n  examples: |\n    - y\n')
    data = load_nlu(tmp_path)
    assert data.intents == ["greet", "bye"] and data.synonyms == {"x": ["y"]}


def test_detect_format_on_shared_data():
    assert detect_format(shared_data("snips/jointbert")) == "jointbert"
    assert detect_format(shared_data("snips/rasa_md_diet_paper")) == "rasa-md"
    assert detect_format(shared_data("rasa_bots/carbon-bot")) == "rasa"
    assert detect_format(shared_data("clinc150/data_full.json")) == "clinc150"
    assert detect_format(shared_data("hwu64/liu2019_10fold/KFold_1")) == "hwu64"


def test_diet_paper_markdown_counts():
    snips = load_nlu(shared_data("snips/rasa_md_diet_paper/train.md"))
    assert len(snips.examples) == 13_084 and len(snips.intents) == 7
    assert len(snips.entity_types) == 39
    atis = load_nlu(shared_data("atis/rasa_md_diet_paper/train.md"))
    assert len(atis.examples) == 3 * 4_478  # the DIET-paper copy is triplicated (SOURCE.md)
    assert len({(m.text, m.intent) for m in atis.examples}) <= 4_478


def test_unknown_format_is_a_data_error():
    with pytest.raises(DataError, match="unknown format"):
        load_nlu(".", format="csv")
