"""YAML reading that remembers line numbers, so every error can name its file and line.

Mappings load as :class:`LineDict` and sequences as :class:`LineList`; both carry ``line`` (of
the node) and the lines of their keys/items, which readers use to locate what they complain about.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from nlu_models.data.errors import DataError
from nlu_models.data.files import read_text


class LineDict(dict):
    """A dict with ``line`` (1-based), ``key_lines`` and ``value_lines`` per key."""

    line: int | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.key_lines: dict[Any, int] = {}
        self.value_lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int | None:
        return self.key_lines.get(key, self.line)


class LineList(list):
    """A list with ``line`` (1-based) and ``item_lines``."""

    line: int | None = None

    def __init__(self, *args):
        super().__init__(*args)
        self.item_lines: list[int] = []

    def line_of(self, index: int) -> int | None:
        return self.item_lines[index] if index < len(self.item_lines) else self.line


class _LineLoader(yaml.SafeLoader):
    """SafeLoader building LineDict/LineList and rejecting duplicate keys."""


def _construct_map(loader: _LineLoader, node: yaml.MappingNode):
    data = LineDict()
    data.line = node.start_mark.line + 1
    yield data
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in data:
            raise DataError(
                f"duplicate key '{key}' in the same mapping (the first one is on line "
                f"{data.key_lines[key]})", loader.name, key_node.start_mark.line + 1,
                hint="YAML keeps only the last value; merge the two entries into one")
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_lines[key] = key_node.start_mark.line + 1
        data.value_lines[key] = value_node.start_mark.line + 1


def _construct_seq(loader: _LineLoader, node: yaml.SequenceNode):
    data = LineList()
    data.line = node.start_mark.line + 1
    yield data
    for item in node.value:
        data.append(loader.construct_object(item, deep=True))
        data.item_lines.append(item.start_mark.line + 1)


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)
# Rasa reads YAML 1.2-style: "yes"/"no"/"on"/"off" stay strings (intents called "yes" exist).
_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_LineLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    __import__("re").compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def parse_yaml(text: str, file: str | Path = "<string>") -> Any:
    """Parse YAML text into LineDict/LineList objects; YAML syntax errors become DataError."""
    loader = _LineLoader(text)
    loader.name = str(file)
    try:
        return loader.get_single_data()
    except DataError:
        raise
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else None
        problem = err.problem or err.context or "invalid YAML"
        hint = "check the indentation and quoting around this line"
        if "\t" in text.splitlines()[line - 1] if line and line <= len(text.splitlines()) else False:
            problem = f"{problem} (a TAB character: YAML allows only spaces for indentation " \
                      "and in plain scalars here)"
            hint = "replace the tab with spaces, or quote the value"
        raise DataError(f"invalid YAML: {problem}", file, line, hint=hint) from None
    except yaml.YAMLError as err:
        raise DataError(f"invalid YAML: {err}", file) from None
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> Any:
    """Read a YAML file (UTF-8) with line numbers."""
    return parse_yaml(read_text(path), path)


def to_plain(value: Any) -> Any:
    """LineDict/LineList (recursively) → plain dict/list, for data kept beyond parsing."""
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    return value
