"""Fine-tuning with a new intent against training from scratch, on the demo bot.

    python -m experiments.bench.finetune [--intent ask_weather_followup] [--seeds 1 2 3]
        [--epochs 100] [--finetune-epochs 10 [30 ...]] [--finetune-batch-sizes [32 ...]]
        [--out outputs/bench] [--reuse] [-- hydra overrides]

Per seed, each a ``python -m experiments.train experiment=diet_demo`` run in its own process:

- ``base``: the demo bot's NLU data without ``--intent``, ``--epochs`` epochs;
- ``finetune<N>``: ``init_from=`` the base model on the full data, for each N of
  ``--finetune-epochs`` (the intent is appended to the label set, new n-grams to the
  vocabularies); with the config's batch size (growing from 64 to 256 over the N epochs: few
  steps for a short run) and each fixed one of ``--finetune-batch-sizes``;
- ``scratch``: the full data from scratch, ``--epochs`` epochs.

Each is scored on the bot's test split (``tests/test_nlu.yml``): intent accuracy on the old
intents and on the new one (from the per-intent recalls of ``intent_report.json``). Writes
``finetune_<intent>.json`` (every run, the aggregates, command, machine, date) into ``--out``
and prints a Markdown table of mean ± sd over the seeds. Wall times are whole training
commands (imports, featurizing, training, reports); the fine-tune's excludes its base model.
``--reuse`` keeps the runs an earlier call wrote into that JSON (same run, seed and overrides)
instead of training them again: add fine-tuning variants to a finished benchmark.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from experiments import REPO_ROOT
from experiments.bench.common import machine_info, train_dialab
from nlu_models.evaluation import aggregate_summaries, format_mean_sd

DEMO_BOT = REPO_ROOT / "data" / "demo_bot"
COLUMNS = (("old_intent_accuracy", "old intents acc", 100),
           ("new_intent_accuracy", "new intent acc", 100),
           ("intent_accuracy", "all intents acc", 100),
           ("wall_seconds", "wall s", 1), ("train_seconds", "train s", 1))


def data_without(intent: str, out: Path) -> Path:
    """The demo bot's training NLU (synonyms, regexes, lookups kept) without ``intent``."""
    from dialogue_models.project import load_bot
    from nlu_models.data.rasa_yaml import nlu_to_yaml

    nlu = load_bot(DEMO_BOT).nlu
    if intent not in nlu.intents:
        raise SystemExit(f"the demo bot has no intent {intent!r}; it has {nlu.intents}")
    out.write_text(nlu_to_yaml(nlu.with_examples([m for m in nlu.examples
                                                  if m.intent != intent])))
    return out


def intent_accuracies(report_dir: Path, intent: str) -> dict[str, float]:
    """Accuracy on the test examples of ``intent`` and on all the others (recall × support)."""
    report = json.loads((report_dir / "intent_report.json").read_text())
    per_intent = {k: v for k, v in report.items()
                  if isinstance(v, dict) and "support" in v and "avg" not in k}
    old = [v for k, v in per_intent.items() if k != intent]
    new = per_intent.get(intent, {"recall": 0.0})
    return {"old_intent_accuracy": sum(v["recall"] * v["support"] for v in old)
            / sum(v["support"] for v in old),
            "new_intent_accuracy": float(new["recall"])}


def run(label: str, seed: int, epochs: int, out: Path, overrides: list[str],
        intent: str) -> dict[str, Any]:
    run_dir = out / f"seed{seed}" / label
    run_dir.mkdir(parents=True, exist_ok=True)
    measured = train_dialab("diet_demo", epochs, seed, run_dir, run_dir / "train.log",
                            tuple(overrides))
    summary = json.loads((run_dir / "reports" / "summary.json").read_text())
    return {"label": label, "seed": seed, "epochs": epochs, "overrides": overrides,
            **measured, "train_seconds": summary["train_seconds"],
            "intent_accuracy": summary["intent_accuracy"],
            **intent_accuracies(run_dir / "reports", intent)}


def plan(args: argparse.Namespace, seed: int, reduced: Path, out: Path
         ) -> list[tuple[str, str, int, list[str]]]:
    """(label, table title, epochs, overrides) of one seed's runs, in order."""
    init = f"init_from={out / f'seed{seed}' / 'base' / 'checkpoints' / 'last.ckpt'}"
    runs = [("base", f"base (without {args.intent})", args.epochs,
             [f"data.train.path={reduced}"])]
    for n in args.finetune_epochs:
        runs.append((f"finetune{n}", "fine-tuned from base", n, [init]))
        runs += [(f"finetune{n}_batch{b}", f"fine-tuned from base, batch size {b}", n,
                  [init, f"data.batch_size=[{b},{b}]"]) for b in args.finetune_batch_sizes]
    runs.append(("scratch", "from scratch", args.epochs, []))
    return [(label, title, epochs, [*extra, *args.overrides])
            for label, title, epochs, extra in runs]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--intent", default="ask_weather_followup")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=100, help="base and scratch epochs")
    parser.add_argument("--finetune-epochs", nargs="+", type=int, default=[10])
    parser.add_argument("--finetune-batch-sizes", nargs="*", type=int, default=[],
                        help="also fine-tune with these fixed batch sizes (besides the "
                             "config's growing one)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "bench")
    parser.add_argument("--reuse", action="store_true",
                        help="keep matching runs from an earlier result JSON")
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides, after --")
    args = parser.parse_args(argv)

    out = args.out / f"finetune_{args.intent}"
    out.mkdir(parents=True, exist_ok=True)
    result_file = args.out / f"finetune_{args.intent}.json"
    earlier = {}
    if args.reuse and result_file.exists():
        earlier = {_key(r["label"], r["seed"], r["overrides"]): r
                   for r in json.loads(result_file.read_text())["runs"]}
    reduced = data_without(args.intent, out / f"nlu_without_{args.intent}.yml")
    started = time.strftime("%Y-%m-%d %H:%M")
    runs, titles = [], {}
    for seed in args.seeds:
        for label, title, epochs, overrides in plan(args, seed, reduced, out):
            titles[label] = (title, epochs)
            found = earlier.get(_key(label, seed, overrides))
            print(f"seed {seed} {label} ..." + (" (reused)" if found else ""), flush=True)
            runs.append(found or run(label, seed, epochs, out, overrides, args.intent))
            print("  " + ", ".join(f"{k}={runs[-1][k]}" for k, _, _ in COLUMNS), flush=True)
    aggregates = {label: aggregate_summaries([r for r in runs if r["label"] == label])
                  for label in titles}
    result = {"command": "python -m experiments.bench.finetune " + " ".join(argv or sys.argv[1:]),
              "date": started, "machine": machine_info(), "intent": args.intent,
              "seeds": args.seeds, "epochs": args.epochs,
              "finetune_epochs": args.finetune_epochs,
              "finetune_batch_sizes": args.finetune_batch_sizes, "overrides": args.overrides,
              "aggregate": aggregates, "runs": runs}
    result_file.write_text(json.dumps(result, indent=2))
    print("\n".join(table(aggregates, titles)))
    return result


def _key(label: str, seed: int, overrides: list[str]) -> str:
    return json.dumps([label, seed, overrides])


def table(aggregates: dict[str, dict[str, Any]], titles: dict[str, tuple[str, int]]
          ) -> list[str]:
    rows = ["| model | epochs | " + " | ".join(c[1] for c in COLUMNS) + " |",
            "|" + " --- |" * (len(COLUMNS) + 2)]
    for label, aggregate in aggregates.items():
        title, epochs = titles[label]
        cells = [format_mean_sd(aggregate, key, scale=scale, digits=2 if scale == 100 else 0)
                 for key, _, scale in COLUMNS]
        rows.append(f"| {title} | {epochs} | " + " | ".join(cells) + " |")
    return rows


if __name__ == "__main__":
    main()
