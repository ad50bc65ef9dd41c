"""Stories, rules and test stories: the Rasa YAML reader and writer (model in story_model).

:func:`stories_from_yaml` reads the ``stories``/``rules`` of one parsed YAML file (2.x or 3.x),
:func:`read_stories` reads files and folders (YAML, or 1.x Markdown via
:mod:`dialogue_models.stories_markdown`), and :func:`stories_to_yaml` writes Rasa YAML 3.1.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from dialogue_models.stories_markdown import parse_markdown_stories, read_markdown_stories
from dialogue_models.story_model import (FILLED, ActionStep, ActiveLoop, Checkpoint, OrStep, Rule,
                                         SlotWasSet, Step, Story, StoryData, StoryEntity, UserStep)
from nlu_models.data.annotations import parse_annotated, write_annotated
from nlu_models.data.errors import DataError, SourceLocation
from nlu_models.data.files import read_text
from nlu_models.data.rasa_markdown import is_markdown_nlu
from nlu_models.data.rasa_yaml import WRITE_VERSION, dump_yaml
from nlu_models.data.yaml_io import LineDict, read_yaml, to_plain

__all__ = ["FILLED", "ActionStep", "ActiveLoop", "Checkpoint", "OrStep", "Rule", "SlotWasSet",
           "Step", "Story", "StoryData", "StoryEntity", "UserStep", "parse_markdown_stories",
           "read_markdown_stories", "read_stories", "stories_from_yaml", "stories_to_yaml",
           "stories_to_plain", "step_to_plain"]

_USER_KEYS = {"intent", "user", "entities"}
_STEP_KINDS = {  # key → the step kind it belongs to; a step mixes no two kinds
    "intent": "user", "user": "user", "entities": "user", "action": "action", "bot": "bot",
    "slot_was_set": "slot_was_set", "active_loop": "active_loop", "checkpoint": "checkpoint",
    "or": "or", "metadata": None}
_STORY_KEYS = {"story", "steps", "metadata"}
_RULE_KEYS = {"rule", "steps", "metadata", "condition", "conversation_start",
              "wait_for_user_input"}


# ---- reading YAML --------------------------------------------------------------------------------
def read_stories(paths: str | Path | Iterable[str | Path]) -> StoryData:
    """Stories and rules of YAML (``.yml``/``.yaml``) and Markdown (``.md``) files or folders."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files: list[Path] = []
    for path in map(Path, paths):
        files += sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml", ".md")) \
            if path.is_dir() else [path]
    data = StoryData()
    for file in files:
        if file.suffix == ".md":
            text = read_text(file)
            if not is_markdown_nlu(text):  # 1.x NLU files are Markdown too
                data = data.merge(parse_markdown_stories(text, file))
        else:
            doc = read_yaml(file)
            if isinstance(doc, dict) and {"stories", "rules"} & set(doc):
                data = data.merge(stories_from_yaml(doc, file))
    return data


def stories_from_yaml(doc: Any, file: str | Path) -> StoryData:
    """The ``stories`` and ``rules`` of one parsed YAML file (other keys are ignored)."""
    data = StoryData()
    if not isinstance(doc, dict):
        return data
    for key, kind, reader, out in (("stories", "story", _story, data.stories),
                                   ("rules", "rule", _rule, data.rules)):
        items = doc.get(key)
        if items is None:
            continue
        if not isinstance(items, list):
            raise DataError(f"'{key}' must be a list of {key}", file, doc.line_of(key),
                            hint=f"start each entry with '- {kind}: name'")
        out += [reader(item, file, items.line_of(i)) for i, item in enumerate(items)]
    return data


def _check_item(item: Any, kind: str, allowed: set[str], file, line) -> str:
    if not isinstance(item, dict):
        raise DataError(f"a {kind} must be a mapping with '{kind}:' and 'steps:'", file, line,
                        hint=f"write '- {kind}: my {kind}' and 'steps:' below it")
    for key in item:
        if key not in allowed:
            raise DataError(f"unknown key '{key}' in a {kind}", file, item.line_of(key),
                            hint="allowed: " + ", ".join(sorted(allowed)))
    name = item.get(kind)
    if name is None or str(name).strip() == "":
        raise DataError(f"a {kind} without a name", file, line,
                        hint=f"start the entry with '- {kind}: <name>'")
    return str(name)


def _story(item: Any, file, line) -> Story:
    name = _check_item(item, "story", _STORY_KEYS, file, line)
    return Story(name, _steps(item, name, "story", file), _metadata(item, file),
                 SourceLocation(str(file), line))


def _rule(item: Any, file, line) -> Rule:
    name = _check_item(item, "rule", _RULE_KEYS, file, line)
    rule = Rule(name, _steps(item, name, "rule", file), metadata=_metadata(item, file),
                source=SourceLocation(str(file), line))
    rule.condition = _condition(item, name, file)
    for key in ("conversation_start", "wait_for_user_input"):
        value = item.get(key, getattr(rule, key))
        if not isinstance(value, bool):
            raise DataError(f"'{key}' of rule '{name}' must be true or false", file,
                            item.line_of(key), hint=f"write {key}: true")
        setattr(rule, key, value)
    return rule


def _metadata(item: LineDict, file) -> dict[str, Any]:
    metadata = item.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise DataError("metadata must be a mapping", file, item.line_of("metadata"),
                        hint="write metadata: {key: value}")
    return to_plain(metadata)



def _steps(item: LineDict, name: str, kind: str, file) -> list[Step]:
    steps = item.get("steps")
    if "steps" not in item or steps is None or steps == []:
        raise DataError(f"{kind} '{name}' has no steps", file,
                        item.line_of("steps") if "steps" in item else item.line,
                        hint="add 'steps:' with '- intent: ...' / '- action: ...' items")
    if not isinstance(steps, list):
        raise DataError(f"the steps of {kind} '{name}' must be a list", file,
                        item.line_of("steps"), hint="start each step with '- '")
    out = [_step(step, file, steps.line_of(i)) for i, step in enumerate(steps)]
    if kind == "rule":
        for step in out:
            if isinstance(step, Checkpoint):
                raise DataError(f"rule '{name}' has a checkpoint; rules cannot use checkpoints",
                                file, step.source.line, hint="write it as a story, or drop the "
                                "checkpoint")
    return out


def _condition(item: LineDict, name: str, file) -> list[Step]:
    items = item.get("condition")
    if items is None:
        return []
    if not isinstance(items, list):
        raise DataError(f"the condition of rule '{name}' must be a list", file,
                        item.line_of("condition"), hint="write '- active_loop: ...' or "
                        "'- slot_was_set: [...]' items")
    steps = [_step(step, file, items.line_of(i)) for i, step in enumerate(items)]
    for step in steps:
        if not isinstance(step, (ActiveLoop, SlotWasSet)):
            raise DataError(f"the condition of rule '{name}' may only hold active_loop and "
                            "slot_was_set items", file, step.source.line,
                            hint="move user and bot turns under 'steps:'")
    return steps


def _step(step: Any, file, line: int) -> Step:
    if not isinstance(step, dict) or not step:
        raise DataError(f"a step must be a mapping such as 'intent: greet', not '{step}'", file,
                        line, hint="write '- intent: ...', '- action: ...' or '- slot_was_set:'")
    kinds = set()
    for key in step:
        if key not in _STEP_KINDS:
            raise DataError(f"unknown step key '{key}'", file, step.line_of(key),
                            hint="steps are intent/user, action, bot, slot_was_set, "
                                 "active_loop, checkpoint or or")
        kinds.add(_STEP_KINDS[key])
    kinds.discard(None)
    if kinds == {"checkpoint", "slot_was_set"}:
        kinds = {"checkpoint"}
    if len(kinds) != 1:
        raise DataError(f"a step mixes {' and '.join(sorted(k for k in step if k != 'metadata'))}"
                        if kinds else "a step with only metadata", file, line,
                        hint="put each on its own '- ' step")
    return _STEP_READERS[kinds.pop()](step, file, line)


def _user_step(step: LineDict, file, line: int) -> UserStep:
    if "intent" not in step and "user" not in step:
        raise DataError("'entities' without 'intent' or 'user' in a step", file, line,
                        hint="add '- intent: ...' above the entities")
    intent = step.get("intent")
    if "intent" in step and not isinstance(intent, str):
        raise DataError(f"intent must be a name, not '{intent}'", file, step.line_of("intent"),
                        hint="write intent: greet")
    user = UserStep(intent=intent, source=SourceLocation(str(file), line))
    if "user" in step:
        text = step["user"]
        if not isinstance(text, (str, int, float)):
            raise DataError("'user' must be the text of the message", file, step.line_of("user"),
                            hint='write user: "I want to book a table"')
        user.text, user.spans = parse_annotated(str(text).strip(), file, step.line_of("user"))
    user.entities = _entities(step.get("entities"), file, step.line_of("entities")) + \
        [StoryEntity(s.entity, s.value, s.role, s.group) for s in user.spans]
    return user


def _entities(items: Any, file, line) -> list[StoryEntity]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise DataError("entities must be a list", file, line,
                        hint="write '- city: Berlin' or '- city' items")
    return [_entity(item, file, items.line_of(i)) for i, item in enumerate(items)]


def _entity(item: Any, file, line) -> StoryEntity:
    if isinstance(item, str):
        return StoryEntity(item)
    if not isinstance(item, dict):
        raise DataError(f"an entity must be a name or a mapping, not '{item}'", file, line,
                        hint="write '- city: Berlin' (plus role:/group: if needed)")
    role, group = _opt_str(item.get("role")), _opt_str(item.get("group"))
    if "entity" in item:
        return StoryEntity(str(item["entity"]), item.get("value"), role, group)
    types = [k for k in item if k not in ("role", "group")]
    if len(types) != 1:
        raise DataError(f"an entity item must name exactly one entity type, found "
                        f"{len(types)} ({', '.join(map(str, types)) or 'none'})", file, line,
                        hint="one '- type: value' item per entity")
    return StoryEntity(str(types[0]), item[types[0]], role, group)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _action_step(step: LineDict, file, line: int) -> ActionStep:
    name = step["action"]
    if not isinstance(name, str) or not name:
        raise DataError(f"action must be an action name, not '{name}'", file, line,
                        hint="write action: utter_greet")
    return ActionStep(name=name, source=SourceLocation(str(file), line))


def _bot_step(step: LineDict, file, line: int) -> ActionStep:
    return ActionStep(text=str(step["bot"]).strip(), source=SourceLocation(str(file), line))


def _slot_pairs(items: Any, file, line) -> list[tuple[str, Any]]:
    if isinstance(items, dict):  # slot_was_set: {a: 1} (a map instead of a list of maps)
        items = [items]
    if not isinstance(items, list):
        raise DataError("slot_was_set must be a list of '- slot: value' or '- slot' items", file,
                        line, hint="write slot_was_set: [{city: Berlin}]")
    pairs: list[tuple[str, Any]] = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            pairs.append((item, FILLED))
        elif isinstance(item, dict) and item:
            pairs += [(str(k), to_plain(v)) for k, v in item.items()]
        else:
            raise DataError(f"a slot_was_set item must be '- slot: value' or '- slot', not "
                            f"'{item}'", file, getattr(items, "line_of", lambda i: line)(index),
                            hint="write '- city: Berlin'")
    return pairs


def _slot_step(step: LineDict, file, line: int) -> SlotWasSet:
    return SlotWasSet(_slot_pairs(step["slot_was_set"], file, line),
                      SourceLocation(str(file), line))


def _loop_step(step: LineDict, file, line: int) -> ActiveLoop:
    name = step["active_loop"]
    if name is not None and not isinstance(name, str):
        raise DataError(f"active_loop must be a form name or null, not '{name}'", file, line,
                        hint="write active_loop: my_form (or null when it ends)")
    return ActiveLoop(name, SourceLocation(str(file), line))


def _checkpoint_step(step: LineDict, file, line: int) -> Checkpoint:
    name = step["checkpoint"]
    if not isinstance(name, str) or not name:
        raise DataError("checkpoint needs a name", file, line, hint="write checkpoint: my_cp")
    slots = _slot_pairs(step["slot_was_set"], file, line) if "slot_was_set" in step else []
    return Checkpoint(name, slots, SourceLocation(str(file), line))


def _or_step(step: LineDict, file, line: int) -> OrStep:
    items = step["or"]
    if not isinstance(items, list) or len(items) < 1:
        raise DataError("'or' must be a list of alternative user steps", file, line,
                        hint="write or: [{intent: affirm}, {intent: thankyou}]")
    alternatives = [_step(item, file, items.line_of(i)) for i, item in enumerate(items)]
    for alternative in alternatives:
        if not isinstance(alternative, (UserStep, SlotWasSet)):
            raise DataError("'or' may only hold user steps (intent/user) or slot_was_set",
                            file, alternative.source.line,
                            hint="put bot actions after the 'or' step")
    return OrStep(alternatives, SourceLocation(str(file), line))


_STEP_READERS = {"user": _user_step, "action": _action_step, "bot": _bot_step,
                 "slot_was_set": _slot_step, "active_loop": _loop_step,
                 "checkpoint": _checkpoint_step, "or": _or_step}


# ---- writing -------------------------------------------------------------------------------------
def stories_to_plain(data: StoryData) -> dict[str, Any]:
    """``stories``/``rules`` as plain YAML-ready data (only the non-empty sections)."""
    out: dict[str, Any] = {}
    if data.stories:
        out["stories"] = [_story_to_plain(s) for s in data.stories]
    if data.rules:
        out["rules"] = [_rule_to_plain(r) for r in data.rules]
    return out


def stories_to_yaml(data: StoryData) -> str:
    """Rasa YAML 3.1 that reads back into equal stories and rules."""
    return dump_yaml({"version": WRITE_VERSION, **stories_to_plain(data)})


def _story_to_plain(story: Story) -> dict[str, Any]:
    out: dict[str, Any] = {"story": story.name}
    if story.metadata:
        out["metadata"] = story.metadata
    out["steps"] = [step_to_plain(s) for s in story.steps]
    return out


def _rule_to_plain(rule: Rule) -> dict[str, Any]:
    out: dict[str, Any] = {"rule": rule.name}
    if rule.metadata:
        out["metadata"] = rule.metadata
    if rule.conversation_start:
        out["conversation_start"] = True
    if rule.condition:
        out["condition"] = [step_to_plain(s) for s in rule.condition]
    out["steps"] = [step_to_plain(s) for s in rule.steps]
    if not rule.wait_for_user_input:
        out["wait_for_user_input"] = False
    return out


def step_to_plain(step: Step) -> dict[str, Any]:
    if isinstance(step, UserStep):
        return _user_to_plain(step)
    if isinstance(step, ActionStep):
        return {"action": step.name} if step.name is not None else {"bot": step.text}
    if isinstance(step, SlotWasSet):
        return {"slot_was_set": _slots_to_plain(step.slots)}
    if isinstance(step, ActiveLoop):
        return {"active_loop": step.name}
    if isinstance(step, Checkpoint):
        out: dict[str, Any] = {"checkpoint": step.name}
        if step.slot_was_set:
            out["slot_was_set"] = _slots_to_plain(step.slot_was_set)
        return out
    return {"or": [step_to_plain(alt) for alt in step.alternatives]}


def _user_to_plain(step: UserStep) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if step.intent is not None:
        out["intent"] = step.intent
    if step.text is not None:
        out["user"] = write_annotated(step.text, step.spans)
    explicit = list(step.entities)
    for span in step.spans:  # entities that the annotated text already carries
        explicit.remove(StoryEntity(span.entity, span.value, span.role, span.group))
    if explicit:
        out["entities"] = [_entity_to_plain(e) for e in explicit]
    return out


def _entity_to_plain(entity: StoryEntity) -> Any:
    if entity.value is None and entity.role is None and entity.group is None:
        return entity.entity
    if entity.entity in ("role", "group", "entity") or entity.value is None:
        out = {"entity": entity.entity, "value": entity.value}
    else:
        out = {entity.entity: entity.value}
    out.update({k: v for k, v in (("role", entity.role), ("group", entity.group)) if v is not None})
    return out


def _slots_to_plain(pairs: list[tuple[str, Any]]) -> list[Any]:
    return [name if value == FILLED else {name: value} for name, value in pairs]
