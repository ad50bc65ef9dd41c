"""Rasa 1.x Markdown stories, including the end-to-end variant of the TED-paper data.

```
## story name             a story                     > checkpoint_name    a checkpoint
* intent{"entity": "v"}   a user turn                 * greet OR affirm     alternatives
* greet: hello there      intent plus e2e text        * I want a taxi .    e2e user text
  - utter_greet           a bot action                  - slot{"s": "v"}   slot event
  - form{"name": "f"}     active loop (null: ends)      - Sure, when?      e2e bot text
```
A file is end-to-end when one of its user lines is neither ``intent{...}`` nor
``intent: text``; then every user line is text and every bot line that is not an event is text.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dialogue_models.domain import normalize_tabs
from dialogue_models.story_model import (ActionStep, ActiveLoop, Checkpoint, OrStep, SlotWasSet,
                                         Step, Story, StoryData, StoryEntity, UserStep)
from nlu_models.data.annotations import parse_annotated
from nlu_models.data.errors import DataError, SourceLocation
from nlu_models.data.files import read_text

_NAME = r"[\w\-/.]+"
_INTENT = re.compile(rf"^(?P<name>{_NAME})\s*(?P<json>\{{.*\}})?$")
_INTENT_WITH_TEXT = re.compile(rf"^(?P<name>{_NAME})(?P<json>\{{.*?\}})?: (?P<text>.+)$")
_EVENT = re.compile(rf"^(?P<name>{_NAME})\s*(?P<json>\{{.*\}})$")
_LOOP_EVENTS = ("form", "active_loop")


@dataclass
class _Reader:
    file: Path
    e2e: bool
    stories: list[Story] = field(default_factory=list)

    def where(self, line: int) -> SourceLocation:
        return SourceLocation(str(self.file), line)

    def error(self, reason: str, line: int, hint: str) -> DataError:
        return DataError(reason, self.file, line, hint=hint)

    def add(self, step: Step, line: int, raw: str) -> None:
        if not self.stories:
            raise self.error(f"'{raw}' comes before the first story", line,
                             "start the story with a '## story name' line")
        self.stories[-1].steps.append(step)

    def read_line(self, raw: str, number: int) -> None:
        line = raw.strip()
        if line.startswith("##"):
            name = line.lstrip("#").strip()
            if not name:
                raise self.error("a story without a name", number, "write '## my story'")
            self.stories.append(Story(name, source=self.where(number)))
        elif line.startswith(">>"):
            raise self.error("Markdown rules ('>>') are not supported", number,
                             "convert the rules to YAML (rules: - rule: ...)")
        elif line.startswith(">"):
            name = line[1:].strip()
            if not name:
                raise self.error("a checkpoint without a name", number, "write '> my_checkpoint'")
            self.add(Checkpoint(name, source=self.where(number)), number, line)
        elif line.startswith("*"):
            self.add(self.user_line(line[1:].strip(), number), number, line)
        elif line.startswith("-"):
            self.add(self.bot_line(line[1:].strip(), number), number, line)
        else:
            raise self.error(f"not a story line: '{line[:60]}'", number,
                             "lines are '## story', '> checkpoint', '* user turn' or '- action'")

    # user turns -------------------------------------------------------------------------------
    def user_line(self, text: str, number: int) -> UserStep | OrStep:
        if not text:
            raise self.error("an empty user turn '*'", number, "write '* intent_name'")
        if self.e2e:
            return UserStep(text=normalize_tabs(text), source=self.where(number))
        parts = [p.strip() for p in re.split(r"\s+OR\s+", text)]
        steps = [self.user_part(p, number) for p in parts]
        return steps[0] if len(steps) == 1 else OrStep(steps, self.where(number))

    def user_part(self, text: str, number: int) -> UserStep:
        match = _INTENT.match(text) or _INTENT_WITH_TEXT.match(text)
        if match is None:
            raise self.error(f"not a user turn: '{text[:60]}'", number,
                             'write \'* intent{"entity": "value"}\' or \'* intent: text\'')
        step = UserStep(intent=match["name"], source=self.where(number))
        if match["json"]:
            step.entities = [StoryEntity(str(k), v)
                             for k, v in self.json_object(match["json"], number).items()]
        if "text" in match.groupdict() and match["text"]:
            step.text, step.spans = parse_annotated(match["text"].strip(), self.file, number)
            step.entities += [StoryEntity(s.entity, s.value, s.role, s.group) for s in step.spans]
        return step

    # bot turns --------------------------------------------------------------------------------
    def bot_line(self, text: str, number: int) -> Step:
        if not text:
            raise self.error("an empty bot line '-'", number, "write '- action_name'")
        event = _EVENT.match(text)
        if event and (event["name"] == "slot" or event["name"] in _LOOP_EVENTS):
            fields = self.json_object(event["json"], number)
            if event["name"] == "slot":
                return SlotWasSet(list(fields.items()), self.where(number))
            if set(fields) != {"name"}:
                raise self.error(f"{event['name']} event needs exactly {{\"name\": ...}}", number,
                                 'write - form{"name": "my_form"} (or null when it ends)')
            return ActiveLoop(fields["name"], self.where(number))
        if self.e2e:
            return ActionStep(text=normalize_tabs(text), source=self.where(number))
        if event:
            raise self.error(f"unsupported event '{event['name']}'", number,
                             "only slot{...} and form{...} events are read")
        if not re.fullmatch(_NAME, text):
            raise self.error(f"not an action name: '{text[:60]}'", number,
                             "write '- utter_greet' (one name per line)")
        return ActionStep(name=text, source=self.where(number))

    def json_object(self, text: str, number: int) -> dict[str, Any]:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise self.error(f"invalid JSON '{text[:60]}' ({err.msg})", number,
                             'use double quotes: {"entity": "value"}') from None
        if not isinstance(value, dict):
            raise self.error(f"expected a JSON object, got '{text[:60]}'", number,
                             'write {"entity": "value"}')
        return value


def _is_e2e(lines: list[str]) -> bool:
    """True when a user line is plain text rather than an intent."""
    for raw in lines:
        line = raw.strip()
        if line.startswith("*"):
            for part in re.split(r"\s+OR\s+", line[1:].strip()):
                if part and not (_INTENT.match(part) or _INTENT_WITH_TEXT.match(part)):
                    return True
    return False


def parse_markdown_stories(text: str, file: str | Path = "<string>",
                           e2e: bool | None = None) -> StoryData:
    """Stories of Markdown ``text``; ``e2e=None`` detects end-to-end files (see module doc)."""
    lines = text.splitlines()
    reader = _Reader(Path(file), _is_e2e(lines) if e2e is None else e2e)
    in_comment = False
    for number, raw in enumerate(lines, 1):
        stripped = raw.strip()
        if in_comment or stripped.startswith("<!--"):
            in_comment = "-->" not in stripped
            continue
        if stripped:
            reader.read_line(raw, number)
    for story in reader.stories:
        if not story.steps:
            raise DataError(f"story '{story.name}' has no steps", file, story.source.line,
                            hint="add '* intent' and '  - action' lines under it")
    return StoryData(stories=reader.stories)


def read_markdown_stories(path: str | Path, e2e: bool | None = None) -> StoryData:
    """Stories of a Rasa 1.x Markdown file (see :func:`parse_markdown_stories`)."""
    return parse_markdown_stories(read_text(path), path, e2e)
