"""Report figures: a confusion matrix, Rasa's paired confidence histogram and a reliability
diagram.

Figures are built on matplotlib's Agg canvas directly, never through pyplot, so nothing here
needs a display, changes the global backend, or leaves a figure open after saving.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix

if TYPE_CHECKING:
    from nlu_models.evaluation.calibration import CalibrationBin

CELL_NUMBERS_UP_TO = 30  # labels; beyond this the per-cell counts are unreadable
HIT_COLOUR, MISS_COLOUR = "#009292", "#920000"  # Rasa's colours


def plot_confusion_matrix(gold_labels: Sequence[str], pred_labels: Sequence[str],
                          path: str | Path, title: str = "Confusion matrix",
                          normalize: bool = False) -> Path:
    """Save the confusion matrix (rows gold, columns predicted, labels sorted) as an image.

    Counts use a log colour scale, as Rasa's do, so rare confusions stay visible next to a
    heavy diagonal; ``normalize`` shows each row as fractions of its gold count instead. The
    figure and fonts scale with the number of labels (readable up to ~150); cells carry
    their numbers only up to 30 labels.
    """
    labels = sorted(set(gold_labels) | set(pred_labels))
    matrix = confusion_matrix(gold_labels, pred_labels, labels=labels).astype(float)
    if normalize:
        rows = matrix.sum(axis=1, keepdims=True)
        matrix = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
        norm: Normalize = Normalize(vmin=0.0, vmax=1.0)
    else:
        # vmin below 1 so a single confusion is visibly blue, not the colour map's white end
        norm = LogNorm(vmin=0.5, vmax=max(matrix.max(), 2.0))
    n = max(len(labels), 1)
    side = min(max(6.0, 3.0 + 0.18 * n), 30.0)  # inches
    font = 9.0 if n <= CELL_NUMBERS_UP_TO else max(5.0, 9.0 - (n - CELL_NUMBERS_UP_TO) / 30)

    fig = Figure(figsize=(side + 1.5, side))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    shown = np.ma.masked_where(matrix <= 0, matrix)  # empty cells stay white
    image = ax.imshow(shown, cmap="Blues", norm=norm, interpolation="nearest", aspect="auto")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02,
                 label="fraction of gold" if normalize else "count (log scale)")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=font)
    ax.set_yticks(range(len(labels)), labels, fontsize=font)
    ax.set_xlabel("Predicted label")
    ax.set_ylabel("True label")
    ax.set_title(title)
    if len(labels) <= CELL_NUMBERS_UP_TO:
        _write_cells(ax, matrix, normalize, font)
    return _save(fig, path)


def plot_confidence_histogram(hit_confidences: Sequence[float],
                              miss_confidences: Sequence[float], path: str | Path,
                              title: str = "Prediction confidence distribution") -> Path:
    """Save Rasa's paired histogram: confidence bins 0..1 down the middle, hits left, misses right.

    The bars are counts of predictions per 0.05-wide confidence bin; each side has its own count
    axis, so the shape of the (usually far fewer) misses stays visible.
    """
    bins = np.linspace(0.0, 1.0, 21)
    hits, _ = np.histogram(np.clip(hit_confidences, 0.0, 1.0), bins=bins)
    misses, _ = np.histogram(np.clip(miss_confidences, 0.0, 1.0), bins=bins)
    centres, height = bins[:-1] + 0.025, 0.045

    fig = Figure(figsize=(10, 8))
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, sharey=True)
    left.barh(centres, hits, height=height, color=HIT_COLOUR,
              label=f"hits ({len(hit_confidences)})")
    right.barh(centres, misses, height=height, color=MISS_COLOUR,
               label=f"misses ({len(miss_confidences)})")
    left.set_xlim(max(int(hits.max()), 1) * 1.1, 0)  # hits grow to the left
    right.set_xlim(0, max(int(misses.max()), 1) * 1.1)
    left.set_ylim(0, 1)
    left.set_yticks(bins[::2])
    left.set_ylabel("Confidence")
    for ax in (left, right):
        ax.set_xlabel("Number of samples")
    fig.legend(loc="upper center", ncol=2, bbox_to_anchor=(0.5, 0.95), frameon=False)
    fig.suptitle(title)
    return _save(fig, path)


def plot_label_predictions(gold_labels: Sequence[str], pred_labels: Sequence[str],
                           confidences: Sequence[float], matrix_path: str | Path,
                           histogram_path: str | Path, what: str) -> tuple[Path, Path]:
    """The two figures ``rasa test nlu`` draws for a single-label prediction (``what``:
    ``"Intent"``, ``"Response selection"``): its confusion matrix and its confidence histogram,
    hits against misses."""
    hits = [c for g, p, c in zip(gold_labels, pred_labels, confidences) if g == p]
    misses = [c for g, p, c in zip(gold_labels, pred_labels, confidences) if g != p]
    return (plot_confusion_matrix(gold_labels, pred_labels, matrix_path,
                                  title=f"{what} confusion matrix"),
            plot_confidence_histogram(hits, misses, histogram_path,
                                      title=f"{what} prediction confidence distribution"))


def plot_reliability_diagram(bins: Sequence[CalibrationBin], path: str | Path,
                             title: str = "Reliability diagram") -> Path:
    """Save the reliability diagram of :func:`~nlu_models.evaluation.calibration.
    calibration_bins`: per confidence bin a bar of its accuracy, the gap to its mean confidence
    hatched, its number of predictions above it, and the diagonal of perfect calibration; ECE
    and MCE in the title."""
    from nlu_models.evaluation.calibration import calibration_errors

    ece, mce = calibration_errors(bins)
    lowers = np.array([b.lower for b in bins])
    widths = np.array([b.upper - b.lower for b in bins])
    accuracy = np.array([b.accuracy for b in bins])
    confidence = np.array([b.confidence for b in bins])
    filled = np.array([b.count > 0 for b in bins])

    fig = Figure(figsize=(7, 7))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.bar(lowers[filled], accuracy[filled], width=widths[filled], align="edge",
           color=HIT_COLOUR, edgecolor="black", linewidth=0.5, label="accuracy")
    ax.bar(lowers[filled], (confidence - accuracy)[filled], bottom=accuracy[filled],
           width=widths[filled], align="edge", facecolor=(0.57, 0.0, 0.0, 0.2),
           edgecolor=MISS_COLOUR, hatch="//", linewidth=0.5, label="gap to mean confidence")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    for b in bins:
        if b.count:
            ax.text((b.lower + b.upper) / 2, max(b.accuracy, b.confidence) + 0.01,
                    f"{b.count}", ha="center", va="bottom", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.08)
    ax.set_xticks(np.linspace(0, 1, 11))
    ax.set_xlabel("Confidence (numbers: predictions per bin)")
    ax.set_ylabel("Accuracy")
    ax.set_title(f"{title}\nECE {ece * 100:.2f} %, MCE {mce * 100:.2f} %")
    ax.legend(loc="upper left", frameon=False)
    return _save(fig, path)


def _write_cells(ax, matrix: np.ndarray, normalize: bool, font: float) -> None:
    threshold = matrix.max() / 2 if normalize else np.sqrt(max(matrix.max(), 1.0))
    for (i, j), value in np.ndenumerate(matrix):
        if value > 0:
            text = f"{value:.2f}" if normalize else f"{int(value)}"
            ax.text(j, i, text, ha="center", va="center", fontsize=font,
                    color="white" if value > threshold else "black")


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    fig.clear()
    return path
