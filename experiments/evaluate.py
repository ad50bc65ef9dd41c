"""Evaluate a trained DIET checkpoint on a split of any data config:
``python -m experiments.evaluate ckpt_path=outputs/.../checkpoints/last.ckpt data=snips``

Writes the same ``reports/`` as training does (summary.json, intent_report.json,
entity_report.json, errors.json, PNGs, report.md) into the run folder.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import experiments  # noqa: F401  (registers the config resolvers)
import hydra
from omegaconf import DictConfig, OmegaConf

from experiments.common import print_summary, write_reports
from nlu_models.diet.datamodule import as_data
from nlu_models.inference import NLUInterpreter


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    split = cfg.eval_split
    source = cfg.data.get(split)
    if source is None:
        raise ValueError(f"data config '{cfg.data.name}' has no '{split}' split; "
                         "choose eval_split=train|val|test")
    interpreter = NLUInterpreter.load(cfg.ckpt_path)
    data = as_data(OmegaConf.to_container(source, resolve=True))
    meta = {"task": "nlu", "dataset": cfg.data.name, "split": split, "seed": cfg.seed,
            "checkpoint": str(cfg.ckpt_path)}
    summary = write_reports(interpreter, data.examples, Path(cfg.paths.output_dir) / "reports",
                            meta, lenient=cfg.lenient_entities)
    print_summary(summary)
    return summary


@hydra.main(version_base="1.3", config_path="../configs", config_name="eval")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
