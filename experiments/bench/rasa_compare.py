"""dialab's DIET beside Rasa 3.6's DIET on the same data, the same epochs, the same machine, in
one run: training wall time and per-epoch time (ratio), peak memory, and test intent accuracy and
exact-span entity F1 — both models' predictions scored by dialab's evaluation code.

    python -m experiments.bench.rasa_compare --dataset atis --epochs 1 --bf16
    python -m experiments.bench.rasa_compare --dataset snips --epochs 2 --out bench_results/

Needs the anchor: ``../shared/tools/rasa_anchor/install.sh`` (venv at $RASA_VENV, default
~/.cache/dialab-anchor/rasa-venv). Both trainings run one after the other, never at once.
``--bf16`` adds a dialab run with ``trainer=cpu_bf16`` and its ratios. Writes
``rasa_compare_<dataset>_<epochs>ep.json`` and prints a table.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from experiments import REPO_ROOT
from experiments.bench.common import (anchor_config, machine_info, rasa_env, rasa_executable,
                                      ratios, timed_command, train_dialab)
from nlu_models.diet.datamodule import as_data
from nlu_models.data.rasa_yaml import nlu_to_yaml
from nlu_models.data.schema import NLUData
from nlu_models.evaluation import evaluate_nlu

_EPOCH_BAR = re.compile(r"Epochs:\s+100%.*?(\d+)/(\d+) \[((?:\d+:)?\d+:\d+)<")


def run_rasa(train_yml: Path, test_messages, epochs: int, work: Path) -> dict[str, Any]:
    rasa, env = rasa_executable(), rasa_env()
    config = anchor_config(epochs, work / "config.yml")
    train = timed_command([str(rasa), "train", "nlu", "-c", str(config), "-u", str(train_yml),
                           "--out", str(work / "models"), "--fixed-model-name", "diet"],
                          work / "rasa_train.log", cwd=work, env=env)
    texts = work / "test_texts.json"
    texts.write_text(json.dumps([m.text for m in test_messages]))
    predictions_file = work / "rasa_predictions.json"
    parse_script = Path(__file__).with_name("rasa_parse.py")
    subprocess.run([str(rasa_executable("python")), str(parse_script),
                    str(work / "models" / "diet.tar.gz"), str(texts), str(predictions_file)],
                   check=True, cwd=work, env=env, capture_output=True)
    predictions = json.loads(predictions_file.read_text())
    summary = evaluate_nlu(test_messages, predictions, work / "rasa_reports",
                           {"system": "rasa-3.6.21", "epochs": epochs}, plots=False)
    return {**train, "diet_epoch_seconds": _rasa_epoch_seconds(work / "rasa_train.log"),
            **_headline(summary)}


def _rasa_epoch_seconds(log: Path) -> float | None:
    """Seconds per DIET epoch from the last complete tqdm "Epochs" bar in Rasa's log."""
    matches = _EPOCH_BAR.findall(log.read_text(errors="replace"))
    if not matches:
        return None
    done, total, elapsed = matches[-1]
    parts = [int(p) for p in elapsed.split(":")]
    seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    return round(seconds / int(done), 2)


def run_dialab(dataset: str, epochs: int, seed: int, work: Path, name: str = "dialab",
               overrides: tuple[str, ...] = ()) -> dict[str, Any]:
    run_dir = work / name
    result = train_dialab(f"diet_{dataset}", epochs, seed, run_dir, work / f"{name}_train.log",
                          overrides)
    summary = json.loads((run_dir / "reports" / "summary.json").read_text())
    return {**result, "train_seconds": summary["train_seconds"],
            "diet_epoch_seconds": round(summary["train_seconds"] / epochs, 2),
            **_headline(summary)}


def experiment_splits(experiment: str, splits: tuple[str, ...]) -> list:
    """The splits the experiment's data config names (``paths.data_dir`` / DIALAB_DATA), so
    Rasa gets exactly the data dialab trains on."""
    from omegaconf import OmegaConf

    from experiments import experiment_config

    cfg = experiment_config(experiment)
    data = OmegaConf.to_container(cfg.data, resolve=True)
    return [as_data(data[split]) for split in splits]


def _headline(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("intent_accuracy", "intent_macro_f1", "entity_f1", "entity_token_f1")
    return {k: summary[k] for k in keys if k in summary}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=["atis", "snips"], default="atis")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "bench")
    parser.add_argument("--bf16", action="store_true",
                        help="also train dialab with trainer=cpu_bf16 (bfloat16 autocast) and "
                             "report its ratios beside the default's")
    args = parser.parse_args(argv)

    work = args.out / f"rasa_compare_{args.dataset}_{args.epochs}ep"
    work.mkdir(parents=True, exist_ok=True)
    train, test = experiment_splits(f"diet_{args.dataset}", ("train", "test"))
    train_yml = work / "nlu.yml"
    # one block per intent, as Rasa users write it (the reader keeps the file order)
    grouped = sorted(train.examples, key=lambda m: m.intent or "")
    train_yml.write_text(nlu_to_yaml(NLUData(examples=grouped)))

    started = time.strftime("%Y-%m-%d %H:%M")
    print(f"[{started}] Rasa 3.6 DIET, {args.epochs} epochs on {args.dataset} ...", flush=True)
    rasa = run_rasa(train_yml, test.examples, args.epochs, work)
    print(f"  done: {rasa}", flush=True)
    print(f"dialab DIET, {args.epochs} epochs ...", flush=True)
    dialab = run_dialab(args.dataset, args.epochs, args.seed, work)
    print(f"  done: {dialab}", flush=True)
    variants: dict[str, Any] = {}
    if args.bf16:
        print(f"dialab DIET with trainer=cpu_bf16, {args.epochs} epochs ...", flush=True)
        bf16 = run_dialab(args.dataset, args.epochs, args.seed, work, "dialab_bf16",
                          ("trainer=cpu_bf16",))
        print(f"  done: {bf16}", flush=True)
        variants = {"dialab_bf16": bf16,
                    "ratios_bf16": ratios(rasa, bf16, "diet_epoch_seconds")}
    result = {
        "dataset": args.dataset, "epochs": args.epochs, "seed": args.seed, "date": started,
        "machine": machine_info(), "command": " ".join(["python -m experiments.bench.rasa_compare",
                                                         *(argv or sys.argv[1:])]),
        "train_examples": len(train.examples), "test_examples": len(test.examples),
        "rasa": rasa, "dialab": dialab,
        "ratios": ratios(rasa, dialab, "diet_epoch_seconds"), **variants,
    }
    out_file = args.out / f"rasa_compare_{args.dataset}_{args.epochs}ep.json"
    out_file.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
