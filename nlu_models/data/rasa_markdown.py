"""Rasa 1.x Markdown NLU: ``## intent:``, ``## synonym:``, ``## regex:`` and ``## lookup:``
sections of ``- example`` lines, as used by the DIET-paper benchmark copies.
"""
from __future__ import annotations

import re
from pathlib import Path

from nlu_models.data.annotations import parse_annotated
from nlu_models.data.errors import DataError, SourceLocation
from nlu_models.data.schema import LookupTable, Message, NLUData, RegexPattern
from nlu_models.data.files import read_lookup_file, read_text

_HEADER = re.compile(r"^##\s*(intent|synonym|regex|lookup)\s*:\s*(.*?)\s*$")
_ITEM = re.compile(r"^\s*[-*+]\s+(.*?)\s*$")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def is_markdown_nlu(text: str) -> bool:
    return any(_HEADER.match(line) for line in text.splitlines())


def read_markdown_nlu(path: str | Path) -> NLUData:
    return parse_markdown_nlu(read_text(path), path)


def parse_markdown_nlu(text: str, file: str | Path = "<string>") -> NLUData:
    # blank out comments but keep their newlines, so line numbers stay right
    text = _COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    data = NLUData()
    section: tuple[str, str] | None = None
    lookup: LookupTable | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if not line.strip():
            continue
        header = _HEADER.match(line)
        if header:
            kind, name = header.groups()
            if not name:
                raise DataError(f"'## {kind}:' header without a name", file, number,
                                hint=f"write '## {kind}:name'")
            section = (kind, name)
            lookup = None
            if kind == "lookup":
                lookup = LookupTable(name, [], SourceLocation(str(file), number))
                data.lookups.append(lookup)
            continue
        if line.startswith("#"):
            raise DataError(f"unknown Markdown section header {line.strip()!r}", file, number,
                            hint="NLU sections are '## intent:', '## synonym:', '## regex:' "
                                 "and '## lookup:'")
        if section is None:
            raise DataError(f"text outside any section: {line.strip()[:50]!r}", file, number,
                            hint="start the file with a '## intent:name' header")
        item = _ITEM.match(line)
        kind, name = section
        if item is None:
            if kind == "lookup" and lookup is not None and not lookup.elements:
                lookup.elements.extend(read_lookup_file(line.strip(), file, number))
                continue
            raise DataError(f"line in '## {kind}:{name}' does not start with '- ': "
                            f"{line.strip()[:50]!r}", file, number,
                            hint="each example is a list item: '- text'")
        _add_item(data, kind, name, item.group(1), file, number, lookup)
    return data


def _add_item(data: NLUData, kind: str, name: str, text: str, file, number: int,
              lookup: LookupTable | None) -> None:
    if not text:
        raise DataError(f"empty example in '## {kind}:{name}'", file, number)
    if kind == "intent":
        plain, spans = parse_annotated(text, file, number)
        data.examples.append(Message(plain, name, spans, None, SourceLocation(str(file), number)))
    elif kind == "synonym":
        variants = data.synonyms.setdefault(name, [])
        if text not in variants:
            variants.append(text)
    elif kind == "regex":
        try:
            re.compile(text)
        except re.error as err:
            raise DataError(f"invalid regular expression for regex '{name}': {err}", file,
                            number) from None
        data.regexes.append(RegexPattern(name, text, SourceLocation(str(file), number)))
    else:
        lookup.elements.append(text)
