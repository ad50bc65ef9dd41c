"""Intent metrics in the shape of Rasa's ``intent_report.json`` and ``intent_errors.json``.

:func:`label_report` is the sklearn report with Rasa's ``confused_with`` field; it serves the
intents here and the token labels of :func:`nlu_models.evaluation.entities.entity_token_report`.
:func:`pairs_report` and :func:`pairs_errors` serve every single-label prediction scored as
``(message, gold, predicted, confidence)`` pairs: intents here, response keys in
:mod:`nlu_models.evaluation.responses`.

Intents are scored on the *collapsed* retrieval intent: a gold ``faq/ask_name`` counts as
``faq``, the intent DIET predicts for it (as in Rasa); the response key is the selector's.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Mapping, Sequence

from sklearn.metrics import accuracy_score, classification_report

from nlu_models.data.schema import Message

NO_PREDICTION = ""  # what Rasa substitutes for a missing intent prediction
AVERAGES = ("micro avg", "macro avg", "weighted avg")

# (message, gold label, predicted label, confidence of the prediction)
LabelPair = tuple[Message, str, str, float]


def check_aligned(gold: Sequence[Message], preds: Sequence[Mapping[str, Any]]) -> None:
    """Raise when there is not exactly one prediction per gold message."""
    if len(gold) != len(preds):
        raise ValueError(f"{len(gold)} gold messages but {len(preds)} predictions; "
                         "predictions must come one per message, in the same order")


def predicted_intent(pred: Mapping[str, Any]) -> tuple[str, float]:
    """``(name, confidence)`` of a parse result; ``("", 0.0)`` when it has no intent."""
    intent = pred.get("intent") or {}
    return intent.get("name") or NO_PREDICTION, float(intent.get("confidence") or 0.0)


def intent_pairs(gold: Sequence[Message], preds: Sequence[Mapping[str, Any]]
                 ) -> list[LabelPair]:
    """``(message, gold intent, predicted intent, confidence)`` for messages with a gold intent;
    the gold intent of ``faq/ask_name`` is its retrieval intent ``faq``."""
    check_aligned(gold, preds)
    return [(message, message.retrieval_intent, *predicted_intent(pred))
            for message, pred in zip(gold, preds) if message.intent is not None]


def confused_with(gold_labels: Sequence[str], pred_labels: Sequence[str], top: int = 3,
                  exclude: Iterable[str] = ()) -> dict[str, dict[str, int]]:
    """For each gold label, its ``top`` most frequent wrong predictions with their counts.

    Rasa takes the three largest cells of the confusion-matrix row, diagonal included, so it
    usually lists two; we list up to ``top`` wrong labels (ties broken alphabetically).
    Labels in ``exclude`` (``no_entity``) get no entry and are never listed.
    """
    skip = set(exclude)
    counts: dict[str, Counter[str]] = {}
    for g, p in zip(gold_labels, pred_labels):
        if g not in skip:
            row = counts.setdefault(g, Counter())
            if p != g and p not in skip:
                row[p] += 1
    return {label: dict(sorted(row.items(), key=lambda kv: (-kv[1], kv[0]))[:top])
            for label, row in counts.items()}


def label_report(gold_labels: Sequence[str], pred_labels: Sequence[str],
                 exclude: str | None = None) -> dict[str, Any]:
    """sklearn's ``classification_report`` as Rasa writes it, plus ``confused_with``.

    As in Rasa, the rows are the gold labels (minus ``exclude``), so a label that is only ever
    predicted adds no row and its false positives do not enter the averages. The report always
    has ``micro avg``, ``macro avg``, ``weighted avg`` and ``accuracy`` (over all items,
    ``exclude`` included); all zeros when there is nothing to score.
    """
    labels = sorted(set(gold_labels) - {exclude})
    if not labels:
        zeros = {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0}
        report: dict[str, Any] = {avg: dict(zeros) for avg in AVERAGES}
    else:
        raw = classification_report(gold_labels, pred_labels, labels=labels, output_dict=True,
                                    zero_division=0)
        report = {name: _plain_row(row) for name, row in raw.items() if name != "accuracy"}
        if "micro avg" not in report:  # sklearn calls it accuracy when labels cover everything
            report["micro avg"] = _micro_row(gold_labels, pred_labels, labels)
        for label, confused in confused_with(gold_labels, pred_labels,
                                             exclude=[exclude] if exclude else []).items():
            report[label]["confused_with"] = confused
    report["accuracy"] = float(accuracy_score(gold_labels, pred_labels)) if gold_labels else 0.0
    return report


def pairs_report(pairs: Sequence[LabelPair]) -> dict[str, Any]:
    """:func:`label_report` of single-label predictions, without ``micro avg`` (it equals
    ``accuracy`` there); ``{}`` when there are no pairs."""
    if not pairs:
        return {}
    report = label_report([g for _, g, _, _ in pairs], [p for _, _, p, _ in pairs])
    report.pop("micro avg", None)
    return report


def pairs_errors(pairs: Sequence[LabelPair], gold_field: str, prediction_field: str
                 ) -> list[dict[str, Any]]:
    """Rasa's error entries ``{"text", gold_field: gold, prediction_field: {"name",
    "confidence"}}`` of the wrong predictions, most confident mistakes first."""
    errors = [{"text": message.text, gold_field: g,
               prediction_field: {"name": p, "confidence": confidence}}
              for message, g, p, confidence in pairs if p != g]
    return sorted(errors, key=lambda e: -e[prediction_field]["confidence"])


def intent_report(gold: Sequence[Message], preds: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Rasa's ``intent_report.json``; ``{}`` when no message has a gold intent."""
    return pairs_report(intent_pairs(gold, preds))


def intent_errors(gold: Sequence[Message], preds: Sequence[Mapping[str, Any]]
                  ) -> list[dict[str, Any]]:
    """Rasa's ``intent_errors.json`` entries, most confident mistakes first."""
    return pairs_errors(intent_pairs(gold, preds), "intent", "intent_prediction")


def _plain_row(row: Any) -> Any:
    if not isinstance(row, Mapping):
        return float(row)
    return {k: int(v) if k == "support" else float(v) for k, v in row.items()}


def _micro_row(gold_labels: Sequence[str], pred_labels: Sequence[str],
               labels: Sequence[str]) -> dict[str, float | int]:
    wanted = set(labels)
    tp = sum(g == p and g in wanted for g, p in zip(gold_labels, pred_labels))
    n_pred = sum(p in wanted for p in pred_labels)
    n_gold = sum(g in wanted for g in gold_labels)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1-score": f1, "support": n_gold}
