"""Time of one DIET training step (forward, backward, L2, optimiser) on a data set's first batches,
without Lightning, data loading or validation: what the transformer, CRF and dropout cost.

    OMP_NUM_THREADS=1 python -m experiments.bench.train_step --experiment diet_atis
    python -m experiments.bench.train_step --experiment diet_atis --steps 20 -- trainer=cpu_bf16

The model and data come from ``experiment`` (Hydra overrides after ``--``; ``trainer=cpu_bf16``
runs the steps under bfloat16 autocast). The first epoch's batches (Rasa's balanced batches of
the starting batch size) are drawn once; ``--warmup`` steps are not timed, then ``--steps``
steps are, and the mean and sd of their milliseconds are printed and written to
``train_step_<experiment>.json`` in ``--out``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from experiments import REPO_ROOT, experiment_config
from experiments.bench.common import machine_info
from experiments.train import build_datamodule
from nlu_models.diet.lit_module import DIETLitModule


def time_steps(experiment: str, steps: int = 10, warmup: int = 2,
               overrides: list[str] | None = None) -> dict[str, Any]:
    cfg = experiment_config(experiment, overrides or ())
    torch.manual_seed(cfg.seed)
    datamodule = build_datamodule(cfg.data, show_progress=False).prepare()
    module = DIETLitModule.for_data(datamodule, model=OmegaConf.to_container(cfg.model.config),
                                    **OmegaConf.to_container(cfg.model.training))
    optimizer = module.configure_optimizers()
    batches = iter(datamodule.train_dataloader())
    batches = [next(batches) for _ in range(warmup + steps)]
    bf16 = str(cfg.trainer.get("precision", "32")).startswith("bf16")
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    module.train()
    times = []
    for index, batch in enumerate(batches):
        started = time.perf_counter()
        with autocast:
            loss = module.model(batch).loss
        optimizer.zero_grad()
        loss.backward()
        module.on_after_backward()  # Rasa's L2 term, as in training
        optimizer.step()
        if index >= warmup:
            times.append((time.perf_counter() - started) * 1000)
    return {"experiment": experiment, "overrides": overrides or [], "steps": steps,
            "batch_shape": list(batches[0].mask.shape), "threads": torch.get_num_threads(),
            "step_ms_mean": statistics.mean(times),
            "step_ms_sd": statistics.stdev(times) if len(times) > 1 else 0.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench.train_step",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", default="diet_atis")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "bench")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, after --")
    args = parser.parse_args(argv)
    result = time_steps(args.experiment, args.steps, args.warmup, args.overrides)
    result["machine"] = machine_info()
    print(f"{args.experiment} {' '.join(args.overrides)}: {result['step_ms_mean']:.1f} ± "
          f"{result['step_ms_sd']:.1f} ms per training step (batch {result['batch_shape']}, "
          f"{result['threads']} threads)")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"train_step_{args.experiment}.json"
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
