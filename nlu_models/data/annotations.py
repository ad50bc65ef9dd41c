"""Rasa's inline entity annotations: parse ``[text](type:value)`` / ``[text]{json}`` /
``[text][{json}, ...]`` into plain text plus character spans, and write them back.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nlu_models.data.errors import DataError
from nlu_models.data.schema import EntitySpan

_JSON_KEYS = {"entity", "value", "role", "group"}
_decoder = json.JSONDecoder()


def parse_annotated(text: str, file: str | Path | None = None,
                    line: int | None = None) -> tuple[str, list[EntitySpan]]:
    """Return the plain text and its entity spans. Unannotated brackets stay literal text."""
    plain: list[str] = []
    spans: list[EntitySpan] = []
    length = 0
    i = 0
    while i < len(text):
        if text[i] != "[":
            plain.append(text[i])
            length += 1
            i += 1
            continue
        close = text.find("]", i + 1)
        if close < 0 or close + 1 >= len(text) or text[close + 1] not in "({[":
            plain.append(text[i])  # a literal "[" (Rasa keeps it as text too)
            length += 1
            i += 1
            continue
        surface = text[i + 1:close]
        if "[" in surface:  # "[[x](a)" : the outer bracket is literal
            plain.append(text[i])
            length += 1
            i += 1
            continue
        annotations, i = _read_annotation_body(text, close + 1, file, line)
        if not surface.strip():
            raise DataError(f"entity annotation with empty text in '{text}'", file, line,
                            hint="put the annotated words between the square brackets: "
                                 "[Berlin](city)")
        for fields in annotations:
            value = fields.get("value", surface)
            spans.append(EntitySpan(start=length, end=length + len(surface), value=value,
                                    entity=fields["entity"], role=fields.get("role"),
                                    group=fields.get("group")))
        plain.append(surface)
        length += len(surface)
    return "".join(plain), spans


def _read_annotation_body(text: str, pos: int, file, line) -> tuple[list[dict[str, Any]], int]:
    """Parse what follows ``[surface]`` at ``pos``; return the annotation dicts and the end."""
    opener = text[pos]
    if opener == "(":
        end = text.find(")", pos)
        if end < 0:
            raise DataError(f"unclosed entity annotation '{text[pos:pos + 30]}' in '{text}'",
                            file, line, hint="close it with ')': [Berlin](city)")
        body = text[pos + 1:end]
        entity, _, value = body.partition(":")
        if not entity.strip():
            raise DataError(f"entity annotation without an entity type in '{text}'", file,
                            line, hint="name the type: [Berlin](city)")
        fields: dict[str, Any] = {"entity": entity.strip()}
        if _:
            if not value.strip():
                raise DataError(f"entity annotation '({body})' has ':' but no value in '{text}'",
                                file, line, hint="write [text](type:value) or drop the ':'")
            fields["value"] = value.strip()
        return [fields], end + 1
    try:
        parsed, end = _decoder.raw_decode(text, pos)
    except json.JSONDecodeError as err:
        raise DataError(f"entity annotation is not valid JSON ({err.msg}) in '{text}'", file,
                        line, hint='write [text]{"entity": "type", "role": "r"}') from None
    items = parsed if isinstance(parsed, list) else [parsed]
    if opener == "[" and not items:
        raise DataError(f"empty list of entity annotations in '{text}'", file, line)
    return [_check_json_annotation(item, text, file, line) for item in items], end


def _check_json_annotation(item: Any, text: str, file, line) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise DataError(f"entity annotation must be a JSON object, got {item!r} in '{text}'",
                        file, line, hint='write [text]{"entity": "type"}')
    if "entity" not in item or not isinstance(item["entity"], str) or not item["entity"]:
        raise DataError(f"entity annotation {json.dumps(item)} has no \"entity\" key in "
                        f"'{text}'", file, line, hint='add "entity": "<type>"')
    unknown = set(item) - _JSON_KEYS
    if unknown:
        raise DataError(f"unknown key(s) {sorted(unknown)} in entity annotation in '{text}'",
                        file, line, hint=f"allowed keys: {sorted(_JSON_KEYS)}")
    for key in ("role", "group"):
        if key in item and item[key] is not None:
            item[key] = str(item[key])
    return item


def write_annotated(text: str, spans: list[EntitySpan]) -> str:
    """The inverse of :func:`parse_annotated` for non-overlapping span positions."""
    by_position: dict[tuple[int, int], list[EntitySpan]] = {}
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        by_position.setdefault((span.start, span.end), []).append(span)
    out: list[str] = []
    cursor = 0
    for (start, end), group in by_position.items():
        if start < cursor:
            raise ValueError(f"overlapping entity spans cannot be written inline: {text!r}")
        surface = text[start:end]
        out.append(text[cursor:start])
        out.append(f"[{surface}]{_annotation_body(surface, group)}")
        cursor = end
    out.append(text[cursor:])
    return "".join(out)


def _annotation_body(surface: str, spans: list[EntitySpan]) -> str:
    if len(spans) > 1:
        return json.dumps([_json_fields(surface, s) for s in spans], ensure_ascii=False)
    span = spans[0]
    simple = (span.role is None and span.group is None and isinstance(span.value, str)
              and not any(c in span.entity for c in ":)")
              and (span.value == surface or (")" not in span.value and span.value.strip()
                                             == span.value and span.value)))
    if not simple:
        return json.dumps(_json_fields(surface, span), ensure_ascii=False)
    return f"({span.entity})" if span.value == surface else f"({span.entity}:{span.value})"


def _json_fields(surface: str, span: EntitySpan) -> dict[str, Any]:
    fields: dict[str, Any] = {"entity": span.entity}
    if span.value != surface:
        fields["value"] = span.value
    if span.role is not None:
        fields["role"] = span.role
    if span.group is not None:
        fields["group"] = span.group
    return fields
