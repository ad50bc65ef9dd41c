"""Calibration of the top intent confidence: reliability bins, expected and maximum calibration
error (Guo et al. 2017, as google/uncertainty-baselines reports them).

The confidences are cut into ``n_bins`` equal-width bins over [0, 1], each bin holding
``(lower, upper]`` (a confidence of exactly 0 goes to the first bin). For the predictions in a
bin, *accuracy* is the fraction that are right and *confidence* their mean confidence::

    ECE = sum over bins of  count / N * |accuracy - confidence|
    MCE = max over non-empty bins of  |accuracy - confidence|

A perfectly calibrated model (70 % right where it says 0.7) has both at 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

N_BINS = 10


@dataclass(frozen=True)
class CalibrationBin:
    """One confidence bin ``(lower, upper]``; ``confidence`` and ``accuracy`` are 0 when empty."""

    lower: float
    upper: float
    count: int
    confidence: float
    accuracy: float

    @property
    def gap(self) -> float:
        return abs(self.accuracy - self.confidence)


def calibration_bins(confidences: Sequence[float], correct: Sequence[bool],
                     n_bins: int = N_BINS) -> list[CalibrationBin]:
    """The ``n_bins`` equal-width reliability bins of top confidences and hit/miss flags."""
    if len(confidences) != len(correct):
        raise ValueError(f"{len(confidences)} confidences but {len(correct)} hit/miss flags")
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, not {n_bins}")
    conf = np.clip(np.asarray(confidences, dtype=float), 0.0, 1.0)
    hits = np.asarray(correct, dtype=float)
    edges = np.arange(n_bins + 1) / n_bins   # k / n exactly, so 0.3 falls in (0.2, 0.3]
    index = np.digitize(conf, edges[1:-1], right=True)
    bins = []
    for b in range(n_bins):
        members = index == b
        count = int(members.sum())
        bins.append(CalibrationBin(
            float(edges[b]), float(edges[b + 1]), count,
            float(conf[members].mean()) if count else 0.0,
            float(hits[members].mean()) if count else 0.0))
    return bins


def calibration_errors(bins: Sequence[CalibrationBin]) -> tuple[float, float]:
    """``(ECE, MCE)`` of reliability bins; ``(0.0, 0.0)`` when every bin is empty."""
    total = sum(b.count for b in bins)
    if not total:
        return 0.0, 0.0
    ece = sum(b.count / total * b.gap for b in bins)
    mce = max(b.gap for b in bins if b.count)
    return float(ece), float(mce)
