"""A linear baseline on DIET's own sparse features: how much the transformer adds.

    python -m experiments.bench.linear_baseline --experiments diet_atis diet_snips [--C 1.0]
        [--out outputs/bench] [-- hydra overrides, e.g. data.fold=1]

For each experiment the data config is composed as ``python -m experiments.train`` composes it,
its featurizer pipeline is fitted on the training split (the very features DIET trains on:
regex, lexical-syntactic, word and char n-gram counts), and each message becomes one sparse
row: its token features summed over the tokens, beside its sentence features. A multinomial
logistic regression (scikit-learn, lbfgs from zeros: no seeds; threaded BLAS can move a result
by an example or so) is trained on the training split and scored on the test split: intent
accuracy and macro F1 as the DIET reports count them (a test intent never seen in training is
an error). Writes ``linear_baseline_<experiment>[_fold<N>].json``
(the numbers, the command, the machine and the date) into ``--out`` and prints a Markdown table.
Entities are not predicted: the baseline is for the intent side only.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from experiments import REPO_ROOT, experiment_config
from experiments.bench.common import machine_info
from nlu_models.featurize import MessageFeatures


def message_matrix(features: Sequence[MessageFeatures], seq_size: int, sent_size: int):
    """One CSR row per message: token features summed (columns ``0..seq_size-1``, ids are
    1-based) then sentence features (``seq_size..seq_size+sent_size-1``)."""
    from scipy import sparse

    rows, columns, values = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0)]
    for row, f in enumerate(features):
        ids = np.concatenate([f.seq_ids - 1, f.sent_ids - 1 + seq_size])
        rows.append(np.full(len(ids), row))
        columns.append(ids)
        values.append(np.concatenate([f.seq_values, f.sent_values]))
    matrix = sparse.csr_matrix((np.concatenate(values), (np.concatenate(rows),
                                                         np.concatenate(columns))),
                               shape=(len(features), seq_size + sent_size))
    matrix.sum_duplicates()  # repeated token features add up
    return matrix


def run_baseline(experiment: str, overrides: Sequence[str] = (), c: float = 1.0,
                 max_iter: int = 2000) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    from experiments.train import build_datamodule

    cfg = experiment_config(experiment, overrides)
    if cfg.data.get("multi_label"):
        raise ValueError(f"{experiment} has multi-label intents; the linear baseline predicts "
                         "one intent per message")
    datamodule = build_datamodule(cfg.data, show_progress=False).prepare()
    if "test" not in datamodule.encoded:
        raise ValueError(f"{experiment}'s data has no test split")
    pipeline = datamodule.pipeline
    seq_size, sent_size = pipeline.seq_vocab_size, pipeline.sent_vocab_size

    def split(name: str):
        encoded = datamodule.encoded[name]
        x = message_matrix([e.features for e in encoded], seq_size, sent_size)
        return x, [e.message.intent for e in encoded]

    (x_train, y_train), (x_test, y_test) = split("train"), split("test")
    started = time.perf_counter()
    model = LogisticRegression(C=c, max_iter=max_iter).fit(x_train, y_train)
    seconds = time.perf_counter() - started
    predicted = model.predict(x_test)
    return {"experiment": experiment, "dataset": datamodule.name, "split": "test",
            "model": f"logistic regression (C={c}) on the summed sparse features",
            "features": [f.name for f in pipeline.sparse], "num_features": seq_size + sent_size,
            "num_train_examples": len(y_train), "n_examples": len(y_test),
            "intent_accuracy": float(np.mean(np.asarray(predicted) == np.asarray(y_test))),
            "intent_macro_f1": float(f1_score(y_test, predicted, average="macro",
                                              zero_division=0)),
            "train_seconds": round(seconds, 2), "overrides": list(overrides),
            "fold": datamodule.metadata.get("fold")}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", nargs="+", default=["diet_atis", "diet_snips"])
    parser.add_argument("--C", type=float, default=1.0, help="inverse L2 strength")
    parser.add_argument("--max-iter", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "bench")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for the data, after --")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    print("| experiment | intent acc | intent macro F1 | features | fit s |")
    print("| --- | --- | --- | --- | --- |")
    for experiment in args.experiments:
        result = run_baseline(experiment, args.overrides, args.C, args.max_iter)
        result.update(command=" ".join([Path(sys.executable).name, "-m",
                                        "experiments.bench.linear_baseline", *sys.argv[1:]]),
                      machine=machine_info(), date=time.strftime("%Y-%m-%d"))
        fold = f"_fold{result['fold']}" if result["fold"] is not None else ""
        (args.out / f"linear_baseline_{experiment}{fold}.json").write_text(
            json.dumps(result, indent=2))
        print(f"| {experiment} | {100 * result['intent_accuracy']:.2f} | "
              f"{100 * result['intent_macro_f1']:.2f} | {result['num_features']:,} | "
              f"{result['train_seconds']} |", flush=True)
        results.append(result)
    return results


if __name__ == "__main__":
    main()
