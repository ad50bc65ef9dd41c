"""One call that writes a run's NLU reports, and the mean ± sd over runs.

:func:`evaluate_nlu` writes into ``out_dir`` (ARCHITECTURE.md, "Run outputs")::

    summary.json                 meta + headline metrics (keys that do not apply are omitted)
    intent_report.json           Rasa's shape, ``{}`` without gold intents
    entity_report.json           {"exact_span", "token_level", "roles"?, "groups"?, "lenient"?}
    errors.json                  {"intent_errors": [...], "entity_errors": [...]}
    intent_confusion_matrix.png  intent_histogram.png   (with intents and ``plots``)
    intent_reliability_diagram.png  accuracy against confidence in 10 bins (ditto)
    entity_confusion_matrix.png  token labels, as Rasa's DIETClassifier one (with entities)
    response_selection_report.json  response_selection_errors.json   (with retrieval intents
    response_selection_confusion_matrix.png  response_selection_histogram.png   and a selector)
    multi_label_report.json      per atomic intent and averaged multi-label scores (multi-intent
                                 labels ``a+b``, see below)
    report.md                    the human summary

Intents are scored on the model's own predictions: a ``nlu_fallback`` from Rasa's
``FallbackClassifier`` is undone first, as ``rasa test nlu`` does. The fallback shows in
``fallback_rate`` and in the out-of-scope metrics (:mod:`nlu_models.evaluation.out_of_scope`);
calibration (``intent_ece``, ``intent_mce``) is that of the top intent confidence
(:mod:`nlu_models.evaluation.calibration`). A retrieval intent ``faq/ask_name`` is scored as
``faq`` among the intents and as ``faq/ask_name`` by the response selection
(:mod:`nlu_models.evaluation.responses`), when the predictions come from a model with one.

Multi-intent labels (``intent_split_symbol`` given, and the predictions come from a multi-label
model or some gold intent holds the symbol): ``multi_label_report.json`` scores the atomic
intent sets (:mod:`nlu_models.evaluation.multi_label`) and the summary adds
``intent_exact_match``, ``intent_micro_f1``, ``intent_samples_f1``, ``intent_hamming_loss`` and
``intent_exact_match_multi_intent``. ``intent_report.json`` stays Rasa's, over the combined
labels (Rasa learns ``a+b`` as one label); for a multi-label model's predictions gold and
predicted names are written with their atomic intents sorted first, so ``b+a`` is ``a+b``.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Mapping, Sequence

from nlu_models.data.schema import Message
from nlu_models.evaluation.calibration import (N_BINS, CalibrationBin, calibration_bins,
                                               calibration_errors)
from nlu_models.evaluation.entities import (entity_errors, entity_span_report,
                                            entity_token_report, lenient_entity_scores,
                                            predicted_spans, token_labels)
from nlu_models.evaluation.intents import (LabelPair, check_aligned, intent_errors,
                                           intent_pairs, intent_report)
from nlu_models.evaluation.multi_label import (canonical_names, intent_sets,
                                               is_multi_label_result, multi_label_report,
                                               multi_label_scores)
from nlu_models.evaluation.out_of_scope import out_of_scope_metrics
from nlu_models.evaluation.plots import (plot_confusion_matrix, plot_label_predictions,
                                         plot_reliability_diagram)
from nlu_models.evaluation.responses import (response_pairs, response_selection_errors,
                                             response_selection_report, scores_responses)
from nlu_models.fallback import FallbackConfig, is_fallback, undo_fallback
from nlu_models.tokenize import WhitespaceTokenizer

INTENT_MATRIX = "intent_confusion_matrix.png"
INTENT_HISTOGRAM = "intent_histogram.png"
INTENT_RELIABILITY = "intent_reliability_diagram.png"
ENTITY_MATRIX = "entity_confusion_matrix.png"
RESPONSE_REPORT = "response_selection_report.json"
RESPONSE_ERRORS = "response_selection_errors.json"
RESPONSE_MATRIX = "response_selection_confusion_matrix.png"
RESPONSE_HISTOGRAM = "response_selection_histogram.png"
MULTI_LABEL_REPORT = "multi_label_report.json"


def evaluate_nlu(gold: Sequence[Message], preds: Sequence[Mapping[str, Any]],
                 out_dir: str | Path, meta: Mapping[str, Any], *, lenient: bool = False,
                 plots: bool = True, out_of_scope_intent: str | None = None,
                 fallback: FallbackConfig | None = None,
                 intent_split_symbol: str | None = None) -> dict[str, Any]:
    """Score ``preds`` (Rasa parse results, one per gold message) and write the reports.

    ``fallback``: Rasa's ``FallbackClassifier`` to score with, applied to the model's
    predictions (``preds`` may come with or without it); without one, ``nlu_fallback``
    results in ``preds`` count as they are. ``out_of_scope_intent``: the intent of
    out-of-scope messages (``oos``), for the out-of-scope metrics. ``intent_split_symbol``:
    what joins multi-intent labels (``+``, ATIS ``#``), for the multi-label scores.

    Returns the summary: ``meta`` first, then ``n_examples``, the fallback's thresholds when
    one is given, the intent keys when some gold message has an intent (with
    ``intent_ece``/``intent_mce``; ``fallback_rate`` when a fallback is given or occurs; the
    ``oos_*``/``in_scope_*`` keys when a gold message has ``out_of_scope_intent``), the entity
    keys when any gold or predicted entity exists (``role_f1`` / ``group_f1`` only when roles
    / groups occur, ``entity_lenient_f1`` only with ``lenient``), the ``response_*`` keys and
    ``num_response_examples`` when some gold message has a retrieval intent and some
    prediction a ``response_selector`` (without any selector: a warning, no response keys).
    """
    check_aligned(gold, preds)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    symbol = intent_split_symbol
    served = [fallback.apply(dict(undo_fallback(p, symbol))) for p in preds] if fallback \
        else list(preds)
    preds = [undo_fallback(p, symbol) for p in served]  # the model's own, as `rasa test nlu`
    gold, preds, multi_label = _multi_label(gold, preds, symbol)
    summary: dict[str, Any] = {**meta, "n_examples": len(gold)}
    if fallback is not None:
        summary["fallback_threshold"] = fallback.threshold
        summary["fallback_ambiguity_threshold"] = fallback.ambiguity_threshold

    intents = intent_report(gold, preds)
    bins: list[CalibrationBin] = []
    if intents:
        bins = _intent_summary(summary, intents, gold, served, preds, out_of_scope_intent,
                               with_fallback=fallback is not None)
    if multi_label:
        summary.update(multi_label_scores(multi_label))

    entities = _entity_reports(gold, preds, lenient)
    if entities:
        exact = entities["exact_span"]["micro avg"]
        summary["entity_f1"] = exact["f1-score"]
        summary["entity_precision"] = exact["precision"]
        summary["entity_recall"] = exact["recall"]
        summary["entity_token_f1"] = entities["token_level"]["micro avg"]["f1-score"]
        for key, name in (("lenient", "entity_lenient_f1"), ("roles", "role_f1"),
                          ("groups", "group_f1")):
            if key in entities:
                report = entities[key]
                summary[name] = report.get("micro avg", report)["f1-score"]

    responses = response_selection_report(gold, preds) if scores_responses(gold, preds) else {}
    if responses:
        summary.update(_label_scores("response", responses))
        summary["num_response_examples"] = len(response_pairs(gold, preds))

    errors = {"intent_errors": intent_errors(gold, preds),
              "entity_errors": entity_errors(gold, preds)}
    files = {"summary.json": summary, "intent_report.json": intents,
             "entity_report.json": entities, "errors.json": errors}
    if responses:
        files |= {RESPONSE_REPORT: responses,
                  RESPONSE_ERRORS: response_selection_errors(gold, preds)}
    if multi_label:
        files[MULTI_LABEL_REPORT] = multi_label
    images = _plot(gold, preds, out, bins, bool(entities), bool(responses)) if plots else []
    for name, content in files.items():
        (out / name).write_text(json.dumps(content, indent=2, ensure_ascii=False, default=str)
                                + "\n", encoding="utf-8")
    sections = _response_markdown(responses, files[RESPONSE_ERRORS]) if responses else []
    sections += _multi_label_markdown(multi_label) if multi_label else []
    (out / "report.md").write_text(_markdown(summary, intents, entities, errors, images,
                                             sections), encoding="utf-8")
    return summary


def aggregate_summaries(summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean and sample sd (ddof=1; 0 for one run) of every numeric key over runs (folds, seeds).

    Numeric keys become ``{"mean", "sd", "n", "values"}`` (``n`` counts the runs that have the
    key); other keys are kept when every run has the same value, dropped otherwise.
    """
    keys = list(dict.fromkeys(k for s in summaries for k in s))
    aggregated: dict[str, Any] = {}
    for key in keys:
        present = [s[key] for s in summaries if key in s]
        if all(_is_number(v) for v in present):
            values = [float(v) for v in present]
            aggregated[key] = {"mean": statistics.fmean(values),
                               "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
                               "n": len(values), "values": values}
        elif len(present) == len(summaries) and all(v == present[0] for v in present):
            aggregated[key] = present[0]
    return aggregated


def format_mean_sd(agg: Mapping[str, Any], key: str, scale: float = 100, digits: int = 2) -> str:
    """``"98.71 ± 0.12"`` for an :func:`aggregate_summaries` entry, scaled (percent by default)."""
    if key not in agg or not isinstance(agg[key], Mapping):
        raise KeyError(f"no aggregated metric {key!r}; have {sorted(agg)}")
    entry = agg[key]
    return f"{entry['mean'] * scale:.{digits}f} ± {entry['sd'] * scale:.{digits}f}"


# ---- pieces ------------------------------------------------------------------------------------
def _intent_summary(summary: dict[str, Any], intents: Mapping[str, Any],
                    gold: Sequence[Message], served: Sequence[Mapping[str, Any]],
                    preds: Sequence[Mapping[str, Any]], out_of_scope_intent: str | None,
                    with_fallback: bool) -> list[CalibrationBin]:
    """Add the intent keys to ``summary`` (``served``: the results with the fallback,
    ``preds``: the model's own); returns the reliability bins."""
    summary.update(_label_scores("intent", intents))
    pairs = intent_pairs(gold, preds)
    bins = calibration_bins([c for *_, c in pairs], [g == p for _, g, p, _ in pairs])
    summary["intent_ece"], summary["intent_mce"] = calibration_errors(bins)
    with_fallback = with_fallback or any(is_fallback(p) for p in served)
    if with_fallback:
        summary["fallback_rate"] = sum(map(is_fallback, served)) / len(served)
    if out_of_scope_intent:
        summary.update(out_of_scope_metrics(gold, served, out_of_scope_intent, with_fallback))
    return bins


def _multi_label(gold: Sequence[Message], preds: Sequence[Mapping[str, Any]],
                 symbol: str | None) -> tuple[Sequence[Message], Sequence[Mapping[str, Any]],
                                              dict[str, Any]]:
    """The multi-label report when multi-intent labels are scored (``symbol`` given, and a
    multi-label model's predictions or a gold intent with the symbol); a multi-label model's
    gold and predicted names in canonical order for the single-label reports."""
    multi_model = any(is_multi_label_result(p) for p in preds)
    if not symbol or not (multi_model or any(symbol in (m.intent or "") for m in gold)):
        return gold, preds, {}
    report = multi_label_report(*intent_sets(gold, preds, symbol))
    if multi_model:
        gold, preds = canonical_names(gold, preds, symbol)
    return gold, preds, report


def _label_scores(prefix: str, report: Mapping[str, Any]) -> dict[str, float]:
    """``<prefix>_accuracy``, ``<prefix>_macro_f1``, ``<prefix>_weighted_f1`` of a report."""
    return {f"{prefix}_accuracy": report["accuracy"],
            f"{prefix}_macro_f1": report["macro avg"]["f1-score"],
            f"{prefix}_weighted_f1": report["weighted avg"]["f1-score"]}


def _entity_reports(gold: Sequence[Message], preds: Sequence[Mapping[str, Any]],
                    lenient: bool) -> dict[str, Any]:
    predicted = [predicted_spans(p) for p in preds]
    spans = [s for m in gold for s in m.entities] + [s for p in predicted for s in p]
    if not spans:
        return {}
    reports: dict[str, Any] = {"exact_span": entity_span_report(gold, preds),
                               "token_level": entity_token_report(gold, preds)}
    if any(s.role is not None for s in spans):
        reports["roles"] = entity_span_report(gold, preds, attribute="role")
    if any(s.group is not None for s in spans):
        reports["groups"] = entity_span_report(gold, preds, attribute="group")
    if lenient:
        reports["lenient"] = lenient_entity_scores(gold, preds)
    return reports


def _plot(gold: Sequence[Message], preds: Sequence[Mapping[str, Any]], out: Path,
          bins: Sequence[CalibrationBin], entities: bool, responses: bool
          ) -> list[tuple[str, str]]:
    images = []
    if bins:
        images += _plot_pairs(intent_pairs(gold, preds), out, "Intent", INTENT_MATRIX,
                              INTENT_HISTOGRAM)
        plot_reliability_diagram(bins, out / INTENT_RELIABILITY,
                                 title="Intent reliability diagram (top confidence)")
        images.append(("Intent reliability diagram", INTENT_RELIABILITY))
    if entities:
        tokenizer = WhitespaceTokenizer()
        y_true, y_pred = [], []
        for message, pred in zip(gold, preds):
            tokens = tokenizer.tokenize(message.text)
            y_true += token_labels(tokens, message.entities)
            y_pred += token_labels(tokens, predicted_spans(pred))
        plot_confusion_matrix(y_true, y_pred, out / ENTITY_MATRIX,
                              title="Entity confusion matrix (token labels)")
        images.append(("Entity confusion matrix (token labels)", ENTITY_MATRIX))
    if responses:
        images += _plot_pairs(response_pairs(gold, preds), out, "Response selection",
                              RESPONSE_MATRIX, RESPONSE_HISTOGRAM)
    return images


def _plot_pairs(pairs: Sequence[LabelPair], out: Path, what: str, matrix: str,
                histogram: str) -> list[tuple[str, str]]:
    plot_label_predictions([g for _, g, _, _ in pairs], [p for _, _, p, _ in pairs],
                           [c for *_, c in pairs], out / matrix, out / histogram, what)
    return [(f"{what} confusion matrix", matrix), (f"{what} confidence histogram", histogram)]


def _markdown(summary: Mapping[str, Any], intents: Mapping[str, Any],
              entities: Mapping[str, Any], errors: Mapping[str, list],
              images: Sequence[tuple[str, str]], sections: Sequence[str] = ()) -> str:
    title = " / ".join(str(summary[k]) for k in ("task", "dataset", "split") if k in summary)
    metrics = {k: v for k, v in summary.items() if _is_metric(k, v)}
    facts = {k: v for k, v in summary.items() if k not in metrics}
    lines = [f"# NLU evaluation{': ' + title if title else ''}", "", "| run | |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in facts.items()]
    lines += ["", "## Headline metrics", "", "| metric | % |", "| --- | --- |"]
    lines += [f"| {key} | {value * 100:.2f} |" for key, value in metrics.items()]
    lines += ["", "`entity_f1` is exact-span micro F1 (seqeval strict, BILOU); "
              "`entity_token_f1` is Rasa's token-level micro F1 (`rasa test nlu`)."]
    lines += _calibration_notes(summary)
    if intents:
        lines += ["", "## Worst intents (by F1)", ""] + _worst_table(intents, "intent")
    if entities:
        lines += ["", "## Worst entity types (exact span, by F1)", ""]
        lines += _worst_table(entities["exact_span"], "entity", confused=False)
    lines += _error_examples(errors)
    lines += sections
    if images:
        lines += ["", "## Plots", ""] + [f"![{alt}]({file})" for alt, file in images]
    return "\n".join(lines) + "\n"


def _calibration_notes(summary: Mapping[str, Any]) -> list[str]:
    lines = []
    if "intent_ece" in summary:
        lines += ["", f"Intent calibration (top confidence, {N_BINS} equal-width bins): "
                  f"ECE {summary['intent_ece'] * 100:.2f} %, "
                  f"MCE {summary['intent_mce'] * 100:.2f} % (`{INTENT_RELIABILITY}`)."]
    if "fallback_threshold" in summary:
        lines += ["", f"FallbackClassifier: threshold {summary['fallback_threshold']}, "
                  f"ambiguity_threshold {summary['fallback_ambiguity_threshold']}; intents are "
                  "scored without it (as `rasa test nlu`), `fallback_rate` is how often it fired."]
    if "oos_recall" in summary:
        lines += ["", "`oos_recall`: out-of-scope messages predicted out of scope or "
                  "`nlu_fallback`; `in_scope_accuracy`: in-scope messages predicted right; "
                  "`oos_auroc`: ROC AUC of 1 − top in-scope confidence as an out-of-scope score."]
    return lines


def _response_markdown(report: Mapping[str, Any], errors: Sequence[Mapping[str, Any]],
                       n: int = 5) -> list[str]:
    lines = ["", "## Response selection", "",
             f"{report['weighted avg']['support']} messages of retrieval intents, scored on their "
             f"`intent_response_key` (`{RESPONSE_REPORT}`): accuracy "
             f"{_pct(report['accuracy'])} %, macro F1 {_pct(report['macro avg']['f1-score'])} %; "
             f"{len(errors)} errors (`{RESPONSE_ERRORS}`).", ""]
    lines += _worst_table(report, "response key")
    if errors:
        lines += ["", "Most confident response-selection errors:", ""]
        lines += [_error_line(e, "intent_response_key_target", "intent_response_key_prediction")
                  for e in errors[:n]]
    return lines


def _multi_label_markdown(report: Mapping[str, Any]) -> list[str]:
    multi = report["multi_intent"]
    lines = ["", "## Multi-label intents", "",
             f"Atomic intent sets (`{MULTI_LABEL_REPORT}`): exact match "
             f"{_pct(report['exact_match'])} %, micro F1 {_pct(report['micro avg']['f1-score'])} "
             f"%, samples F1 {_pct(report['samples avg']['f1-score'])} %, Hamming loss "
             f"{_pct(report['hamming_loss'])} %."]
    if multi["exact_match"] is not None:
        lines[-1] += (f" On the {multi['support']} messages with two or more gold intents: "
                      f"exact match {_pct(multi['exact_match'])} %.")
    return lines + [""] + _worst_table(report, "atomic intent", confused=False)


def _worst_table(report: Mapping[str, Any], label: str, confused: bool = True,
                 n: int = 10) -> list[str]:
    columns = [label, "precision", "recall", "F1", "support"] + (["confused with"] if confused else [])
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for name, row in _worst(report, n):
        cells = [name, _pct(row["precision"]), _pct(row["recall"]), _pct(row["f1-score"]),
                 str(row["support"])]
        if confused:
            shown = ", ".join(f"{k} ({v})" for k, v in row.get("confused_with", {}).items())
            cells.append(shown or "-")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _error_line(error: Mapping[str, Any], gold_field: str, prediction_field: str) -> str:
    predicted = error[prediction_field]
    return (f"- \"{error['text']}\": {error[gold_field]} → {predicted['name']} "
            f"({predicted['confidence']:.2f})")


def _error_examples(errors: Mapping[str, list], n: int = 5) -> list[str]:
    lines = ["", "## Example errors", "",
             f"{len(errors['intent_errors'])} intent errors, "
             f"{len(errors['entity_errors'])} messages with entity errors (all in errors.json)."]
    if errors["intent_errors"]:
        lines += ["", "Most confident intent errors:", ""]
        lines += [_error_line(e, "intent", "intent_prediction")
                  for e in errors["intent_errors"][:n]]
    if errors["entity_errors"]:
        lines += ["", "Entity errors:", ""]
        for e in errors["entity_errors"][:n]:
            lines.append(f"- \"{e['text']}\": gold {_spans(e['text'], e['entities'])}, "
                         f"predicted {_spans(e['text'], e['predicted_entities'])}")
    return lines


def _spans(text: str, spans: Sequence[Mapping[str, Any]]) -> str:
    shown = []
    for span in spans:
        label = ".".join(str(span[k]) for k in ("entity", "group", "role") if span.get(k))
        shown.append(f"[{text[span['start']:span['end']]}]({label})")
    return " ".join(shown) if shown else "none"


def _worst(report: Mapping[str, Any], n: int) -> list[tuple[str, Mapping[str, Any]]]:
    rows = [(k, v) for k, v in report.items()
            if isinstance(v, Mapping) and "f1-score" in v and not k.endswith(" avg")]
    return sorted(rows, key=lambda kv: (kv[1]["f1-score"], -kv[1]["support"], kv[0]))[:n]


def _pct(value: float) -> str:
    return f"{value * 100:.1f}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_metric(key: str, value: Any) -> bool:
    return isinstance(value, float) and (key.startswith(("oos_", "in_scope_")) or key.endswith(
        ("_f1", "_accuracy", "_precision", "_recall", "_rate", "_ece", "_mce", "_exact_match",
         "_hamming_loss", "_multi_intent")))
