"""What a run sends to an experiment tracker once its reports are written, beyond the per-step
metrics Lightning logs while training: the summary's numbers, the report figures and the errors.

Only wandb gets these (``logger=wandb`` or ``logger=many``; offline unless ``WANDB_MODE`` says
otherwise): the numbers go into the run summary, each ``reports/*.png`` (intent, entity and
response-selection confusion matrices, the confidence histograms) becomes a ``wandb.Image``, and
``errors.json`` (with ``response_selection_errors.json`` where there is one) becomes tables, one
row per misclassified example. CSV and TensorBoard loggers get nothing more: the same files are
in the run folder.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from experiments.common import log

# Facts about the run rather than scores on the split: logged under their own names.
RUN_FACTS = frozenset({"seed", "fold", "epochs", "train_seconds", "featurize_seconds",
                       "prepare_seconds", "peak_memory_mb", "num_train_examples", "max_history"})
INTENT_ERROR_COLUMNS = ["text", "intent", "predicted_intent", "confidence"]
ENTITY_ERROR_COLUMNS = ["text", "entities", "predicted_entities"]
RESPONSE_ERROR_COLUMNS = ["text", "intent_response_key", "predicted_intent_response_key",
                          "confidence"]
RESPONSE_ERRORS_FILE = "response_selection_errors.json"


def log_reports(loggers: Iterable[Any], summary: dict[str, Any], reports_dir: Path) -> None:
    """Send ``summary`` (numbers as ``<split>/<key>``, run facts as they are), the PNGs and the
    error tables in ``reports_dir`` to every wandb logger among ``loggers``."""
    for logger in loggers:
        if type(logger).__name__ == "WandbLogger":
            _log_to_wandb(logger, summary, Path(reports_dir))


def summary_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The numbers of a summary.json, scores prefixed with the split they were measured on."""
    split = summary.get("split", "test")
    return {(key if key in RUN_FACTS else f"{split}/{key}"): value
            for key, value in summary.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


def error_rows(errors: dict[str, Any] | list[dict[str, Any]]
               ) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """``errors.json`` as table columns and rows. NLU: ``intent_errors`` (text, gold intent,
    predicted intent, confidence), ``entity_errors`` (text, gold and predicted entities as
    ``value (type)`` lists) and, when ``errors`` carries the entries of
    ``response_selection_errors.json`` under that name, ``response_selection_errors`` (text,
    gold and predicted ``intent_response_key``, confidence); dialogue: ``action_errors`` (its
    entries' keys as columns)."""
    if isinstance(errors, list):
        if not errors:
            return {}
        columns = list(errors[0])
        return {"action_errors": (columns, [[e.get(c) for c in columns] for e in errors])}
    tables = {}
    intents = errors.get("intent_errors") or []
    if intents:
        tables["intent_errors"] = (INTENT_ERROR_COLUMNS,
                                   _prediction_rows(intents, "intent", "intent_prediction"))
    entities = errors.get("entity_errors") or []
    if entities:
        tables["entity_errors"] = (ENTITY_ERROR_COLUMNS, [
            [e["text"], _spans(e["entities"]), _spans(e["predicted_entities"])]
            for e in entities])
    responses = errors.get("response_selection_errors") or []
    if responses:
        tables["response_selection_errors"] = (RESPONSE_ERROR_COLUMNS, _prediction_rows(
            responses, "intent_response_key_target", "intent_response_key_prediction"))
    return tables


def _prediction_rows(errors: list[dict[str, Any]], gold_field: str, prediction_field: str
                     ) -> list[list[Any]]:
    return [[e["text"], e[gold_field], e[prediction_field]["name"],
             float(e[prediction_field]["confidence"])] for e in errors]


def _spans(spans: list[dict[str, Any]]) -> str:
    return ", ".join(f"{s.get('value')} ({s.get('entity')})" for s in spans)


def _log_to_wandb(logger, summary: dict[str, Any], reports_dir: Path) -> None:
    import wandb

    split = summary.get("split", "test")
    run = logger.experiment
    run.summary.update(summary_metrics(summary))
    media: dict[str, Any] = {f"{split}/{png.stem}": wandb.Image(str(png))
                             for png in sorted(reports_dir.glob("*.png"))}
    errors_file = reports_dir / "errors.json"
    if errors_file.is_file():
        errors = json.loads(errors_file.read_text(encoding="utf-8"))
        responses_file = reports_dir / RESPONSE_ERRORS_FILE
        if isinstance(errors, dict) and responses_file.is_file():
            errors["response_selection_errors"] = json.loads(
                responses_file.read_text(encoding="utf-8"))
        for name, (columns, rows) in error_rows(errors).items():
            media[f"{split}/{name}"] = wandb.Table(columns=columns, data=rows)
    if media:
        run.log(media)
    log.info("wandb: the summary and %d report figure(s) and table(s) logged", len(media))
