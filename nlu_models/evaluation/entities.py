"""Entity metrics: exact span (seqeval strict), Rasa's token level, the DIET paper's lenient one.

Predictions are Rasa parse results (``{"entities": [{"entity", "start", "end", ...}]}``), one
per gold :class:`Message`, in the same order. Three views of the same predictions:

* :func:`entity_span_report` - what the task defines (CoNLL-style span F1 on BILOU tags):
  a span counts only with the exact boundaries and label.
* :func:`entity_token_report` - ``rasa test nlu``'s ``DIETClassifier_report.json``: each token
  labelled ``entity.group.role`` or ``no_entity``, scored per token.
* :func:`lenient_entity_scores` - the HERMIT script of the DIET paper's NLU-Benchmark numbers:
  one shared token with a same-type entity is enough.
"""
from __future__ import annotations

from typing import Any, Callable, Literal, Mapping, Protocol, Sequence

from seqeval.metrics import classification_report as seqeval_report
from seqeval.scheme import BILOU

from nlu_models.data.schema import EntitySpan, Message
from nlu_models.evaluation.intents import AVERAGES, check_aligned, label_report
from nlu_models.tokenize import NO_ENTITY_TAG, Token, WhitespaceTokenizer, bilou_tags

SpanAttribute = Literal["entity", "role", "group", "label"]
NO_ENTITY = "no_entity"  # Rasa's token label outside any entity

_LABELS: dict[str, Callable[[EntitySpan], str | None]] = {
    "entity": lambda s: s.entity,
    "role": lambda s: s.role,
    "group": lambda s: s.group,
    "label": lambda s: s.label,
}


class Tokenizer(Protocol):
    def tokenize(self, text: str) -> list[Token]: ...


def predicted_spans(pred: Mapping[str, Any]) -> list[EntitySpan]:
    """The entities of a parse result as :class:`EntitySpan` (confidences dropped)."""
    return [EntitySpan(start=e["start"], end=e["end"], value=e.get("value"), entity=e["entity"],
                       role=e.get("role"), group=e.get("group"))
            for e in pred.get("entities") or []]


def entity_span_report(gold: Sequence[Message], preds: Sequence[Mapping[str, Any]],
                       tokenizer: Tokenizer | None = None,
                       attribute: SpanAttribute = "entity") -> dict[str, Any]:
    """Exact-span P/R/F1 per label plus micro/macro/weighted averages (seqeval, BILOU, strict).

    ``attribute`` picks the label: entity type, role, group or Rasa's ``entity.group.role``.
    Gold spans off token boundaries are left out, as DIET never trains on them; so are
    predicted ones (DIET cannot produce them). Spans without the attribute (no role) are
    ignored. No span on either side gives an all-zero report with support 0.
    """
    check_aligned(gold, preds)
    if attribute not in _LABELS:
        raise ValueError(f"attribute must be one of {sorted(_LABELS)}, not {attribute!r}")
    tokenizer = tokenizer or WhitespaceTokenizer()
    label_of = _LABELS[attribute]
    y_true, y_pred = [], []
    for message, pred in zip(gold, preds):
        tokens = tokenizer.tokenize(message.text)
        y_true.append(bilou_tags(tokens, message.entities, label_of))
        y_pred.append(bilou_tags(tokens, predicted_spans(pred), label_of))
    if all(tag == NO_ENTITY_TAG for tags in y_true + y_pred for tag in tags):
        zeros = {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0}
        return {avg: dict(zeros) for avg in AVERAGES}
    raw = seqeval_report(y_true, y_pred, scheme=BILOU, mode="strict", output_dict=True,
                         zero_division=0)
    return {name: {k: int(v) if k == "support" else float(v) for k, v in row.items()}
            for name, row in raw.items()}


def token_labels(tokens: Sequence[Token], spans: Sequence[EntitySpan]) -> list[str]:
    """Rasa's label per token: ``entity.group.role`` of the span sharing most characters with it.

    Any character overlap counts (Rasa logs a boundary error but keeps it); ties go to the
    first span. Tokens outside every span are ``no_entity``.
    """
    labels = []
    for token in tokens:
        best, best_overlap = None, 0
        for span in spans:
            overlap = min(token.end, span.end) - max(token.start, span.start)
            if overlap > best_overlap:
                best, best_overlap = span, overlap
        labels.append(best.label if best is not None else NO_ENTITY)
    return labels


def entity_token_report(gold: Sequence[Message], preds: Sequence[Mapping[str, Any]],
                        tokenizer: Tokenizer | None = None) -> dict[str, Any]:
    """Rasa's ``DIETClassifier_report.json``: sklearn report over token labels.

    Rows (and so the micro/macro/weighted averages) are the gold labels except ``no_entity``,
    as in Rasa; ``accuracy`` counts every token, ``no_entity`` included. All gold spans are
    used, aligned or not (Rasa labels tokens by character overlap).
    """
    check_aligned(gold, preds)
    tokenizer = tokenizer or WhitespaceTokenizer()
    y_true: list[str] = []
    y_pred: list[str] = []
    for message, pred in zip(gold, preds):
        tokens = tokenizer.tokenize(message.text)
        y_true.extend(token_labels(tokens, message.entities))
        y_pred.extend(token_labels(tokens, predicted_spans(pred)))
    return label_report(y_true, y_pred, exclude=NO_ENTITY)


def lenient_entity_scores(gold: Sequence[Message], preds: Sequence[Mapping[str, Any]],
                          tokenizer: Tokenizer | None = None) -> dict[str, float | int]:
    """The DIET paper's NLU-Benchmark entity metric (HERMIT script, Vanzo et al. 2019).

    A gold entity is found if a predicted entity of the same type shares at least one token
    with it (a token belongs to a span when their characters overlap); a prediction is correct
    if it shares a token with a gold entity of its type. precision = correct predictions /
    predictions, recall = found gold / gold, ``support`` = number of gold entities.

    Differences from the original script, all in how it is *reported*, not matched:
    it files unfound gold entities under "fp" and unmatched predictions under "fn", so its
    printed P is our recall and its printed R is our precision (F1 is unaffected; we print them
    the right way round). Its "R" is found gold / (found gold + unmatched predictions), which
    equals our precision when matches are one-to-one. It compares token *strings*, so a word
    repeated elsewhere in the sentence can match; we compare token positions.
    """
    check_aligned(gold, preds)
    tokenizer = tokenizer or WhitespaceTokenizer()
    n_gold = n_pred = found = correct = 0
    for message, pred in zip(gold, preds):
        tokens = tokenizer.tokenize(message.text)
        gold_sets = [(s.entity, _token_indices(tokens, s)) for s in message.entities]
        pred_sets = [(s.entity, _token_indices(tokens, s)) for s in predicted_spans(pred)]
        n_gold += len(gold_sets)
        n_pred += len(pred_sets)
        found += sum(any(t == u and i & j for u, j in pred_sets) for t, i in gold_sets)
        correct += sum(any(t == u and i & j for u, j in gold_sets) for t, i in pred_sets)
    precision = correct / n_pred if n_pred else 0.0
    recall = found / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1-score": f1, "support": n_gold}


def entity_errors(gold: Sequence[Message], preds: Sequence[Mapping[str, Any]]
                  ) -> list[dict[str, Any]]:
    """Messages whose predicted spans (start, end, type, role, group) differ from the gold ones.

    Entries are ``{text, entities (gold, as dicts), predicted_entities (as predicted)}``.
    """
    check_aligned(gold, preds)
    errors = []
    for message, pred in zip(gold, preds):
        predicted = predicted_spans(pred)
        if _span_keys(message.entities) != _span_keys(predicted):
            errors.append({"text": message.text,
                           "entities": [span.as_dict() for span in message.entities],
                           "predicted_entities": list(pred.get("entities") or [])})
    return errors


def _token_indices(tokens: Sequence[Token], span: EntitySpan) -> set[int]:
    return {i for i, t in enumerate(tokens) if t.start < span.end and span.start < t.end}


def _span_keys(spans: Sequence[EntitySpan]) -> set[tuple[Any, ...]]:
    return {(s.start, s.end, s.entity, s.role, s.group) for s in spans}
