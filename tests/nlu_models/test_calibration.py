"""Calibration (ECE, MCE, reliability diagram) and out-of-scope metrics on hand-computed cases,
and how :func:`evaluate_nlu` reports them."""
from __future__ import annotations

import json

import pytest

from nlu_models.data.schema import Message
from nlu_models.evaluation import (calibration_bins, calibration_errors, evaluate_nlu,
                                   out_of_scope_metrics, plot_reliability_diagram,
                                   top_in_scope_confidence)
from nlu_models.fallback import FallbackConfig

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def result(*ranking: tuple[str, float]) -> dict:
    entries = [{"name": n, "confidence": c} for n, c in ranking]
    return {"text": "", "intent": dict(entries[0]), "intent_ranking": entries, "entities": []}


# ---- calibration -------------------------------------------------------------------------------
def test_bins_ece_and_mce_match_hand_computed_values():
    confidences = [0.05, 0.25, 0.28, 0.3, 0.75, 0.95, 0.95, 1.0]
    correct = [False, True, False, True, True, True, False, True]
    bins = calibration_bins(confidences, correct)
    assert [b.count for b in bins] == [1, 0, 3, 0, 0, 0, 0, 1, 0, 3]  # 0.3 is in (0.2, 0.3]
    assert (bins[2].lower, bins[2].upper) == (0.2, 0.3)
    assert bins[2].confidence == pytest.approx(0.83 / 3)
    assert bins[2].accuracy == pytest.approx(2 / 3)
    assert bins[9].confidence == pytest.approx(2.9 / 3)
    ece, mce = calibration_errors(bins)
    # gaps: 0.05 (1 item), |2/3 - 0.83/3| = 0.39 (3), 0.25 (1), |2/3 - 2.9/3| = 0.3 (3)
    assert ece == pytest.approx((0.05 + 3 * 0.39 + 0.25 + 3 * 0.3) / 8)
    assert mce == pytest.approx(0.39)


def test_calibrated_empty_and_mismatched_inputs():
    perfect = calibration_bins([0.7] * 10, [True] * 7 + [False] * 3)
    assert calibration_errors(perfect) == pytest.approx((0.0, 0.0))
    assert calibration_bins([0.0], [False])[0].count == 1  # 0 joins the first bin
    assert calibration_errors(calibration_bins([], [])) == (0.0, 0.0)
    five = calibration_bins([0.1, 0.9], [False, True], n_bins=5)
    assert [b.count for b in five] == [1, 0, 0, 0, 1]
    with pytest.raises(ValueError, match="2 confidences but 1"):
        calibration_bins([0.1, 0.2], [True])


def test_reliability_diagram_is_a_png(tmp_path):
    bins = calibration_bins([0.05, 0.25, 0.28, 0.3, 0.75, 0.95, 0.95, 1.0],
                            [False, True, False, True, True, True, False, True])
    data = plot_reliability_diagram(bins, tmp_path / "r.png").read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5_000
    empty = plot_reliability_diagram(calibration_bins([], []), tmp_path / "e.png")
    assert empty.read_bytes()[:8] == PNG_MAGIC


# ---- out of scope ------------------------------------------------------------------------------
# gold, the model's ranking, its "1 - top in-scope confidence" score; with FallbackClassifier
# (0.3, 0.1) only the two rows whose top two are 0.05 apart fall back.
OOS_CASE = [
    ("oos", result(("oos", 0.9), ("a", 0.1)), 0.9),               # caught by the model
    ("oos", result(("a", 0.5), ("b", 0.45), ("oos", 0.05)), 0.5),  # caught by the fallback
    ("oos", result(("b", 0.8), ("oos", 0.2)), 0.2),               # missed
    ("a", result(("a", 0.95), ("oos", 0.05)), 0.05),              # right
    ("a", result(("oos", 0.6), ("a", 0.4)), 0.6),                 # wrong: said oos
    ("b", result(("b", 0.55), ("a", 0.5)), 0.45),                 # right, but falls back
]


def oos_case(fallback: FallbackConfig | None = FallbackConfig()):
    gold = [Message(f"text {i}", g) for i, (g, _, _) in enumerate(OOS_CASE)]
    preds = [r for _, r, _ in OOS_CASE]
    return gold, [fallback.apply(p) for p in preds] if fallback else preds


def test_out_of_scope_metrics_match_hand_computed_values():
    gold, served = oos_case()
    metrics = out_of_scope_metrics(gold, served, "oos", with_fallback=True)
    # AUROC: oos scores (0.9, 0.5, 0.2) against in-scope (0.05, 0.6, 0.45): 3 + 2 + 1 of 9 pairs
    assert metrics == pytest.approx({"oos_recall": 2 / 3, "oos_recall_no_fallback": 1 / 3,
                                     "in_scope_accuracy": 2 / 3,
                                     "in_scope_fallback_rate": 1 / 3, "oos_auroc": 6 / 9})
    gold, raw = oos_case(None)
    assert out_of_scope_metrics(gold, raw, "oos") == pytest.approx(
        {"oos_recall": 1 / 3, "in_scope_accuracy": 2 / 3, "oos_auroc": 6 / 9})
    assert [1 - top_in_scope_confidence(p, "oos") for p in served] == pytest.approx(
        [s for *_, s in OOS_CASE])
    assert out_of_scope_metrics(gold[3:], raw[3:], "oos") == {}  # no out-of-scope gold


def test_evaluate_nlu_reports_calibration_fallback_and_out_of_scope(tmp_path):
    gold, served = oos_case()
    summary = evaluate_nlu(gold, served, tmp_path / "served", {"dataset": "toy"},
                           out_of_scope_intent="oos")
    # the intents are scored on the model's predictions: 3 right of 6 (rows 1, 4, 6)
    assert summary["intent_accuracy"] == pytest.approx(0.5)
    assert summary["fallback_rate"] == pytest.approx(2 / 6)
    assert summary["oos_recall"] == pytest.approx(2 / 3)
    assert summary["oos_recall_no_fallback"] == pytest.approx(1 / 3)
    assert summary["oos_auroc"] == pytest.approx(6 / 9)
    # top confidences 0.9 ✓, 0.5 ✗, 0.8 ✗, 0.95 ✓, 0.6 ✗, 0.55 ✓. Gaps per bin: (0.4, 0.5]
    # 0.5; (0.5, 0.6] |0.5 - 0.575| over 2 items; (0.7, 0.8] 0.8; (0.8, 0.9] 0.1; (0.9, 1] 0.05
    assert summary["intent_ece"] == pytest.approx((0.5 + 2 * 0.075 + 0.8 + 0.1 + 0.05) / 6)
    assert summary["intent_mce"] == pytest.approx(0.8)
    out = tmp_path / "served"
    assert json.loads((out / "summary.json").read_text()) == summary
    assert (out / "intent_reliability_diagram.png").read_bytes()[:8] == PNG_MAGIC
    markdown = (out / "report.md").read_text()
    for needle in ("ECE", "(intent_reliability_diagram.png)", "| oos_auroc | 66.67 |",
                   "| oos_recall_no_fallback | 33.33 |"):
        assert needle in markdown, needle

    # the same from the raw predictions with the fallback given to the evaluation
    gold, raw = oos_case(None)
    again = evaluate_nlu(gold, raw, tmp_path / "raw", {"dataset": "toy"}, plots=False,
                         out_of_scope_intent="oos", fallback=FallbackConfig())
    assert again == {**summary, "fallback_threshold": 0.3, "fallback_ambiguity_threshold": 0.1}
    # without any fallback: no fallback keys, the model's own recall
    plain = evaluate_nlu(gold, raw, tmp_path / "plain", {}, plots=False,
                         out_of_scope_intent="oos")
    assert plain["oos_recall"] == pytest.approx(1 / 3)
    assert not {"fallback_rate", "oos_recall_no_fallback", "in_scope_fallback_rate"} & set(plain)
    assert plain["intent_ece"] == summary["intent_ece"]
