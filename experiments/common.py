"""What the entry points share: building Lightning objects from config groups, and writing the
reports of a trained interpreter on one split."""
from __future__ import annotations

import logging
import resource
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("dialab")


def instantiate_callbacks(cfg: DictConfig | None, has_val: bool,
                          max_epochs: int | None = None) -> list:
    """Every entry of the ``callbacks`` group with a ``_target_``. Without a validation split
    nothing can be monitored: early stopping is off, and the checkpoint keeps the last epoch,
    written every :func:`save_every` epochs rather than after each one (writing a small
    model's checkpoint costs as much as training an epoch of it)."""
    callbacks = []
    for name, spec in (cfg or {}).items():
        if not isinstance(spec, DictConfig) or "_target_" not in spec:
            continue
        if not has_val and "monitor" in spec:
            if "EarlyStopping" in spec._target_:
                log.warning("no validation split: early stopping is off")
                continue
            spec = OmegaConf.create({**OmegaConf.to_container(spec, resolve=True),
                                     "monitor": None, "save_top_k": 1,
                                     "every_n_epochs": save_every(max_epochs)})
        callbacks.append(hydra.utils.instantiate(spec))
    return callbacks


def save_every(max_epochs: int | None, at_most: int = 20) -> int:
    """The largest period ≤ ``at_most`` that divides ``max_epochs``, so the final epoch is
    always saved (1 when the epochs are unknown)."""
    if not max_epochs or max_epochs < 1:
        return 1
    return max(d for d in range(1, min(at_most, max_epochs) + 1) if max_epochs % d == 0)


def instantiate_loggers(cfg: DictConfig | None) -> list:
    return [hydra.utils.instantiate(spec) for spec in (cfg or {}).values()
            if isinstance(spec, DictConfig) and "_target_" in spec]


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def write_reports(interpreter, messages, out_dir: Path, meta: dict[str, Any],
                  lenient: bool = False, out_of_scope_intent: str | None = None,
                  intent_split_symbol: str | None = None) -> dict[str, Any]:
    """Parse ``messages`` and write summary.json, the Rasa-shaped reports, plots and report.md
    into ``out_dir`` (scored with the interpreter's fallback, if it has one; out-of-scope
    metrics for ``out_of_scope_intent``; multi-label scores of multi-intent labels split at
    ``intent_split_symbol``, by default a multi-label model's own); returns the summary."""
    from nlu_models.evaluation import evaluate_nlu

    labels = getattr(interpreter, "labels", None)
    if intent_split_symbol is None and getattr(labels, "multi_label", False):
        intent_split_symbol = labels.intent_split_symbol
    if out_of_scope_intent:
        meta = {**meta, "out_of_scope_intent": out_of_scope_intent}
    predictions = interpreter.parse_messages(messages)
    summary = evaluate_nlu(messages, predictions, out_dir, meta, lenient=lenient,
                           out_of_scope_intent=out_of_scope_intent,
                           fallback=getattr(interpreter, "fallback", None),
                           intent_split_symbol=intent_split_symbol)
    log.info("reports written to %s", out_dir)
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    """The headline numbers, one per line, as `make demo` shows them."""
    for key, value in summary.items():
        if isinstance(value, float):
            value = f"{value:.4f}"
        if not isinstance(value, (dict, list)):
            print(f"{key:24s} {value}")
