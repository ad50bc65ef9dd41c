"""Accuracy benchmark: train and test one experiment per seed (and fold), each in its own process,
then report mean ± sd over the runs — never the best run.

    python -m experiments.bench.accuracy --experiments diet_snips diet_atis --seeds 1 2 3
    python -m experiments.bench.accuracy --experiments diet_hwu64 --folds 1 2 3 --seeds 1
    python -m experiments.bench.accuracy --experiments diet_snips --epochs 20 -- trainer=gpu
    python -m experiments.bench.accuracy --experiments ted_multiwoz --tag mh10 -- model.max_history=10
    python -m experiments.bench.accuracy ... --resume   # go on after an interruption

Writes ``accuracy_<experiment>.json`` (every run's summary plus the aggregate, the command, the
machine and the date) into ``--out`` and prints a Markdown table for the README. Data with an
``out_of_scope_intent`` (CLINC150) adds the in-scope accuracy, out-of-scope recall (with and
without the FallbackClassifier) and AUROC columns.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from experiments import REPO_ROOT
from experiments.bench.common import (add_training_arguments, machine_info, measured_from_log,
                                      timed_command)
from nlu_models.evaluation import aggregate_summaries, format_mean_sd

COLUMNS = (("intent_accuracy", "intent acc", 100), ("intent_macro_f1", "intent macro F1", 100),
           ("intent_ece", "intent ECE", 100), ("entity_f1", "entity F1 (exact span)", 100),
           ("entity_lenient_f1", "entity F1 (HERMIT lenient)", 100),
           ("train_seconds", "train s", 1), ("peak_rss_mb", "peak MB", 1))
OUT_OF_SCOPE_COLUMNS = (("in_scope_accuracy", "in-scope acc", 100),
                        ("oos_recall", "OOS recall", 100),
                        ("oos_recall_no_fallback", "OOS recall w/o fallback", 100),
                        ("oos_auroc", "OOS AUROC", 100))
DIALOGUE_COLUMNS = (("action_accuracy_excluding_listen", "action acc (no listen)", 100),
                    ("action_weighted_f1_excluding_listen", "action F1 (no listen)", 100),
                    ("action_accuracy", "action acc", 100),
                    ("action_weighted_f1", "action F1", 100),
                    ("conversation_accuracy", "conversation acc", 100),
                    ("train_seconds", "train s", 1), ("peak_rss_mb", "peak MB", 1))


def run_one(experiment: str, seed: int, fold: int | None, epochs: int | None,
            extra: list[str], out: Path, label: str | None = None,
            resume: bool = False) -> dict[str, Any]:
    name = f"{label or experiment}_seed{seed}" + (f"_fold{fold}" if fold is not None else "")
    run_dir = out / "runs" / name
    overrides = [f"experiment={experiment}", f"seed={seed}", f"hydra.run.dir={run_dir}",
                 "trainer.enable_progress_bar=false", "callbacks.model_summary=null", *extra]
    if fold is not None:
        overrides.append(f"data.fold={fold}")
    if epochs is not None:
        overrides.append(f"trainer.max_epochs={epochs}")
    summary_file = run_dir / "reports" / "summary.json"
    measured = measured_from_log(run_dir / "train.log") if resume else None
    if measured is not None and summary_file.exists():
        print(f"  reusing the finished run in {run_dir}", flush=True)
        return {**json.loads(summary_file.read_text()), "peak_rss_mb": measured["peak_rss_mb"],
                "process_seconds": measured["wall_seconds"], "fold": fold, "reused": True}
    run_dir.mkdir(parents=True, exist_ok=True)
    measured = timed_command([sys.executable, "-m", "experiments.train", *overrides],
                             run_dir / "train.log", cwd=REPO_ROOT,
                             env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    summary = json.loads(summary_file.read_text())
    return {**summary, "peak_rss_mb": measured["peak_rss_mb"],
            "process_seconds": measured["wall_seconds"], "fold": fold}


def columns_for(run: dict[str, Any]) -> tuple:
    """The table's columns for an experiment, from one of its run summaries."""
    if run.get("task") == "dialogue":
        return DIALOGUE_COLUMNS
    if "oos_recall" in run:
        return COLUMNS[:3] + OUT_OF_SCOPE_COLUMNS + COLUMNS[3:]
    return COLUMNS


def markdown_row(experiment: str, aggregate: dict[str, Any], columns=COLUMNS) -> str:
    cells = []
    for key, _, scale in columns:
        cells.append(format_mean_sd(aggregate, key, scale=scale, digits=2 if scale == 100 else 0)
                     if isinstance(aggregate.get(key), dict) else "–")
    return f"| {experiment} | " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_training_arguments(parser)
    parser.add_argument("--experiments", nargs="+", required=True)
    parser.add_argument("--folds", nargs="+", type=int, default=None,
                        help="data.fold values (HWU64)")
    parser.add_argument("--tag", default="", help="suffix for the result names (e.g. mh10)")
    parser.add_argument("--resume", action="store_true",
                        help="reuse runs under --out that finished (an interrupted benchmark "
                             "goes on where it stopped; the options must be the same)")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    rows = []
    for experiment in args.experiments:
        name = f"{experiment}_{args.tag}" if args.tag else experiment
        started = time.strftime("%Y-%m-%d %H:%M")
        runs = []
        for seed in args.seeds:
            for fold in args.folds or [None]:
                print(f"{experiment} seed {seed}" + (f" fold {fold}" if fold else "") + " ...",
                      flush=True)
                runs.append(run_one(experiment, seed, fold, args.epochs, args.overrides,
                                    args.out, name, resume=args.resume))
                print("  " + ", ".join(f"{k}={runs[-1][k]:.4f}" for k in
                                       ("intent_accuracy", "entity_f1", "oos_recall",
                                        "oos_auroc", "action_accuracy",
                                        "conversation_accuracy") if k in runs[-1]),
                      flush=True)
        aggregate = aggregate_summaries(runs)
        results[experiment] = {
            "command": "python -m experiments.bench.accuracy " + " ".join(argv or sys.argv[1:]),
            "date": started, "machine": machine_info(), "seeds": args.seeds,
            "folds": args.folds, "epochs": args.epochs or runs[0].get("epochs"),
            "overrides": args.overrides, "aggregate": aggregate, "runs": runs}
        (args.out / f"accuracy_{name}.json").write_text(
            json.dumps(results[experiment], indent=2, default=str))
        columns = columns_for(runs[0])
        rows += ["| experiment | " + " | ".join(c[1] for c in columns) + " |",
                 "|" + " --- |" * (len(columns) + 1), markdown_row(name, aggregate, columns)]
    print("\n".join(rows))
    return results


if __name__ == "__main__":
    main()
