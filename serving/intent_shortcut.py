"""Rasa's intent shortcut: a message ``/intent``, ``/intent{"entity": "value"}`` or
``/intent@0.8{...}`` is taken as that intent with those entities, without asking the NLU model.
Buttons send their payloads this way.

Entities are a JSON object (``{"topping": ["ham", "olives"]}`` gives one entity per list item,
as Rasa's ``RegexMessageHandler`` does) or, for roles and groups, a JSON list of entity dicts
(``[{"entity": "topping", "value": "ham", "role": "add"}]``). Their ``start``/``end`` span the
JSON part of the text. JSON that does not parse gives the intent without entities (Rasa logs a
warning and does the same).
"""
from __future__ import annotations

import json
import logging
import re
from typing import Any

__all__ = ["parse_intent_shortcut", "SHORTCUT_PATTERN"]

logger = logging.getLogger(__name__)

SHORTCUT_PATTERN = re.compile(
    r"^/(?P<intent>[^{\[@\s]+)(?P<confidence>@[0-9.]+)?(?P<entities>[{\[].*)?$", re.DOTALL)


def parse_intent_shortcut(text: str) -> dict[str, Any] | None:
    """The Rasa parse result of a ``/intent{...}`` message, or None if ``text`` is no shortcut."""
    match = SHORTCUT_PATTERN.match(text.strip())
    if match is None:
        return None
    intent = match.group("intent")
    confidence = _confidence(match.group("confidence"), text)
    entities = _entities(match.group("entities"), match.span("entities"), text)
    return {"text": text, "intent": {"name": intent, "confidence": confidence},
            "entities": entities,
            "intent_ranking": [{"name": intent, "confidence": confidence}]}


def _confidence(raw: str | None, text: str) -> float:
    if not raw:
        return 1.0
    try:
        return min(max(float(raw[1:]), 0.0), 1.0)
    except ValueError:
        logger.warning("ignoring the confidence '%s' of the shortcut message %r", raw, text)
        return 1.0


def _entities(raw: str | None, span: tuple[int, int], text: str) -> list[dict[str, Any]]:
    if not raw:
        return []
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as err:
        logger.warning("the entities of %r are not valid JSON (%s): using none", text, err)
        return []
    start, end = span
    if isinstance(parsed, dict):
        return [{"entity": str(name), "start": start, "end": end, "value": value}
                for name, values in parsed.items()
                for value in (values if isinstance(values, list) else [values])]
    if isinstance(parsed, list):
        entities = []
        for item in parsed:
            if isinstance(item, dict) and "entity" in item and "value" in item:
                entity = {"entity": str(item["entity"]), "start": start, "end": end,
                          "value": item["value"]}
                entity.update({k: item[k] for k in ("role", "group") if item.get(k)})
                entities.append(entity)
        return entities
    logger.warning("the entities of %r are neither a JSON object nor a list: using none", text)
    return []
