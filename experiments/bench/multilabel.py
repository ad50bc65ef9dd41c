"""Multi-label intents against Rasa's combined labels, on ATIS.

    python -m experiments.bench.multilabel [--seeds 1 2 3] [--epochs 100] [--out outputs/bench]
        [--tiny] [-- hydra overrides]

Per seed, each a ``python -m experiments.train`` run in its own process (as
:mod:`experiments.bench.accuracy` runs them):

- ``combined``: ``experiment=diet_atis``, Rasa's way: ``atis_flight#atis_airfare`` is one label
  of its own (DIET's dot-product loss over the combined label strings);
- ``multilabel``: ``experiment=diet_atis_multilabel``: one sigmoid per atomic intent, the
  predicted set is every intent at or above the threshold.

Both are scored on ATIS test: intent accuracy as Rasa scores it (the combined label string must
match), and on the atomic intent sets (the combined predictions split at ``#``): exact match,
micro and samples F1, Hamming loss, and exact match on the test messages with two or more gold
intents only (15 of 893). Writes ``multilabel_atis.json`` (every run's summary, the aggregates,
command, machine and date) into ``--out`` and prints a Markdown table of mean ± sd over the
seeds. ``--tiny`` trains the tiny model twins (``diet_tiny``, ``diet_multilabel_tiny``): for
tests, with overrides such as ``data.max_examples=80``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from experiments.bench.accuracy import markdown_row, run_one
from experiments.bench.common import add_training_arguments, machine_info
from nlu_models.evaluation import aggregate_summaries

# arm → (experiment, its model config, the tiny twin of that model)
ARMS = {"combined": ("diet_atis", "diet", "diet_tiny"),
        "multilabel": ("diet_atis_multilabel", "diet_multilabel", "diet_multilabel_tiny")}
COLUMNS = (("intent_accuracy", "intent acc (combined label)", 100),
           ("intent_exact_match", "exact set match", 100),
           ("intent_micro_f1", "micro F1", 100), ("intent_samples_f1", "samples F1", 100),
           ("intent_hamming_loss", "Hamming loss", 100),
           ("intent_exact_match_multi_intent", "exact match, multi-intent msgs", 100),
           ("entity_f1", "entity F1", 100), ("train_seconds", "train s", 1))


def run_arm(arm: str, seeds: list[int], epochs: int | None, tiny: bool, overrides: list[str],
            out: Path) -> list[dict[str, Any]]:
    """Train and score one arm once per seed; returns the run summaries."""
    experiment, model, tiny_model = ARMS[arm]
    extra = [*([f"model={tiny_model}"] if tiny else []), *overrides]
    runs = []
    for seed in seeds:
        print(f"{arm} ({experiment}, model={tiny_model if tiny else model}) seed {seed} ...",
              flush=True)
        runs.append(run_one(experiment, seed, None, epochs, extra, out, f"multilabel_{arm}"))
        print("  " + ", ".join(f"{key}={runs[-1][key]:.4f}" for key, _, _ in COLUMNS[:-1]
                               if key in runs[-1]), flush=True)
    return runs


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_training_arguments(parser)
    parser.add_argument("--tiny", action="store_true", help="the tiny model twins (tests)")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M")
    arms = {arm: run_arm(arm, args.seeds, args.epochs, args.tiny, args.overrides, args.out)
            for arm in ARMS}
    report = {"command": "python -m experiments.bench.multilabel " + " ".join(
                  argv if argv is not None else sys.argv[1:]),
              "date": started, "machine": machine_info(), "seeds": args.seeds,
              "epochs": args.epochs or arms["combined"][0].get("epochs"), "tiny": args.tiny,
              "overrides": args.overrides,
              "arms": {arm: {"experiment": ARMS[arm][0], "aggregate": aggregate_summaries(runs),
                             "runs": runs} for arm, runs in arms.items()}}
    out_file = args.out / "multilabel_atis.json"
    out_file.write_text(json.dumps(report, indent=2, default=str))
    print("| arm | " + " | ".join(c[1] for c in COLUMNS) + " |")
    print("|" + " --- |" * (len(COLUMNS) + 1))
    for arm, result in report["arms"].items():
        print(markdown_row(arm, result["aggregate"], COLUMNS))
    print(f"wrote {out_file}")
    return report


if __name__ == "__main__":
    main()
