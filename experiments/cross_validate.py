"""Cross-validation: ``python -m experiments.cross_validate experiment=diet_hwu64 cv.folds=[1,2,3]``

Trains and evaluates one model per fold (each in ``fold_N/`` of the run folder), then writes
``cross_validation.json`` (mean, sd, n and the per-fold values of every metric) and
``cross_validation.md``. Data with predefined folds (HWU64's ``data.fold``) uses them; other data
is split into ``cv.n_folds`` stratified folds of its training split.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import experiments  # noqa: F401  (registers the config resolvers)
import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf
from sklearn.model_selection import StratifiedKFold

from experiments.common import log
from experiments.train import train
from nlu_models.diet.datamodule import as_data
from nlu_models.evaluation import aggregate_summaries, format_mean_sd

HEADLINE = ("intent_accuracy", "intent_macro_f1", "entity_f1", "entity_token_f1",
            "entity_lenient_f1", "response_accuracy", "response_macro_f1", "train_seconds")


def cross_validate(cfg: DictConfig) -> dict[str, Any]:
    out_dir = Path(cfg.paths.output_dir)
    summaries = []
    for fold, overrides in _folds(cfg):
        fold_cfg = OmegaConf.merge(cfg, {"paths": {"output_dir": str(out_dir / f"fold_{fold}")},
                                         "data": {"fold": fold} if "fold" in cfg.data else {}})
        log.info("fold %s", fold)
        summaries.append({"fold": fold, **train(fold_cfg, **overrides)})
    result = aggregate_summaries(summaries)
    (out_dir / "cross_validation.json").write_text(json.dumps(result, indent=2, default=str))
    (out_dir / "cross_validation.md").write_text(_markdown(cfg, result))
    print(_markdown(cfg, result))
    return result


def _folds(cfg: DictConfig):
    if "fold" in cfg.data:
        for fold in cfg.cv.folds:
            yield fold, {}
        return
    data = as_data(OmegaConf.to_container(cfg.data.train, resolve=True))
    intents = [m.intent or "" for m in data.examples]
    splitter = StratifiedKFold(n_splits=cfg.cv.n_folds, shuffle=True, random_state=cfg.seed)
    folds = splitter.split(np.zeros(len(intents)), intents)
    for fold, (train_idx, test_idx) in enumerate(folds, 1):
        yield fold, {"train": data.with_examples([data.examples[i] for i in train_idx]),
                     "test": data.with_examples([data.examples[i] for i in test_idx]),
                     "val": None}


def _markdown(cfg: DictConfig, result: dict[str, Any]) -> str:
    lines = [f"# Cross-validation: {cfg.data.name} / {cfg.model.name}, seed {cfg.seed}", "",
             "| metric | mean ± sd | folds |", "| --- | --- | --- |"]
    for key in HEADLINE:
        if key in result and isinstance(result[key], dict):
            scale = 1 if key.endswith("seconds") else 100
            lines.append(f"| {key} | {format_mean_sd(result, key, scale=scale)} | "
                         f"{result[key]['n']} |")
    return "\n".join(lines) + "\n"


@hydra.main(version_base="1.3", config_path="../configs", config_name="cross_validate")
def main(cfg: DictConfig) -> None:
    cross_validate(cfg)


if __name__ == "__main__":
    main()
