"""RulePolicy: rules, active loops (forms), default intents and the core fallback.

Rasa 3.x parity (``rasa/core/policies/rule_policy.py``), in the order a prediction is made:

1. **Default intents**: right after a user message with intent ``restart`` / ``back`` /
   ``session_start``, predict ``action_restart`` / ``action_back`` / ``action_session_start``.
2. **Loop happy path** (``is_no_user_prediction=True``): while a loop (form) is active and has
   not rejected its execution, predict ``action_listen`` right after the loop ran, and the loop
   itself after any other action.
3. **Rules**: rule trackers (:func:`~dialogue_models.policies.rule_data.rule_trackers`) become
   partial state sequences, each predicting one action: the states after the rule snippet
   ``...``, with only the slots the rule sets (``omit_unset_slots``) and ``null`` meaning "must
   not be set". A rule applies when its states, aligned at the end of the conversation, are
   each a subset of the conversation state there; a state without a previous action (a
   ``conversation_start`` rule) only matches the conversation start. The most specific
   applicable rule wins. In an active loop, ``action_listen`` predicted by a rule that does not
   name the loop becomes the loop again (the loop resumes after a general rule), unless a story
   or rule shows that the loop is not predicted in that situation (Rasa's
   ``do_not_predict_loop_action`` unhappy-path lookup).
4. **Fallback**: no rule applies → ``core_fallback_action_name`` with confidence
   ``core_fallback_threshold`` (``enable_fallback_prediction``), so any other policy more
   confident than the threshold wins in the ensemble.

Training (``restrict_rules``, ``check_for_contradictions``) raises :class:`InvalidRule` for a
rule with more than one user message, for two rules that predict different actions in the same
situation, and for rules contradicted by a story: every non-augmented story and rule tracker
is replayed and each predictable action compared with the policy's (Rasa's ``InvalidRule``
messages; a loop prediction that the story does not follow is first retried as if the loop
had rejected, as ``rasa test`` does).

Simplifications (dialab):

* ``rules_interrupt_loops`` (default True): with a loop active and the user having just spoken,
  a matching rule that predicts another action wins over the loop at once. Rasa runs the loop
  first and consults the rules only after the loop rejected the message (an action server's
  ``ActionExecutionRejected``, honoured here too); without a running form this is the
  closest deterministic stand-in. Contradiction checks replay with Rasa's order.
* "Most specific" is the rule with the most states, then the most named features (Rasa takes
  the longest JSON key). Rule keys are matched on intent, or on text when a message has no
  intent, in one pass (Rasa runs a text pass, then an intent pass); a rule whose user turn is
  a text is flagged ``is_end_to_end``.
* Not modelled: ``LoopInterrupted`` events (``loop_was_interrupted``), the "incomplete rules"
  fingerprint check, ``rules_not_in_stories`` / rule-only slots and loops (which Rasa hides
  from the ML policies), and deleting rules that predict ``action_listen`` after an
  unpredictable action (Rasa's ``_should_delete``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Mapping, Sequence

from dialogue_models.domain import Domain
from dialogue_models.events import (ACTION_DEFAULT_FALLBACK, ACTION_LISTEN, ACTION_RESTART,
                                    ACTION_SESSION_START, ActionExecuted, UserUttered)
from dialogue_models.policies.base import Policy, PolicyPrediction
from dialogue_models.policies.rule_data import (RULE_SNIPPET_ACTION, SHOULD_NOT_BE_SET,
                                                active_loop_name, after_snippet,
                                                emulate_loop_rejection, freeze,
                                                is_active_loop_rejected, named_features,
                                                policy_states, rule_applies)
from dialogue_models.states import DialogueSpace, State, state_key, tracker_actions
from dialogue_models.tracker import Tracker

DEFAULT_ACTION_MAPPINGS = {"restart": ACTION_RESTART, "back": "action_back",
                           "session_start": ACTION_SESSION_START}
ALLOWED_USER_MESSAGES = 1


class InvalidRule(ValueError):
    """Rules that cannot be trained: too long, contradicting each other or the stories."""


@dataclass
class RuleEntry:
    """One learned rule step: partial ``states`` → ``action``, from the rules named."""

    states: list[State]
    action: str
    rules: list[str] = field(default_factory=list)

    @property
    def specificity(self) -> tuple[int, int]:
        return len(self.states), named_features(self.states)


@dataclass
class RuleDecision:
    """What the policy decided and why (``source``: rule names or a built-in rule)."""

    action: str | None
    source: list[str] = field(default_factory=list)
    is_no_user_prediction: bool = False
    is_end_to_end: bool = False


class RulePolicy(Policy):
    """Rules, forms, default intents and the core fallback (priority 4: the highest)."""

    name: ClassVar[str] = "RulePolicy"
    default_priority: ClassVar[int] = 4

    def __init__(self, priority: int | None = None, core_fallback_threshold: float = 0.3,
                 core_fallback_action_name: str = ACTION_DEFAULT_FALLBACK,
                 enable_fallback_prediction: bool = True, restrict_rules: bool = True,
                 check_for_contradictions: bool = True,
                 use_nlu_confidence_as_score: bool = False,
                 rules_interrupt_loops: bool = True) -> None:
        super().__init__(priority)
        self.core_fallback_threshold = core_fallback_threshold
        self.core_fallback_action_name = core_fallback_action_name
        self.enable_fallback_prediction = enable_fallback_prediction
        self.restrict_rules = restrict_rules
        self.check_for_contradictions = check_for_contradictions
        self.use_nlu_confidence_as_score = use_nlu_confidence_as_score
        self.rules_interrupt_loops = rules_interrupt_loops
        self.rules: list[RuleEntry] = []  # most specific first
        self.loop_unhappy_paths: list[list[State]] = []  # where the loop is not predicted
        self.rule_sources: dict[str, str] = {}  # rule name → file:line
        self.rule_clashes: list[str] = []  # rules predicting different actions, same states

    # ---- training ------------------------------------------------------------------------------
    def train(self, trackers: Sequence[Tracker], domain: Domain, space: DialogueSpace,
              **kwargs: Any) -> None:
        """Learn from the rule trackers (``is_rule``); story trackers feed the unhappy-loop
        lookup and the contradiction check. Augmented trackers are ignored."""
        self.space = space
        if self.enable_fallback_prediction and self.core_fallback_action_name not in space.actions:
            raise InvalidRule(f"the fallback action '{self.core_fallback_action_name}' of the "
                              f"{self.name} is not in the domain")
        trackers = [t for t in trackers if not t.is_augmented]
        rule_trackers = [t for t in trackers if t.is_rule]
        self.rule_sources = {t.name: str(t.source) for t in rule_trackers
                             if getattr(t, "source", None) is not None}
        if self.restrict_rules:
            self._check_restriction(rule_trackers)
        self._learn_rules(rule_trackers)
        self._learn_loop_unhappy_paths(trackers)
        if self.check_for_contradictions:
            problems = self.find_contradictions(trackers)
            if problems:
                raise InvalidRule("Contradicting rules or stories found:\n" + "\n".join(problems)
                                  + "\nUpdate the stories and rules so that they don't "
                                  "contradict each other.")

    def _check_restriction(self, rule_trackers: Sequence[Tracker]) -> None:
        found: dict[str, int] = {}
        for tracker in rule_trackers:
            count = sum(isinstance(e, UserUttered) for e in tracker.events)
            if count > ALLOWED_USER_MESSAGES:
                found[tracker.name] = count
        if found:
            lines = [f"- rule '{name}' ({self._where(name)}) has {count} user messages"
                     for name, count in found.items()]
            raise InvalidRule(f"Found rules with more than {ALLOWED_USER_MESSAGES} user message:"
                              "\n" + "\n".join(lines) + "\nRules are not meant to hardcode a "
                              "state machine: write these as stories (or set restrict_rules: "
                              "false).")

    def _learn_rules(self, rule_trackers: Sequence[Tracker]) -> None:
        """Build the rule lookup; keys two rules disagree on are dropped and described in
        ``rule_clashes``."""
        lookup: dict[str, RuleEntry] = {}
        clashes: dict[str, dict[str, list[str]]] = {}
        for tracker in rule_trackers:
            states = policy_states(tracker, self._space(), omit_unset_slots=True)
            for index, action in enumerate(tracker_actions(tracker)):
                key_states = after_snippet(states[:index + 1])
                if action == RULE_SNIPPET_ACTION or not key_states:
                    continue
                key = state_key(key_states)
                if key in clashes:
                    _add(clashes[key].setdefault(action, []), tracker.name)
                elif key not in lookup:
                    lookup[key] = RuleEntry(key_states, action, [tracker.name])
                elif lookup[key].action == action:
                    _add(lookup[key].rules, tracker.name)
                else:
                    entry = lookup.pop(key)
                    clashes[key] = {entry.action: entry.rules, action: [tracker.name]}
        unknown = {(e.action, r) for e in lookup.values() for r in e.rules
                   if e.action not in self._space().actions}
        if unknown:
            raise InvalidRule("Rules use actions that are not in the domain:\n" + "\n".join(
                f"- rule '{r}' ({self._where(r)}) uses '{a}'" for a, r in sorted(unknown))
                + "\nAdd them to the domain (responses or actions) or fix the rule.")
        self.rules = sorted(lookup.values(), key=lambda e: (-e.specificity[0],
                                                            -e.specificity[1],
                                                            state_key(e.states)))
        self.rule_clashes = [("- rules " + ", ".join(f"'{r}' ({self._where(r)}) predict '{a}'"
                                        for a, rules in by_action.items() for r in rules)
                 + " in the same situation") for by_action in clashes.values()]

    def _learn_loop_unhappy_paths(self, trackers: Sequence[Tracker]) -> None:
        """Situations in an active loop where something other than the loop follows an action
        (Rasa's ``do_not_predict_loop_action``): the previous action and the current state."""
        found: dict[str, list[State]] = {}
        for tracker in trackers:
            states = policy_states(tracker, self._space(), omit_unset_slots=tracker.is_rule)
            for index, action in enumerate(tracker_actions(tracker)):
                loop = _loop_of(states[index])
                prev = states[index].get("prev_action", {}).get("action_name")
                if (not loop or action in (loop, RULE_SNIPPET_ACTION)
                        or prev == ACTION_LISTEN):
                    continue
                before = states[index - 1].get("prev_action") if index else None
                key_states = after_snippet(([{"prev_action": before}] if before else [])
                                           + [states[index]])
                if key_states:
                    found.setdefault(state_key(key_states), key_states)
        self.loop_unhappy_paths = list(found.values())

    # ---- prediction ----------------------------------------------------------------------------
    def predict(self, tracker: Tracker, domain: Domain) -> PolicyPrediction:
        decision = self.decide(tracker)
        if decision.action is None:
            if not self.enable_fallback_prediction:
                return self.abstain()
            return self.one_hot(self.core_fallback_action_name, self.core_fallback_threshold,
                                diagnostics={"rules": [], "fallback": True})
        message = tracker.latest_message
        score = (message.intent_confidence if self.use_nlu_confidence_as_score and message
                 else 1.0)
        return self.one_hot(decision.action, score,
                            is_no_user_prediction=decision.is_no_user_prediction,
                            is_end_to_end=decision.is_end_to_end,
                            diagnostics={"rules": list(decision.source)})

    def decide(self, tracker: Tracker, rules_interrupt_loops: bool | None = None
               ) -> RuleDecision:
        """The action the rules give for ``tracker`` (None: no rule applies) and its source."""
        interrupt = self.rules_interrupt_loops if rules_interrupt_loops is None \
            else rules_interrupt_loops
        latest, message = tracker.latest_action_name, tracker.latest_message
        if latest == ACTION_LISTEN and message and message.intent in DEFAULT_ACTION_MAPPINGS:
            return RuleDecision(DEFAULT_ACTION_MAPPINGS[message.intent],
                                [f"default rule for intent '{message.intent}'"])
        loop = active_loop_name(tracker)
        if loop and latest and not is_active_loop_rejected(tracker):
            happy = [f"handling active loop '{loop}'"]
            if latest == loop:
                return RuleDecision(ACTION_LISTEN, happy, is_no_user_prediction=True)
            if latest == ACTION_LISTEN and interrupt:
                found = self._from_rules(tracker, loop)
                if found.action not in (None, ACTION_LISTEN, loop):
                    return found
            return RuleDecision(loop, happy, is_no_user_prediction=True)
        return self._from_rules(tracker, loop)

    def _from_rules(self, tracker: Tracker, loop: str | None) -> RuleDecision:
        states = policy_states(tracker, self._space())
        entry = next((e for e in self.rules if rule_applies(e.states, states)), None)
        if entry is None:
            return RuleDecision(None)
        if loop and entry.action == ACTION_LISTEN and not _loop_of(entry.states[-1]):
            # a general rule ended inside the loop: the loop resumes, unless stories say not
            if any(rule_applies(u, states) for u in self.loop_unhappy_paths):
                return RuleDecision(None, entry.rules)
            return RuleDecision(loop, entry.rules)
        text_based = any("text" in s.get("user", {}) for s in entry.states)
        return RuleDecision(entry.action, entry.rules, is_end_to_end=text_based)

    # ---- contradictions ------------------------------------------------------------------------
    def find_contradictions(self, trackers: Sequence[Tracker]) -> list[str]:
        """Rules that clash with each other, then a replay of every non-augmented tracker: one
        message per action a rule predicts differently (Rasa's ``InvalidRule`` wording). The
        policy must be trained (on the rule trackers among ``trackers``)."""
        messages = list(self.rule_clashes)
        for tracker in trackers:
            if tracker.is_augmented:
                continue
            for gold, decision in self._replay(tracker):
                if decision.action is None or decision.action == gold:
                    continue
                kind = "rule" if tracker.is_rule else "story"
                rules = ", ".join(f"'{r}' ({self._where(r)})" if r in self.rule_sources
                                  else f"'{r}'" for r in decision.source)
                messages.append(f"- the prediction of the action '{gold}' in {kind} "
                                f"'{tracker.name}' is contradicting with rule(s) {rules} "
                                f"which predicted action '{decision.action}'.")
        return list(dict.fromkeys(messages))

    def _replay(self, tracker: Tracker) -> Iterator[tuple[str, RuleDecision]]:
        """Each predictable action of ``tracker`` with the decision made just before it. The
        first action, and the one after a rule snippet ``...``, are not predictable."""
        running = Tracker(tracker.sender_id, tracker.declared_slots, name=tracker.name,
                          is_rule=tracker.is_rule)
        unpredictable = True
        for event in tracker.applied_events():
            if isinstance(event, ActionExecuted):
                if event.label == RULE_SNIPPET_ACTION:
                    unpredictable = True
                elif unpredictable:
                    unpredictable = False
                else:
                    yield event.label, self._decide_like_rasa_test(running, event.label)
            running.update(event)

    def _decide_like_rasa_test(self, running: Tracker, gold: str) -> RuleDecision:
        decision = self.decide(running, rules_interrupt_loops=False)
        loop = active_loop_name(running)
        if loop and decision.action == loop and gold != loop:
            emulate_loop_rejection(running)
            decision = self.decide(running, rules_interrupt_loops=False)
        return decision

    def _where(self, rule: str) -> str:
        return self.rule_sources.get(rule, "unknown file")

    # ---- persistence ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "priority": self.priority, **self._settings(),
                "space": self._space().to_dict(),
                "rules": [{"states": e.states, "action": e.action, "rules": e.rules}
                          for e in self.rules],
                "loop_unhappy_paths": self.loop_unhappy_paths,
                "rule_sources": dict(self.rule_sources)}

    def _settings(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (
            "core_fallback_threshold", "core_fallback_action_name", "enable_fallback_prediction",
            "restrict_rules", "check_for_contradictions", "use_nlu_confidence_as_score",
            "rules_interrupt_loops")}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RulePolicy":
        policy = cls(priority=data["priority"],
                     **{k: data[k] for k in cls()._settings() if k in data})
        policy.space = DialogueSpace.from_dict(data["space"])
        policy.rules = [RuleEntry([freeze(s) for s in e["states"]], e["action"], list(e["rules"]))
                        for e in data["rules"]]
        policy.loop_unhappy_paths = [[freeze(s) for s in states]
                                     for states in data["loop_unhappy_paths"]]
        policy.rule_sources = dict(data.get("rule_sources", {}))
        return policy


def find_contradictions(trackers: Sequence[Tracker], domain: Domain,
                        space: DialogueSpace | None = None) -> list[str]:
    """The contradictions between the rules and stories among ``trackers`` (rule trackers
    and story trackers), as messages, without raising."""
    policy = RulePolicy(check_for_contradictions=False, restrict_rules=False)
    policy.train(trackers, domain, space or DialogueSpace.from_domain(domain))
    return policy.find_contradictions(trackers)


def _loop_of(state: State) -> str | None:
    name = state.get("active_loop", {}).get("name")
    return None if name in (None, SHOULD_NOT_BE_SET) else name


def _add(names: list[str], name: str) -> None:
    if name not in names:
        names.append(name)
