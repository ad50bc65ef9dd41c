"""What exporting costs in accuracy: a trained DIET run scored on its test split through torch
(the checkpoint's weights in a bundle), its ONNX graph and the graph's dynamic-int8 variant.

    python -m experiments.bench.int8 outputs/bench/runs/diet_snips_seed*
    python -m experiments.bench.int8 outputs/bench/runs/diet_atis_seed* --out bench_results/

Each RUN_DIR is a training run folder (``.hydra/config.yaml`` and ``checkpoints/last.ckpt``, as
``experiments.bench.accuracy`` leaves them). Its bundle is exported with ONNX and int8 into
``RUN_DIR/bundle``; each backend parses the whole test split in batches. Reports intent accuracy
and exact-span entity F1 per backend, the change against torch (mean ± sd over the runs), how
often the backends agree with torch on the intent, and utterances/s of batched parsing. Writes
``int8_<dataset>.json`` into ``--out``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from experiments.bench.common import machine_info
from nlu_models.diet.datamodule import as_data
from nlu_models.evaluation import evaluate_nlu
from nlu_models.export import export_nlu_bundle
from nlu_models.onnx_runtime import load_interpreter

BACKENDS = ("torch", "onnx", "onnx-int8")
METRICS = ("intent_accuracy", "entity_f1")


def measure_run(run_dir: Path, batch_size: int = 64) -> dict[str, Any]:
    """Export ``run_dir``'s last checkpoint and score every backend on its test split."""
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    messages = as_data(OmegaConf.to_container(cfg.data.test, resolve=True)).examples
    bundle = export_nlu_bundle(run_dir / "checkpoints" / "last.ckpt", run_dir / "bundle",
                               onnx=True, int8=True)
    result: dict[str, Any] = {"run": str(run_dir), "dataset": cfg.data.name, "seed": cfg.seed,
                              "epochs": cfg.trainer.max_epochs, "n_test": len(messages)}
    intents: dict[str, list[str | None]] = {}
    for backend in BACKENDS:
        interpreter = load_interpreter(bundle, backend=backend)
        started = time.perf_counter()
        predictions = [p for start in range(0, len(messages), batch_size)
                       for p in interpreter.parse_messages(messages[start:start + batch_size])]
        seconds = time.perf_counter() - started
        with tempfile.TemporaryDirectory() as reports:
            summary = evaluate_nlu(messages, predictions, reports, {}, plots=False)
        intents[backend] = [(p.get("intent") or {}).get("name") for p in predictions]
        result[backend] = {**{key: summary.get(key) for key in METRICS},
                           "utterances_per_second": round(len(messages) / seconds, 1),
                           "intent_agreement_with_torch": _agreement(intents["torch"],
                                                                      intents[backend])}
    result["sizes_mb"] = {name: round((bundle / name).stat().st_size / 2 ** 20, 2)
                          for name in ("model.safetensors", "model.onnx", "model.int8.onnx")}
    return result


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± sd over the runs of each backend's metrics and of their change against torch."""
    out: dict[str, Any] = {}
    for backend in BACKENDS:
        for key in (*METRICS, "intent_agreement_with_torch", "utterances_per_second"):
            values = [run[backend][key] for run in runs if run[backend].get(key) is not None]
            out[f"{backend}.{key}"] = _mean_sd(values)
            if backend != "torch" and key in METRICS:
                deltas = [run[backend][key] - run["torch"][key] for run in runs
                          if run[backend].get(key) is not None]
                out[f"{backend}.{key}_change"] = _mean_sd(deltas)
    return out


def _agreement(reference: list[str | None], other: list[str | None]) -> float:
    return sum(a == b for a, b in zip(reference, other)) / max(len(reference), 1)


def _mean_sd(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "sd": sd, "n": len(values)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="training run folders")
    parser.add_argument("--out", type=Path, default=Path("bench_results"))
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    runs = [measure_run(run, args.batch_size) for run in args.runs]
    datasets = sorted({run["dataset"] for run in runs})
    report = {"command": "python -m experiments.bench.int8 " + " ".join(map(str, args.runs)),
              "date": time.strftime("%Y-%m-%d"), "machine": machine_info(), "runs": runs,
              "aggregate": aggregate(runs)}
    args.out.mkdir(parents=True, exist_ok=True)
    out_file = args.out / f"int8_{'_'.join(datasets)}.json"
    out_file.write_text(json.dumps(report, indent=2))
    print(f"{'backend':10s} {'intent acc':>18s} {'entity F1':>18s} {'agree':>8s} {'utt/s':>8s}")
    for backend in BACKENDS:
        cells = []
        for key in METRICS:
            stat = report["aggregate"][f"{backend}.{key}"]
            cells.append(f"{100 * stat['mean']:.2f} ± {100 * stat['sd']:.2f}" if stat else "-")
        agree = report["aggregate"][f"{backend}.intent_agreement_with_torch"]
        speed = report["aggregate"][f"{backend}.utterances_per_second"]
        print(f"{backend:10s} {cells[0]:>18s} {cells[1]:>18s} {100 * agree['mean']:7.2f}% "
              f"{speed['mean']:8.0f}")
    print(f"wrote {out_file}")


if __name__ == "__main__":
    main()
