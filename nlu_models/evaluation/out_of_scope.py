"""Out-of-scope detection metrics, for data whose out-of-scope messages carry one intent
(CLINC150's ``oos``, Rasa's ``out_of_scope``), as Larson et al. 2019 and
google/uncertainty-baselines report them.

Given the parse results as served (``nlu_fallback`` where Rasa's ``FallbackClassifier`` fired)
and the model's own predictions underneath (:func:`~nlu_models.fallback.undo_fallback`):

- ``oos_recall``: the fraction of out-of-scope messages answered with the out-of-scope intent
  or with ``nlu_fallback``;
- ``in_scope_accuracy``: the fraction of in-scope messages whose predicted intent (the model's,
  over all intents, out-of-scope included) is the gold one;
- ``oos_auroc``: the ROC AUC of ``1 − (the highest confidence of an in-scope intent)`` as a
  score for "out of scope", over all messages: threshold-free, 0.5 is chance;
- with a fallback: ``oos_recall_no_fallback`` (the model's own predictions only) and
  ``in_scope_fallback_rate`` (in-scope messages lost to ``nlu_fallback``).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from sklearn.metrics import roc_auc_score

from nlu_models.data.schema import Message
from nlu_models.evaluation.intents import check_aligned, predicted_intent
from nlu_models.fallback import NLU_FALLBACK, is_fallback, undo_fallback


def out_of_scope_metrics(gold: Sequence[Message], preds: Sequence[Mapping[str, Any]],
                         out_of_scope_intent: str, with_fallback: bool = False
                         ) -> dict[str, float]:
    """The metrics above (``with_fallback``: also the two fallback ones); ``{}`` when no gold
    message has ``out_of_scope_intent``. Messages without a gold intent are left out; a
    retrieval intent (``faq/ask_name``) is scored as the intent DIET predicts (``faq``)."""
    check_aligned(gold, preds)
    rows = [(m.retrieval_intent == out_of_scope_intent, m.retrieval_intent, p, undo_fallback(p))
            for m, p in zip(gold, preds) if m.intent is not None]
    oos = [r for r in rows if r[0]]
    if not oos:
        return {}
    inside = [r for r in rows if not r[0]]
    caught = (out_of_scope_intent, NLU_FALLBACK)
    metrics = {"oos_recall": _mean(predicted_intent(p)[0] in caught for _, _, p, _ in oos)}
    if with_fallback:
        metrics["oos_recall_no_fallback"] = _mean(
            predicted_intent(raw)[0] == out_of_scope_intent for *_, raw in oos)
    if inside:
        metrics["in_scope_accuracy"] = _mean(predicted_intent(raw)[0] == intent
                                             for _, intent, _, raw in inside)
        if with_fallback:
            metrics["in_scope_fallback_rate"] = _mean(is_fallback(p) for _, _, p, _ in inside)
        scores = [1.0 - top_in_scope_confidence(raw, out_of_scope_intent) for *_, raw in rows]
        metrics["oos_auroc"] = float(roc_auc_score([r[0] for r in rows], scores))
    return metrics


def top_in_scope_confidence(result: Mapping[str, Any], out_of_scope_intent: str) -> float:
    """The highest confidence in ``intent_ranking`` (else ``intent``) of an intent other than
    the out-of-scope one and ``nlu_fallback``; 0 when there is none."""
    ranking = result.get("intent_ranking") or ([result["intent"]] if result.get("intent")
                                               else [])
    return max((float(r.get("confidence") or 0.0) for r in ranking
                if r.get("name") not in (out_of_scope_intent, NLU_FALLBACK)), default=0.0)


def _mean(flags) -> float:
    values = [bool(f) for f in flags]
    return sum(values) / len(values)
