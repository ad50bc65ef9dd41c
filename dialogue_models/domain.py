"""The Rasa domain (2.x and 3.x YAML, and the 1.x keys the TED-paper data uses) as dataclasses.

:func:`read_domain` reads a file, a folder or a list of them; :func:`domain_from_yaml` builds a
:class:`Domain` from one parsed YAML mapping; :func:`domain_to_yaml` writes Rasa YAML 3.1.
Slots, mappings and forms (including the 2.x ``auto_fill`` / form-mapping migration) live in
:mod:`dialogue_models.domain_slots`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable

from dialogue_models.domain_slots import (Form, MappingCondition, Slot, SlotMapping,
                                          add_default_mappings, forms_from_yaml, slot_to_plain,
                                          slots_from_yaml)
from nlu_models.data.errors import DataError, SourceLocation
from nlu_models.data.files import read_text
from nlu_models.data.rasa_yaml import WRITE_VERSION, dump_yaml
from nlu_models.data.yaml_io import LineDict, LineList, parse_yaml, to_plain

__all__ = ["Domain", "IntentSpec", "EntitySpec", "Slot", "SlotMapping", "MappingCondition", "Form",
           "SessionConfig", "domain_from_yaml", "read_domain", "read_domain_yaml", "domain_to_yaml",
           "domain_to_plain", "normalize_tabs", "DOMAIN_KEYS"]

DOMAIN_KEYS = frozenset({"intents", "entities", "slots", "responses", "templates", "actions",
                         "forms", "session_config", "config", "e2e_actions"})
IGNORED_KEYS = frozenset({"version", "nlu", "stories", "rules"})
RESPONSE_CONTENT_KEYS = frozenset({"text", "custom", "image", "buttons", "attachment", "elements",
                                   "quick_replies"})
_INTENT_KEYS = {"use_entities", "ignore_entities", "triggers", "is_retrieval_intent"}
_ENTITY_KEYS = {"roles", "groups", "influence_conversation"}
_SLOT_PLACEHOLDER = re.compile(r"(?<!\{)\{(\w+)\}(?!\})")


@dataclass
class IntentSpec:
    """An intent and which entities it passes to the policies (``True`` = all)."""

    name: str
    use_entities: bool | list[str] = True
    ignore_entities: list[str] = field(default_factory=list)
    triggers: str | None = None  # 1.x MappingPolicy
    source: SourceLocation | None = field(default=None, compare=False)


@dataclass
class EntitySpec:
    name: str
    roles: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    influence_conversation: bool = True
    source: SourceLocation | None = field(default=None, compare=False)


@dataclass
class SessionConfig:
    session_expiration_time: float = 60
    carry_over_slots_to_new_session: bool = True
    # dialab's addition (Rasa's schema allows and ignores it): a response the bot says when a
    # session starts, before the user's first message is answered
    greeting: str | None = None


@dataclass
class Domain:
    """Everything one assistant declares; see :func:`domain_from_yaml` and :func:`read_domain`."""

    intents: list[IntentSpec] = field(default_factory=list)
    entities: list[EntitySpec] = field(default_factory=list)
    slots: dict[str, Slot] = field(default_factory=dict)
    responses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    actions: list[str] = field(default_factory=list)
    action_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # e.g. send_domain
    forms: dict[str, Form] = field(default_factory=dict)
    e2e_actions: list[str] = field(default_factory=list)
    session_config: SessionConfig = field(default_factory=SessionConfig)
    store_entities_as_slots: bool = True
    # the file's ``version`` key (None when absent, as in 1.x data): before 3.0, entities filled
    # slots of the same name as they arrived; 3.x stories say ``slot_was_set`` explicitly
    version: str | None = field(default=None, compare=False)
    warnings: list[str] = field(default_factory=list, compare=False)
    files: list[str] = field(default_factory=list, compare=False)

    @property
    def intent_names(self) -> list[str]:
        return [i.name for i in self.intents]

    @property
    def entity_names(self) -> list[str]:
        return [e.name for e in self.entities]

    @property
    def fills_slots_from_entities(self) -> bool:
        """Rasa 1.x/2.x behaviour: an entity sets the slot of the same name when it arrives."""
        major = (self.version or "2").split(".")[0]
        return self.store_entities_as_slots and major in ("1", "2")

    @property
    def retrieval_actions(self) -> list[str]:
        """``utter_faq`` for each retrieval intent ``faq``: the domain has responses
        ``utter_faq/<key>`` and no plain response ``utter_faq`` (Rasa's ActionRetrieveResponse
        utters the one the NLU's response selector chose)."""
        prefixes = (name.split("/", 1)[0] for name in self.responses
                    if name.startswith("utter_") and "/" in name)
        return [a for a in dict.fromkeys(prefixes) if a not in self.responses]

    def response_templates(self, name: str) -> list[str]:
        """The texts of response ``name`` (all variations)."""
        return [v["text"] for v in self.responses.get(name, []) if isinstance(v.get("text"), str)]

    def response_slots(self, name: str) -> list[str]:
        """Slot names used as ``{slot}`` placeholders in response ``name``, in order, once each."""
        found: list[str] = []
        for text in self.response_templates(name):
            found += [s for s in _SLOT_PLACEHOLDER.findall(text) if s not in found]
        return found

    def merge(self, *others: "Domain") -> "Domain":
        """One domain from several files; a name defined differently in two files is an error."""
        merged = Domain(**{f.name: _copy(getattr(self, f.name)) for f in fields(Domain)})
        for other in others:
            _merge_into(merged, other)
        return merged


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


# ---- merging -------------------------------------------------------------------------------------
def _conflict(kind: str, name: str, first: Any, second: Any) -> DataError:
    first_at = getattr(first, "source", None) or "another file"
    second_at = getattr(second, "source", None)
    return DataError(f"{kind} '{name}' is defined differently in {first_at} and {second_at}",
                     second_at.file if second_at else None, second_at.line if second_at else None,
                     hint="keep one definition, or make both identical")


def _merge_named(mine: list, theirs: list, kind: str) -> None:
    by_name = {item.name: item for item in mine}
    for item in theirs:
        if item.name not in by_name:
            mine.append(item)
            by_name[item.name] = item
        elif by_name[item.name] != item:
            raise _conflict(kind, item.name, by_name[item.name], item)


def _merge_mapping(mine: dict, theirs: dict, kind: str, files: tuple[list, list]) -> None:
    for name, value in theirs.items():
        if name not in mine:
            mine[name] = value
        elif mine[name] != value:
            if hasattr(value, "source"):
                raise _conflict(kind, name, mine[name], value)
            raise DataError(f"{kind} '{name}' is defined differently in {', '.join(files[0])} "
                            f"and {', '.join(files[1])}", files[1][0] if files[1] else None,
                            hint="keep one definition, or make both identical")


def _merge_into(merged: Domain, other: Domain) -> None:
    files = (merged.files or ["another file"], other.files or ["<input>"])
    _merge_named(merged.intents, other.intents, "intent")
    _merge_named(merged.entities, other.entities, "entity")
    _merge_mapping(merged.slots, other.slots, "slot", files)
    _merge_mapping(merged.responses, other.responses, "response", files)
    _merge_mapping(merged.forms, other.forms, "form", files)
    _merge_mapping(merged.action_options, other.action_options, "action", files)
    merged.actions += [a for a in other.actions if a not in merged.actions]
    merged.e2e_actions += [a for a in other.e2e_actions if a not in merged.e2e_actions]
    for name, default in (("session_config", SessionConfig()), ("store_entities_as_slots", True)):
        mine, theirs = getattr(merged, name), getattr(other, name)
        if theirs != default and mine != default and mine != theirs:
            raise DataError(f"'{name}' differs between {', '.join(files[0])} and "
                            f"{', '.join(files[1])}", files[1][0], hint="set it in one file only")
        if theirs != default:
            setattr(merged, name, theirs)
    merged.warnings += other.warnings
    merged.files += other.files
    merged.version = merged.version or other.version


# ---- reading -------------------------------------------------------------------------------------
def read_domain(paths: str | Path | Iterable[str | Path]) -> Domain:
    """A domain file, a folder of ``*.yml``/``*.yaml`` files, or a list of either, merged."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml"))
        else:
            files.append(path)
    domain = Domain()
    for file in files:
        doc, warnings = read_domain_yaml(file)
        part = domain_from_yaml(doc if doc is not None else LineDict(), file)
        part.warnings[:0] = warnings
        domain = domain.merge(part)
    return domain


def read_domain_yaml(file: str | Path) -> tuple[Any, list[str]]:
    """Parse a domain YAML file; if PyYAML stops at a line with a TAB (the TED e2e domains),
    retry with every TAB replaced by one space and return a warning for each changed line."""
    text = read_text(file)
    try:
        return parse_yaml(text, file), []
    except DataError as err:
        lines = text.splitlines()
        if err.line is None or err.line > len(lines) or "\t" not in lines[err.line - 1]:
            raise
        bad = lines[err.line - 1]
        if "\t" in bad[:len(bad) - len(bad.lstrip())]:
            raise  # a TAB in the indentation is a real error, not a stray character in a text
    warnings = [f"{file}:{n}: TAB character replaced by a space (PyYAML rejects it)"
                for n, line in enumerate(lines, 1) if "\t" in line]
    return parse_yaml(normalize_tabs(text), file), warnings


def normalize_tabs(text: str) -> str:
    """The TAB normalisation applied to tabbed domain files (and to e2e story texts)."""
    return text.replace("\t", " ")


def domain_from_yaml(doc: Any, file: str | Path) -> Domain:
    """The domain part of one parsed YAML file (``nlu``/``stories``/``rules`` keys are ignored)."""
    if not isinstance(doc, dict):
        raise DataError("a domain file must be a mapping of keys such as intents, slots and "
                        "responses", file, getattr(doc, "line", None))
    for key in doc:
        if key not in DOMAIN_KEYS and key not in IGNORED_KEYS:
            raise DataError(f"unknown domain key '{key}'", file, doc.line_of(key),
                            hint="domain keys are: " +
                            ", ".join(sorted(DOMAIN_KEYS - {"templates"})))
    if "responses" in doc and "templates" in doc:
        raise DataError("both 'responses' and 'templates' (the 1.x name) are given", file,
                        doc.line_of("templates"), hint="move the templates under 'responses'")
    version = str(doc.get("version", "")) or None
    domain = Domain(files=[str(file)], version=version)
    domain.intents = _intents(_section(doc, "intents", list, file), file)
    domain.entities = _entities(_section(doc, "entities", list, file), file)
    forms_doc = _section(doc, "forms", (dict, list), file)
    domain.slots = slots_from_yaml(_section(doc, "slots", dict, file), file, version,
                                   set(domain.entity_names))
    domain.forms = forms_from_yaml(forms_doc, file, domain.slots)
    add_default_mappings(domain.slots, version)
    responses_key = "templates" if "templates" in doc else "responses"
    domain.responses = _responses(_section(doc, responses_key, dict, file), file)
    domain.actions, domain.action_options = _actions(_section(doc, "actions", list, file), file)
    domain.e2e_actions = [str(a) for a in _section(doc, "e2e_actions", list, file)]
    domain.session_config = _session_config(_section(doc, "session_config", dict, file), file)
    config = _section(doc, "config", dict, file)
    domain.store_entities_as_slots = _bool(config, "store_entities_as_slots", True, file)
    return domain


def _section(doc: LineDict, key: str, kind: type | tuple, file) -> Any:
    value = doc.get(key)
    if value is None:
        return LineDict() if kind is dict or kind == (dict, list) else LineList()
    if not isinstance(value, kind):
        expected = "a list" if kind is list else "a mapping"
        raise DataError(f"'{key}' must be {expected}, not {type(value).__name__}", file,
                        doc.line_of(key), hint=f"see the Rasa domain format for '{key}'")
    return value


def _one_key(item: Any, items: LineList, index: int, kind: str, file) -> tuple[str, Any]:
    """``name`` or ``{name: properties}``."""
    if isinstance(item, (str, int, float)) and not isinstance(item, bool):
        return str(item), LineDict()
    if isinstance(item, dict) and len(item) == 1:
        name, props = next(iter(item.items()))
        if props is None:
            props = LineDict()
        if not isinstance(props, dict):
            raise DataError(f"properties of {kind} '{name}' must be a mapping", file,
                            items.line_of(index), hint=f"write '- {name}: {{...}}' or '- {name}'")
        return str(name), props
    raise DataError(f"a {kind} must be a name or a one-key mapping {{name: {{...}}}}", file,
                    items.line_of(index), hint=f"write '- my_{kind}'")


def _check_keys(props: LineDict, allowed: set, what: str, file, line) -> None:
    for key in props:
        if key not in allowed:
            raise DataError(f"unknown key '{key}' in {what}", file,
                            props.line_of(key) if hasattr(props, "line_of") else line,
                            hint="allowed: " + ", ".join(sorted(allowed)))


def _str_list(value: Any, what: str, file, line) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise DataError(f"{what} must be a list", file, line, hint=f"write {what}: [a, b]")
    return [str(v) for v in value]


def _no_duplicate(name: str, seen: dict[str, int], kind: str, file, line) -> None:
    if name in seen:
        raise DataError(f"{kind} '{name}' is declared twice (first on line {seen[name]})", file,
                        line, hint="remove one of the two entries")
    seen[name] = line


def _intents(items: LineList, file) -> list[IntentSpec]:
    intents, seen = [], {}
    for index, item in enumerate(items):
        line = items.line_of(index)
        name, props = _one_key(item, items, index, "intent", file)
        _no_duplicate(name, seen, "intent", file, line)
        _check_keys(props, _INTENT_KEYS, f"intent '{name}'", file, line)
        use = props.get("use_entities", True)
        if isinstance(use, list):
            use = [str(e) for e in use]
        elif not isinstance(use, bool):
            raise DataError(f"use_entities of intent '{name}' must be true, false or a list",
                            file, props.line_of("use_entities"), hint="write use_entities: [city]")
        use = [] if use is False else use
        ignore = _str_list(props.get("ignore_entities"), "ignore_entities", file, line)
        triggers = props.get("triggers")
        intents.append(IntentSpec(name, use, ignore, str(triggers) if triggers else None,
                                  SourceLocation(str(file), line)))
    return intents


def _entities(items: LineList, file) -> list[EntitySpec]:
    entities, seen = [], {}
    for index, item in enumerate(items):
        line = items.line_of(index)
        name, props = _one_key(item, items, index, "entity", file)
        _no_duplicate(name, seen, "entity", file, line)
        _check_keys(props, _ENTITY_KEYS, f"entity '{name}'", file, line)
        entities.append(EntitySpec(
            name, _str_list(props.get("roles"), "roles", file, line),
            _str_list(props.get("groups"), "groups", file, line),
            _bool(props, "influence_conversation", True, file), SourceLocation(str(file), line)))
    return entities


def _bool(props: LineDict, key: str, default: bool, file) -> bool:
    value = props.get(key, default)
    if not isinstance(value, bool):
        raise DataError(f"'{key}' must be true or false, not '{value}'", file,
                        props.line_of(key), hint=f"write {key}: true")
    return value


def _responses(doc: LineDict, file) -> dict[str, list[dict[str, Any]]]:
    responses = {}
    for name, variations in doc.items():
        line = doc.line_of(name)
        if not isinstance(variations, list) or not variations:
            raise DataError(f"response '{name}' must be a non-empty list of variations", file,
                            line, hint=f"write '{name}:' followed by '- text: ...'")
        for index, variation in enumerate(variations):
            if not isinstance(variation, dict) or not RESPONSE_CONTENT_KEYS & set(variation):
                raise DataError(f"variation {index + 1} of response '{name}' has no text, "
                                "custom, image, buttons or attachment", file,
                                variations.line_of(index), hint="add '- text: ...'")
        responses[str(name)] = [to_plain(v) for v in variations]
    return responses



def _actions(items: LineList, file) -> tuple[list[str], dict[str, dict[str, Any]]]:
    actions, options, seen = [], {}, {}
    for index, item in enumerate(items):
        name, props = _one_key(item, items, index, "action", file)
        _no_duplicate(name, seen, "action", file, items.line_of(index))
        actions.append(name)
        if props:
            options[name] = to_plain(props)
    return actions, options


def _session_config(doc: LineDict, file) -> SessionConfig:
    _check_keys(doc, {"session_expiration_time", "carry_over_slots_to_new_session", "greeting"},
                "session_config", file, doc.line)
    minutes = doc.get("session_expiration_time", 60)
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or minutes < 0:
        raise DataError(f"session_expiration_time must be a number of minutes >= 0, not "
                        f"'{minutes}'", file, doc.line_of("session_expiration_time"),
                        hint="write session_expiration_time: 60 (0 = sessions never expire)")
    greeting = doc.get("greeting")
    if greeting is not None and not (isinstance(greeting, str) and greeting.startswith("utter_")):
        raise DataError(f"session_config greeting must name a response (utter_...), not "
                        f"'{greeting}'", file, doc.line_of("greeting"),
                        hint="write greeting: utter_greet")
    return SessionConfig(minutes, _bool(doc, "carry_over_slots_to_new_session", True, file),
                         greeting)


# ---- writing -------------------------------------------------------------------------------------
def domain_to_plain(domain: Domain) -> dict[str, Any]:
    """The domain as plain YAML-ready data (Rasa 3.1 layout)."""
    out: dict[str, Any] = {"version": WRITE_VERSION}
    out["intents"] = [_intent_to_plain(i) for i in domain.intents]
    out["entities"] = [_entity_to_plain(e) for e in domain.entities]
    out["slots"] = {name: slot_to_plain(slot) for name, slot in domain.slots.items()}
    out["responses"] = domain.responses
    out["actions"] = [{a: domain.action_options[a]} if a in domain.action_options else a
                      for a in domain.actions]
    out["forms"] = {name: _form_to_plain(form) for name, form in domain.forms.items()}
    if domain.e2e_actions:
        out["e2e_actions"] = domain.e2e_actions
    out["session_config"] = {
        "session_expiration_time": domain.session_config.session_expiration_time,
        "carry_over_slots_to_new_session": domain.session_config.carry_over_slots_to_new_session}
    if domain.session_config.greeting:
        out["session_config"]["greeting"] = domain.session_config.greeting
    out["config"] = {"store_entities_as_slots": domain.store_entities_as_slots}
    return out


def domain_to_yaml(domain: Domain) -> str:
    """Rasa YAML (``version: "3.1"``) that reads back into an equal domain."""
    return dump_yaml(domain_to_plain(domain))


def _intent_to_plain(intent: IntentSpec) -> Any:
    props: dict[str, Any] = {}
    if intent.use_entities is not True:
        props["use_entities"] = intent.use_entities
    if intent.ignore_entities:
        props["ignore_entities"] = intent.ignore_entities
    if intent.triggers:
        props["triggers"] = intent.triggers
    return {intent.name: props} if props else intent.name


def _entity_to_plain(entity: EntitySpec) -> Any:
    props: dict[str, Any] = {}
    if entity.roles:
        props["roles"] = entity.roles
    if entity.groups:
        props["groups"] = entity.groups
    if not entity.influence_conversation:
        props["influence_conversation"] = False
    return {entity.name: props} if props else entity.name


def _form_to_plain(form: Form) -> dict[str, Any]:
    out: dict[str, Any] = {"required_slots": form.required_slots}
    if form.ignored_intents:
        out["ignored_intents"] = form.ignored_intents
    return out
