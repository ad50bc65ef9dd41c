"""Rule, memoization and TED policies and the ensemble that picks among them."""
from dialogue_models.policies.base import Policy, PolicyPrediction
from dialogue_models.policies.ensemble import (POLICY_REGISTRY, PolicyEnsemble, pick_best,
                                               policy_from_config, register_policy)
from dialogue_models.policies.memoization import AugmentedMemoizationPolicy, MemoizationPolicy
from dialogue_models.policies.rule import InvalidRule, RulePolicy, find_contradictions
from dialogue_models.policies.rule_data import (RULE_SNIPPET_ACTION, SHOULD_NOT_BE_SET,
                                                emulate_loop_rejection, rule_trackers,
                                                training_trackers)

__all__ = ["POLICY_REGISTRY", "RULE_SNIPPET_ACTION", "SHOULD_NOT_BE_SET",
           "AugmentedMemoizationPolicy", "InvalidRule", "MemoizationPolicy", "Policy",
           "PolicyEnsemble", "PolicyPrediction", "RulePolicy", "emulate_loop_rejection",
           "find_contradictions", "pick_best", "policy_from_config", "register_policy",
           "rule_trackers", "training_trackers"]
