"""A domain read off the stories, for story-only data sets (the TED paper's sub-dialogue data
ships no domain.yml). Intents, entities, slots and actions are collected as they appear;
slots become text slots that influence the conversation, and the domain counts as 2.x, so
entities fill the slots of the same name as in the Rasa version the data was written for."""
from __future__ import annotations

from typing import Iterator

from dialogue_models.domain import Domain, EntitySpec, IntentSpec
from dialogue_models.domain_slots import Slot
from dialogue_models.story_model import (ActionStep, ActiveLoop, OrStep, SlotWasSet, Step,
                                         StoryData, UserStep)


def infer_domain(*datasets: StoryData) -> Domain:
    domain = Domain(version="2.0")
    intents: dict[str, None] = {}
    entities: dict[str, None] = {}
    slots: dict[str, None] = {}
    actions: dict[str, None] = {}
    for data in datasets:
        for item in list(data.stories) + list(data.rules):
            for step in _flat(list(item.steps) + list(getattr(item, "condition", []))):
                if isinstance(step, UserStep):
                    if step.intent:
                        intents.setdefault(step.intent)
                    for entity in step.entities:
                        entities.setdefault(entity.entity)
                elif isinstance(step, ActionStep) and step.name:
                    actions.setdefault(step.name)
                elif isinstance(step, SlotWasSet):
                    for name, _ in step.slots:
                        slots.setdefault(name)
                elif isinstance(step, ActiveLoop) and step.name:
                    actions.setdefault(step.name)
    domain.intents = [IntentSpec(name) for name in intents]
    domain.entities = [EntitySpec(name) for name in entities]
    domain.slots = {name: Slot(name, "text") for name in slots}
    domain.actions = list(actions)
    domain.warnings.append("domain inferred from the stories (no domain.yml)")
    return domain


def _flat(steps: list[Step]) -> Iterator[Step]:
    for step in steps:
        if isinstance(step, OrStep):
            yield from step.alternatives
        else:
            yield step
