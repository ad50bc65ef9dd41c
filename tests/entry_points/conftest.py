"""Compose the real Hydra configs (as the entry points do) and shrink them for tests."""
from __future__ import annotations

from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

import experiments


def compose_config(name: str, overrides: list[str], output_dir: Path | None = None) -> DictConfig:
    GlobalHydra.instance().clear()
    cfg = experiments.compose_config(name, overrides)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir)
    return cfg


def tiny_diet_run(run: Path) -> DictConfig:
    """``experiment=diet_tiny`` trained (without evaluation) into the run folder ``run``, with
    the ``.hydra/config.yaml`` a Hydra run leaves there; returns its config."""
    from omegaconf import OmegaConf

    from experiments.train import train

    cfg = compose_config("train", ["experiment=diet_tiny", "evaluate=false"], run)
    train(cfg)
    (run / ".hydra").mkdir()
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    return cfg


@pytest.fixture
def tiny_train_cfg(tmp_path) -> DictConfig:
    return compose_config("train", ["experiment=diet_tiny", "logger=csv"], tmp_path)
