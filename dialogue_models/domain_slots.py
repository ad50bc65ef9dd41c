"""Slots, slot mappings and forms of a Rasa domain.

Rasa 3.x puts every mapping on its slot (``mappings:`` is required); 2.x filled slots from the
entity of the same name (``auto_fill``) and kept form mappings under ``forms:``. Both read into
the 3.x model here, the way ``rasa data migrate`` converts them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nlu_models.data.errors import DataError, SourceLocation
from nlu_models.data.yaml_io import LineDict, LineList

SLOT_TYPES = ("text", "bool", "categorical", "float", "list", "any")
MAPPING_TYPES = ("from_entity", "from_text", "from_intent", "from_trigger_intent", "custom")
# Rasa 2.x spelled types as class paths (rasa.shared.core.slots.TextSlot) or "unfeaturized".
_SLOT_CLASSES = {"TextSlot": "text", "BooleanSlot": "bool", "CategoricalSlot": "categorical",
                 "FloatSlot": "float", "ListSlot": "list", "AnySlot": "any",
                 "UnfeaturizedSlot": "unfeaturized"}
_SLOT_KEYS = {"type", "influence_conversation", "initial_value", "values", "min_value",
              "max_value", "mappings", "auto_fill"}
_MAPPING_KEYS = {"type", "entity", "role", "group", "intent", "not_intent", "value", "action",
                 "conditions"}
_NEEDS_REQUESTED_SLOT = ("from_text", "from_intent", "custom")  # rasa data migrate's rule


@dataclass
class MappingCondition:
    """Fill only while ``active_loop`` is active (and ``requested_slot`` is asked, if given)."""

    active_loop: str | None
    requested_slot: str | None = None


@dataclass
class SlotMapping:
    type: str
    entity: str | None = None
    role: str | None = None
    group: str | None = None
    intent: list[str] | None = None
    not_intent: list[str] | None = None
    value: Any = None
    action: str | None = None
    conditions: list[MappingCondition] = field(default_factory=list)
    source: SourceLocation | None = field(default=None, compare=False)


@dataclass
class Slot:
    name: str
    type: str = "text"
    influence_conversation: bool = True
    initial_value: Any = None
    values: list[Any] = field(default_factory=list)  # categorical only
    min_value: float = 0.0  # float only
    max_value: float = 1.0
    mappings: list[SlotMapping] = field(default_factory=list)
    source: SourceLocation | None = field(default=None, compare=False)


@dataclass
class Form:
    name: str
    required_slots: list[str] = field(default_factory=list)
    ignored_intents: list[str] = field(default_factory=list)
    source: SourceLocation | None = field(default=None, compare=False)


# ---- slots ---------------------------------------------------------------------------------------
def slots_from_yaml(doc: LineDict, file, version: str | None,
                    entities: set[str]) -> dict[str, Slot]:
    """Slots of one domain file; 2.x and unversioned files get their ``auto_fill`` mapping."""
    major = version.split(".")[0] if version else None
    slots = {}
    for name, props in doc.items():
        line = doc.line_of(name)
        if not isinstance(props, dict):
            raise DataError(f"slot '{name}' must be a mapping with at least a 'type'", file, line,
                            hint=f"write '{name}: {{type: text, mappings: [{{type: custom}}]}}'")
        slots[str(name)] = _slot(str(name), props, file, line, major, entities)
    return slots


def _slot(name: str, props: LineDict, file, line: int, major: str | None,
          entities: set[str]) -> Slot:
    for key in props:
        if key not in _SLOT_KEYS:
            raise DataError(f"unknown key '{key}' in slot '{name}'", file, props.line_of(key),
                            hint="allowed: " + ", ".join(sorted(_SLOT_KEYS)))
    slot_type = _slot_type(name, props, file, line)
    influence = props.get("influence_conversation", slot_type not in ("any", "unfeaturized"))
    if not isinstance(influence, bool):
        raise DataError(f"influence_conversation of slot '{name}' must be true or false", file,
                        props.line_of("influence_conversation"), hint="write true or false")
    slot = Slot(name, "any" if slot_type == "unfeaturized" else slot_type,
                influence and slot_type not in ("any", "unfeaturized"),
                props.get("initial_value"), source=SourceLocation(str(file), line))
    if slot.type == "categorical":
        slot.values = _categorical_values(name, props, file, line)
    if slot.type == "float":
        slot.min_value, slot.max_value = _float_range(name, props, file)
    slot.mappings = _slot_mappings(name, props, file, line, major, entities)
    return slot


def _slot_type(name: str, props: LineDict, file, line: int) -> str:
    if "type" not in props:
        raise DataError(f"slot '{name}' has no type", file, line,
                        hint="add 'type:' (one of " + ", ".join(SLOT_TYPES) + ")")
    raw = str(props["type"])
    slot_type = _SLOT_CLASSES.get(raw.rsplit(".", 1)[-1], raw) if "." in raw else raw
    if slot_type not in SLOT_TYPES + ("unfeaturized",):
        raise DataError(f"unknown slot type '{raw}' for slot '{name}'", file,
                        props.line_of("type"), hint="use one of " + ", ".join(SLOT_TYPES) +
                        " (custom slot classes are not supported)")
    return slot_type


def _categorical_values(name: str, props: LineDict, file, line: int) -> list[Any]:
    values = props.get("values")
    if not isinstance(values, list) or not values:
        raise DataError(f"categorical slot '{name}' has no values", file,
                        props.line_of("values") if "values" in props else line,
                        hint="list them: values: [low, medium, high]")
    return list(values)


def _float_range(name: str, props: LineDict, file) -> tuple[float, float]:
    bounds = []
    for key, default in (("min_value", 0.0), ("max_value", 1.0)):
        value = props.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DataError(f"{key} of slot '{name}' must be a number, not '{value}'", file,
                            props.line_of(key), hint=f"write {key}: {default}")
        bounds.append(float(value))
    if bounds[0] > bounds[1]:
        raise DataError(f"slot '{name}' has min_value {bounds[0]} > max_value {bounds[1]}",
                        file, props.line_of("min_value"), hint="swap the two values")
    return bounds[0], bounds[1]


def _slot_mappings(name: str, props: LineDict, file, line: int, major: str | None,
                   entities: set[str]) -> list[SlotMapping]:
    if "auto_fill" in props and major == "3":
        raise DataError(f"slot '{name}' uses 'auto_fill', which Rasa 3.x removed", file,
                        props.line_of("auto_fill"),
                        hint="replace it with mappings: [{type: from_entity, entity: ...}]")
    if "mappings" in props:
        return mappings_from_yaml(props["mappings"], file, props.line_of("mappings"), name)
    if major == "3":
        raise DataError(f"slot '{name}' has no mappings; Rasa 3.x requires 'mappings' on every "
                        "slot", file, line, hint="add mappings: [{type: custom}] if a custom "
                        "action or form validation sets the slot")
    auto_fill = props.get("auto_fill", True)
    if auto_fill is True and name in entities:
        return [SlotMapping("from_entity", entity=name, source=SourceLocation(str(file), line))]
    return []  # 2.x: a custom mapping unless a form adds some (see add_default_mappings)


def add_default_mappings(slots: dict[str, Slot], version: str | None) -> None:
    """2.x/unversioned slots that nothing fills get ``[{type: custom}]``, as after migration."""
    if version and version.split(".")[0] == "3":
        return
    for slot in slots.values():
        if not slot.mappings:
            slot.mappings = [SlotMapping("custom", source=slot.source)]


def mappings_from_yaml(items: Any, file, line: int | None, slot: str) -> list[SlotMapping]:
    if not isinstance(items, list):
        raise DataError(f"mappings of slot '{slot}' must be a list", file, line,
                        hint="write mappings: [{type: from_entity, entity: ...}]")
    return [_mapping(item, file, items.line_of(i), slot) for i, item in enumerate(items)]


def _mapping(item: Any, file, line: int | None, slot: str) -> SlotMapping:
    if not isinstance(item, dict):
        raise DataError(f"a mapping of slot '{slot}' must be a mapping with a 'type'", file, line,
                        hint="write '- type: from_entity' and its entity on the next line")
    for key in item:
        if key not in _MAPPING_KEYS:
            raise DataError(f"unknown key '{key}' in a mapping of slot '{slot}'", file,
                            item.line_of(key), hint="allowed: " + ", ".join(sorted(_MAPPING_KEYS)))
    kind = item.get("type")
    if kind not in MAPPING_TYPES:
        raise DataError(f"unknown slot mapping type '{kind}' for slot '{slot}'", file,
                        item.line_of("type"), hint="use one of " + ", ".join(MAPPING_TYPES))
    if kind == "from_entity" and not item.get("entity"):
        raise DataError(f"from_entity mapping of slot '{slot}' names no entity", file, line,
                        hint="add 'entity: <entity name>'")
    if kind in ("from_intent", "from_trigger_intent") and "value" not in item:
        raise DataError(f"{kind} mapping of slot '{slot}' has no value", file, line,
                        hint="add 'value: ...' (the value the slot gets)")
    return SlotMapping(
        kind, _opt_str(item.get("entity")), _opt_str(item.get("role")),
        _opt_str(item.get("group")), _names(item.get("intent")), _names(item.get("not_intent")),
        item.get("value"), _opt_str(item.get("action")),
        _conditions(item.get("conditions"), file, item.line_of("conditions"), slot),
        SourceLocation(str(file), line))


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _names(value: Any) -> list[str] | None:
    if value is None:
        return None
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _conditions(items: Any, file, line, slot: str) -> list[MappingCondition]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise DataError(f"conditions of a mapping of slot '{slot}' must be a list", file, line,
                        hint="write conditions: [{active_loop: my_form}]")
    out = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or "active_loop" not in item or \
                set(item) - {"active_loop", "requested_slot"}:
            raise DataError(f"a mapping condition of slot '{slot}' must have 'active_loop' (and "
                            "optionally 'requested_slot') only", file, items.line_of(index),
                            hint="write - active_loop: my_form")
        out.append(MappingCondition(_opt_str(item["active_loop"]),
                                    _opt_str(item.get("requested_slot"))))
    return out


def slot_to_plain(slot: Slot) -> dict[str, Any]:
    out: dict[str, Any] = {"type": slot.type}
    if slot.type != "any":
        out["influence_conversation"] = slot.influence_conversation
    if slot.initial_value is not None:
        out["initial_value"] = slot.initial_value
    if slot.type == "categorical":
        out["values"] = slot.values
    if slot.type == "float":
        out["min_value"], out["max_value"] = slot.min_value, slot.max_value
    out["mappings"] = [_mapping_to_plain(m) for m in slot.mappings]
    return out


def _mapping_to_plain(mapping: SlotMapping) -> dict[str, Any]:
    out: dict[str, Any] = {"type": mapping.type}
    for key in ("entity", "role", "group", "action"):
        if getattr(mapping, key) is not None:
            out[key] = getattr(mapping, key)
    for key in ("intent", "not_intent"):
        names = getattr(mapping, key)
        if names is not None:
            out[key] = names[0] if len(names) == 1 else names
    if mapping.value is not None or mapping.type in ("from_intent", "from_trigger_intent"):
        out["value"] = mapping.value
    if mapping.conditions:
        out["conditions"] = [{"active_loop": c.active_loop} |
                             ({"requested_slot": c.requested_slot} if c.requested_slot else {})
                             for c in mapping.conditions]
    return out


# ---- forms ---------------------------------------------------------------------------------------
def forms_from_yaml(doc: LineDict | LineList, file, slots: dict[str, Slot]) -> dict[str, Form]:
    """Forms (3.x lists of slots, 2.x mappings per slot, or a 1.x list of form names).

    2.x form mappings move onto their slots with a condition on the form being active."""
    if isinstance(doc, list):
        return {str(name): Form(str(name), source=SourceLocation(str(file), doc.line_of(i)))
                for i, name in enumerate(doc)}
    forms = {}
    for name, props in doc.items():
        name, line = str(name), doc.line_of(name)
        props = LineDict() if props is None else props
        if not isinstance(props, dict):
            raise DataError(f"form '{name}' must be a mapping", file, line,
                            hint="write required_slots: [slot_a, slot_b] under the form name")
        form = Form(name, source=SourceLocation(str(file), line))
        form.ignored_intents = _ignored_intents(props, file)
        required = _required_slots(name, props, file)
        form.required_slots = [str(s) for s in required]
        _check_declared(form, required, slots, file)
        if isinstance(required, dict):
            _move_form_mappings(name, required, slots, file)
        forms[name] = form
    return forms


def _ignored_intents(props: LineDict, file) -> list[str]:
    ignored = props.get("ignored_intents")
    if ignored is None:
        return []
    return [str(i) for i in ignored] if isinstance(ignored, list) else [str(ignored)]


def _required_slots(name: str, props: LineDict, file) -> LineList | LineDict:
    if "required_slots" in props:
        extra = [k for k in props if k not in ("required_slots", "ignored_intents")]
        if extra:
            raise DataError(f"unknown key '{extra[0]}' in form '{name}'", file,
                            props.line_of(extra[0]), hint="a form has required_slots and "
                            "ignored_intents")
        required = props["required_slots"]
        if required is None:
            return LineList()
        if not isinstance(required, (list, dict)):
            raise DataError(f"required_slots of form '{name}' must be a list of slot names",
                            file, props.line_of("required_slots"), hint="write [slot_a, slot_b]")
        return required
    required = LineDict({k: v for k, v in props.items() if k != "ignored_intents"})  # 2.0 layout
    required.line, required.key_lines = props.line, props.key_lines
    return required


def _check_declared(form: Form, required: Any, slots: dict[str, Slot], file) -> None:
    for index, slot in enumerate(required):
        if str(slot) not in slots:
            line = required.line_of(slot) if isinstance(required, dict) else required.line_of(index)
            raise DataError(f"form '{form.name}' requires slot '{slot}', which is not declared "
                            "under 'slots:'", file, line, hint=f"declare '{slot}' under 'slots:'")


def _move_form_mappings(form: str, required: LineDict, slots: dict[str, Slot], file) -> None:
    for slot_name, items in required.items():
        slot = slots[str(slot_name)]
        for mapping in mappings_from_yaml(items or LineList(), file, required.line_of(slot_name),
                                          str(slot_name)):
            if not mapping.conditions:
                requested = str(slot_name) if mapping.type in _NEEDS_REQUESTED_SLOT else None
                mapping.conditions = [MappingCondition(form, requested)]
            if mapping not in slot.mappings:
                slot.mappings.append(mapping)
