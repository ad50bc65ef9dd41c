"""Malformed training data: every kind gives a DataError naming the file, the line and the
reason, and the CLI reports it without a traceback."""
from __future__ import annotations

import textwrap
from dataclasses import dataclass

import pytest

from dialogue_models.cli import main
from dialogue_models.project import load_bot
from nlu_models.data.errors import DataError


@dataclass
class Case:
    name: str
    file: str
    content: str | bytes
    line: int
    reason: str  # a fragment of the one-line reason


def nlu(body: str) -> str:
    return 'version: "3.1"\nnlu:\n' + textwrap.dedent(body)


CASES = [
    Case("yaml syntax", "nlu.yml", "nlu:\n- intent: greet\n  examples: |\n    - hi\n - bad", 5,
         "invalid YAML"),
    Case("tab indentation", "nlu.yml", "nlu:\n- intent: greet\n\texamples: |\n    - hi\n", 3,
         "TAB"),
    Case("duplicate key", "nlu.yml", "nlu: []\nstories: []\nnlu: []\n", 3, "duplicate key 'nlu'"),
    Case("unsupported version", "nlu.yml", 'version: "4.0"\nnlu: []\n', 1, "unsupported"),
    Case("nlu not a list", "nlu.yml", "nlu:\n  intent: greet\n", 1, "must be a list"),
    Case("entry not a mapping", "nlu.yml", nlu("- greet\n"), 3, "must be a mapping"),
    Case("misspelt key", "nlu.yml", nlu("- intnt: greet\n  examples: |\n    - hi\n"), 3,
         "unknown key 'intnt'"),
    Case("two kinds in one entry", "nlu.yml",
         nlu("- intent: greet\n  synonym: x\n  examples: |\n    - hi\n"), 3, "exactly one of"),
    Case("empty intent name", "nlu.yml", nlu("- intent: ''\n  examples: |\n    - hi\n"), 3,
         "non-empty name"),
    Case("no examples", "nlu.yml", nlu("- intent: greet\n"), 3, "has no 'examples'"),
    Case("example line without dash", "nlu.yml",
         nlu("- intent: greet\n  examples: |\n    - hi\n    hello there\n"), 6,
         "does not start with '- '"),
    Case("empty example", "nlu.yml", nlu("- intent: greet\n  examples: |\n    - hi\n    -\n"), 6,
         "empty example"),
    Case("examples of wrong type", "nlu.yml", nlu("- intent: greet\n  examples: 42\n"), 4,
         "must be a block string or a list"),
    Case("list example without text", "nlu.yml",
         nlu("- intent: greet\n  examples:\n  - txt: hi\n"), 5, "has no 'text' key"),
    Case("list example with unknown key", "nlu.yml",
         nlu("- intent: greet\n  examples:\n  - text: hi\n    meta: 1\n"), 5, "unknown key"),
    Case("unclosed annotation", "nlu.yml",
         nlu("- intent: inform\n  examples: |\n    - ok\n    - to [Berlin](city\n"), 6,
         "unclosed entity annotation"),
    Case("annotation without type", "nlu.yml",
         nlu("- intent: inform\n  examples: |\n    - to [Berlin]()\n"), 5, "without an entity type"),
    Case("annotation colon without value", "nlu.yml",
         nlu("- intent: inform\n  examples: |\n    - to [Berlin](city:)\n"), 5, "no value"),
    Case("annotation invalid json", "nlu.yml",
         nlu("- intent: inform\n  examples: |\n    - to [Berlin]{\"entity\": city}\n"), 5,
         "not valid JSON"),
    Case("json annotation without entity", "nlu.yml",
         nlu("- intent: inform\n  examples: |\n    - to [Berlin]{\"role\": \"to\"}\n"), 5,
         "no \"entity\" key"),
    Case("json annotation unknown key", "nlu.yml",
         nlu("- intent: inform\n  examples: |\n    - to [Berlin]{\"entity\": \"city\", \"colour\": 1}\n"),
         5, "unknown key"),
    Case("json annotation not an object", "nlu.yml",
         nlu("- intent: inform\n  examples: |\n    - to [Berlin][1, 2]\n"), 5,
         "must be a JSON object"),
    Case("empty annotation list", "nlu.yml",
         nlu("- intent: inform\n  examples: |\n    - to [Berlin][]\n"), 5, "empty list"),
    Case("annotation with empty text", "nlu.yml",
         nlu("- intent: inform\n  examples: |\n    - to [ ](city) now\n"), 5, "empty text"),
    Case("invalid regex", "nlu.yml", nlu("- regex: zip\n  examples: |\n    - [0-9\n"), 5,
         "invalid regular expression"),
    Case("missing lookup file", "nlu.yml", nlu("- lookup: city\n  examples: cities.txt\n"), 4,
         "not found"),
    Case("not utf-8", "nlu.yml", b"nlu:\n- intent: greet\n  examples: |\n    - caf\xe9\n", 4,
         "not valid UTF-8"),
    Case("markdown line without dash", "nlu.md", "## intent:greet\n- hi\nhello\n", 3,
         "does not start with '- '"),
    Case("markdown unknown header", "nlu.md", "## intent:greet\n- hi\n## intnt:bye\n- bye\n", 3,
         "unknown Markdown section header"),
    Case("markdown header without name", "nlu.md", "## intent:greet\n- hi\n## intent:\n- x\n", 3,
         "without a name"),
    Case("markdown text before sections", "nlu.md", "hello\n## intent:greet\n- hi\n", 1,
         "outside any section"),
    Case("markdown bad annotation", "nlu.md", "## intent:inform\n- hi\n- to [Rome](city\n", 3,
         "unclosed entity annotation"),
    Case("markdown invalid regex", "nlu.md", "## regex:zip\n- [0-9\n## intent:a\n- b\n", 2,
         "invalid regular expression"),
    Case("domain unknown slot type", "domain.yml",
         'version: "3.1"\nintents: [greet]\nslots:\n  city:\n    type: txt\n'
         '    mappings: [{type: custom}]\n', 5, "unknown slot type 'txt'"),
    Case("domain 3.x slot without mappings", "domain.yml",
         'version: "3.1"\nintents: [greet]\nslots:\n  city:\n    type: text\n', 4,
         "has no mappings"),
    Case("domain form with undeclared slot", "domain.yml",
         'version: "3.1"\nforms:\n  f:\n    required_slots: [nope]\n', 4, "requires slot 'nope'"),
    Case("story step mixing intent and action", "stories.yml",
         'version: "3.1"\nstories:\n- story: s\n  steps:\n  - intent: greet\n'
         '    action: utter_hi\n', 5, "mixes action and intent"),
    Case("markdown story line that is not a step", "stories.md",
         "## story one\n* greet\n  - utter_hi\nthis is not a step\n", 4, "not a story line"),
]


def _write(tmp_path, case: Case):
    path = tmp_path / case.file
    if isinstance(case.content, bytes):
        path.write_bytes(case.content)
    else:
        path.write_text(case.content, encoding="utf-8")
    return path


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_input_gives_located_data_error(tmp_path, case):
    path = _write(tmp_path, case)
    with pytest.raises(DataError) as info:
        load_bot(path)
    text = str(info.value)
    first_line = text.splitlines()[0]
    assert first_line.startswith(f"{path}:{case.line}: "), text
    assert case.reason in first_line, text


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_cli_reports_malformed_input_without_traceback(tmp_path, case, capsys):
    path = _write(tmp_path, case)
    assert main(["data", "validate", str(path)]) == 1
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out
    assert f"{path}:{case.line}: " in out.err and case.reason in out.err
    assert main(["data", "stats", str(path)]) == 1
    assert f"{path}:{case.line}: " in capsys.readouterr().err


def test_enough_kinds_of_malformed_input():
    assert len({c.name for c in CASES}) >= 30
