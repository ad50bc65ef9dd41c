"""Rasa YAML (2.x and 3.x) NLU: ``nlu:`` intents with examples, synonyms, regexes, lookup
tables, and retrieval ``responses:``. :func:`nlu_from_yaml` reads one parsed file;
:func:`nlu_to_yaml` writes Rasa YAML 3.1 that reads back to equal objects.
"""
from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml

from nlu_models.data.annotations import parse_annotated, write_annotated
from nlu_models.data.errors import DataError, SourceLocation
from nlu_models.data.files import read_lookup_file
from nlu_models.data.schema import LookupTable, Message, NLUData, RegexPattern
from nlu_models.data.yaml_io import LineDict, LineList, read_yaml

SUPPORTED_MAJOR_VERSIONS = ("2", "3")
WRITE_VERSION = "3.1"
_SECTION_KEYS = ("intent", "synonym", "regex", "lookup")
_ITEM_KEYS = set(_SECTION_KEYS) | {"examples", "metadata"}


def check_version(doc: LineDict, file: str | Path) -> None:
    """Reject YAML training data whose ``version`` this reader does not understand."""
    if "version" not in doc:
        return
    version = str(doc["version"])
    if version.split(".")[0] not in SUPPORTED_MAJOR_VERSIONS:
        raise DataError(f"unsupported training data version '{version}'", file,
                        doc.line_of("version"),
                        hint='use version: "3.1" (Rasa 2.x files say "2.0"; 1.x data is Markdown)')


def nlu_from_yaml(doc: Any, file: str | Path) -> NLUData:
    """The NLU part (``nlu:`` and retrieval ``responses:``) of one parsed YAML file."""
    if not isinstance(doc, dict):
        return NLUData()
    check_version(doc, file)
    data = NLUData()
    if "nlu" in doc:
        items = doc["nlu"]
        if items is None:
            items = []
        if not isinstance(items, list):
            raise DataError("'nlu' must be a list of intent/synonym/regex/lookup entries",
                            file, doc.line_of("nlu"), hint="start each entry with '- intent: name'")
        for index, item in enumerate(items):
            _read_item(item, file, items.line_of(index) if isinstance(items, LineList) else None,
                       data)
    for name, variations in (doc.get("responses") or {}).items():
        if "/" in str(name):
            data.responses[str(name)] = variations
    return data


def _read_item(item: Any, file, line: int | None, data: NLUData) -> None:
    if not isinstance(item, dict):
        raise DataError(f"an 'nlu' entry must be a mapping, got {type(item).__name__} "
                        f"{str(item)[:40]!r}", file, line,
                        hint="write '- intent: name' followed by 'examples: |'")
    kinds = [k for k in _SECTION_KEYS if k in item]
    unknown = [k for k in item if k not in _ITEM_KEYS]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), sorted(_ITEM_KEYS), n=1)
        raise DataError(f"unknown key '{key}' in an 'nlu' entry", file, item.line_of(key),
                        hint=f"did you mean '{close[0]}'?" if close else
                        f"allowed keys: {', '.join(sorted(_ITEM_KEYS))}")
    if len(kinds) != 1:
        raise DataError("an 'nlu' entry needs exactly one of intent/synonym/regex/lookup, got "
                        f"{kinds or 'none'}", file, line,
                        hint="split it into separate '- intent: ...' entries")
    kind = kinds[0]
    name = item[kind]
    if not isinstance(name, (str, int, float)) or not str(name).strip():
        raise DataError(f"'{kind}' needs a non-empty name, got {name!r}", file, item.line_of(kind))
    name = str(name).strip()
    if "examples" not in item:
        raise DataError(f"{kind} '{name}' has no 'examples'", file, item.line_of(kind),
                        hint="add 'examples: |' followed by lines starting with '- '")
    if kind == "lookup" and _is_file_reference(item["examples"]):
        elements = read_lookup_file(item["examples"].strip(), file,
                                    item.value_lines.get("examples"))
        data.lookups.append(LookupTable(name, elements,
                                        SourceLocation(str(file), item.line_of(kind))))
        return
    examples = list(_iter_examples(item, name, file))
    if kind == "intent":
        _read_intent(name, item, examples, file, data)
    elif kind == "synonym":
        variants = data.synonyms.setdefault(name, [])
        variants.extend(t for t, _, _ in examples if t not in variants)
    elif kind == "regex":
        for text, _, ex_line in examples:
            try:
                re.compile(text)
            except re.error as err:
                raise DataError(f"invalid regular expression for regex '{name}': {err}", file,
                                ex_line, hint="escape special characters such as ( [ + with \\")
            data.regexes.append(RegexPattern(name, text, SourceLocation(str(file), ex_line)))
    else:
        data.lookups.append(LookupTable(name, [text for text, _, _ in examples],
                                        SourceLocation(str(file), item.line_of(kind))))


def _read_intent(name: str, item: LineDict, examples, file, data: NLUData) -> None:
    if "metadata" in item:
        data.intent_metadata[name] = item["metadata"]
    for text, metadata, line in examples:
        plain, spans = parse_annotated(text, file, line)
        if not plain.strip():
            raise DataError(f"example of intent '{name}' is empty once annotations are removed",
                            file, line)
        data.examples.append(Message(plain, name, spans, metadata,
                                     SourceLocation(str(file), line)))


def _iter_examples(item: LineDict, name: str, file):
    """Yield (text, metadata, line) for block-string and list-of-mappings examples."""
    examples = item["examples"]
    first_line = item.value_lines.get("examples", item.line)
    if isinstance(examples, str):
        # a block scalar starts on the line after "examples: |"; a one-line value on its own line
        offset = 1 if "\n" in examples.rstrip("\n") or examples.endswith("\n") else 0
        for index, raw in enumerate(examples.split("\n")):
            stripped = raw.strip()
            if not stripped:
                continue
            line = first_line + offset + index
            if not stripped.startswith("- "):
                if stripped == "-":
                    raise DataError(f"empty example in '{name}'", file, line)
                raise DataError(f"example line in '{name}' does not start with '- ': "
                                f"{stripped[:50]!r}", file, line,
                                hint="every example in an 'examples: |' block is a line "
                                     "'- text'")
            text = stripped[2:].strip()
            if not text:
                raise DataError(f"empty example in '{name}'", file, line)
            yield text, None, line
    elif isinstance(examples, list):
        for index, entry in enumerate(examples):
            line = examples.line_of(index) if isinstance(examples, LineList) else first_line
            if isinstance(entry, dict):
                if "text" not in entry:
                    raise DataError(f"example in '{name}' has no 'text' key", file, line,
                                    hint="write '- text: ...' (optionally with 'metadata:')")
                extra = set(entry) - {"text", "metadata"}
                if extra:
                    raise DataError(f"unknown key(s) {sorted(extra)} in an example of '{name}'",
                                    file, line, hint="allowed keys: text, metadata")
                text, metadata = entry["text"], entry.get("metadata")
            else:
                text, metadata = entry, None
            if not isinstance(text, (str, int, float)) or not str(text).strip():
                raise DataError(f"empty example in '{name}'", file, line)
            yield str(text).strip(), metadata, line
    else:
        raise DataError(f"'examples' of '{name}' must be a block string or a list, got "
                        f"{type(examples).__name__}", file, first_line,
                        hint="write 'examples: |' and one '- example' per line")


def _is_file_reference(examples: Any) -> bool:
    return isinstance(examples, str) and "\n" not in examples.strip() \
        and not examples.strip().startswith("- ")


def read_nlu_yaml(path: str | Path) -> NLUData:
    return nlu_from_yaml(read_yaml(path), path)


# ---- writing ---------------------------------------------------------------------------------
class _Literal(str):
    """A string dumped in YAML block style (``|``)."""


def _literal_representer(dumper: yaml.SafeDumper, value: _Literal):
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Literal, _literal_representer)
_Dumper.add_representer(LineDict, yaml.SafeDumper.represent_dict)
_Dumper.add_representer(LineList, yaml.SafeDumper.represent_list)


def dump_yaml(obj: Any) -> str:
    """Dump plain data as readable YAML (block strings for ``_Literal``, insertion order)."""
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=10_000,
                     default_flow_style=False)


def _block(lines: list[str]) -> _Literal:
    return _Literal("".join(f"- {line}\n" for line in lines))


def _block_safe(text: str) -> bool:
    return text == text.strip() and "\n" not in text and text != ""


def nlu_to_plain(data: NLUData) -> dict[str, Any]:
    """The ``nlu``/``responses`` sections as plain YAML-ready data."""
    items: list[dict[str, Any]] = []
    runs: list[list[Message]] = []
    for message in data.examples:  # consecutive examples of one intent form one entry
        if runs and runs[-1][0].intent == message.intent:
            runs[-1].append(message)
        else:
            runs.append([message])
    written_metadata: set[str] = set()
    for run in runs:
        intent = run[0].intent
        entry: dict[str, Any] = {"intent": intent}
        if intent in data.intent_metadata and intent not in written_metadata:
            entry["metadata"] = data.intent_metadata[intent]
            written_metadata.add(intent)
        texts = [write_annotated(m.text, m.entities) for m in run]
        if all(m.metadata is None and _block_safe(t) for m, t in zip(run, texts)):
            entry["examples"] = _block(texts)
        else:
            entry["examples"] = [{"text": t, **({"metadata": m.metadata} if m.metadata
                                                is not None else {})}
                                 for m, t in zip(run, texts)]
        items.append(entry)
    for canonical, variants in data.synonyms.items():
        items.append({"synonym": canonical, "examples": _block(variants)})
    for name, patterns in _group_regexes(data.regexes):
        items.append({"regex": name, "examples": _block(patterns)})
    for table in data.lookups:
        items.append({"lookup": table.name, "examples": _block(table.elements)})
    out: dict[str, Any] = {}
    if items:
        out["nlu"] = items
    if data.responses:
        out["responses"] = data.responses
    return out


def _group_regexes(regexes: list[RegexPattern]) -> list[tuple[str, list[str]]]:
    groups: list[tuple[str, list[str]]] = []
    for regex in regexes:
        if groups and groups[-1][0] == regex.name:
            groups[-1][1].append(regex.pattern)
        else:
            groups.append((regex.name, [regex.pattern]))
    return groups


def nlu_to_yaml(data: NLUData) -> str:
    """Rasa YAML 3.1 text for ``data``."""
    return dump_yaml({"version": WRITE_VERSION, **nlu_to_plain(data)})
