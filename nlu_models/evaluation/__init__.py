"""Evaluation of NLU predictions: Rasa-shaped reports, exact-span entity metrics, plots."""
from nlu_models.evaluation.entities import (NO_ENTITY, entity_errors, entity_span_report,
                                            entity_token_report, lenient_entity_scores,
                                            predicted_spans, token_labels)
from nlu_models.evaluation.intents import (confused_with, intent_errors, intent_report,
                                           label_report)
from nlu_models.evaluation.plots import plot_confidence_histogram, plot_confusion_matrix
from nlu_models.evaluation.report import aggregate_summaries, evaluate_nlu, format_mean_sd

__all__ = [
    "NO_ENTITY",
    "aggregate_summaries",
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
    "plot_confidence_histogram",
    "plot_confusion_matrix",
    "predicted_spans",
    "token_labels",
]
