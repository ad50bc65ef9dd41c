"""Evaluation of NLU predictions: Rasa-shaped reports, exact-span entity metrics, response
selection, multi-label intents, calibration, out-of-scope detection, plots."""
from nlu_models.evaluation.calibration import (CalibrationBin, calibration_bins,
                                               calibration_errors)
from nlu_models.evaluation.entities import (NO_ENTITY, entity_errors, entity_span_report,
                                            entity_token_report, lenient_entity_scores,
                                            predicted_spans, token_labels)
from nlu_models.evaluation.intents import (confused_with, intent_errors, intent_report,
                                           label_report, pairs_errors, pairs_report)
from nlu_models.evaluation.multi_label import (intent_sets, multi_label_report,
                                               multi_label_scores)
from nlu_models.evaluation.out_of_scope import out_of_scope_metrics, top_in_scope_confidence
from nlu_models.evaluation.plots import (plot_confidence_histogram, plot_confusion_matrix,
                                         plot_label_predictions, plot_reliability_diagram)
from nlu_models.evaluation.report import aggregate_summaries, evaluate_nlu, format_mean_sd
from nlu_models.evaluation.responses import (NO_RESPONSE, predicted_response, response_pairs,
                                             response_selection_errors,
                                             response_selection_report, scores_responses)

__all__ = [
    "NO_ENTITY",
    "NO_RESPONSE",
    "CalibrationBin",
    "aggregate_summaries",
    "calibration_bins",
    "calibration_errors",
    "confused_with",
    "entity_errors",
    "entity_span_report",
    "entity_token_report",
    "evaluate_nlu",
    "format_mean_sd",
    "intent_errors",
    "intent_report",
    "intent_sets",
    "label_report",
    "lenient_entity_scores",
    "multi_label_report",
    "multi_label_scores",
    "out_of_scope_metrics",
    "pairs_errors",
    "pairs_report",
    "plot_confidence_histogram",
    "plot_confusion_matrix",
    "plot_label_predictions",
    "plot_reliability_diagram",
    "predicted_response",
    "predicted_spans",
    "response_pairs",
    "response_selection_errors",
    "response_selection_report",
    "scores_responses",
    "token_labels",
    "top_in_scope_confidence",
]
