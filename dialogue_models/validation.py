"""``dialab data validate``: consistency checks across NLU data, domain, stories and rules.

Parse errors are found while loading (see :func:`dialogue_models.project.load_bot`); this module
adds warnings for data that loads but disagrees with itself, each naming a file and line.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Iterator

from dialogue_models.events import DEFAULT_INTENTS
from dialogue_models.project import BotData
from dialogue_models.stories import ActionStep, ActiveLoop, OrStep, Rule, SlotWasSet, Story, UserStep
from nlu_models.data.errors import DataIssue, SourceLocation
from nlu_models.data.schema import Message
from nlu_models.tokenize import check_alignment

DEFAULT_ACTIONS = frozenset({
    "action_listen", "action_restart", "action_session_start", "action_default_fallback",
    "action_deactivate_loop", "action_revert_fallback_events", "action_default_ask_affirmation",
    "action_default_ask_rephrase", "action_two_stage_fallback", "action_unlikely_intent",
    "action_back", "action_extract_slots", "action_send_text",
})
MAX_LISTED = 5


def validate_bot(bot: BotData) -> list[DataIssue]:
    """All findings: the load errors already in ``bot.issues`` plus consistency warnings."""
    issues = list(bot.issues)
    issues += _duplicate_examples(bot.nlu.examples)
    issues += _examples_under_two_intents(bot.nlu.examples)
    issues += _test_examples_in_training(bot)
    issues += [DataIssue("warning", f"misaligned entity annotation: {m}")
               for m in check_alignment(bot.nlu.examples + bot.test_nlu.examples)]
    issues += _rule_story_contradictions(bot.stories.rules, bot.stories.stories)
    if _has_domain(bot):
        issues += _domain_consistency(bot)
    return issues


def _has_domain(bot: BotData) -> bool:
    domain = bot.domain
    return bool(domain.intents or domain.actions or domain.responses or domain.slots)


def _loc(message: Message) -> str:
    return str(message.source) if message.source else "?"


def _listing(messages: list[Message]) -> str:
    shown = ", ".join(_loc(m) for m in messages[:MAX_LISTED])
    return shown + (f" and {len(messages) - MAX_LISTED} more" if len(messages) > MAX_LISTED else "")


def _duplicate_examples(examples: list[Message]) -> list[DataIssue]:
    groups: dict[tuple[str, str | None], list[Message]] = defaultdict(list)
    for message in examples:
        groups[(message.text.strip(), message.intent)].append(message)
    repeated = sorted((g for g in groups.values() if len(g) > 1), key=len, reverse=True)
    if not repeated:
        return []
    extra = sum(len(g) - 1 for g in repeated)
    worst = "; ".join(f"'{g[0].text}' ({g[0].intent}) x{len(g)} at {_listing(g)}"
                      for g in repeated[:MAX_LISTED])
    first = repeated[0][0].source
    return [DataIssue(
        "warning",
        f"{len(repeated)} examples appear more than once ({extra} redundant copies among "
        f"{len(examples)} examples; {len(examples) - extra} unique). Most repeated: {worst}. "
        "Remove the copies: they weight those examples more in training.", first)]


def _examples_under_two_intents(examples: list[Message]) -> list[DataIssue]:
    by_text: dict[str, list[Message]] = defaultdict(list)
    for message in examples:
        by_text[message.text.strip().lower()].append(message)
    issues = []
    for group in by_text.values():
        intents = sorted({m.intent for m in group if m.intent})
        if len(intents) > 1:
            issues.append(DataIssue(
                "warning", f"the example '{group[0].text}' is listed under {len(intents)} "
                f"intents ({', '.join(intents)}) at {_listing(group)}; keep it under one",
                group[0].source))
    return issues


def _test_examples_in_training(bot: BotData) -> list[DataIssue]:
    training = {m.text.strip().lower() for m in bot.nlu.examples}
    leaked = [m for m in bot.test_nlu.examples if m.text.strip().lower() in training]
    if not leaked:
        return []
    return [DataIssue("warning", f"{len(leaked)} test examples also appear in the training data "
                      f"(e.g. '{leaked[0].text}' at {_listing(leaked)}); test scores will be "
                      "optimistic", leaked[0].source)]


# ---- stories and rules --------------------------------------------------------------------------
def _user_steps(step) -> Iterator[UserStep]:
    if isinstance(step, UserStep):
        yield step
    elif isinstance(step, OrStep):
        yield from (alt for alt in step.alternatives if isinstance(alt, UserStep))


def _all_steps(items: Iterable[Story | Rule]) -> Iterator[tuple[Story | Rule, object]]:
    for item in items:
        for step in list(getattr(item, "condition", []) or []) + list(item.steps):
            yield item, step


def _where(step, item) -> SourceLocation | None:
    return getattr(step, "source", None) or getattr(item, "source", None)


def _next_actions_after_intents(story: Story | Rule) -> Iterator[tuple[str, ActionStep, bool]]:
    """(intent, the action that follows it, whether a form/loop was active) for each user turn."""
    loop_active = False
    pending: list[str] = []
    for step in story.steps:
        if isinstance(step, ActiveLoop):
            loop_active = step.name is not None
        elif isinstance(step, (UserStep, OrStep)):
            pending = [u.intent for u in _user_steps(step) if u.intent]
        elif isinstance(step, ActionStep) and pending:
            for intent in pending:
                yield intent, step, loop_active
            pending = []


def _rule_story_contradictions(rules: list[Rule], stories: list[Story]) -> list[DataIssue]:
    """A rule 'intent X → action A' with no conditions applies everywhere; a story answering X
    with another action outside any form contradicts it (RulePolicy would refuse to train)."""
    rule_actions: dict[str, tuple[Rule, str]] = {}
    for rule in rules:
        if rule.condition or rule.conversation_start:
            continue
        if not rule.steps or not isinstance(rule.steps[0], (UserStep, OrStep)):
            continue
        for intent, action, _ in list(_next_actions_after_intents(rule))[:1]:
            if action.name:
                rule_actions.setdefault(intent, (rule, action.name))
    issues = []
    for story in stories:
        for intent, action, loop_active in _next_actions_after_intents(story):
            if loop_active or intent not in rule_actions or not action.name:
                continue
            rule, expected = rule_actions[intent]
            if action.name != expected:
                issues.append(DataIssue(
                    "warning", f"rule '{rule.name}' ({rule.source}) predicts '{expected}' after "
                    f"intent '{intent}', but story '{story.name}' has '{action.name}'; change "
                    "one of them or add a condition to the rule", _where(action, story)))
    return issues


# ---- domain ---------------------------------------------------------------------------------------
def _domain_consistency(bot: BotData) -> list[DataIssue]:
    domain = bot.domain
    intents = {i.name for i in domain.intents} | DEFAULT_INTENTS
    actions = set(domain.actions) | set(domain.responses) | set(domain.retrieval_actions) | \
        set(domain.forms) | DEFAULT_ACTIONS
    slots = set(domain.slots)
    entities = {e.name: e for e in domain.entities}
    issues: list[DataIssue] = []
    seen: set[tuple[str, str]] = set()
    greeting = domain.session_config.greeting
    if greeting and greeting not in domain.responses:
        issues.append(DataIssue("warning", f"session_config greeting '{greeting}' has no "
                                "response; add it under 'responses:'", None))

    def once(kind: str, name: str, message: str, where) -> None:
        if (kind, name) not in seen:
            seen.add((kind, name))
            issues.append(DataIssue("warning", message, where))

    for message in bot.nlu.examples:
        if message.retrieval_intent not in intents:
            once("nlu-intent", message.retrieval_intent,
                 f"intent '{message.intent}' has NLU examples but is not in the domain; add it "
                 "under 'intents:'", message.source)
        response = f"utter_{message.intent}"
        if message.response_key and response not in domain.responses | bot.nlu.responses:
            once("retrieval-response", response, f"retrieval intent '{message.intent}' has NLU "
                 f"examples but no response '{response}'; add it under 'responses:'",
                 message.source)
        for span in message.entities:
            _check_entity(span.entity, span.role, span.group, entities, message.source, once)
    stories = bot.stories.stories + bot.stories.rules + bot.test_stories.stories
    for item, step in _all_steps(stories):
        where = _where(step, item)
        for user in _user_steps(step):
            if user.intent and user.intent not in intents:
                once("story-intent", user.intent, f"intent '{user.intent}' is used in "
                     f"'{item.name}' but is not in the domain; add it under 'intents:'", where)
            for entity in user.entities:
                _check_entity(entity.entity, entity.role, entity.group, entities, where, once)
        if isinstance(step, ActionStep) and step.name and step.name not in actions:
            hint = ("add a response for it under 'responses:'" if step.name.startswith("utter_")
                    else "list it under 'actions:'")
            once("action", step.name, f"action '{step.name}' is used in '{item.name}' but is "
                 f"not in the domain; {hint}", where)
        if isinstance(step, ActiveLoop) and step.name and step.name not in actions:
            once("loop", step.name, f"active_loop '{step.name}' in '{item.name}' is not a form "
                 "or action of the domain; add it under 'forms:'", where)
        if isinstance(step, SlotWasSet):
            for name, _value in step.slots:
                if name not in slots and name != "requested_slot":
                    once("slot", name, f"slot '{name}' is set in '{item.name}' but is not in "
                         "the domain; add it under 'slots:'", where)
    used = {m.retrieval_intent for m in bot.nlu.examples}
    for intent in domain.intents:
        if intent.name not in used and bot.nlu.examples:
            once("unused-intent", intent.name, f"intent '{intent.name}' is in the domain but has "
                 "no NLU training examples", getattr(intent, "source", None))
    return issues


def _check_entity(name, role, group, entities, where, once) -> None:
    spec = entities.get(name)
    if spec is None:
        once("entity", name, f"entity '{name}' is annotated but not declared in the domain; add "
             "it under 'entities:'", where)
        return
    if role is not None and role not in (spec.roles or []):
        once("role", f"{name}.{role}", f"role '{role}' of entity '{name}' is not declared in the "
             f"domain; add it under '{name}: {{roles: [...]}}'", where)
    if group is not None and group not in (spec.groups or []):
        once("group", f"{name}.{group}", f"group '{group}' of entity '{name}' is not declared in "
             f"the domain; add it under '{name}: {{groups: [...]}}'", where)
