"""Evaluation of NLU predictions: Rasa-shaped reports, exact-span entity metrics, calibration,
out-of-scope detection, plots."""
from nlu_models.evaluation.calibration import (CalibrationBin, calibration_bins,
                                               calibration_errors)
from nlu_models.evaluation.entities import (NO_ENTITY, entity_errors, entity_span_report,
                                            entity_token_report, lenient_entity_scores,
                                            predicted_spans, token_labels)
from nlu_models.evaluation.intents import (confused_with, intent_errors, intent_report,
                                           label_report)
from nlu_models.evaluation.out_of_scope import out_of_scope_metrics, top_in_scope_confidence
from nlu_models.evaluation.plots import (plot_confidence_histogram, plot_confusion_matrix,
                                         plot_reliability_diagram)
from nlu_models.evaluation.report import aggregate_summaries, evaluate_nlu, format_mean_sd

__all__ = [
    "NO_ENTITY",
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
    "label_report",
    "lenient_entity_scores",
    "out_of_scope_metrics",
    "plot_confidence_histogram",
    "plot_confusion_matrix",
    "plot_reliability_diagram",
    "predicted_spans",
    "token_labels",
    "top_in_scope_confidence",
]
