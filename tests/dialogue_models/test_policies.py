"""Memoization, rule policy and ensemble: Rasa's behaviours on small hand-written bots and on
the demo bot."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import pytest

from dialogue_models.domain import domain_from_yaml
from dialogue_models.events import (ACTION_LISTEN, ActionExecuted, ActionExecutionRejected,
                                    ActiveLoop, UserUttered)
from dialogue_models.generation import generate_trackers, story_tracker
from dialogue_models.policies import (POLICY_REGISTRY, AugmentedMemoizationPolicy, InvalidRule,
                                      MemoizationPolicy, Policy, PolicyEnsemble,
                                      PolicyPrediction, RulePolicy, emulate_loop_rejection,
                                      find_contradictions, rule_trackers, training_trackers)
from dialogue_models.project import load_bot
from dialogue_models.states import DialogueSpace
from dialogue_models.stories import stories_from_yaml
from dialogue_models.tracker import Tracker
from nlu_models.data.yaml_io import parse_yaml

DEMO_BOT = Path(__file__).resolve().parents[2] / "data" / "demo_bot"
DOMAIN = """
version: "3.1"
intents: [greet, goodbye, thank, bot_challenge, order, inform, check_balance, faq, affirm,
          deny, restart]
entities: [size]
slots:
  logged_in: {type: bool, mappings: [{type: custom}]}
  size: {type: text, mappings: [{type: from_entity, entity: size}]}
forms:
  pizza_form: {required_slots: [size]}
responses:
  utter_greet: [{text: hi}]
  utter_intro: [{text: I am a bot}]
  utter_hello: [{text: hello}]
  utter_goodbye: [{text: bye}]
  utter_welcome: [{text: welcome}]
  utter_iamabot: [{text: a bot}]
  utter_faq: [{text: answer}]
  utter_did_it_help: [{text: "helped?"}]
  utter_ask_continue: [{text: "continue?"}]
  utter_please_log_in: [{text: log in first}]
actions: [action_balance, action_order]
"""


# ---- helpers -------------------------------------------------------------------------------------
def _domain():
    return domain_from_yaml(parse_yaml(DOMAIN, "domain.yml"), "domain.yml")


def _data(text: str):
    return stories_from_yaml(parse_yaml(text, "data.yml"), "data.yml")


def _conversation(domain, steps: str) -> Tracker:
    """The tracker of one conversation written as story steps (no final listen)."""
    data = _data("stories:\n- story: test\n  steps:\n" + steps)
    return story_tracker(data.stories[0], domain)


def _trained(policy: Policy, text: str, augmentation: int = 0) -> tuple[Policy, Any]:
    domain = _domain()
    data = _data(text)
    trackers = generate_trackers(data, domain, augmentation_factor=augmentation) \
        + rule_trackers(data.rules, domain)
    policy.train(trackers, domain, DialogueSpace.from_domain(domain))
    return policy, domain


def _next(policy: Policy, tracker: Tracker, domain) -> tuple[str | None, float]:
    prediction = policy.predict(tracker, domain)
    return prediction.action(policy.space), prediction.max_confidence


def _user(intent: str) -> list:
    return [ActionExecuted(ACTION_LISTEN), UserUttered(intent=intent)]


STORIES = """
stories:
- story: greet
  steps:
  - intent: greet
  - action: utter_greet
  - intent: thank
  - action: utter_welcome
- story: balance
  steps:
  - intent: check_balance
  - action: action_balance
  - intent: goodbye
  - action: utter_goodbye
"""


# ---- memoization ---------------------------------------------------------------------------------
def test_memoization_recalls_an_exact_story_and_abstains_otherwise():
    policy, domain = _trained(MemoizationPolicy(max_history=5), STORIES)
    tracker = _conversation(domain, "  - intent: greet\n  - action: utter_greet\n"
                                    "  - intent: thank\n")
    assert _next(policy, tracker, domain) == ("utter_welcome", 1.0)
    assert _next(policy, _conversation(domain, "  - intent: greet\n"), domain) == \
        ("utter_greet", 1.0)
    unseen = _conversation(domain, "  - intent: thank\n")
    assert _next(policy, unseen, domain) == (None, 0.0)
    assert policy.priority == 3


def test_memoization_skips_augmented_and_rule_trackers():
    policy, domain = _trained(MemoizationPolicy(), STORIES, augmentation=5)
    glued = _conversation(domain, "  - intent: greet\n  - action: utter_greet\n"
                                  "  - intent: thank\n  - action: utter_welcome\n"
                                  "  - intent: check_balance\n")
    assert _next(policy, glued, domain) == (None, 0.0)  # only augmented trackers hold this


def test_memoization_drops_a_key_seen_with_two_actions():
    policy, domain = _trained(MemoizationPolicy(), STORIES + """
- story: greet differently
  steps:
  - intent: greet
  - action: utter_hello
""")
    assert _next(policy, _conversation(domain, "  - intent: greet\n"), domain) == (None, 0.0)
    balance = _conversation(domain, "  - intent: check_balance\n")
    assert _next(policy, balance, domain) == ("action_balance", 1.0)


def test_augmented_memoization_finds_a_story_start_later_in_the_conversation():
    plain, domain = _trained(MemoizationPolicy(max_history=5), STORIES)
    augmented, _ = _trained(AugmentedMemoizationPolicy(max_history=5), STORIES)
    later = _conversation(domain, "  - intent: check_balance\n  - action: action_balance\n"
                                  "  - intent: greet\n")
    assert _next(plain, later, domain) == (None, 0.0)
    assert _next(augmented, later, domain) == ("utter_greet", 1.0)
    assert augmented.name == "AugmentedMemoizationPolicy"


@pytest.mark.parametrize("cls", [MemoizationPolicy, AugmentedMemoizationPolicy])
def test_memoization_json_round_trip_keeps_predictions(cls):
    policy, domain = _trained(cls(max_history=3), STORIES)
    loaded = cls.from_dict(json.loads(json.dumps(policy.to_dict())))
    assert type(loaded) is cls and loaded.max_history == 3
    for steps in ("  - intent: greet\n", "  - intent: check_balance\n  - action: action_balance\n"
                  "  - intent: goodbye\n", "  - intent: goodbye\n"):
        tracker = _conversation(domain, steps)
        assert _next(loaded, tracker, domain) == _next(policy, tracker, domain)


# ---- rules ---------------------------------------------------------------------------------------
RULES = """
rules:
- rule: welcome at the start
  conversation_start: true
  steps:
  - intent: greet
  - action: utter_greet
  - action: utter_intro
- rule: say goodbye
  steps:
  - intent: goodbye
  - action: utter_goodbye
- rule: bot challenge
  steps:
  - intent: bot_challenge
  - action: utter_iamabot
- rule: balance when logged in
  condition:
  - slot_was_set: [{logged_in: true}]
  steps:
  - intent: check_balance
  - action: action_balance
- rule: balance when not logged in
  condition:
  - slot_was_set: [{logged_in: null}]
  steps:
  - intent: check_balance
  - action: utter_please_log_in
- rule: faq, then ask whether it helped
  steps:
  - intent: faq
  - action: utter_faq
  wait_for_user_input: false
- rule: start the form
  steps:
  - intent: order
  - action: pizza_form
  - active_loop: pizza_form
- rule: leaving the form
  condition:
  - active_loop: pizza_form
  steps:
  - intent: deny
  - action: utter_ask_continue
- rule: deny outside a form
  condition:
  - active_loop: null
  steps:
  - intent: deny
  - action: utter_hello
- rule: submit the form
  condition:
  - active_loop: pizza_form
  steps:
  - action: pizza_form
  - active_loop: null
  - action: action_order
"""


@pytest.fixture(scope="module")
def rules():
    return _trained(RulePolicy(), RULES)


def test_rule_fires_in_the_middle_of_a_conversation(rules):
    policy, domain = rules
    tracker = _conversation(domain, "  - intent: check_balance\n  - action: utter_please_log_in\n"
                                    "  - intent: thank\n  - action: utter_welcome\n"
                                    "  - intent: goodbye\n")
    prediction = policy.predict(tracker, domain)
    assert (prediction.action(policy.space), prediction.max_confidence) == ("utter_goodbye", 1.0)
    assert prediction.diagnostics["rules"] == ["say goodbye"] and policy.priority == 4
    tracker.update(ActionExecuted("utter_goodbye"))
    assert _next(policy, tracker, domain) == (ACTION_LISTEN, 1.0)


def test_conversation_start_rule_only_matches_at_the_start(rules):
    policy, domain = rules
    start = _conversation(domain, "  - intent: greet\n")
    assert _next(policy, start, domain) == ("utter_greet", 1.0)
    start.update(ActionExecuted("utter_greet"))
    assert _next(policy, start, domain) == ("utter_intro", 1.0)
    later = _conversation(domain, "  - intent: bot_challenge\n  - action: utter_iamabot\n"
                                  "  - intent: greet\n")
    assert _next(policy, later, domain) == ("action_default_fallback", 0.3)


def test_slot_condition_and_null_slot_condition(rules):
    policy, domain = rules
    logged_in = _conversation(domain, "  - slot_was_set: [{logged_in: true}]\n"
                                      "  - intent: check_balance\n")
    assert _next(policy, logged_in, domain) == ("action_balance", 1.0)
    anonymous = _conversation(domain, "  - intent: check_balance\n")
    assert _next(policy, anonymous, domain) == ("utter_please_log_in", 1.0)
    logged_out = _conversation(domain, "  - slot_was_set: [{logged_in: false}]\n"
                                       "  - intent: check_balance\n")  # set, but not true
    assert _next(policy, logged_out, domain) == ("action_default_fallback", 0.3)


def test_active_loop_condition_and_null_active_loop_condition(rules):
    policy, domain = rules
    outside = _conversation(domain, "  - intent: deny\n")
    assert _next(policy, outside, domain) == ("utter_hello", 1.0)
    inside = _conversation(domain, "  - intent: order\n  - action: pizza_form\n"
                                   "  - active_loop: pizza_form\n  - intent: deny\n")
    assert _next(policy, inside, domain) == ("utter_ask_continue", 1.0)


def test_wait_for_user_input_false_learns_no_listen_after_the_rule(rules):
    policy, domain = rules
    tracker = _conversation(domain, "  - intent: faq\n  - action: utter_faq\n")
    assert _next(policy, tracker, domain) == ("action_default_fallback", 0.3)
    goodbye = _conversation(domain, "  - intent: goodbye\n  - action: utter_goodbye\n")
    assert _next(policy, goodbye, domain) == (ACTION_LISTEN, 1.0)


def test_active_loop_predicts_the_form_then_listen_as_no_user_predictions(rules):
    policy, domain = rules
    tracker = _conversation(domain, "  - intent: order\n")
    assert _next(policy, tracker, domain) == ("pizza_form", 1.0)
    tracker.update(ActionExecuted("pizza_form"))
    tracker.update(ActiveLoop("pizza_form"))
    after_form = policy.predict(tracker, domain)
    assert after_form.action(policy.space) == ACTION_LISTEN and after_form.is_no_user_prediction
    for event in _user("inform"):
        tracker.update(event)
    form = policy.predict(tracker, domain)
    assert form.action(policy.space) == "pizza_form" and form.is_no_user_prediction
    tracker.update(ActionExecuted("pizza_form"))
    tracker.update(ActiveLoop(None))
    done = policy.predict(tracker, domain)  # the submit rule, not the loop
    assert (done.action(policy.space), done.is_no_user_prediction) == ("action_order", False)


def test_general_rule_inside_a_rejected_loop_returns_to_the_loop(rules):
    policy, domain = rules
    tracker = _conversation(domain, "  - intent: order\n  - action: pizza_form\n"
                                    "  - active_loop: pizza_form\n  - intent: bot_challenge\n")
    assert _next(policy, tracker, domain) == ("utter_iamabot", 1.0)  # the rule interrupts
    tracker.update(ActionExecutionRejected("pizza_form"))  # Rasa: the form rejected first
    assert _next(policy, tracker, domain) == ("utter_iamabot", 1.0)
    tracker.update(ActionExecuted("utter_iamabot"))
    # "bot challenge" ends with action_listen; inside the loop the loop resumes instead
    assert _next(policy, tracker, domain) == ("pizza_form", 1.0)


def test_default_intent_and_fallback_settings(rules):
    policy, domain = rules
    assert _next(policy, _conversation(domain, "  - intent: restart\n"), domain) == \
        ("action_restart", 1.0)
    silent, _ = _trained(RulePolicy(enable_fallback_prediction=False), RULES)
    unknown = _conversation(domain, "  - intent: thank\n")
    assert _next(silent, unknown, domain) == (None, 0.0)
    custom, _ = _trained(RulePolicy(core_fallback_threshold=0.4,
                                    core_fallback_action_name="utter_hello"), RULES)
    assert _next(custom, unknown, domain) == ("utter_hello", 0.4)


def test_rule_policy_json_round_trip_keeps_predictions(rules):
    policy, domain = rules
    loaded = RulePolicy.from_dict(json.loads(json.dumps(policy.to_dict())))
    for steps in ("  - intent: greet\n", "  - slot_was_set: [{logged_in: true}]\n"
                  "  - intent: check_balance\n", "  - intent: order\n  - action: pizza_form\n"
                  "  - active_loop: pizza_form\n  - intent: deny\n", "  - intent: thank\n",
                  "  - intent: faq\n  - action: utter_faq\n"):
        tracker = _conversation(domain, steps)
        assert _next(loaded, tracker, domain) == _next(policy, tracker, domain)


def test_contradiction_between_a_rule_and_a_story_names_both():
    story = """
stories:
- story: greet with hello
  steps:
  - intent: bot_challenge
  - action: utter_iamabot
  - intent: goodbye
  - action: utter_welcome
"""
    with pytest.raises(InvalidRule) as error:
        _trained(RulePolicy(), RULES + story)
    message = str(error.value)
    assert "say goodbye" in message and "greet with hello" in message
    assert "'utter_welcome'" in message and "'utter_goodbye'" in message
    assert "data.yml:" in message  # where the rule is
    domain = _domain()
    data = _data(RULES + story)
    trackers = generate_trackers(data, domain, augmentation_factor=0) \
        + rule_trackers(data.rules, domain)
    assert len(find_contradictions(trackers, domain)) == 1
    _trained(RulePolicy(check_for_contradictions=False), RULES + story)  # no error


def test_two_rules_with_the_same_situation_and_different_actions_are_reported():
    clash = """
- rule: goodbye differently
  steps:
  - intent: goodbye
  - action: utter_welcome
"""
    with pytest.raises(InvalidRule, match="goodbye differently.*in the same situation"):
        _trained(RulePolicy(), RULES + clash)


def test_story_that_leaves_the_loop_is_no_contradiction():
    story = """
stories:
- story: thanks inside the form
  steps:
  - intent: order
  - action: pizza_form
  - active_loop: pizza_form
  - intent: thank
  - action: utter_welcome
  - action: pizza_form
  - active_loop: pizza_form
"""
    _trained(RulePolicy(), RULES + story)  # the loop prediction is retried as rejected


def test_restrict_rules_rejects_two_user_messages_with_file_and_line():
    long_rule = """
rules:
- rule: a whole conversation
  steps:
  - intent: greet
  - action: utter_greet
  - intent: goodbye
  - action: utter_goodbye
"""
    with pytest.raises(InvalidRule, match=r"'a whole conversation' \(data.yml:3\) has 2 user"):
        _trained(RulePolicy(), long_rule)
    _trained(RulePolicy(restrict_rules=False), long_rule)


def test_rule_with_an_action_outside_the_domain_is_a_clear_error():
    with pytest.raises(InvalidRule, match="'utter_nowhere'"):
        _trained(RulePolicy(), "rules:\n- rule: r\n  steps:\n  - intent: greet\n"
                               "  - action: utter_nowhere\n")


# ---- the demo bot --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo():
    bot = load_bot(DEMO_BOT)
    trackers = training_trackers(bot.stories, bot.domain, augmentation_factor=2)
    space = DialogueSpace.from_domain(bot.domain)
    policy = RulePolicy()  # check_for_contradictions: raises if the demo data contradicts
    policy.train(trackers, bot.domain, space)
    return bot, trackers, space, policy


def test_demo_bot_has_no_contradictions(demo):
    bot, trackers, space, policy = demo
    assert policy.find_contradictions(trackers) == []
    assert find_contradictions(trackers, bot.domain) == []


def test_demo_bot_rules_reproduce_their_own_steps(demo):
    bot, trackers, space, policy = demo
    checked = set()
    for rule in rule_trackers(bot.stories.rules, bot.domain):
        running = Tracker(rule.sender_id, rule.declared_slots)
        predictable = False
        for event in rule.applied_events():
            if isinstance(event, ActionExecuted) and event.name != "...":
                if predictable:
                    assert _next(policy, running, bot.domain)[0] == event.name, rule.name
                    checked.add(rule.name)
                predictable = True
            elif isinstance(event, ActionExecuted):
                predictable = False  # the action after "..." starts the rule: not predicted
            running.update(event)
    assert checked == {r.name for r in bot.stories.rules}


# ---- ensemble ------------------------------------------------------------------------------------
class FixedPolicy(Policy):
    """Predicts one fixed action with a fixed confidence (for ensemble tests)."""

    name = "FixedPolicy"

    def __init__(self, action: str, confidence: float, priority: int, **flags: Any) -> None:
        super().__init__(priority)
        self.action, self.confidence, self.flags = action, confidence, flags

    def train(self, trackers: Sequence[Tracker], domain, space, **kwargs: Any) -> None:
        self.space = space

    def predict(self, tracker: Tracker, domain) -> PolicyPrediction:
        return self.one_hot(self.action, self.confidence, **self.flags)


def _ensemble_pick(*policies: Policy) -> tuple[str, str]:
    domain = _domain()
    ensemble = PolicyEnsemble(list(policies))
    ensemble.train([], domain)
    prediction, action = ensemble.predict(_conversation(domain, "  - intent: greet\n"), domain)
    return action, prediction.policy + str(prediction.priority)


def test_ensemble_picks_by_confidence_then_priority():
    high_priority = FixedPolicy("utter_greet", 0.8, priority=4)
    confident = FixedPolicy("utter_hello", 0.9, priority=1)
    assert _ensemble_pick(high_priority, confident) == ("utter_hello", "FixedPolicy1")
    tie_low = FixedPolicy("utter_hello", 0.8, priority=1)
    assert _ensemble_pick(tie_low, high_priority) == ("utter_greet", "FixedPolicy4")


def test_ensemble_no_user_then_end_to_end_predictions_win():
    rule_like = FixedPolicy("utter_greet", 1.0, priority=6)
    loop = FixedPolicy("pizza_form", 0.5, priority=1, is_no_user_prediction=True)
    assert _ensemble_pick(rule_like, loop)[0] == "pizza_form"
    text_based = FixedPolicy("utter_hello", 0.4, priority=1, is_end_to_end=True)
    assert _ensemble_pick(rule_like, text_based)[0] == "utter_hello"


def test_ensemble_without_any_answer_listens_and_ignores_a_rejected_action():
    domain = _domain()
    ensemble = PolicyEnsemble([MemoizationPolicy()])
    ensemble.train([], domain)
    prediction, action = ensemble.predict(_conversation(domain, "  - intent: greet\n"), domain)
    assert (action, prediction.max_confidence) == (ACTION_LISTEN, 0.0)
    tracker = _conversation(domain, "  - intent: greet\n")
    tracker.update(ActionExecutionRejected("utter_greet"))
    ensemble = PolicyEnsemble([FixedPolicy("utter_greet", 1.0, 4),
                               FixedPolicy("utter_hello", 0.5, 1)])
    ensemble.train([], domain)
    assert ensemble.predict(tracker, domain)[1] == "utter_hello"


def test_ensemble_keeps_a_policy_that_comes_trained():
    class Pretrained(FixedPolicy):
        def train(self, *args: Any, **kwargs: Any) -> None:
            raise AssertionError("a pretrained policy must not be retrained")

    domain = _domain()
    pretrained = Pretrained("utter_hello", 0.9, priority=1)
    pretrained.space = DialogueSpace.from_domain(domain)
    ensemble = PolicyEnsemble([RulePolicy(), pretrained])
    ensemble.train([], domain)
    assert ensemble.predict(_conversation(domain, "  - intent: thank\n"), domain)[1] == \
        "utter_hello"  # over the rule policy's fallback at 0.3
    with pytest.raises(AssertionError, match="must not be retrained"):
        ensemble.train([], domain, retrain=True)


def test_ensemble_from_rasa_config_and_json_round_trip(demo):
    bot, trackers, space, _ = demo
    config = parse_yaml((DEMO_BOT / "config.yml").read_text(), "config.yml")
    with pytest.raises(ValueError, match="unknown policy 'TEDPolicy'; known: .*RulePolicy"):
        PolicyEnsemble.from_config(config["policies"])
    rasa_only = [p for p in config["policies"] if p["name"] != "TEDPolicy"]
    ensemble = PolicyEnsemble.from_config(rasa_only + [{"name": "AugmentedMemoizationPolicy",
                                                        "max_history": 3}])
    assert [type(p) for p in ensemble.policies] == [RulePolicy, MemoizationPolicy,
                                                    AugmentedMemoizationPolicy]
    with pytest.raises(ValueError, match="MemoizationPolicy has no option epochs"):
        PolicyEnsemble.from_config([{"name": "MemoizationPolicy", "epochs": 3}])
    ensemble.train(trackers, bot.domain, space)
    loaded = PolicyEnsemble.from_dict(json.loads(json.dumps(ensemble.to_dict())))
    for tracker in trackers[:20]:
        if not tracker.is_rule:
            first = ensemble.predict(tracker, bot.domain)
            again = loaded.predict(tracker, bot.domain)
            assert (first[1], first[0].policy) == (again[1], again[0].policy)
    assert "RulePolicy" in POLICY_REGISTRY


def test_ensemble_replays_demo_test_stories_with_rules_and_memoization(demo):
    """Rules + memoization reproduce the demo's training stories, emulating the loop rejection
    as ``rasa test`` does when a story leaves the form."""
    bot, trackers, space, _ = demo
    ensemble = PolicyEnsemble([RulePolicy(), MemoizationPolicy(max_history=5)])
    ensemble.train(trackers, bot.domain, space)
    wrong = []
    for tracker in (t for t in trackers if not t.is_rule and not t.is_augmented):
        running = Tracker(tracker.sender_id, tracker.declared_slots)
        for event in tracker.applied_events():
            if isinstance(event, ActionExecuted) and running.events:
                _, action = ensemble.predict(running, bot.domain)
                if action not in (event.name, None) and action == running.active_loop:
                    assert emulate_loop_rejection(running)
                    _, action = ensemble.predict(running, bot.domain)
                if action != event.name:
                    wrong.append((tracker.name, event.name, action))
            running.update(event)
    assert wrong == []


def test_nlu_fallback_is_answered_by_a_bot_rule_or_the_core_fallback():
    """Rasa has no built-in rule for ``nlu_fallback`` (its RulePolicy's default mappings are
    restart, back and session_start): a bot writes one. Without it the core fallback answers."""
    policy, domain = _trained(RulePolicy(), RULES + """- rule: rephrase on low NLU confidence
  steps:
  - intent: nlu_fallback
  - action: utter_ask_continue
""")
    fell_back = _conversation(domain, "  - intent: greet\n  - action: utter_greet\n"
                                      "  - action: utter_intro\n  - intent: nlu_fallback\n")
    assert _next(policy, fell_back, domain) == ("utter_ask_continue", 1.0)
    without_rule, _ = _trained(RulePolicy(), RULES)
    assert _next(without_rule, fell_back, domain) == ("action_default_fallback", 0.3)
