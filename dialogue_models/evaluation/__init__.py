"""Evaluation of dialogue policies on test stories: ``rasa test core``-shaped reports."""
from dialogue_models.evaluation.action_map import act_label, map_results, read_action_map
from dialogue_models.evaluation.failed_stories import (annotated_steps, annotated_stories_yaml,
                                                       check_predictions, story_lines)
from dialogue_models.evaluation.report import (ACTION_LISTEN, IN_DATA_POLICIES, ActionPrediction,
                                               StoryResult, evaluate_stories,
                                               format_story_summary, in_data_fraction,
                                               is_in_training_data, policy_counts, story_errors,
                                               story_report, story_summary)

__all__ = [
    "ACTION_LISTEN",
    "IN_DATA_POLICIES",
    "ActionPrediction",
    "StoryResult",
    "act_label",
    "annotated_steps",
    "annotated_stories_yaml",
    "check_predictions",
    "evaluate_stories",
    "format_story_summary",
    "in_data_fraction",
    "is_in_training_data",
    "map_results",
    "policy_counts",
    "read_action_map",
    "story_errors",
    "story_lines",
    "story_report",
    "story_summary",
]
