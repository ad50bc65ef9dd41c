"""Hydra entry points (train, evaluate, cross_validate, compare) and benchmarks. Hydra stays
here, at the edge: the packages below never import it."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig, OmegaConf

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "configs"

if not OmegaConf.has_resolver("dialab_root"):
    OmegaConf.register_new_resolver("dialab_root", lambda: str(REPO_ROOT))


def compose_config(config_name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """``configs/<config_name>.yaml`` with ``overrides``, as its entry point would compose it;
    works inside a running Hydra app (its search path) and outside one."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return compose(config_name=config_name, overrides=list(overrides))
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))


def experiment_config(experiment: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The ``train`` config of ``experiment=<experiment>`` with ``overrides`` (what
    ``python -m experiments.train experiment=... <overrides>`` runs)."""
    return compose_config("train", [f"experiment={experiment}", *overrides])
