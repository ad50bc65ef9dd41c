"""Multi-label intent metrics: each message's gold intent ``a+b`` is the set {a, b} (split at the
data's ``intent_split_symbol``; ATIS writes ``a#b``), its predicted set is the result's
``intents`` (a multi-label model) or its ``intent`` name split the same way (a single-label
model over combined labels, as Rasa trains them), and scikit-learn's multilabel metrics score
the two as binary indicator rows over the atomic intents.

:func:`multi_label_report` is ``multi_label_report.json``: per atomic intent precision, recall,
F1 and support, the micro, macro, weighted and samples averages, exact-match (subset) accuracy,
Hamming loss, and exact-match accuracy on the messages with two or more gold intents.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, Sequence

from sklearn.metrics import accuracy_score, classification_report, hamming_loss
from sklearn.preprocessing import MultiLabelBinarizer

from nlu_models.data.schema import Message
from nlu_models.diet.labels import canonical_intent, split_intent
from nlu_models.evaluation.intents import check_aligned, predicted_intent

AVERAGES = ("micro avg", "macro avg", "weighted avg", "samples avg")


def is_multi_label_result(pred: Mapping[str, Any]) -> bool:
    """Whether a parse result comes from a multi-label model (it lists ``intents``)."""
    return "intents" in pred


def intent_sets(gold: Sequence[Message], preds: Sequence[Mapping[str, Any]], symbol: str
                ) -> tuple[list[list[str]], list[list[str]]]:
    """Gold and predicted atomic-intent sets of the messages with a gold intent."""
    check_aligned(gold, preds)
    gold_sets, pred_sets = [], []
    for message, pred in zip(gold, preds):
        if message.intent is None:
            continue
        gold_sets.append(split_intent(message.retrieval_intent, symbol))
        if pred.get("intents") is not None:
            pred_sets.append([i["name"] for i in pred["intents"]])
        else:
            name, _ = predicted_intent(pred)
            pred_sets.append(split_intent(name, symbol))
    return gold_sets, pred_sets


def multi_label_report(gold_sets: Sequence[Sequence[str]], pred_sets: Sequence[Sequence[str]]
                       ) -> dict[str, Any]:
    """Per atomic intent (every intent in a gold or predicted set) and averaged scores,
    ``exact_match``, ``hamming_loss`` and ``multi_intent`` (exact match and support on the
    messages with ≥ 2 gold intents); ``{}`` when there is nothing to score."""
    if not gold_sets:
        return {}
    if len(gold_sets) != len(pred_sets):
        raise ValueError(f"{len(gold_sets)} gold sets but {len(pred_sets)} predicted sets")
    binarizer = MultiLabelBinarizer(classes=sorted({i for s in [*gold_sets, *pred_sets]
                                                    for i in s}))
    y_true, y_pred = binarizer.fit_transform(gold_sets), binarizer.transform(pred_sets)
    raw = classification_report(y_true, y_pred, target_names=list(binarizer.classes_),
                                output_dict=True, zero_division=0)
    report: dict[str, Any] = {name: {k: int(v) if k == "support" else float(v)
                                     for k, v in row.items()} for name, row in raw.items()}
    multi = [i for i, s in enumerate(gold_sets) if len(set(s)) > 1]
    report["exact_match"] = float(accuracy_score(y_true, y_pred))
    report["hamming_loss"] = float(hamming_loss(y_true, y_pred))
    report["multi_intent"] = {
        "exact_match": (float(accuracy_score(y_true[multi], y_pred[multi])) if multi else None),
        "support": len(multi)}
    return report


def multi_label_scores(report: Mapping[str, Any]) -> dict[str, float]:
    """The summary keys of a :func:`multi_label_report` (``intent_exact_match_multi_intent``
    only when some message has two or more gold intents)."""
    scores = {"intent_exact_match": report["exact_match"],
              "intent_micro_f1": report["micro avg"]["f1-score"],
              "intent_samples_f1": report["samples avg"]["f1-score"],
              "intent_hamming_loss": report["hamming_loss"]}
    if report["multi_intent"]["exact_match"] is not None:
        scores["intent_exact_match_multi_intent"] = report["multi_intent"]["exact_match"]
    return scores


def canonical_names(gold: Sequence[Message], preds: Sequence[Mapping[str, Any]], symbol: str
                    ) -> tuple[list[Message], list[Mapping[str, Any]]]:
    """Gold intents and predicted intent names with their atomic intents sorted (``b+a`` →
    ``a+b``), so the single-label intent report compares a multi-label model's sets as
    combined labels whatever order the data wrote them in."""
    def canonical(name: str | None) -> str | None:
        return canonical_intent(name, symbol) if name else name

    gold = [replace(m, intent=canonical(m.intent)) if m.response_key is None else m
            for m in gold]
    preds = [{**p, "intent": {**p["intent"], "name": canonical(p["intent"].get("name"))}}
             if p.get("intent") else p for p in preds]
    return gold, preds


__all__ = ["canonical_names", "intent_sets", "is_multi_label_result", "multi_label_report",
           "multi_label_scores"]
