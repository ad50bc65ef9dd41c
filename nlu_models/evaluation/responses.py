"""Response-selection metrics in the shape of Rasa's ``response_selection_report.json`` and
``response_selection_errors.json`` (``rasa test nlu`` with a ResponseSelector).

Only gold messages of a retrieval intent (``faq/ask_name``) are scored. Their gold label is the
full ``intent_response_key``; the predicted one is the ``default`` selector's
``response.intent_response_key`` of the parse result (Rasa 3.6 format), ``"None"`` when it
predicted none, as Rasa writes it. The intent itself is scored collapsed (``faq``) in
:mod:`nlu_models.evaluation.intents`.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

from nlu_models.data.schema import DEFAULT_SELECTOR, RESPONSE_SELECTOR, Message
from nlu_models.evaluation.intents import LabelPair, check_aligned, pairs_errors, pairs_report

log = logging.getLogger(__name__)

NO_RESPONSE = "None"  # what Rasa writes for a missing response prediction


def predicted_response(pred: Mapping[str, Any]) -> tuple[str, float]:
    """``(intent_response_key, confidence)`` of the default selector's response in a parse
    result; ``("None", 0.0)`` when it has none."""
    selector = (pred.get(RESPONSE_SELECTOR) or {}).get(DEFAULT_SELECTOR) or {}
    response = selector.get("response") or {}
    return (response.get("intent_response_key") or NO_RESPONSE,
            float(response.get("confidence") or 0.0))


def response_pairs(gold: Sequence[Message], preds: Sequence[Mapping[str, Any]]
                   ) -> list[LabelPair]:
    """``(message, gold key, predicted key, confidence)`` for the gold messages that have a
    response key, the keys as ``faq/ask_name``."""
    check_aligned(gold, preds)
    return [(message, message.intent, *predicted_response(pred))
            for message, pred in zip(gold, preds) if message.response_key is not None]


def scores_responses(gold: Sequence[Message], preds: Sequence[Mapping[str, Any]]) -> bool:
    """Whether there is response selection to score: some gold message has a response key and
    some prediction a ``response_selector``. Gold retrieval intents without any selector
    prediction (a model trained without one) are skipped with a warning."""
    if not any(message.response_key is not None for message in gold):
        return False
    if any(RESPONSE_SELECTOR in pred for pred in preds):
        return True
    log.warning("the gold data has retrieval intents (%s) but no prediction has a %r: "
                "response selection is not evaluated",
                ", ".join(sorted({m.retrieval_intent for m in gold if m.response_key})),
                RESPONSE_SELECTOR)
    return False


def response_selection_report(gold: Sequence[Message], preds: Sequence[Mapping[str, Any]]
                              ) -> dict[str, Any]:
    """Rasa's ``response_selection_report.json``: per ``intent_response_key`` precision,
    recall, F1, support and ``confused_with``, with ``accuracy``, ``macro avg`` and
    ``weighted avg``; ``{}`` when no gold message has a response key."""
    return pairs_report(response_pairs(gold, preds))


def response_selection_errors(gold: Sequence[Message], preds: Sequence[Mapping[str, Any]]
                              ) -> list[dict[str, Any]]:
    """Rasa's ``response_selection_errors.json`` entries (``text``,
    ``intent_response_key_target``, ``intent_response_key_prediction`` with ``name`` and
    ``confidence``), most confident mistakes first."""
    return pairs_errors(response_pairs(gold, preds), "intent_response_key_target",
                        "intent_response_key_prediction")
